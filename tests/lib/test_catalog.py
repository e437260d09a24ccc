"""The bundled catalog: every map loads, plans within its device's limits and is safe to drive."""

from __future__ import annotations

import re

import pytest

from edge_ems.device import AssetType, DeviceIdentity
from edge_ems.metrics import METRICS, MetricKind
from edge_ems.pointmap import (
    Access,
    PointMap,
    PointType,
    PollGroup,
    catalog_paths,
    decode_raw,
    load_catalog,
    plan_reads,
    to_value,
)
from edge_ems.pointmap.codec import from_value, orders
from edge_ems.pointmap.model import FLOAT_TYPES, SIGNED_TYPES
from edge_ems.readings import Quality

CATALOG = load_catalog()
IDS = sorted(CATALOG)

# Quantities whose sign carries meaning (+ import, + discharge, + delivers): never unsigned.
SIGNED_METRICS = frozenset(
    {"grid_power_w", "grid_power_l1_w", "grid_power_l2_w", "grid_power_l3_w", "battery_power_w",
     "battery_current_a", "ac_power_w"}
)  # fmt: skip


def test_catalog_has_the_promised_devices() -> None:
    assert set(IDS) == set(catalog_paths())
    kinds = {point_map.device.kind for point_map in CATALOG.values()}
    assert {
        AssetType.HYBRID_INVERTER, AssetType.METER, AssetType.TRACKER,
        AssetType.WEATHER_STATION, AssetType.BATTERY, AssetType.BMS, AssetType.EV_CHARGER,
        AssetType.HEAT_PUMP,
    } <= kinds  # fmt: skip
    assert {"deye_sun_sg_hybrid", "eastron_sdm630", "eastron_sdm120"} <= set(IDS)


@pytest.mark.parametrize("map_id", IDS)
def test_map_cites_its_documentation(map_id: str) -> None:
    device = CATALOG[map_id].device
    assert device.id == map_id
    # A document title and where in it: a version or a section, table or address range.
    assert len(device.documentation) > 40
    assert re.search(r"\b(V\d|version|section|table)", device.documentation, re.IGNORECASE)


@pytest.mark.parametrize("map_id", IDS)
def test_map_plans_within_its_limits(map_id: str) -> None:
    point_map = CATALOG[map_id]
    device = point_map.device
    blocks = plan_reads(point_map)
    assert blocks
    for block in blocks:
        assert 1 <= block.count <= device.max_block
        for first, last in device.refused:
            assert block.end < first or block.address > last
    for point in point_map.readable_points():
        covering = [
            block
            for block in blocks
            if block.space is point.space
            and block.address <= point.address
            and point.end <= block.end
        ]
        assert len(covering) == 1, point.metric
    # Coalescing works: fewer requests than readable points wherever points sit together
    # and the device reads more than one value a request.
    one_value_a_request = device.max_block <= max(p.registers for p in point_map.points.values())
    assert len(blocks) < len(point_map.readable_points()) or len(blocks) <= 2 or one_value_a_request


@pytest.mark.parametrize("map_id", IDS)
def test_identity_points_are_readable_once(map_id: str) -> None:
    for point in CATALOG[map_id].points.values():
        if METRICS[point.metric].kind is MetricKind.IDENTITY:
            assert point.readable
            assert point.poll is PollGroup.ONCE
            assert plan_reads(CATALOG[map_id], [point.metric])


@pytest.mark.parametrize("map_id", IDS)
def test_writable_points_have_limits_and_a_write_section(map_id: str) -> None:
    point_map = CATALOG[map_id]
    for point in point_map.points.values():
        if point.access is Access.READ:
            assert point.write is None
            continue
        write = point.write
        assert write is not None, point.metric
        assert write.minimum is not None, point.metric
        assert write.maximum is not None, point.metric
        assert write.minimum <= write.maximum
        if point.options:
            # Every label a write may name lies inside the limits, or the limits are wrong.
            assert any(write.minimum <= code <= write.maximum for code in point.options)


@pytest.mark.parametrize("map_id", IDS)
def test_safe_mode_values_are_allowed_writes_within_limits(map_id: str) -> None:
    point_map = CATALOG[map_id]
    for metric, value in point_map.device.safe_mode.items():
        point = point_map.points[metric]
        assert point.write is not None
        assert point.write.allow_write
        assert point.write.minimum is not None
        assert point.write.maximum is not None
        assert point.write.minimum <= value <= point.write.maximum
        if point.options is not None:
            assert int(value) in point.options


@pytest.mark.parametrize("map_id", IDS)
def test_points_use_the_vocabulary_consistently(map_id: str) -> None:
    for point in CATALOG[map_id].points.values():
        metric = METRICS[point.metric]
        if point.metric in SIGNED_METRICS:
            assert point.type in SIGNED_TYPES | FLOAT_TYPES or point.scale < 0, point.metric
        if metric.kind is MetricKind.COUNTER and metric.unit == "Wh":
            assert point.scale > 0
            assert point.type in {PointType.U16, PointType.U32, PointType.U64} | FLOAT_TYPES
        if metric.kind is MetricKind.FLAGS:
            assert point.type is PointType.BITFIELD
        if metric.kind is MetricKind.STATE:
            assert point.type is PointType.ENUM


@pytest.mark.parametrize("map_id", IDS)
def test_identify_patterns_can_match(map_id: str) -> None:
    point_map = CATALOG[map_id]
    for metric, pattern in point_map.device.identify.items():
        labels = (point_map.points[metric].options or {}).values()
        if labels:
            assert any(re.search(pattern, label) for label in labels), metric


def _value(point_map: PointMap, metric: str, registers: list[int]) -> object:
    point = point_map.points[metric]
    raw = decode_raw(point, registers, *orders(point, point_map.device))
    return to_value(point, raw)[0]


def test_deye_decodes_documented_examples() -> None:
    lv, hv = CATALOG["deye_sun_sg_hybrid"], CATALOG["deye_sun_sg_hybrid_hv"]
    # 32-bit totals low word first, 0.1 kWh: 0x0001_0002 tenths of a kWh.
    assert _value(lv, "grid_import_energy_wh", [0x0002, 0x0001]) == (65536 + 2) * 100
    # Temperatures carry a 1000 offset in 0.1 degC.
    assert _value(lv, "battery_temperature_c", [1250]) == pytest.approx(25.0)
    # Battery power: + discharge; HV reports 10 W steps.
    assert _value(lv, "battery_power_w", [0xFFF6]) == -10
    assert _value(hv, "battery_power_w", [0xFFF6]) == -100
    assert _value(lv, "device_model", [0x0005]) == "LV three-phase hybrid inverter"
    assert _value(lv, "device_serial", [0x3232, 0x3033, 0x3034, 0x3035, 0x3036]) == "2203040506"
    # The control board's firmware, packed hex digits: a version, not the number 4358.
    assert _value(lv, "device_firmware", [0x1106]) == "1.1.0.6"
    assert _value(hv, "device_firmware", [0x1106]) == "1.1.0.6"


@pytest.mark.parametrize("map_id", IDS)
def test_identity_points_read_as_text(map_id: str) -> None:
    """Firmware, hardware and model show as text: a map that reads them from an integer says
    how the device spells the version."""
    point_map = CATALOG[map_id]
    for metric in ("device_firmware", "device_hardware"):
        point = point_map.points.get(metric)
        if point is not None and point.type is not PointType.STRING:
            assert point.version is not None, metric


@pytest.mark.parametrize("map_id", IDS)
def test_serial_numbers_are_private(map_id: str) -> None:
    point = CATALOG[map_id].points.get("device_serial")
    assert point is None or point.private


def test_eastron_energy_scales_kwh_to_wh() -> None:
    sdm630 = CATALOG["eastron_sdm630"]
    one_point_five = [0x3FC0, 0x0000]  # 1.5 as an IEEE 754 float, high word first
    assert _value(sdm630, "grid_import_energy_wh", one_point_five) == pytest.approx(1500.0)
    assert _value(sdm630, "grid_power_w", [0xC2C8, 0x0000]) == pytest.approx(-100.0)


def test_seplos_converts_kelvin_and_current_sign() -> None:
    seplos = CATALOG["seplos_bms_v3"]
    assert _value(seplos, "battery_temperature_c", [0x0B80]) == pytest.approx(21.3)
    assert _value(seplos, "battery_current_a", [0x05FA]) == pytest.approx(-15.3)  # charging


def test_chargers_decode_documented_examples() -> None:
    alfen, abb, keba = CATALOG["alfen_eve"], CATALOG["abb_terra_ac"], CATALOG["keba_kecontact_p30"]
    # Alfen's Mode 3 state is the string "C2", zero-terminated: its first register.
    assert _value(alfen, "ev_state", [int.from_bytes(b"C2")]) == "c2"
    assert _value(alfen, "ev_state", [int.from_bytes(b"A\0")]) == "a"
    # The socket's meter counts what the vehicle draws as positive; we call it consumption.
    assert _value(alfen, "ac_power_w", [0x45FA, 0x0000]) == pytest.approx(-8000.0)
    # ABB: milliamps, the state in bits 8-14 of the low word.
    assert _value(abb, "ev_current_offered_a", [0x0000, 16_000]) == 16
    assert _value(abb, "ev_state", [0x0400]) == "c2"
    # KEBA: 0.1 Wh counters, and the phase switch's 0/1 read as 1 or 3 phases.
    assert _value(keba, "ac_energy_in_wh", [0x0001, 0x0000]) == pytest.approx(6553.6)
    phases = keba.points["ev_phases"]
    assert [from_value(phases, 1), from_value(phases, 3)] == [0, 1]


def test_heat_pumps_decode_documented_examples() -> None:
    stiebel, samsung = CATALOG["stiebel_eltron_isg"], CATALOG["samsung_ehs_mim_b19n"]
    assert _value(stiebel, "outdoor_temperature_c", [0xFF38]) == pytest.approx(-2.0)
    # SG Ready inputs 1 and 2, input 1 first: 0/1 recommends more, 1/0 blocks.
    assert _value(stiebel, "heat_pump_sg_ready", [0, 1]) == "boost"
    assert _value(stiebel, "heat_pump_sg_ready", [1, 0]) == "block"
    assert from_value(stiebel.points["heat_pump_sg_ready"], "force") == 0x00010001
    # A sensor the installation lacks reads -32768: invalid, not -3276.8 degC.
    flow = stiebel.points["flow_temperature_c"]
    assert to_value(flow, -32768)[1] is Quality.INVALID
    assert _value(samsung, "flow_temperature_c", [352]) == pytest.approx(35.2)
    assert _value(samsung, "heat_pump_mode", [4]) == "heat"


def test_victron_flips_the_ess_setpoint_and_current_to_the_site_convention() -> None:
    victron = CATALOG["victron_vebus_ess"]
    # The setpoint is what the Multi takes from its AC input: -1000 W feeds 1000 W in,
    # which is the battery discharging.
    assert _value(victron, "battery_power_setpoint_w", [0xFC18]) == 1000
    setpoint = victron.points["battery_power_setpoint_w"]
    assert from_value(setpoint, -2500) == 2500  # charging takes 2500 W from AC-in
    assert _value(victron, "ac_power_l1_w", [0xFF9C]) == 1000  # 10 W steps
    assert _value(victron, "battery_current_a", [150]) == pytest.approx(-15.0)  # charging
    assert _value(victron, "battery_voltage_v", [5234]) == pytest.approx(52.34)
    assert _value(victron, "soc_pct", [875]) == pytest.approx(87.5)
    assert _value(victron, "inverter_state", [252]) == "external_control"
    assert _value(victron, "work_mode", [1]) == "charger_only"


@pytest.mark.parametrize(
    ("maker", "model", "name"),
    [
        ("JK (Jikong)", "JK-BMS via ESPHome (syssi/esphome-jk-bms, jk_bms component)", "JK-BMS"),
        ("PYLON", "Pylontech-compatible CAN BMS", "PYLON Pylontech-compatible CAN BMS"),
        ("Alfen", "Eve Single / Eve Double Pro-line (NG9xx platform), socket 1",
         "Alfen Eve Single"),
        ("Stiebel Eltron", "WPM heat pump manager with ISG web (Modbus TCP/IP)",
         "Stiebel Eltron WPM heat pump manager"),
        ("Victron Energy", "Venus OS battery service (e.g. dbus-serialbattery)",
         "Victron Energy Venus OS battery service"),
        ("Deye", "SUN-5/6/8/10/12/15/20/25K-SG01HP3-EU-AM2 (HV three-phase hybrid)",
         "Deye SUN-5/6/8/10/12/15/20/25K-SG01HP3-EU-AM2"),
        ("Edge EMS", "Simulated hybrid inverter with a very long tail of words",
         "Edge EMS Simulated hybrid inverter"),
    ],
)  # fmt: skip
def test_devices_get_short_names(maker: str, model: str, name: str) -> None:
    assert DeviceIdentity(maker, model).short_name() == name


def test_every_catalog_device_gets_a_short_name() -> None:
    for point_map in CATALOG.values():
        name = DeviceIdentity(point_map.device.maker, point_map.device.model).short_name()
        assert name.startswith(point_map.device.maker.split(" ")[0]), name
        assert "(" not in name
