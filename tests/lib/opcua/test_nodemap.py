"""Node maps: the bundled one loads, bad ones fail naming file, key path and reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from edge_ems.exceptions import PointMapError
from edge_ems.opcua.nodemap import (
    NodeMap,
    ReadMode,
    load_catalog,
    load_node_map,
    parse_node_map,
    validate_node_map,
)
from edge_ems.pointmap.model import Access

GOOD = """
device:
  {maker: Edge EMS, model: BESS, kind: battery, documentation: test, subscription_interval: 0.25}
points:
  soc_pct: {node: "ns=2;s=BESS.Soc", mode: subscribe, valid_range: [0, 100]}
  battery_power_w: {node: "i=2258", scale: 1000}
  battery_power_setpoint_w:
    node: "nsu=urn:x;s=BESS.PowerSetpoint"
    access: rw
    write: {allow_write: true, min: -5000, max: 5000}
"""


def test_the_simulator_map_is_bundled() -> None:
    sim = load_catalog()["sim_bess"]
    assert sim.device.id == "sim_bess"
    setpoint = sim.points["battery_power_setpoint_w"]
    assert setpoint.write is not None
    assert setpoint.write.allow_write
    assert sim.points["soc_pct"].mode is ReadMode.SUBSCRIBE


def test_a_good_map_parses_into_typed_points() -> None:
    node_map = parse_node_map(GOOD, source="good.yaml", map_id="good")
    assert node_map.device.subscription_interval == 0.25
    assert node_map.points["battery_power_w"].mode is ReadMode.POLL
    assert node_map.points["battery_power_w"].scale == 1000.0
    setpoint = node_map.points["battery_power_setpoint_w"]
    assert setpoint.access is Access.READ_WRITE
    assert setpoint.write is not None
    assert (setpoint.write.minimum, setpoint.write.maximum) == (-5000.0, 5000.0)


def _with(**point: Any) -> str:
    data: dict[str, Any] = yaml.safe_load(GOOD)
    data["points"]["soc_pct"] = {"node": "ns=2;s=BESS.Soc", **point}
    return yaml.safe_dump(data)


@pytest.mark.parametrize(
    ("text", "path", "reason"),
    [
        (_with(node="garbage"), "points.soc_pct.node", "not a node id"),
        (_with(node=""), "points.soc_pct.node", "expected a node id"),
        (_with(mode="push"), "points.soc_pct.mode", "value must be one of"),
        (_with(access="x"), "points.soc_pct.access", "value must be one of"),
        (_with(scale=0), "points.soc_pct.scale", "scale is 0"),
        (_with(write={"allow_write": True}), "points.soc_pct.write", "read-only point"),
        (_with(access="rw"), "points.soc_pct.write", "needs a 'write' section"),
        (
            _with(access="rw", write={"allow_write": True, "min": 5, "max": 1}),
            "points.soc_pct.write",
            "min 5.0 is above max 1.0",
        ),
        (
            _with(access="w", mode="subscribe", write={"allow_write": True}),
            "points.soc_pct.mode",
            "write-only",
        ),
        ("device: {}\npoints: {}\n", "device.documentation", "required key not provided"),
        (GOOD.replace("soc_pct", "soc_pc"), "points.soc_pc", "did you mean soc_pct"),
        (GOOD.replace("kind: battery", "kind: toaster"), "device.kind", "value must be one of"),
        (GOOD.replace("kind: battery, ", ""), "device.kind", "required key not provided"),
    ],
)
def test_bad_maps_name_key_path_and_reason(text: str, path: str, reason: str) -> None:
    with pytest.raises(PointMapError) as caught:
        parse_node_map(text, source="bad.yaml", map_id="bad")
    assert caught.value.source == "bad.yaml"
    assert caught.value.path.startswith(path)
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    "text",
    ["points: [1, 2", "a: 1\na: 2\n", "when: 2020-02-30\n", "[" * 1000],
    ids=["unclosed", "duplicate key", "impossible date", "nested deeply"],
)
def test_broken_yaml_is_a_point_map_error(text: str) -> None:
    with pytest.raises(PointMapError, match=r"broken\.yaml"):
        parse_node_map(text, source="broken.yaml", map_id="broken")


def test_an_unreadable_file_names_itself(tmp_path: Path) -> None:
    with pytest.raises(PointMapError, match="cannot read"):
        load_node_map(tmp_path / "missing.yaml")


_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
    st.sampled_from(["ns=2;s=x", "i=85", "nsu=urn:a;s=b", "rw", "w", "subscribe", "poll"]),
)  # fmt: skip
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=12), st.integers()), inner, max_size=4),
    ),
    max_leaves=12,
)
_KEYS = st.sampled_from(
    ["device", "points", "node", "access", "mode", "scale", "write", "allow_write", "min"]
)


def _outcome(data: Any) -> NodeMap | PointMapError:
    try:
        return validate_node_map(data, source="fuzz.yaml", map_id="fuzz")
    except PointMapError as err:
        return err


@given(_VALUES)
def test_any_document_is_a_map_or_a_clear_error(data: Any) -> None:
    outcome = _outcome(data)
    assert isinstance(outcome, NodeMap) or (outcome.source == "fuzz.yaml" and outcome.reason)


@given(st.lists(st.tuples(st.sampled_from(["device", "points", "soc_pct"]), _KEYS, _VALUES)))
def test_any_graft_onto_a_good_map_is_a_map_or_a_clear_error(
    grafts: list[tuple[str, str, Any]],
) -> None:
    data: dict[str, Any] = yaml.safe_load(GOOD)
    targets = {"device": data["device"], "points": data["points"]}
    targets["soc_pct"] = data["points"]["soc_pct"]
    for target, key, value in grafts:
        targets[target][key] = value
    outcome = _outcome(data)
    assert isinstance(outcome, NodeMap) or (outcome.source == "fuzz.yaml" and outcome.reason)


@given(st.text(max_size=40))
def test_any_node_id_text_is_accepted_or_a_clear_error(node: str) -> None:
    data: dict[str, Any] = yaml.safe_load(GOOD)
    data["points"]["soc_pct"]["node"] = node
    outcome = _outcome(data)
    assert isinstance(outcome, NodeMap) or outcome.path == "points.soc_pct.node"
