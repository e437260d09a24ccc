"""The interface every database behind the store implements, and what the backends share.

A backend persists; it decides nothing. The :class:`~.minute_store.MinuteStore` in front
folds samples, picks what a flush writes and plans its rollups; the backend writes a
:class:`Flush` in one transaction and answers queries. SQLite (:mod:`.sqlite`) and
PostgreSQL with TimescaleDB (:mod:`.timescale`) implement it, and the same tests run
against both.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ...dispatch.audit import AuditRecord
from ..sessions import SessionRecord
from .aggregate import MinuteAggregate, TextValue, newest_by_series
from .errors import QueryError
from .model import (
    MINUTE_MS,
    AuditPage,
    AuditQuery,
    Latest,
    OutboxBatch,
    OutboxStats,
    Point,
    Resolution,
    SeriesFilter,
    SeriesKey,
    SeriesRange,
)
from .rollup import RollupPlan, Watermarks

FIVE_MINUTES_MARK = "rollup_5m"
HOUR_MARK = "rollup_1h"
"""Names of the rollup watermarks among the backend's marks."""


@dataclass(frozen=True, slots=True)
class Flush:
    """One flush: written in a single transaction, or not at all."""

    minutes: Mapping[int, Mapping[SeriesKey, MinuteAggregate]]
    texts: Mapping[SeriesKey, TextValue]
    durable: Mapping[str, int]
    """Per agent, the seq up to which everything is durable once this commits."""
    rollups: RollupPlan

    def keys(self) -> set[SeriesKey]:
        """Every series the flush writes."""
        keys = set(self.texts)
        for series in self.minutes.values():
            keys.update(series)
        return keys


@dataclass(frozen=True, slots=True)
class Stored:
    """What a backend tells the store when it opens."""

    durable: dict[str, int]
    watermarks: Watermarks


type Row = tuple[int, int, float, int, float, float, float]
"""A bucket as queries return it: series id, start minute, sum, count, min, max, last."""


class Backend(Protocol):
    """A database behind the minute store."""

    @property
    def name(self) -> str:
        """``sqlite`` or ``timescaledb``."""

    async def open(self) -> Stored:
        """Create or check the schema; return the durable marks and rollup watermarks."""

    async def close(self) -> None:
        """Release connections and threads."""

    async def write(self, flush: Flush) -> None:
        """Upsert minutes, latest values, durable marks and rollups in one transaction."""

    async def series(self, selection: SeriesFilter) -> list[SeriesKey]:
        """Stored series matching ``selection``, sorted."""

    async def query(
        self,
        selection: SeriesFilter,
        start: int,
        end: int,
        resolution: Resolution,
        rolled_up: int | None,
    ) -> list[SeriesRange]:
        """Buckets of minutes ``[start, end)`` (aligned to ``resolution``), by series.

        ``rolled_up`` is the rollup's watermark: buckets before it come from its table, the
        rest are aggregated from minutes on the fly.
        """

    async def latest(self, selection: SeriesFilter) -> list[Latest]:
        """The newest stored value of every matching series."""

    async def first_minute(self) -> int | None:
        """The oldest minute stored, if any."""

    async def delete_before(self, horizons: Mapping[Resolution, int]) -> None:
        """Drop buckets of each resolution older than its horizon (a minute)."""

    async def add_audit(self, records: Sequence[AuditRecord]) -> None:
        """Store audit records (one already stored, by id, is left as it is)."""

    async def audit(self, query: AuditQuery) -> AuditPage:
        """Audit records matching ``query``, newest first."""

    async def save_session(self, record: SessionRecord) -> None:
        """Insert or update an agent session."""

    async def sessions(self, agent_id: str | None, limit: int) -> list[SessionRecord]:
        """Sessions (of ``agent_id``, or of every agent), newest first."""

    async def end_sessions(self, ended: float, reason: str) -> int:
        """End every session still open; return how many there were."""

    async def outbox_put(
        self, batch: OutboxBatch, *, budget_bytes: int, marks: Mapping[str, int]
    ) -> int:
        """Queue ``batch`` and set ``marks``, dropping the oldest batches past the budget.

        Returns how many batches were dropped (``batch`` itself when it alone is too big); the
        backend's persistent drop count grows by as many.
        """

    async def outbox_head(self, limit: int) -> list[OutboxBatch]:
        """The oldest queued batches."""

    async def outbox_remove(self, key: str) -> None:
        """Forget a delivered (or rejected) batch."""

    async def outbox_stats(self) -> OutboxStats:
        """What the outbox holds."""

    async def get_mark(self, name: str) -> int | None:
        """A named integer kept for another part of the hub (an exporter's watermark)."""

    async def set_mark(self, name: str, value: int) -> None:
        """Set a named integer."""


@dataclass(frozen=True, slots=True)
class SeriesCatalog:
    """Series ids both ways. Replaced, never changed, so a reader thread can hold one."""

    ids: Mapping[SeriesKey, int] = field(default_factory=dict)
    keys: Mapping[int, SeriesKey] = field(default_factory=dict)

    def with_ids(self, added: Mapping[SeriesKey, int]) -> SeriesCatalog:
        """A catalog that also knows ``added``."""
        if not added:
            return self
        return SeriesCatalog(
            {**self.ids, **added}, {**self.keys, **{sid: key for key, sid in added.items()}}
        )

    def select(self, selection: SeriesFilter) -> list[int] | None:
        """Ids of the matching series, sorted; ``None`` when the filter matches everything."""
        if not (selection.sites or selection.assets or selection.metrics):
            return None
        return sorted(sid for key, sid in self.ids.items() if selection.matches(key))


def ranges(
    rows: Iterable[Row], catalog: SeriesCatalog, resolution: Resolution
) -> list[SeriesRange]:
    """Group query rows (time-ordered within each series) into ranges, sorted by series."""
    points: dict[int, list[Point]] = {}
    for sid, start, total, count, low, high, last in rows:
        held = points.get(sid)
        if held is None:
            held = points[sid] = []
        held.append(Point(start * MINUTE_MS, total / count, low, high, last, count))
    found = [SeriesRange(catalog.keys[sid], resolution, held) for sid, held in points.items()]
    return sorted(found, key=lambda found_range: found_range.key)


def minute_rows(
    flush: Flush, ids: Mapping[SeriesKey, int]
) -> list[tuple[int, int, float, int, float, float, float, int]]:
    """The minute upserts of ``flush``: minute, series id, sum, count, min, max, last, and
    the last sample's offset into the minute in ms (a small number stores in fewer bytes)."""
    return [
        (minute, ids[key], a.sum, a.count, a.min, a.max, a.last, a.last_ms - minute * MINUTE_MS)
        for minute, series in flush.minutes.items()
        for key, a in series.items()
    ]


def latest_rows(
    flush: Flush, ids: Mapping[SeriesKey, int]
) -> list[tuple[int, int, float | None, str | None]]:
    """The latest-value upserts of ``flush``: series id, ms, number or text."""
    rows: list[tuple[int, int, float | None, str | None]] = [
        (ids[key], a.last_ms, a.last, None) for key, a in newest_by_series(flush.minutes).items()
    ]
    rows += [(ids[key], text.timestamp_ms, None, text.value) for key, text in flush.texts.items()]
    return rows


def latest_value(number: float | None, text: str | None) -> float | str:
    """The value of a latest row: its text, or else its number."""
    if text is not None:
        return text
    assert number is not None  # every row holds one of the two
    return number


def mark_rows(flush: Flush) -> list[tuple[str, int]]:
    """The rollup watermarks a flush leaves behind."""
    marks = flush.rollups.watermarks
    rows = []
    if marks.five_minutes is not None:
        rows.append((FIVE_MINUTES_MARK, marks.five_minutes))
    if marks.hour is not None:
        rows.append((HOUR_MARK, marks.hour))
    return rows


def aggregate_sql(source: str, size: int, series: str, mark: str) -> str:
    """Buckets of ``size`` minutes over ``[mark, mark)`` aggregated from ``source``'s buckets,
    in SQL both SQLite and PostgreSQL run (no ``%``: psycopg reads it as a placeholder).

    The last value is the one with the newest timestamp (``row_number`` over the bucket);
    ``last_at`` becomes an offset into the larger bucket. Columns: bucket, series id, sum,
    count, min, max, last, last offset.
    """
    bucket = f"(start / {size} * {size})"
    offset = f"((start - {bucket}) * {MINUTE_MS} + last_at)"
    return (
        "SELECT bucket, series_id, sum(total), sum(samples), min(low), max(high), "  # noqa: S608 - ours
        "max(CASE WHEN newest = 1 THEN last END), max(at) FROM ("
        f"SELECT {bucket} AS bucket, series_id, total, samples, low, high, last, {offset} AS at, "
        f"row_number() OVER (PARTITION BY {bucket}, series_id ORDER BY {offset} DESC) AS newest "
        f"FROM {source} WHERE start >= {mark} AND start < {mark}{series}"
        ") AS b GROUP BY bucket, series_id"
    )


def encode_cursor(timestamp: float, record_id: str) -> str:
    """An opaque audit cursor: the position of the last record of a page."""
    return f"{timestamp!r}~{record_id}"


def decode_cursor(cursor: str) -> tuple[float, str]:
    """The position an audit cursor names."""
    timestamp, sep, record_id = cursor.partition("~")
    try:
        value = float(timestamp)
    except ValueError:
        value = math.nan
    if not sep or not record_id or not math.isfinite(value):
        raise QueryError(f"not an audit cursor: {cursor!r}")
    return value, record_id


def audit_conditions(query: AuditQuery, mark: str) -> tuple[list[str], list[object]]:
    """SQL conditions (with ``mark`` as the placeholder) and parameters of an audit query."""
    conditions: list[str] = []
    params: list[object] = []
    for column, value in (
        ("site_id", query.site_id),
        ("device_id", query.device_id),
        ("command", query.command),
        ("outcome", None if query.outcome is None else query.outcome.value),
    ):
        if value is not None:
            conditions.append(f"{column} = {mark}")
            params.append(value)
    if query.since is not None:
        conditions.append(f"at >= {mark}")
        params.append(query.since)
    if query.until is not None:
        conditions.append(f"at < {mark}")
        params.append(query.until)
    if query.cursor is not None:
        at, record_id = decode_cursor(query.cursor)
        conditions.append(f"(at < {mark} OR (at = {mark} AND id < {mark}))")
        params += [at, at, record_id]
    return conditions, params


def audit_json(record: AuditRecord) -> str:
    """A record as stored: its JSON form."""
    return json.dumps(record.as_dict(), separators=(",", ":"))


def audit_from_json(text: str) -> AuditRecord:
    """A stored record."""
    return AuditRecord.from_dict(json.loads(text))


def audit_page(records: list[AuditRecord], limit: int) -> AuditPage:
    """A page from up to ``limit + 1`` records (one more tells whether there is a next)."""
    if len(records) <= limit:
        return AuditPage(tuple(records), None)
    last = records[limit - 1]
    return AuditPage(tuple(records[:limit]), encode_cursor(last.timestamp, last.id))
