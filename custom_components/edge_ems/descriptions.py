"""Entity descriptions generated from the metric vocabulary and each device's commands.

Every metric names its unit, device class, state class and whether it is diagnostic or noisy
(:mod:`edge_ems.metrics`); a device's commands say what may be written. From these, one
description per metric a device reports, on the platform its kind calls for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from homeassistant.components.binary_sensor import BinarySensorEntityDescription
from homeassistant.components.binary_sensor.const import BinarySensorDeviceClass
from homeassistant.components.number import (
    NumberDeviceClass,
    NumberEntityDescription,
    NumberMode,
)
from homeassistant.components.select import SelectEntityDescription
from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.components.switch import SwitchEntityDescription
from homeassistant.const import EntityCategory, Platform

from edge_ems.device import Command, Device
from edge_ems.metrics import METRICS, Metric, MetricKind
from edge_ems.readings import Readings, Value
from edge_ems.site import SiteDevice

from .const import SUBENTRY_ACTUATOR

type ValueFn = Callable[[Readings], Value]


def _value_of(metric: str) -> ValueFn:
    def value(readings: Readings) -> Value:
        reading = readings.get(metric)
        return None if reading is None else reading.value

    return value


@dataclass(frozen=True, kw_only=True)
class EdgeEmsSensorDescription(SensorEntityDescription):
    """A sensor for one metric."""

    value_fn: ValueFn


@dataclass(frozen=True, kw_only=True)
class EdgeEmsBinarySensorDescription(BinarySensorEntityDescription):
    """A binary sensor for a flag or an alarm bitfield (on: any bit set)."""

    value_fn: ValueFn


@dataclass(frozen=True, kw_only=True)
class EdgeEmsNumberDescription(NumberEntityDescription):
    """A number for a writable setpoint or limit."""

    value_fn: ValueFn


@dataclass(frozen=True, kw_only=True)
class EdgeEmsSelectDescription(SelectEntityDescription):
    """A select for a writable mode with named values."""

    value_fn: ValueFn


@dataclass(frozen=True, kw_only=True)
class EdgeEmsSwitchDescription(SwitchEntityDescription):
    """A switch for a writable on/off setting (0 or 1)."""

    value_fn: ValueFn


@dataclass(frozen=True, slots=True)
class DeviceDescriptions:
    """Every entity description of one device, by platform."""

    sensors: tuple[EdgeEmsSensorDescription, ...] = ()
    binary_sensors: tuple[EdgeEmsBinarySensorDescription, ...] = ()
    numbers: tuple[EdgeEmsNumberDescription, ...] = ()
    selects: tuple[EdgeEmsSelectDescription, ...] = ()
    switches: tuple[EdgeEmsSwitchDescription, ...] = ()


def _category(metric: Metric) -> EntityCategory | None:
    return EntityCategory.DIAGNOSTIC if metric.diagnostic else None


def _enabled(metric: Metric) -> bool:
    return not (metric.noisy or metric.diagnostic)


def platform_of(metric: Metric, command: Command | None) -> Platform | None:
    """Which platform shows a metric; ``None`` for identity points (the device registry
    shows those). Leased commands are shown, not written: a battery setpoint, a charge
    current, a storage window switched on must lapse back to the device's own control, which
    a number the user sets and forgets would not."""
    if command is not None and command.allow_write and not command.lease:
        if command.options:
            return Platform.SELECT
        if metric.unit is None and command.minimum == 0 and command.maximum == 1:
            return Platform.SWITCH
        return Platform.NUMBER
    if metric.kind is MetricKind.IDENTITY:
        return None
    if metric.kind in (MetricKind.FLAG, MetricKind.FLAGS) or _on_off(metric, command):
        return Platform.BINARY_SENSOR
    return Platform.SENSOR


def _sensor(device: Device, metric: Metric) -> EdgeEmsSensorDescription:
    device_class = metric.device_class
    options = None
    if device_class == SensorDeviceClass.ENUM:
        states = device.state_options(metric.name)
        options = None if states is None else list(states)
        if options is None:
            device_class = None  # an enum sensor must list its states
    return EdgeEmsSensorDescription(
        key=metric.name,
        translation_key=metric.name,
        native_unit_of_measurement=metric.unit,
        device_class=SensorDeviceClass(device_class) if device_class else None,
        state_class=SensorStateClass(metric.state_class) if metric.state_class else None,
        options=options,
        entity_category=_category(metric),
        entity_registry_enabled_default=_enabled(metric),
        value_fn=_value_of(metric.name),
    )


def _on_off(metric: Metric, command: Command | None) -> bool:
    """A setting that is only on or off (a leased-only one lands here, shown not written)."""
    return (
        command is not None
        and metric.unit is None
        and not command.options
        and (command.minimum, command.maximum) == (0, 1)
    )


_BINARY_CLASSES = {member.value for member in BinarySensorDeviceClass}


def _binary_sensor(metric: Metric) -> EdgeEmsBinarySensorDescription:
    device_class = metric.device_class if metric.device_class in _BINARY_CLASSES else None
    return EdgeEmsBinarySensorDescription(
        key=metric.name,
        translation_key=metric.name,
        device_class=BinarySensorDeviceClass(device_class) if device_class else None,
        entity_category=_category(metric),
        entity_registry_enabled_default=not metric.noisy,
        value_fn=_value_of(metric.name),
    )


_NUMBER_CLASSES = {member.value for member in NumberDeviceClass}


def _number(metric: Metric, command: Command) -> EdgeEmsNumberDescription:
    low = command.minimum if command.minimum is not None else 0.0
    high = command.maximum if command.maximum is not None else 0.0
    whole = float(low).is_integer() and float(high).is_integer()
    device_class = metric.device_class if metric.device_class in _NUMBER_CLASSES else None
    return EdgeEmsNumberDescription(
        key=metric.name,
        translation_key=metric.name,
        native_unit_of_measurement=metric.unit,
        device_class=NumberDeviceClass(device_class) if device_class else None,
        native_min_value=low,
        native_max_value=high,
        native_step=1.0 if whole else 0.1,
        mode=NumberMode.BOX,
        entity_category=EntityCategory.CONFIG,
        entity_registry_enabled_default=not metric.noisy,
        value_fn=_value_of(metric.name),
    )


def _select(metric: Metric, options: Mapping[int, str]) -> EdgeEmsSelectDescription:
    return EdgeEmsSelectDescription(
        key=metric.name,
        translation_key=metric.name,
        options=list(options.values()),
        entity_category=EntityCategory.CONFIG,
        value_fn=_value_of(metric.name),
    )


def _switch(metric: Metric) -> EdgeEmsSwitchDescription:
    return EdgeEmsSwitchDescription(
        key=metric.name,
        translation_key=metric.name,
        entity_category=EntityCategory.CONFIG,
        value_fn=_value_of(metric.name),
    )


def describe(member: SiteDevice) -> DeviceDescriptions:
    """The entities of one device: the metrics it reports (or, before it first answered,
    those it declares) and its allowed commands."""
    if member.spec.kind == SUBENTRY_ACTUATOR:
        # Its values are another integration's entities already: shown twice they would only
        # be duplicates. Its commands are written through the actions.
        return DeviceDescriptions()
    device = member.device
    commands = device.commands
    sensors, binary_sensors, numbers, selects, switches = [], [], [], [], []
    for name in sorted(member.metrics):
        metric = METRICS.get(name)
        if metric is None:
            continue
        command = commands.get(name)
        match platform_of(metric, command):
            case Platform.SENSOR:
                sensors.append(_sensor(device, metric))
            case Platform.BINARY_SENSOR:
                binary_sensors.append(_binary_sensor(metric))
            case Platform.SELECT:
                assert command is not None
                assert command.options is not None
                selects.append(_select(metric, command.options))
            case Platform.SWITCH:
                switches.append(_switch(metric))
            case Platform.NUMBER:
                assert command is not None
                numbers.append(_number(metric, command))
    return DeviceDescriptions(
        tuple(sensors), tuple(binary_sensors), tuple(numbers), tuple(selects), tuple(switches)
    )
