"""Audit records: one for every write attempt, refused ones included."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from ..readings import Value


class Outcome(StrEnum):
    """How an attempt ended."""

    APPLIED = "applied"
    """Written and read back."""
    UNCHANGED = "unchanged"
    """The device already held the value; nothing was written (EEPROM registers)."""
    DRY_RUN = "dry_run"
    """Control is on but in dry run: nothing was written."""
    REFUSED = "refused"
    """A guard stopped it before anything reached the device."""
    FAILED = "failed"
    """The write reached for the device and failed, or the read-back differed."""
    RELEASED = "released"
    """The device was returned to its safe mode (lease lapsed or released on request)."""


class Reason(StrEnum):
    """Why an attempt ended as it did; stable keys, translated upstream."""

    WRITTEN = "written"
    CLAMPED = "clamped"
    CONTROL_DISABLED = "control_disabled"
    DRY_RUN = "dry_run"
    UNKNOWN_DEVICE = "unknown_device"
    UNKNOWN_SITE = "unknown_site"
    UNKNOWN_COMMAND = "unknown_command"
    NOT_WRITABLE = "not_writable"
    NOT_ALLOWED = "not_allowed"
    INVALID_VALUE = "invalid_value"
    OUT_OF_RANGE = "out_of_range"
    BUDGET_EXHAUSTED = "budget_exhausted"
    RATE_LIMITED = "rate_limited"
    UNCHANGED = "unchanged"
    NO_BATTERIES = "no_batteries"
    DEVICE_ERROR = "device_error"
    READ_BACK_MISMATCH = "read_back_mismatch"
    LEASE_EXPIRED = "lease_expired"
    RELEASE_REQUESTED = "release_requested"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """What was asked, by whom, what was written and why."""

    site_id: str
    device_id: str | None
    command: str
    requested: Value
    applied: Value
    """The value written (or that would have been written), after clamping."""
    outcome: Outcome
    reason: Reason
    message: str
    requested_by: str
    """Who asked: an HA user, an automation, the planner, a hub API client."""
    source: str
    """Which path the request came through (``ha_action``, ``hub_api``, ``planner``, ``lease``)."""
    timestamp: float
    read_back: Value = None
    ttl: float | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditRecord:
        """Rebuild a record from :meth:`as_dict`'s output."""
        values = dict(data)
        values["outcome"] = Outcome(values["outcome"])
        values["reason"] = Reason(values["reason"])
        return cls(**values)
