"""The site's audit log (minimal version; HA-B owns and extends this file)."""

from __future__ import annotations

from typing import Any

from homeassistant.core import Context, HomeAssistant, callback
from homeassistant.helpers.storage import Store

from edge_ems.dispatch import AuditRecord

from .const import DOMAIN, EVENT_AUDIT

STORAGE_VERSION = 1
MAX_RECORDS = 1000


class AuditLog:
    """Every dispatch attempt of one site: an event, and a bounded persistent record."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        self._hass = hass
        self._store: Store[list[dict[str, Any]]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.audit.{entry_id}"
        )
        self._records: list[dict[str, Any]] = []

    async def async_load(self) -> None:
        """Load the stored records."""
        self._records = await self._store.async_load() or []

    @callback
    def record(self, record: AuditRecord, context: Context | None) -> None:
        """Fire the audit event and keep the record."""
        data = record.as_dict()
        self._hass.bus.async_fire(EVENT_AUDIT, data, context=context)
        self._records = [*self._records, data][-MAX_RECORDS:]
        self._store.async_delay_save(lambda: self._records, 5)

    def records(self) -> list[dict[str, Any]]:
        """The kept records, oldest first."""
        return list(self._records)
