"""Diagnostics: the site's settings, each device's identity, health and readings, and a raw
register dump of every Modbus and SunSpec device that a simulator can serve again."""

from __future__ import annotations

import dataclasses
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_USERNAME
from homeassistant.core import HomeAssistant

from edge_ems.device import Device
from edge_ems.exceptions import DeviceError
from edge_ems.modbus import POLLED_GROUPS, ModbusDevice
from edge_ems.pointmap import PollGroup, plan_reads
from edge_ems.sunspec import SunSpecDevice

from .const import CONF_HUB_TOKEN, CONF_SERIAL, CONF_SERIAL_PORT, CONF_URL
from .devices import identity_dict
from .models import EdgeEmsConfigEntry

TO_REDACT = {CONF_HOST, CONF_PASSWORD, CONF_USERNAME, CONF_SERIAL, CONF_SERIAL_PORT, CONF_URL,
             CONF_HUB_TOKEN, "serial", "serial_number", "device_serial"}  # fmt: skip

MAX_READ = 125
"""Registers in one Modbus read request."""
SUNSPEC_END_MARKER = 2
"""Registers after the last model: the end marker's ID (0xFFFF) and length (0)."""


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: EdgeEmsConfigEntry
) -> dict[str, Any]:
    """The site and its devices, redacted."""
    site = entry.runtime_data
    devices = {}
    for device_id, member in site.devices.items():
        subentry = entry.subentries[member.subentry_id]
        readings = member.coordinator.data or {}
        devices[device_id] = {
            "kind": subentry.subentry_type,
            "config": async_redact_data(dict(subentry.data), TO_REDACT),
            "identity": async_redact_data(identity_dict(member.device.identity), TO_REDACT),
            "health": _health(member.device),
            "readings": async_redact_data(
                {metric: reading.value for metric, reading in sorted(readings.items())},
                TO_REDACT,
            ),
            "registers": await _register_dump(member.device),
        }
    return {
        "site": {"site_id": site.site_id, "site_name": site.site_name},
        "options": async_redact_data(dict(entry.options), TO_REDACT),
        "policy": dataclasses.asdict(site.dispatcher.policy),
        "leases": site.dispatcher.leases(),
        "devices": devices,
        "audit": site.audit.records()[-50:],
    }


def _health(device: Device) -> dict[str, Any]:
    health = device.health
    return {
        "connected": health.connected,
        "last_seen": health.last_seen,
        "error_streak": health.error_streak,
        "breaker": str(health.breaker),
        "last_error": health.last_error,
    }


async def _register_dump(device: Device) -> dict[str, Any] | None:
    """The registers a device's reads cover, by space and address; ``None`` for devices
    that have no registers (MQTT, CAN, OPC UA)."""
    try:
        if isinstance(device, ModbusDevice):
            return await _modbus_dump(device)
        if isinstance(device, SunSpecDevice):
            return await _sunspec_dump(device)
    except DeviceError as err:
        return {"error": str(err)}
    return None


async def _modbus_dump(device: ModbusDevice) -> dict[str, Any]:
    point_map = device.point_map
    metrics = [
        point.metric
        for point in point_map.readable_points()
        if point.poll in POLLED_GROUPS | {PollGroup.ONCE}
    ]
    dump: dict[str, dict[int, int]] = {}
    for block in plan_reads(point_map, metrics):
        registers = await device.link.read(
            device.name, device.unit_id, block.space, block.address, block.count
        )
        dump.setdefault(str(block.space), {}).update(
            zip(range(block.address, block.address + block.count), registers, strict=True)
        )
    for point in point_map.points.values():
        if point.scale_factor is not None:
            (factor,) = await device.link.read(
                device.name, device.unit_id, point.space, point.scale_factor, 1
            )
            dump.setdefault(str(point.space), {})[point.scale_factor] = factor
    return {"unit_id": device.unit_id, "map": point_map.device.id, "spaces": dump}


async def _sunspec_dump(device: SunSpecDevice) -> dict[str, Any] | None:
    chain = device.chain
    if chain is None:
        return None
    end = max(model.end for model in chain.models) + SUNSPEC_END_MARKER
    step = MAX_READ
    spans = [(start, min(start + step - 1, end)) for start in range(chain.base, end + 1, step)]
    registers = await device.reader.read(spans)
    return {"base": chain.base, "spaces": {"holding": dict(sorted(registers.items()))}}
