"""Diagnostics: the site's settings, each device's identity, health, what it learned, its
readings, and a raw register dump of every Modbus and SunSpec device that a simulator can
serve again."""

from __future__ import annotations

import dataclasses
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_USERNAME
from homeassistant.core import HomeAssistant

from edge_ems.device import DeviceIdentity, Health
from edge_ems.exceptions import DeviceError

from .const import CONF_HUB, CONF_HUB_TOKEN, CONF_SERIAL, CONF_SERIAL_PORT, CONF_URL
from .models import EdgeEmsConfigEntry

TO_REDACT = {CONF_HOST, CONF_PASSWORD, CONF_USERNAME, CONF_SERIAL, CONF_SERIAL_PORT, CONF_URL,
             CONF_HUB, CONF_HUB_TOKEN, "serial", "serial_number", "device_serial"}  # fmt: skip


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: EdgeEmsConfigEntry
) -> dict[str, Any]:
    """The site and its devices, redacted."""
    data = entry.runtime_data
    site = data.site
    devices = {}
    for device_id, device in data.devices.items():
        member = device.member
        subentry = entry.subentries[device.subentry_id]
        readings = device.coordinator.data or {}
        try:
            registers = await member.device.register_dump()
        except DeviceError as err:
            registers = {"error": str(err)}
        devices[device_id] = {
            "kind": subentry.subentry_type,
            "config": async_redact_data(dict(subentry.data), TO_REDACT),
            "identity": async_redact_data(_identity(member.identity), TO_REDACT),
            "health": _health(member.device.health),
            "learned": async_redact_data(dict(site.learned(device_id)), TO_REDACT),
            "readings": async_redact_data(
                {metric: reading.value for metric, reading in sorted(readings.items())},
                TO_REDACT,
            ),
            "registers": registers,
        }
    return {
        "site": {"site_id": data.site_id, "site_name": data.site_name},
        "options": async_redact_data(dict(entry.options), TO_REDACT),
        "policy": dataclasses.asdict(site.dispatcher.policy),
        "leases": site.dispatcher.all_leases(),
        "devices": devices,
        "audit": data.audit.records()[-50:],
    }


def _identity(identity: DeviceIdentity | None) -> dict[str, str | None]:
    return {} if identity is None else dataclasses.asdict(identity)


def _health(health: Health) -> dict[str, Any]:
    return {
        "connected": health.connected,
        "last_seen": health.last_seen,
        "error_streak": health.error_streak,
        "breaker": str(health.breaker),
        "last_error": health.last_error,
    }
