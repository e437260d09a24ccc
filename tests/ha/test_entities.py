"""Entities per device kind, described from the metric vocabulary: a snapshot of what each
device kind brings (registry entries, device registry, state attributes; values change)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from custom_components.edge_ems.descriptions import _sensor, platform_of
from homeassistant.components.sensor import DEVICE_CLASS_UNITS
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion

from edge_ems.device import Command
from edge_ems.metrics import BATTERY_POWER, METRICS
from edge_ems.sim.bess import SimulatedBess
from edge_ems.site import load_catalog
from edge_ems.sunspec.mapping import READ_POINTS
from tests.lib.bms.support import Mosquitto

from .support import (
    CAN_ONLY,
    MODBUS_ONLY,
    MQTT_ONLY,
    OPCUA_ONLY,
    SUNSPEC_ONLY,
    StartSite,
    can_bms,
    deye,
    eventually,
    meter,
    mqtt_bms,
    opcua,
    setup_site,
    subentry,
    sunspec,
)


def entities_of(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, Any]:
    """What a user sees of the site, without the values that move."""
    registry = er.async_get(hass)
    shown: dict[str, Any] = {}
    for entity in sorted(
        er.async_entries_for_config_entry(registry, entry.entry_id), key=lambda e: e.entity_id
    ):
        state = hass.states.get(entity.entity_id)
        shown[entity.entity_id] = {
            "unique_id": entity.unique_id,
            "translation_key": entity.translation_key,
            "original_device_class": entity.original_device_class,
            "unit": entity.unit_of_measurement,
            "entity_category": entity.entity_category,
            "disabled_by": entity.disabled_by,
            "subentry": entity.config_subentry_id,
            "attributes": None if state is None else dict(state.attributes),
        }
    devices = {
        device.name: {
            "manufacturer": device.manufacturer,
            "model": device.model,
            "serial_number": device.serial_number,
            "sw_version": device.sw_version,
            "subentry": device.config_subentry_id,
        }
        for device in dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    }
    return {"devices": devices, "entities": shown}


@pytest.mark.parametrize("expected_lingering_tasks", [True])  # asyncua's server, see flows
async def test_entities_per_device_kind(
    hass: HomeAssistant,
    ha_mqtt: Mosquitto,
    start_site: StartSite,
    snapshot: SnapshotAssertion,
    tmp_path: Path,
) -> None:
    modbus_site = await start_site(MODBUS_ONLY)
    sunspec_site = await start_site(SUNSPEC_ONLY)
    opcua_site = await start_site(OPCUA_ONLY)
    can_site = await start_site(CAN_ONLY)
    mqtt_site = await start_site(MQTT_ONLY, mqtt=(ha_mqtt.host, ha_mqtt.port))
    entry = await setup_site(
        hass,
        [
            subentry("modbus", deye(modbus_site), subentry_id="deye", title="Deye"),
            subentry("modbus", meter(modbus_site), subentry_id="meter", title="Grid meter"),
            subentry("sunspec", sunspec(sunspec_site), subentry_id="hybrid", title="Hybrid"),
            subentry("opcua", opcua(opcua_site), subentry_id="bess", title="BESS"),
            subentry("can_bms", can_bms(can_site), subentry_id="can", title="CAN battery"),
            subentry("mqtt_bms", mqtt_bms(mqtt_site), subentry_id="jk", title="JK battery"),
        ],
    )
    # The push devices' entities exist at once and become available with their first data.
    await eventually(
        lambda: hass.states.get("sensor.jk_battery_soc"), lambda s: s and s.state != "unavailable"
    )
    await eventually(
        lambda: hass.states.get("sensor.can_battery_soc"),
        lambda s: s and s.state != "unavailable",
    )
    # The CAN battery names its maker in a frame of its own; the registry learns it.
    registry = dr.async_get(hass)
    await eventually(
        lambda: registry.async_get_device_by_identifier(("edge_ems", "can"), entry.entry_id),
        lambda device: device is not None and device.manufacturer == "PYLON",
    )
    assert entities_of(hass, entry) == snapshot


def _catalog_metrics() -> set[str]:
    """Every metric a bundled map (point, topic, node) or the SunSpec mapping can report."""
    catalog = load_catalog()
    metrics = {metric for point_map in catalog.point_maps.values() for metric in point_map.points}
    metrics |= {metric for topic in catalog.topic_maps.values() for metric in topic.points}
    metrics |= {metric for node in catalog.node_maps.values() for metric in node.points}
    metrics |= {point.metric for point in READ_POINTS} | {BATTERY_POWER}
    metrics |= SimulatedBess("b").declared_metrics
    return metrics


NO_DEVICE_CLASS = {"%", "Ah", "°"}
"""Units Home Assistant has no device class for here: state of health, an active power limit
(%), a charge in ampere-hours, angles."""


class _Named:
    """A device naming a state or two, as every enum sensor's device does."""

    def state_options(self, metric: str) -> tuple[str, ...]:
        return ("one", "two")


@pytest.mark.parametrize("name", sorted(_catalog_metrics()))
def test_every_sensor_with_a_unit_has_its_classes(name: str) -> None:
    metric = METRICS[name]
    writable = Command(name, 0, 100, allow_write=True)
    for command in (None, writable):
        if platform_of(metric, command) is not Platform.SENSOR or metric.unit is None:
            continue
        described = _sensor(_Named(), metric)  # type: ignore[arg-type]
        assert described.state_class is not None, name
        if metric.unit not in NO_DEVICE_CLASS:
            assert described.device_class is not None, name
            assert metric.unit in DEVICE_CLASS_UNITS[described.device_class], name
