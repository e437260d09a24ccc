"""What the store answers with: series, resolutions, points, latest values, audit pages.

Times cross this interface as milliseconds since the epoch (as telemetry does); inside, the
store counts whole minutes since the epoch, which is what its tables are keyed by.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from ...dispatch.audit import AuditRecord, Outcome, Reason
from ...gateway.model import Registration

MINUTE_MS = 60_000


class Resolution(StrEnum):
    """The three resolutions the store keeps: minutes, and their 5-minute and hourly rollups."""

    MINUTE = "1m"
    FIVE_MINUTES = "5m"
    HOUR = "1h"

    @property
    def minutes(self) -> int:
        """The length of one bucket, in minutes."""
        return _MINUTES[self]


_MINUTES = {Resolution.MINUTE: 1, Resolution.FIVE_MINUTES: 5, Resolution.HOUR: 60}


class SeriesKey(NamedTuple):
    """One stored series: a metric of an asset at a site."""

    site_id: str
    asset_id: str
    metric: str


@dataclass(frozen=True, slots=True)
class SeriesFilter:
    """Which series a query is about; an empty collection matches everything."""

    sites: Collection[str] = ()
    assets: Collection[str] = ()
    metrics: Collection[str] = ()

    def matches(self, key: SeriesKey) -> bool:
        """Whether ``key`` passes every non-empty criterion."""
        return (
            (not self.sites or key.site_id in self.sites)
            and (not self.assets or key.asset_id in self.assets)
            and (not self.metrics or key.metric in self.metrics)
        )


class Point(NamedTuple):
    """One bucket of one series."""

    start_ms: int
    avg: float
    min: float
    max: float
    last: float
    samples: int
    """How many samples the bucket holds (its count)."""


@dataclass(frozen=True, slots=True)
class SeriesRange:
    """The buckets of one series in a time range, oldest first."""

    key: SeriesKey
    resolution: Resolution
    points: Sequence[Point]


@dataclass(frozen=True, slots=True)
class Latest:
    """The newest value of a series: a number, or a text for text metrics."""

    key: SeriesKey
    timestamp_ms: int
    value: float | str


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters and paging for the audit log; records come newest first."""

    site_id: str | None = None
    device_id: str | None = None
    command: str | None = None
    outcome: Outcome | None = None
    reason: Reason | None = None
    since: float | None = None
    """Seconds since the epoch, inclusive."""
    until: float | None = None
    """Seconds since the epoch, exclusive."""
    limit: int = 100
    cursor: str | None = None
    """The ``next_cursor`` of the previous page."""


@dataclass(frozen=True, slots=True)
class AuditPage:
    """One page of audit records and the cursor of the next (``None`` on the last page)."""

    records: tuple[AuditRecord, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class OutboxBatch:
    """One uplink batch waiting to be delivered: a gzipped JSON body and its idempotency key."""

    key: str
    window_start_ms: int
    created: float
    body: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """What the outbox holds, and how many batches its disk budget ever made it drop."""

    batches: int
    bytes: int
    dropped: int


@dataclass(frozen=True, slots=True)
class StoredRegistration:
    """What an agent registered at one of the hubs sharing the database, as kept there."""

    registration: Registration
    hub: str
    """The hub process (its instance name) the agent registered with."""
    connected: bool
    """Connected to that hub now: it says so, and it was heard from lately."""
    updated: float
    """When that hub last wrote this row (seconds since the epoch)."""
