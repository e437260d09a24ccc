"""Topic maps: the bundled ones load, bad ones fail naming file, key path and reason."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from edge_ems.bms.topicmap import (
    PayloadType,
    TopicMap,
    load_catalog,
    load_topic_map,
    parse_topic_map,
    validate_topic_map,
)
from edge_ems.exceptions import PointMapError

GOOD = """
bridge:
  name: Test bridge
  maker: Test
  model: T1
  documentation: test
  variables: {prefix: bms}
points:
  soc_pct: {topic: "{prefix}/soc"}
  battery_current_a: {topic: "{prefix}/state", path: "data.current", scale: -1}
  bms_alarms: {topic: "{prefix}/state", path: "data.alarms"}
  device_serial: {topic: "{prefix}/info", path: "cells[0].serial"}
"""


def test_catalog_holds_the_three_bridges() -> None:
    catalog = load_catalog()
    assert set(catalog) == {"esphome_jk_bms", "venus_os_battery", "batmon_ha"}
    for map_id, topic_map in catalog.items():
        assert topic_map.bridge.id == map_id
        assert "soc_pct" in topic_map.points
        assert topic_map.bridge.documentation.startswith("https://")


def test_a_good_map_parses_into_typed_points() -> None:
    topic_map = parse_topic_map(GOOD, source="good.yaml", map_id="good")
    assert topic_map.bridge.variables == {"prefix": "bms"}
    current = topic_map.points["battery_current_a"]
    assert current.path == ("data", "current")
    assert current.scale == -1.0
    assert current.type is PayloadType.NUMBER
    assert topic_map.points["bms_alarms"].type is PayloadType.INTEGER  # flags are integers
    assert topic_map.points["device_serial"].type is PayloadType.TEXT  # identity is text
    assert topic_map.points["device_serial"].path == ("cells", 0, "serial")
    assert topic_map.points["soc_pct"].path is None


def _with(point: dict[str, Any] | None = None, **bridge: Any) -> str:
    data: dict[str, Any] = yaml.safe_load(GOOD)
    data["bridge"].update(bridge)
    if point is not None:
        data["points"]["soc_pct"] = point
    return yaml.safe_dump(data)


@pytest.mark.parametrize(
    ("text", "path", "reason"),
    [
        (_with({"topic": "bms/soc", "path": "a..b"}), "points.soc_pct.path", "not a JSON path"),
        (_with({"topic": "bms/soc", "path": "a["}), "points.soc_pct.path", "not a JSON path"),
        (_with({"topic": "{nope}/soc"}), "points.soc_pct.topic", "placeholder {nope}"),
        (_with({"topic": "{Bad-Name}/soc"}), "points.soc_pct.topic", "not a variable name"),
        (_with({"topic": "bms/soc", "scale": 0}), "points.soc_pct.scale", "scale is 0"),
        (_with({"topic": "bms/soc", "type": "float"}), "points.soc_pct.type", "value must be"),
        (_with({"topic": "bms/soc", "valid_range": [5, 1]}), "points.soc_pct.valid_range", "above"),
        (
            _with({"topic": "bms/soc", "colour": "red"}),
            "points.soc_pct.colour",
            "unknown key",
        ),
        (_with(variables={"Prefix": "x"}), "bridge.variables.Prefix", "lower-case"),
        (
            _with(keepalive={"topic": "{x}/k", "payload": "", "interval": 30}),
            "bridge.keepalive",
            "",
        ),
        (_with(keepalive={"topic": "k", "payload": "", "interval": 0}), "bridge.keepalive", ""),
        ("bridge: {}\npoints: {}\n", "bridge.documentation", "required key not provided"),
    ],
)
def test_bad_maps_name_key_path_and_reason(text: str, path: str, reason: str) -> None:
    with pytest.raises(PointMapError) as caught:
        parse_topic_map(text, source="bad.yaml", map_id="bad")
    assert caught.value.source == "bad.yaml"
    assert caught.value.path.startswith(path)
    assert reason in caught.value.reason


def test_an_unknown_metric_suggests_close_names() -> None:
    text = GOOD.replace("soc_pct:", "soc_pc:")
    with pytest.raises(PointMapError, match="did you mean soc_pct") as caught:
        parse_topic_map(text, source="bad.yaml", map_id="bad")
    assert caught.value.path == "points.soc_pc"


@pytest.mark.parametrize(
    "text",
    ["points: [1, 2", "a: 1\na: 2\n", "- just\n- a list\n", "when: 2020-02-30\n", "[" * 1000],
    ids=["unclosed", "duplicate key", "not a mapping", "impossible date", "nested deeply"],
)
def test_broken_yaml_is_a_point_map_error(text: str) -> None:
    with pytest.raises(PointMapError) as caught:
        parse_topic_map(text, source="broken.yaml", map_id="broken")
    assert caught.value.source == "broken.yaml"


def test_an_unreadable_file_names_itself(tmp_path: Any) -> None:
    with pytest.raises(PointMapError, match="cannot read") as caught:
        load_topic_map(tmp_path / "missing.yaml")
    assert caught.value.source.endswith("missing.yaml")


# Fuzzing: anything YAML can hold, alone or grafted into a good map, gives a TopicMap or a
# PointMapError, never another exception.
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
    st.sampled_from(["soc_pct", "{prefix}/x", "a.b[0]", "+", "#", "number", "bool", ""]),
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
    ["bridge", "points", "name", "variables", "keepalive", "topic", "path", "scale", "type"]
)


def _outcome(data: Any) -> TopicMap | PointMapError:
    try:
        return validate_topic_map(data, source="fuzz.yaml", map_id="fuzz")
    except PointMapError as err:
        return err


@given(_VALUES)
def test_any_document_is_a_map_or_a_clear_error(data: Any) -> None:
    outcome = _outcome(data)
    assert isinstance(outcome, TopicMap) or (outcome.source == "fuzz.yaml" and outcome.reason)


@given(st.lists(st.tuples(st.sampled_from(["bridge", "points", "soc_pct"]), _KEYS, _VALUES)))
def test_any_graft_onto_a_good_map_is_a_map_or_a_clear_error(
    grafts: list[tuple[str, str, Any]],
) -> None:
    data: dict[str, Any] = yaml.safe_load(GOOD)
    targets = {"bridge": data["bridge"], "points": data["points"]}
    targets["soc_pct"] = data["points"]["soc_pct"]
    for target, key, value in grafts:
        targets[target][key] = value
    outcome = _outcome(data)
    assert isinstance(outcome, TopicMap) or (outcome.source == "fuzz.yaml" and outcome.reason)
