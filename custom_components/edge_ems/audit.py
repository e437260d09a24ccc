"""The integration's audit log: every dispatch attempt becomes an event and a stored record.

The library's :class:`~edge_ems.dispatch.Dispatcher` calls :meth:`AuditLog.record` for every
attempt, refused ones included. Each record is fired on the bus as ``edge_ems_audit`` (which
the logbook describes, see ``logbook.py``) and kept in a bounded log in HA's storage, which
diagnostics expose.

Who asked travels with the HA :class:`~homeassistant.core.Context` of the action call. The
dispatcher's sink takes only the record, so the action handler sets the call's context for
the duration of the call (:func:`call_context`); records a lease makes later on its own
(refresh failures, safe-mode return on lapse) get a fresh context.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from homeassistant.core import Context, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.storage import Store

from edge_ems.dispatch import AuditRecord, Outcome

from .const import DOMAIN, EVENT_AUDIT

SOURCE_HA_ACTION = "ha_action"
"""The ``source`` of records that come from an action call."""
SOURCE_LEASE = "lease"
"""The ``source`` of records a lease makes on its own, after the call that started it."""

MAX_RECORDS = 1000
STORAGE_VERSION = 1
SAVE_DELAY = 10.0
"""Seconds to gather records before writing the log (flash storage on small hosts)."""

_CALL_CONTEXT: ContextVar[Context | None] = ContextVar("edge_ems_call_context", default=None)


@contextmanager
def call_context(context: Context) -> Iterator[None]:
    """Attribute the records made while inside to the action call with ``context``."""
    token = _CALL_CONTEXT.set(context)
    try:
        yield
    finally:
        _CALL_CONTEXT.reset(token)


def record_dict(record: AuditRecord) -> dict[str, Any]:
    """A record as plain JSON data (its enums as their values)."""
    data = record.as_dict()
    data["outcome"], data["reason"] = record.outcome.value, record.reason.value
    return data


def stopped_error(record: AuditRecord, *, site: str, device: str) -> HomeAssistantError | None:
    """What tells the caller that a guard refused an attempt (its input is wrong) or the
    device failed it; ``None`` for one that got through (a dry run says what it would have
    written, which is no error)."""
    if record.outcome is Outcome.REFUSED:
        error: type[HomeAssistantError] = ServiceValidationError
    elif record.outcome is Outcome.FAILED:
        error = HomeAssistantError
    else:
        return None
    return error(
        translation_domain=DOMAIN,
        translation_key=f"{record.outcome.value}_{record.reason.value}",
        translation_placeholders={
            "site": site,
            "device": device,
            "command": record.command,
            "message": record.message,
        },
    )


def storage_key(entry_id: str) -> str:
    """The storage key of one config entry's audit log."""
    return f"{DOMAIN}.audit.{entry_id}"


class AuditLog:
    """One site's audit trail: bus events plus the last ``max_records`` records on disk."""

    def __init__(
        self, hass: HomeAssistant, entry_id: str, *, max_records: int = MAX_RECORDS
    ) -> None:
        self._hass = hass
        self._entry_id = entry_id
        self._records: deque[dict[str, Any]] = deque(maxlen=max_records)
        self._store: Store[list[dict[str, Any]]] = Store(
            hass, STORAGE_VERSION, storage_key(entry_id)
        )

    async def async_load(self) -> None:
        """Take back the records kept before a restart; save them all when the site unloads."""
        stored = await self._store.async_load()
        if isinstance(stored, list):
            self._records.clear()
            self._records.extend(item for item in stored if isinstance(item, dict))
        entry = self._hass.config_entries.async_get_entry(self._entry_id)
        if entry is not None:
            # A reload makes a new log; it must find what this one has not saved yet.
            entry.async_on_unload(self.async_save)

    async def async_save(self) -> None:
        """Save the kept records now."""
        await self._store.async_save(self.records())

    @callback
    def record(self, record: AuditRecord, context: Context | None = None) -> None:
        """Keep ``record`` and fire it on the bus; usable directly as the dispatcher's sink."""
        if context is None and record.source != SOURCE_LEASE:
            # A lease task inherits the context of the call that started it; not its lapse.
            context = _CALL_CONTEXT.get()
        context = context or Context()
        stored = record_dict(record)
        stored["context_id"] = context.id
        stored["user_id"] = context.user_id
        self._records.append(stored)
        self._store.async_delay_save(self.records, SAVE_DELAY)
        self._hass.bus.async_fire(
            EVENT_AUDIT,
            {
                "config_entry_id": self._entry_id,
                # The HA device id lets the logbook list the entry under the device.
                "device_id": self._ha_device_id(record.device_id),
                "record": record_dict(record),
            },
            context=context,
        )

    def records(self) -> list[dict[str, Any]]:
        """The kept records, oldest first, as JSON-ready dicts."""
        return list(self._records)

    async def async_remove(self) -> None:
        """Delete the stored log (the config entry is being removed)."""
        self._records.clear()
        await self._store.async_remove()

    def _ha_device_id(self, device_id: str | None) -> str | None:
        """The device registry id of one of the site's devices, if it is registered."""
        entry = self._hass.config_entries.async_get_entry(self._entry_id)
        if device_id is None or entry is None:
            return None
        data = getattr(entry, "runtime_data", None)
        device = getattr(data, "devices", {}).get(device_id)
        if device is None:
            return None
        for ha_device in dr.async_entries_for_config_entry(
            dr.async_get(self._hass), entry.entry_id
        ):
            if ha_device.config_subentry_id == device.subentry_id:
                return ha_device.id
        return None
