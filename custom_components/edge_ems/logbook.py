"""How the logbook shows an ``edge_ems_audit`` event: who asked what, and what came of it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from homeassistant.components.logbook.const import LOGBOOK_ENTRY_MESSAGE, LOGBOOK_ENTRY_NAME
from homeassistant.const import ATTR_DEVICE_ID
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr

from edge_ems.dispatch import Outcome, Reason

from .const import DOMAIN, EVENT_AUDIT

_RELEASE_WHY = {
    Reason.LEASE_EXPIRED: "its setpoint lapsed",
    Reason.RELEASE_REQUESTED: "released on request",
    Reason.CONTROL_DISABLED: "control was turned off",
}


def describe_record(record: Mapping[str, Any]) -> str:
    """One line for an audit record, as the logbook shows it after the device's name."""
    command, applied = record["command"], record["applied"]
    outcome, reason = Outcome(record["outcome"]), Reason(record["reason"])
    match outcome:
        case Outcome.APPLIED:
            text = f"set {command} to {applied}"
            if reason is Reason.CLAMPED:
                text += f" (clamped from {record['requested']})"
            text += f", read back {record['read_back']}"
        case Outcome.UNCHANGED:
            text = f"left {command} at {applied}: the device already held it"
        case Outcome.DRY_RUN:
            text = f"dry run: would have set {command} to {applied}"
        case Outcome.REFUSED:
            asked = command if record["requested"] is None else f"{command} = {record['requested']}"
            text = f"refused {asked}: {record['message']}"
        case Outcome.FAILED:
            text = f"failed to set {command}: {record['message']}"
        case Outcome.RELEASED:
            why = _RELEASE_WHY.get(reason, reason.value)
            text = f"returned to safe mode ({command} = {applied}), {why}"
    return f"{text}; asked by {record['requested_by']}"


@callback
def async_describe_events(
    hass: HomeAssistant,
    async_describe_event: Callable[[str, str, Callable[[Event], dict[str, str]]], None],
) -> None:
    """Describe the audit events."""
    devices = dr.async_get(hass)

    @callback
    def describe(event: Event) -> dict[str, str]:
        name = "Edge EMS"
        device = devices.async_get(event.data.get(ATTR_DEVICE_ID) or "")
        entry = hass.config_entries.async_get_entry(event.data.get("config_entry_id") or "")
        if device is not None:
            name = device.name_by_user or device.name or name
        elif entry is not None:
            name = entry.title
        return {
            LOGBOOK_ENTRY_NAME: name,
            LOGBOOK_ENTRY_MESSAGE: describe_record(event.data["record"]),
        }

    async_describe_event(DOMAIN, EVENT_AUDIT, describe)
