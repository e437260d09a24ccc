"""Every way a point map can be wrong gives a PointMapError naming the file, key path and reason.

Table-driven cases cover each check of the schema and the loader; hypothesis feeds arbitrary
data and arbitrary YAML text to show nothing else ever escapes.
"""

from __future__ import annotations

import copy
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_ems.exceptions import PointMapError
from edge_ems.metrics import METRICS
from edge_ems.pointmap import PointMap, load_point_map, parse_point_map
from edge_ems.pointmap.codec import from_value
from edge_ems.pointmap.schema import validate

SOURCE = "maps/test.yaml"

BASE: dict[str, Any] = {
    "device": {
        "maker": "Maker",
        "model": "Model",
        "kind": "hybrid_inverter",
        "documentation": "Manual v1, table 3",
    },
    "points": {
        "grid_power_w": {"address": 10, "type": "i16"},
        "device_serial": {"address": 0, "type": "string", "length": 5},
        "device_alarms": {"address": 20, "type": "bitfield", "bits": {0: "fan", 3: "grid"}},
        "work_mode": {
            "address": 30,
            "type": "enum",
            "access": "rw",
            "options": {0: "self_use", 1: "export"},
            "write": {"allow_write": True, "min": 0, "max": 1},
        },
        "battery_charge_current_max_a": {
            "address": 40,
            "type": "u32",
            "access": "rw",
            "write": {"allow_write": False, "min": 0, "max": 100},
        },
    },
}

type Edit = Callable[[dict[str, Any]], object]


def _set(path: str, value: object) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node[key]
        node[last] = value

    return edit


def _drop(path: str) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node[key]
        del node[last]

    return edit


def _both(*edits: Edit) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        for one in edits:
            one(data)

    return edit


WORK_MODE = "points.work_mode"
CURRENT = "points.battery_charge_current_max_a"

# (id, edit of BASE, key path the error must name, part of the reason)
CASES: list[tuple[str, Edit, str, str]] = [
    ("device missing", _drop("device"), "device", "required key"),
    ("points missing", _drop("points"), "points", "required key"),
    ("no points", _set("points", {}), "points", "no points"),
    ("points not a mapping", _set("points", [1]), "points", "expected a"),
    ("unknown top key", _set("extra", 1), "extra", "unknown key"),
    ("unknown metric", _set("points.nonsense", {"address": 1, "type": "u16"}),
     "points.nonsense", "unknown metric"),
    ("metric hint", _set("points.grid_power", {"address": 1, "type": "u16"}),
     "points.grid_power", "did you mean grid_power_w"),
    ("maker empty", _set("device.maker", ""), "device.maker", "length"),
    ("kind unknown", _set("device.kind", "toaster"), "device.kind", "one of"),
    ("device extra key", _set("device.colour", "red"), "device.colour", "unknown key"),
    ("unit id too high", _set("device.default_unit_id", 256), "device.default_unit_id",
     "at most 255"),
    ("max_block zero", _set("device.max_block", 0), "device.max_block", "at least 1"),
    ("max_gap too big", _set("device.max_gap", 125), "device.max_gap", "at most 124"),
    ("word order", _set("device.word_order", "middle"), "device.word_order", "one of"),
    ("write function", _set("device.write_function", "fc05"), "device.write_function", "one of"),
    ("refused reversed", _set("device.refused", [[9, 3]]), "device.refused.0", "after last"),
    ("refused shape", _set("device.refused", [[1]]), "device.refused.0", "[first, last]"),
    ("address too high", _set("points.grid_power_w.address", 70000),
     "points.grid_power_w.address", "at most 65535"),
    ("address negative", _set("points.grid_power_w.address", -1),
     "points.grid_power_w.address", "at least 0"),
    ("address bool", _set("points.grid_power_w.address", True),
     "points.grid_power_w.address", "expected an integer"),
    ("address float", _set("points.grid_power_w.address", 1.5),
     "points.grid_power_w.address", "expected an integer"),
    ("address missing", _drop("points.grid_power_w.address"),
     "points.grid_power_w.address", "required key"),
    ("type unknown", _set("points.grid_power_w.type", "i24"),
     "points.grid_power_w.type", "one of"),
    ("scale zero", _set("points.grid_power_w.scale", 0), "points.grid_power_w.scale",
     "scale is 0"),
    ("scale nan", _set("points.grid_power_w.scale", float("nan")),
     "points.grid_power_w.scale", "finite"),
    ("scale infinite", _set("points.grid_power_w.scale", float("inf")),
     "points.grid_power_w.scale", "finite"),
    ("scale overflows", _set("points.grid_power_w.scale", 10**400),
     "points.grid_power_w.scale", "too large"),
    ("scale text", _set("points.grid_power_w.scale", "ten"),
     "points.grid_power_w.scale", "expected a number"),
    ("poll unknown", _set("points.grid_power_w.poll", "hourly"),
     "points.grid_power_w.poll", "one of"),
    ("access unknown", _set("points.grid_power_w.access", "x"),
     "points.grid_power_w.access", "one of"),
    ("point extra key", _set("points.grid_power_w.gain", 2), "points.grid_power_w.gain",
     "unknown key"),
    ("valid_range reversed", _set("points.grid_power_w.valid_range", [5, 1]),
     "points.grid_power_w.valid_range", "above maximum"),
    ("valid_range shape", _set("points.grid_power_w.valid_range", [1, 2, 3]),
     "points.grid_power_w.valid_range", "[minimum, maximum]"),
    ("unimplemented negative", _set("points.grid_power_w.unimplemented", -1),
     "points.grid_power_w.unimplemented", "at least 0"),
    ("string without length", _drop("points.device_serial.length"),
     "points.device_serial.length", "needs 'length'"),
    ("string too long", _set("points.device_serial.length", 126),
     "points.device_serial.length", "at most 125"),
    ("fixed type with length", _set("points.grid_power_w.length", 2),
     "points.grid_power_w.length", "fixed length"),
    ("enum without options", _drop(f"{WORK_MODE}.options"), f"{WORK_MODE}.options",
     "needs 'options'"),
    ("enum odd length", _set(f"{WORK_MODE}.length", 3), f"{WORK_MODE}.length", "1, 2 or 4"),
    ("option label empty", _set(f"{WORK_MODE}.options", {0: ""}), f"{WORK_MODE}.options.0",
     "length"),
    ("bitfield without bits", _drop("points.device_alarms.bits"), "points.device_alarms.bits",
     "needs 'bits'"),
    ("bit beyond field", _set("points.device_alarms.bits", {16: "far"}),
     "points.device_alarms.bits", "beyond the field's 16 bits"),
    ("bit name", _set("points.device_alarms.bits", {0: "Fan Fault"}),
     "points.device_alarms.bits.0", "lower-case"),
    ("read-only with write", _set("points.grid_power_w.write", {"allow_write": True}),
     "points.grid_power_w.write", "read-only point"),
    ("writable without write", _drop(f"{WORK_MODE}.write"), f"{WORK_MODE}.write",
     "needs a 'write' section"),
    ("allow_write missing", _drop(f"{WORK_MODE}.write.allow_write"),
     f"{WORK_MODE}.write.allow_write", "required key"),
    ("allow_write not bool", _set(f"{WORK_MODE}.write.allow_write", "yes"),
     f"{WORK_MODE}.write.allow_write", "expected bool"),
    ("write min above max", _set(f"{WORK_MODE}.write.min", 5), f"{WORK_MODE}.write",
     "above max"),
    ("write limit nan", _set(f"{WORK_MODE}.write.max", float("nan")), f"{WORK_MODE}.write.max",
     "finite"),
    ("fc06 on two registers", _set(f"{CURRENT}.write.function", "fc06"),
     f"{CURRENT}.write.function", "fc06"),
    ("input register written", _set(f"{WORK_MODE}.space", "input"), f"{WORK_MODE}.access",
     "cannot be written"),
    ("serial not private", _set("points.device_serial.private", False),
     "points.device_serial.private", "always private"),
    ("private not bool", _set("points.grid_power_w.private", "yes"),
     "points.grid_power_w.private", "expected bool"),
    ("version of a string", _set("points.device_serial.version", "hex_digits"),
     "points.device_serial.version", "read-only u16"),
    ("version written", _set(f"{CURRENT}.version", "bytes"), f"{CURRENT}.version",
     "read-only u16"),
    ("version unknown", _set("points.grid_power_w.version", "roman"),
     "points.grid_power_w.version", "one of"),
    ("past the last register", _set("points.grid_power_w", {"address": 65535, "type": "u32"}),
     "points.grid_power_w.address", "past register 65535"),
    ("longer than a read", _set("device.max_block", 1), "points.device_serial", "reads at most 1"),
    ("in a refused range", _set("device.refused", [[8, 11]]), "points.grid_power_w.address",
     "refused range 8-11"),
    ("scale factor refused", _both(
        _set("device.refused", [[99, 99]]), _set("points.grid_power_w.scale_factor", 99)),
     "points.grid_power_w.address", "refused range 99-99"),
    ("safe_mode unknown metric", _set("device.safe_mode", {"nonsense": 1}),
     "device.safe_mode.nonsense", "unknown metric"),
    ("safe_mode not a point", _set("device.safe_mode", {"soc_pct": 1}), "device.safe_mode.soc_pct",
     "allow_write: true"),
    ("safe_mode not allowed", _set("device.safe_mode", {"battery_charge_current_max_a": 1}),
     "device.safe_mode.battery_charge_current_max_a", "allow_write: true"),
    ("safe_mode value text", _set("device.safe_mode", {"work_mode": "self"}),
     "device.safe_mode.work_mode", "expected a number"),
    ("revert_timer read-only", _set("device.revert_timer", "grid_power_w"), "device.revert_timer",
     "not a writable point"),
    ("identify not a point", _set("device.identify", {"device_model": "x"}),
     "device.identify.device_model", "not a point"),
    ("identify bad pattern", _set("device.identify", {"device_serial": "("}),
     "device.identify.device_serial", "not a regular expression"),
    ("identify huge repeat", _set("device.identify", {"device_serial": "a{99999999999}"}),
     "device.identify.device_serial", "not a regular expression"),
    ("gap reversed", _set("points.work_mode.write.not_between", [1, 0]),
     "points.work_mode.write.not_between", "above maximum"),
    ("gap outside the limits", _set("points.battery_charge_current_max_a.write.not_between",
     [50, 150]), "points.battery_charge_current_max_a.write.not_between", "no gap inside"),
    ("gap empty", _set("points.battery_charge_current_max_a.write.not_between", [5, 5]),
     "points.battery_charge_current_max_a.write.not_between", "no gap inside"),
    ("lease not allowed", _set("points.battery_charge_current_max_a.write.lease", True),
     "points.battery_charge_current_max_a.write.lease", "must allow writing"),
    ("lease without safe mode", _set("points.work_mode.write.lease", True),
     "points.work_mode.write.lease", "device.safe_mode must say"),
]  # fmt: skip


def _base() -> dict[str, Any]:
    return copy.deepcopy(BASE)


def test_base_map_is_valid() -> None:
    point_map = validate(_base(), source=SOURCE, map_id="test")
    assert set(point_map.points) == set(BASE["points"])
    assert point_map.source == SOURCE
    assert point_map.device.id == "test"
    # A serial number is private without saying so; other points only when they say so.
    assert point_map.points["device_serial"].private
    assert not point_map.points["grid_power_w"].private


@pytest.mark.parametrize(
    ("edit", "path", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_schema_errors_name_file_path_and_reason(edit: Edit, path: str, reason: str) -> None:
    data = _base()
    edit(data)
    with pytest.raises(PointMapError) as caught:
        validate(data, source=SOURCE, map_id="test")
    err = caught.value
    assert err.source == SOURCE
    assert err.path == path
    assert reason in err.reason
    assert str(err) == f"{SOURCE}: {path}: {err.reason}"


@pytest.mark.parametrize("data", [None, [], "text", 3])
def test_top_level_must_be_a_mapping(data: object) -> None:
    with pytest.raises(PointMapError, match="expected a mapping") as caught:
        validate(data, source=SOURCE, map_id="test")
    assert caught.value.source == SOURCE


# (id, YAML text, key path or position, part of the reason)
YAML_CASES: list[tuple[str, str, str, str]] = [
    ("syntax", "device: [unclosed\n", "line 2, column 1", "not valid YAML"),
    ("tab indentation", "device:\n\tmaker: x\n", "line 2, column 1", "not valid YAML"),
    ("duplicate key", "device: {}\ndevice: {}\n", "line 2, column 1", "duplicate key 'device'"),
    ("unhashable key", "? [a, b]\n: 1\n", "line 1, column 3", "unhashable key"),
    ("python tag", "device: !!python/name:os.system\n", "line 1, column 9", "not valid YAML"),
    ("impossible date", "device: 2020-02-30\n", "", "not valid YAML: day"),
    ("deep nesting", "[" * 5000 + "]" * 5000, "", "nested too deeply"),
    ("empty document", "", "", "expected a mapping"),
]


@pytest.mark.parametrize(
    ("text", "path", "reason"),
    [case[1:] for case in YAML_CASES],
    ids=[case[0] for case in YAML_CASES],
)
def test_yaml_errors_name_file_position_and_reason(text: str, path: str, reason: str) -> None:
    with pytest.raises(PointMapError) as caught:
        parse_point_map(text, source=SOURCE, map_id="test")
    assert caught.value.source == SOURCE
    assert caught.value.path == path
    assert reason in caught.value.reason


def test_yaml_hex_addresses_and_option_codes(tmp_path: Path) -> None:
    path = tmp_path / "hex.yaml"
    data = _base()
    data["points"]["grid_power_w"]["address"] = 0x10
    path.write_text(yaml.safe_dump(data).replace("address: 16", "address: 0x10"))
    point_map = load_point_map(path)
    assert point_map.points["grid_power_w"].address == 16
    assert point_map.device.id == "hex"


def test_unreadable_file_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    with pytest.raises(PointMapError, match="cannot read") as caught:
        load_point_map(missing)
    assert caught.value.source == str(missing)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(PointMapError, match="cannot read"):
        load_point_map(binary)


# --- fuzzing -------------------------------------------------------------------------------

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["u16", "i16", "u32", "f32", "enum", "bitfield", "string", "rw", "r",
                      "input", "holding", "little", "fc06", "fast", "meter"])
)  # fmt: skip
_ANY = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8) | st.integers(-3, 70), inner, max_size=4),
    max_leaves=20,
)
_POINT_KEYS = [
    "address", "type", "length", "space", "access", "scale", "offset", "scale_factor",
    "word_order", "byte_order", "unimplemented", "valid_range", "options", "bits", "poll",
    "write",
]  # fmt: skip
_DEVICE_KEYS = [*BASE["device"], "space", "max_block", "max_gap", "refused", "write_function",
                "safe_mode", "revert_timer", "identify", "default_unit_id"]  # fmt: skip
_METRIC_NAMES = sorted(METRICS)


@st.composite
def near_valid_maps(draw: st.DrawFn) -> dict[str, Any]:
    """The base map with a few keys replaced by arbitrary data, so most checks get reached."""
    data = _base()
    for _ in range(draw(st.integers(1, 4))):
        section = draw(st.sampled_from(["device", "points", "point", "write"]))
        value = draw(_ANY)
        if section == "device":
            data["device"][draw(st.sampled_from(_DEVICE_KEYS))] = value
        elif section == "points":
            data["points"][draw(st.sampled_from(_METRIC_NAMES[:40]))] = value
        else:
            metric = draw(st.sampled_from(sorted(data["points"])))
            point = data["points"][metric]
            if not isinstance(point, dict):
                continue
            if section == "point":
                point[draw(st.sampled_from(_POINT_KEYS))] = value
            else:
                point["write"] = {"allow_write": draw(st.booleans()), "min": value}
    return data


def _valid_or_point_map_error(load: Callable[[], PointMap]) -> None:
    """Any exception but PointMapError propagates and fails the test."""
    error: PointMapError | None = None
    try:
        point_map = load()
    except PointMapError as err:
        error = err
    else:
        assert isinstance(point_map, PointMap)
        assert point_map.points
    if error is not None:
        assert error.source == SOURCE
        assert error.reason


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(near_valid_maps())
def test_fuzzed_maps_load_or_raise_point_map_error(data: dict[str, Any]) -> None:
    _valid_or_point_map_error(lambda: validate(data, source=SOURCE, map_id="fuzz"))


@FUZZ
@given(_ANY)
def test_arbitrary_data_loads_or_raises_point_map_error(data: object) -> None:
    _valid_or_point_map_error(lambda: validate(data, source=SOURCE, map_id="fuzz"))


@FUZZ
@given(near_valid_maps(), st.data())
def test_fuzzed_yaml_text_loads_or_raises_point_map_error(
    data: dict[str, Any], draw: st.DataObject
) -> None:
    text = yaml.safe_dump(data)
    # Corrupt the text at a few places: YAML punctuation, tags, indentation, anything.
    for _ in range(draw.draw(st.integers(0, 3))):
        at = draw.draw(st.integers(0, len(text)))
        junk = draw.draw(
            st.text(alphabet=string.printable + "&*!|>%@`\t", max_size=6)
            | st.sampled_from(["!!python/object:os.system", "*ref", "&a", "<<: *a", "? ", "\t"])
        )
        text = text[:at] + junk + text[at:]
    _valid_or_point_map_error(lambda: parse_point_map(text, source=SOURCE, map_id="fuzz"))


@FUZZ
@given(st.text(max_size=200))
def test_arbitrary_text_loads_or_raises_point_map_error(text: str) -> None:
    _valid_or_point_map_error(lambda: parse_point_map(text, source=SOURCE, map_id="fuzz"))


def test_a_gap_in_the_limits_refuses_values_inside_it() -> None:
    data = _base()
    data["points"]["battery_charge_current_max_a"]["write"] = {
        "allow_write": True, "min": 0, "max": 32, "not_between": [0, 6], "lease": True,
    }  # fmt: skip
    data["device"]["safe_mode"] = {"battery_charge_current_max_a": 6}
    point = validate(data, source=SOURCE, map_id="test").points["battery_charge_current_max_a"]
    assert point.write is not None
    assert (point.write.not_between, point.write.lease) == ((0.0, 6.0), True)
    assert from_value(point, 0) == 0
    assert from_value(point, 6) == 6
    with pytest.raises(ValueError, match="lies between 0 and 6; write 0 or from 6 up"):
        from_value(point, 3)


def test_a_battery_power_setpoint_is_only_ever_leased() -> None:
    text = """
device: {maker: M, model: N, kind: battery, documentation: d,
         safe_mode: {battery_power_setpoint_w: 0}}
points:
  battery_power_setpoint_w: {address: 10, type: i16, access: rw,
                             write: {allow_write: true}}
"""
    with pytest.raises(PointMapError, match="only ever written as a lease") as raised:
        parse_point_map(text, source="x.yaml", map_id="x")
    assert raised.value.path == "points.battery_power_setpoint_w.write.lease"
    leased = text.replace("allow_write: true}", "allow_write: true, lease: true}")
    assert (
        parse_point_map(leased, source="x.yaml", map_id="x")
        .points["battery_power_setpoint_w"]
        .write.lease
    )  # type: ignore[union-attr]
