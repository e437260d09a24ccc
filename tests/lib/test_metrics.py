"""The metric vocabulary is unique, well named and follows Home Assistant's sensor rules."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from edge_ems.metrics import METRICS, Category, Metric, MetricKind, build_vocabulary, metric

ALL = sorted(METRICS.values(), key=lambda item: item.name)

# Home Assistant's allowed units per sensor device class (those this vocabulary uses).
UNITS: dict[str, set[str | None]] = {
    "power": {"W", "kW", "MW"},
    "energy": {"Wh", "kWh", "MWh"},
    "energy_storage": {"Wh", "kWh", "MWh"},
    "voltage": {"V", "mV", "kV"},
    "current": {"A", "mA"},
    "temperature": {"°C", "°F", "K"},
    "frequency": {"Hz", "kHz", "MHz"},
    "apparent_power": {"VA", "kVA"},
    "reactive_power": {"var", "kvar"},
    "reactive_energy": {"varh", "kvarh"},
    "power_factor": {None, "%"},
    "battery": {"%"},
    "humidity": {"%"},
    "irradiance": {"W/m²"},
    "wind_speed": {"m/s", "km/h", "mph", "kn"},
    "wind_direction": {"°"},
    "atmospheric_pressure": {"hPa", "kPa", "Pa", "bar", "mbar", "inHg", "mmHg", "psi"},
    "precipitation": {"mm", "cm", "in"},
    "duration": {"s", "min", "h", "d", "ms"},
    "enum": {None},
}
BINARY_SENSOR_CLASSES = {"plug", "battery_charging", "problem", "running", "power"}
STATE_CLASSES = {None, "measurement", "total", "total_increasing", "measurement_angle"}

# Name suffix -> the unit it promises.
SUFFIX_UNITS = {
    "_w": "W", "_wh": "Wh", "_v": "V", "_a": "A", "_pct": "%", "_c": "°C", "_hz": "Hz",
    "_va": "VA", "_var": "var", "_varh": "varh", "_deg": "°", "_s": "s", "_w_m2": "W/m²",
    "_m_s": "m/s", "_hpa": "hPa", "_mm": "mm", "_ah": "Ah",
}  # fmt: skip


def _suffix_unit(name: str) -> str | None:
    matches = [suffix for suffix in SUFFIX_UNITS if name.endswith(suffix)]
    return SUFFIX_UNITS[max(matches, key=len)] if matches else None


def test_a_name_given_twice_is_refused() -> None:
    def first() -> Iterator[Metric]:
        yield metric("soc_pct")

    def again() -> Iterator[Metric]:
        yield Metric("soc_pct", "Another state of charge", MetricKind.MEASUREMENT, Category.LOAD)

    assert list(build_vocabulary([first])) == ["soc_pct"]
    with pytest.raises(ValueError, match="'soc_pct' defined twice"):
        build_vocabulary([first, again])


def _home_assistant_tables() -> tuple[dict[str, set[str | None]], dict[str, set[str]]]:
    """Home Assistant's own units and state classes per sensor device class."""
    sensor = pytest.importorskip("homeassistant.components.sensor.const")
    units = {str(key): set(value) for key, value in sensor.DEVICE_CLASS_UNITS.items()}
    states = {
        str(key): {str(state) for state in value}
        for key, value in sensor.DEVICE_CLASS_STATE_CLASSES.items()
    }
    return units, states


@pytest.mark.parametrize("item", ALL, ids=lambda item: item.name)
def test_metric_is_a_sensor_home_assistant_accepts(item: Metric) -> None:
    """Checked against Home Assistant's own tables (skipped where it is not installed; the
    table above, taken from them, checks the same on Python 3.13)."""
    if item.kind in {MetricKind.FLAG, MetricKind.FLAGS} or item.device_class in (None, "enum"):
        return  # binary sensors and enums: checked by the rules below
    units, state_classes = _home_assistant_tables()
    assert item.device_class in units, item.device_class
    assert item.unit in units[item.device_class]
    assert UNITS[item.device_class] <= units[item.device_class]
    if item.state_class is not None and item.kind is not MetricKind.SETTING:
        assert item.state_class in state_classes[item.device_class]


@pytest.mark.parametrize("item", ALL, ids=lambda item: item.name)
def test_metric_is_well_formed(item: Metric) -> None:
    assert re.fullmatch(r"[a-z][a-z0-9_]*[a-z0-9]", item.name)
    assert item.description
    assert not item.description.endswith(".")
    assert item.state_class in STATE_CLASSES
    expected_unit = _suffix_unit(item.name)
    if expected_unit is not None:
        assert item.unit == expected_unit


@pytest.mark.parametrize("item", ALL, ids=lambda item: item.name)
def test_metric_follows_home_assistant_rules(item: Metric) -> None:
    if item.kind in {MetricKind.FLAG, MetricKind.FLAGS}:
        # Shown as binary sensors: a flag, or an alarm bitfield that is on while any bit is.
        assert item.device_class is None or item.device_class in BINARY_SENSOR_CLASSES
        assert item.unit is None
        assert item.state_class is None
        return
    if item.device_class is not None:
        assert item.device_class in UNITS, item.device_class
        assert item.unit in UNITS[item.device_class]
    if item.device_class in {"energy", "reactive_energy"}:
        # HA refuses energy sensors that are plain measurements.
        assert item.state_class in {"total", "total_increasing"}
    if item.state_class == "measurement_angle":
        assert item.device_class == "wind_direction"
    if item.device_class == "enum" or item.kind is MetricKind.STATE:
        assert item.unit is None
        assert item.state_class is None
    if item.kind is MetricKind.SETTING:
        # A setting shown as a sensor is a measurement like any other with a unit.
        assert item.state_class == ("measurement" if item.unit is not None else None)
    if item.kind in {MetricKind.IDENTITY, MetricKind.TEXT}:
        assert item.state_class is None
    if item.kind is MetricKind.IDENTITY:
        assert item.unit is None
        assert item.diagnostic
    if item.kind is MetricKind.COUNTER:
        assert item.state_class in {"total", "total_increasing"}


def test_energy_is_counted_in_wh() -> None:
    energies = [item for item in ALL if item.device_class == "energy"]
    assert energies
    assert all(item.unit == "Wh" for item in energies)


def test_signs_are_documented_where_they_matter() -> None:
    assert "+ import" in metric("grid_power_w").description
    assert "+ discharge" in metric("battery_power_w").description
    assert "+ discharge" in metric("battery_current_a").description


def test_metric_lookup_suggests_close_names() -> None:
    assert metric("soc_pct") is METRICS["soc_pct"]
    with pytest.raises(KeyError, match="did you mean grid_power_w"):
        metric("grid_power")
    with pytest.raises(KeyError, match="unknown metric 'zzz'"):
        metric("zzz")
