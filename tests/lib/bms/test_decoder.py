"""The topic-map decoder: real payloads of each bridge, signs, quality, garbage, round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_ems.bms.decoder import TopicMapDecoder
from edge_ems.bms.topicmap import load_catalog, parse_topic_map
from edge_ems.exceptions import ConfigError, DeviceProtocolError
from edge_ems.readings import Quality
from edge_ems.sim.bms_mqtt import bms_values
from edge_ems.sim.physics import Battery

CATALOG = load_catalog()
VARIABLES = {
    "esphome_jk_bms": {},
    "venus_os_battery": {"portal_id": "c0619ab9929a", "instance": "512"},
    "batmon_ha": {"alias": "daly1"},
}


def decoder(map_id: str, **variables: str) -> TopicMapDecoder:
    return TopicMapDecoder(CATALOG[map_id], variables or None)


def test_esphome_plain_numbers_with_charging_negated() -> None:
    jk = decoder("esphome_jk_bms")
    readings = jk.decode("jk-bms/sensor/jk-bms_current/state", b"12.50", 100.0)
    assert readings["battery_current_a"].value == -12.5  # JK counts charging as positive
    assert readings["battery_current_a"].timestamp == 100.0
    soc = jk.decode("jk-bms/sensor/jk-bms_capacity_remaining/state", b"87", 1.0)["soc_pct"]
    assert (soc.value, soc.quality) == (87.0, Quality.GOOD)
    alarms = jk.decode("jk-bms/sensor/jk-bms_errors_bitmask/state", b"8", 1.0)["bms_alarms"]
    assert alarms.value == 8
    assert isinstance(alarms.value, int)


def test_esphome_nan_is_an_invalid_reading() -> None:
    readings = decoder("esphome_jk_bms").decode(
        "jk-bms/sensor/jk-bms_total_voltage/state", b"nan", 1.0
    )
    assert readings["battery_voltage_v"].value is None
    assert readings["battery_voltage_v"].quality is Quality.INVALID


def test_a_value_outside_its_valid_range_is_invalid() -> None:
    readings = decoder("esphome_jk_bms").decode(
        "jk-bms/sensor/jk-bms_capacity_remaining/state", b"250", 1.0
    )
    assert (readings["soc_pct"].value, readings["soc_pct"].quality) == (250.0, Quality.INVALID)


def test_venus_json_values_match_any_portal_and_instance_by_default() -> None:
    venus = decoder("venus_os_battery")
    readings = venus.decode("N/c0619ab9929a/battery/512/Dc/0/Power", b'{"value": 1520.5}', 5.0)
    assert readings["battery_power_w"].value == -1520.5  # Victron counts charging as positive
    readings = venus.decode("N/other/battery/288/Soc", b'{"value": 64}', 5.0)
    assert readings["soc_pct"].value == 64.0
    assert not venus.matches("N/c0619ab9929a/solarcharger/279/Dc/0/Current")
    assert not venus.matches("N/c0619ab9929a/battery/512/Dc/0/Power/extra")


def test_venus_null_means_no_value() -> None:
    readings = decoder("venus_os_battery").decode("N/x/battery/1/Soh", b'{"value": null}', 1.0)
    assert readings["soh_pct"].value is None
    assert readings["soh_pct"].quality is Quality.GOOD


def test_pinned_variables_narrow_the_topics() -> None:
    venus = decoder("venus_os_battery", portal_id="c0619ab9929a", instance="512")
    assert "N/c0619ab9929a/battery/512/Soc" in venus.filters
    assert venus.matches("N/c0619ab9929a/battery/512/Soc")
    assert not venus.matches("N/other/battery/512/Soc")
    keepalive = venus.keepalive()
    assert keepalive is not None
    assert keepalive.topic == "R/c0619ab9929a/keepalive"
    assert keepalive.initial_payload == ""
    assert "suppress-republish" in keepalive.payload


def test_a_keepalive_needs_its_variables() -> None:
    with pytest.raises(ConfigError, match="portal_id"):
        decoder("venus_os_battery").keepalive()


def test_batmon_current_keeps_its_sign() -> None:
    batmon = decoder("batmon_ha", alias="daly1")
    readings = batmon.decode("daly1/soc/current", b"-3.25", 1.0)
    assert readings["battery_current_a"].value == -3.25  # batmon counts discharging positive


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"colour": "red"}, "unknown topic variable 'colour'"),
        ({"alias": "a#"}, "uses '#'"),
        ({"alias": "a+b"}, r"'\+' inside a level"),
    ],
)
def test_bad_variables_are_config_errors(variables: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TopicMapDecoder(CATALOG["batmon_ha"], variables)


MULTI = parse_topic_map(
    """
bridge: {name: t, maker: t, model: t, documentation: t, variables: {id: "7"}}
points:
  battery_voltage_v: {topic: "bms/{id}/state", path: "pack.v"}
  battery_current_a: {topic: "bms/{id}/state", path: "pack.i"}
  cell_voltage_min_v: {topic: "bms/{id}/state", path: "cells[0]"}
  device_serial: {topic: "bms/{id}/info", path: serial}
  ev_connected: {topic: "bms/{id}/plug"}
""",
    source="multi.yaml",
    map_id="multi",
)


def test_one_json_document_feeds_several_metrics_and_missing_paths_are_skipped() -> None:
    multi = TopicMapDecoder(MULTI)
    readings = multi.decode("bms/7/state", b'{"pack": {"v": 52.1, "i": "3"}, "cells": [3.2]}', 1.0)
    assert readings["battery_voltage_v"].value == 52.1
    assert readings["battery_current_a"].value == 3.0  # numbers in strings are accepted
    assert readings["cell_voltage_min_v"].value == 3.2
    partial = multi.decode("bms/7/state", b'{"pack": {"v": 52.2}}', 2.0)
    assert set(partial) == {"battery_voltage_v"}


def test_text_and_on_off_payloads() -> None:
    multi = TopicMapDecoder(MULTI)
    assert multi.decode("bms/7/info", b'{"serial": "JK-123"}', 1.0)["device_serial"].value == (
        "JK-123"
    )
    assert multi.decode("bms/7/plug", b"ON", 1.0)["ev_connected"].value is True
    assert multi.decode("bms/7/plug", b"false", 1.0)["ev_connected"].value is False


@pytest.mark.parametrize(
    ("topic", "payload", "message"),
    [
        ("bms/7/state", b"{not json", "not JSON"),
        ("bms/7/state", b"", "empty payload"),
        ("bms/7/state", b'{"other": 1}', "none of the mapped JSON paths"),
        ("bms/7/state", b'{"pack": {"v": "high"}}', "is not a number"),
        ("bms/7/state", b'{"pack": {"v": true}}', "is not a number"),
        ("bms/7/state", b'{"pack": {"v": [1]}}', "is not a number"),
        ("bms/7/plug", b"maybe", "is not on/off"),
        ("bms/7/plug", b"\xff\xfe", "not UTF-8"),
        ("bms/7/state", b"[" * 100_000, "nested too deeply"),
    ],
)
def test_garbage_payloads_are_protocol_errors_naming_the_topic(
    topic: str, payload: bytes, message: str
) -> None:
    with pytest.raises(DeviceProtocolError, match=message) as caught:
        TopicMapDecoder(MULTI).decode(topic, payload, 1.0)
    assert topic in str(caught.value)


def test_topics_of_other_devices_decode_to_nothing() -> None:
    assert TopicMapDecoder(MULTI).decode("bms/8/state", b"{not json", 1.0) == {}


@given(st.sampled_from(sorted(CATALOG)), st.binary(max_size=64))
def test_any_payload_decodes_or_is_a_protocol_error(map_id: str, payload: bytes) -> None:
    topic_map = CATALOG[map_id]
    bridge = TopicMapDecoder(topic_map, VARIABLES[map_id] or None)
    for topic in bridge.filters:
        concrete = topic.replace("+", "x")
        try:
            readings = bridge.decode(concrete, payload, 1.0)
        except DeviceProtocolError as err:
            readings, error = {}, str(err)
        else:
            error = concrete
        assert concrete in error
        assert set(readings) <= set(topic_map.points)


@given(
    st.sampled_from(sorted(CATALOG)),
    st.floats(0, 100),
    st.floats(-5000, 5000),
    st.floats(-20, 60),
)
def test_what_the_simulator_publishes_decodes_to_the_same_values(
    map_id: str, soc: float, power: float, temperature: float
) -> None:
    battery = Battery(soc_pct=soc, temperature_c=temperature)
    battery.power_w = power
    values = bms_values(battery)
    bridge = TopicMapDecoder(CATALOG[map_id], VARIABLES[map_id] or None)
    decoded = {}
    for topic, payload in bridge.encode(values):
        decoded.update(bridge.decode(topic, payload, 1.0))
    assert set(decoded) == set(CATALOG[map_id].points)
    for metric, reading in decoded.items():
        assert reading.value == pytest.approx(values[metric], abs=1e-6), metric


def test_encoding_needs_concrete_topics() -> None:
    with pytest.raises(ConfigError, match="set the topic variables"):
        decoder("venus_os_battery").encode({"soc_pct": 50.0})
