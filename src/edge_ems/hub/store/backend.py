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
from dataclasses import asdict, dataclass, field
from operator import itemgetter
from typing import Protocol

from ...dispatch.audit import AuditRecord
from ...gateway.model import AssetInfo, Registration
from ..claims import Claim
from ..sessions import SessionRecord
from .aggregate import MinuteAggregate, Minutes, TextValue, newest_by_series
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
    StoredRegistration,
)


@dataclass(frozen=True, slots=True)
class Flush:
    """One flush: written in a single transaction, or not at all."""

    minutes: Mapping[int, Mapping[SeriesKey, MinuteAggregate]]
    texts: Mapping[SeriesKey, TextValue]
    durable: Mapping[str, int]
    """Per agent, the seq up to which everything is durable once this commits."""
    written: Mapping[str, int]
    """Per agent, the highest seq accepted so far (see :attr:`Stored.written`)."""
    rollups: Mapping[Resolution, Mapping[int, Mapping[SeriesKey, MinuteAggregate]]]
    """Per coarser resolution, the buckets to merge into its table (see :mod:`.rollup`)."""
    marks: Mapping[str, int] = field(default_factory=dict)
    """Named marks set in the same transaction (closed-minute and rollup marks)."""
    newest: Mapping[SeriesKey, MinuteAggregate] | None = None
    """Each series' newest aggregate among the minutes, if the store already knows it."""
    late: frozenset[int] = frozenset()
    """Starts (minutes) of closed 5-minute windows this flush adds late samples to: recorded
    under a new late seq, so what exported those windows can send them again."""

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
    written: dict[str, int]
    """Per agent, the highest seq accepted before the last flush: every sample of it and of
    the seqs before it in a minute before the ``flushed_through`` mark is stored."""


type Row = tuple[int, int, float, int, float, float, float]
"""A bucket as queries return it: series id, start minute, sum, count, min, max, last."""

type StoredRow = tuple[int, int, float, int, float, float, float, int]
"""A bucket as stored: start minute, series id, sum, count, min, max, last, last offset."""


_first = itemgetter(0)

LATE_SEQ = "late_seq"
"""The mark holding the last late seq given out."""


class Backend(Protocol):
    """A database behind the minute store."""

    @property
    def name(self) -> str:
        """``sqlite`` or ``timescaledb``."""

    @property
    def where(self) -> str:
        """What the database is and where, for the log (never with credentials)."""

    async def open(self) -> Stored:
        """Create or check the schema; return the agents' durable marks."""

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
    ) -> list[SeriesRange]:
        """Buckets of minutes ``[start, end)`` (aligned to ``resolution``), by series."""

    async def latest(self, selection: SeriesFilter) -> list[Latest]:
        """The newest stored value of every matching series."""

    async def late_windows(self, after: int) -> tuple[list[int], int]:
        """Starts (minutes) of the windows recorded late under a late seq above ``after``,
        sorted, and the highest late seq (``after`` when there is none)."""

    async def stored_minutes(self, start: int) -> Minutes:
        """Every stored minute aggregate from minute ``start`` on (to rebuild open rollups)."""

    async def first_minute(self) -> int | None:
        """The oldest minute stored, if any."""

    async def delete_before(self, horizons: Mapping[Resolution, int]) -> None:
        """Drop buckets of each resolution older than its horizon (a minute)."""

    async def add_audit(self, records: Sequence[AuditRecord]) -> None:
        """Store audit records (one already stored, by id, is left as it is)."""

    async def audit(self, query: AuditQuery) -> AuditPage:
        """Audit records matching ``query``, newest first."""

    async def save_session(self, record: SessionRecord, hub: str = "") -> None:
        """Insert or update an agent session of hub process ``hub``."""

    async def sessions(self, agent_id: str | None, limit: int) -> list[SessionRecord]:
        """Sessions (of ``agent_id``, or of every agent), newest first."""

    async def end_sessions(
        self, ended: float, reason: str, *, hub: str = "", stale_before: float | None = None
    ) -> int:
        """End the sessions still open of hub process ``hub`` (its previous run), and those of
        hubs not heard from since ``stale_before`` (or never); return how many."""

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
        """A named integer kept for another part of the hub (what an exporter has done)."""

    async def set_mark(self, name: str, value: int) -> None:
        """Set a named integer."""

    async def claim(self, claims: Sequence[Claim], credential: str, at: float) -> dict[Claim, str]:
        """Bind every unheld claim to ``credential``, unless one is held by another
        credential (then bind none); return each claim's holder (:mod:`..claims`)."""

    async def durable_seq(self, agent_id: str) -> int:
        """The durable seq of ``agent_id`` as stored (0 if none)."""

    async def beat(self, hub: str, seen: float) -> None:
        """Note that hub process ``hub`` is alive at ``seen``."""

    async def save_registrations(self, hub: str, rows: Sequence[tuple[Registration, bool]]) -> None:
        """Keep what agents registered with hub process ``hub``, and whether each is connected."""

    async def registrations(self, alive_after: float) -> list[StoredRegistration]:
        """What agents registered with any hub; connected only if their hub beat since
        ``alive_after``."""

    async def keep_first(self, name: str, value: str) -> str:
        """Store ``value`` as setting ``name`` unless one is stored already (by this or another
        hub on the same database); return the one stored."""


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
        if sid not in catalog.keys:  # a series another hub added after this one last looked
            continue
        held = points.get(sid)
        if held is None:
            held = points[sid] = []
        held.append(Point(start * MINUTE_MS, total / count, low, high, last, count))
    found = [SeriesRange(catalog.keys[sid], resolution, held) for sid, held in points.items()]
    return sorted(found, key=lambda found_range: found_range.key)


def bucket_rows(
    buckets: Mapping[int, Mapping[SeriesKey, MinuteAggregate]], ids: Mapping[SeriesKey, int]
) -> list[tuple[int, int, float, int, float, float, float, int]]:
    """The upserts of ``buckets``, in key order: start minute, series id, sum, count, min, max,
    last, and the last sample's offset into the bucket in ms (a small number stores in fewer
    bytes)."""
    rows: list[tuple[int, int, float, int, float, float, float, int]] = []
    for start in sorted(buckets):
        base = start * MINUTE_MS
        rows += [
            (start, sid, a.sum, a.count, a.min, a.max, a.last, a.last_ms - base)
            for sid, a in _by_id(buckets[start], ids)
        ]
    return rows


def bucket_params(
    buckets: Mapping[int, Mapping[SeriesKey, MinuteAggregate]], ids: Mapping[SeriesKey, int]
) -> list[float]:
    """The rows of :func:`bucket_rows` one after another in one flat list (for statements
    that upsert many rows). Each row's tuple is freed as soon as it is copied in, which
    spares the allocations and garbage collections of holding them all."""
    params: list[float] = []
    for start in sorted(buckets):
        base = start * MINUTE_MS
        for sid, a in _by_id(buckets[start], ids):
            params += (start, sid, a.sum, a.count, a.min, a.max, a.last, a.last_ms - base)
    return params


def _by_id(
    series: Mapping[SeriesKey, MinuteAggregate], ids: Mapping[SeriesKey, int]
) -> Iterable[tuple[int, MinuteAggregate]]:
    """A bucket's series as ``(id, aggregate)`` in id order: B-tree order, so pages fill in
    turn. New series get ids in key order, so it usually is the order they come in."""
    sids = list(map(ids.__getitem__, series))
    pairs = zip(sids, series.values(), strict=True)
    return pairs if sids == sorted(sids) else sorted(pairs, key=_first)


def flush_tables(
    flush: Flush,
) -> list[tuple[str, Mapping[int, Mapping[SeriesKey, MinuteAggregate]]]]:
    """Each bucket table a flush upserts into, with its buckets."""
    return [
        ("minute", flush.minutes),
        ("rollup_5m", flush.rollups.get(Resolution.FIVE_MINUTES, {})),
        ("rollup_1h", flush.rollups.get(Resolution.HOUR, {})),
    ]


def latest_rows(
    flush: Flush, ids: Mapping[SeriesKey, int]
) -> list[tuple[int, int, float | None, str | None]]:
    """The latest-value upserts of ``flush``: series id, ms, number or text."""
    newest = newest_by_series(flush.minutes) if flush.newest is None else flush.newest
    rows: list[tuple[int, int, float | None, str | None]] = [
        (ids[key], a.last_ms, a.last, None) for key, a in newest.items()
    ]
    rows += [(ids[key], text.timestamp_ms, None, text.value) for key, text in flush.texts.items()]
    return rows


def agent_rows(flush: Flush) -> list[tuple[str, int, int]]:
    """The agents' upserts: id, durable seq, written seq (0 where a flush sets only one)."""
    return [
        (agent, flush.durable.get(agent, 0), flush.written.get(agent, 0))
        for agent in sorted(flush.durable.keys() | flush.written.keys())
    ]


def latest_value(number: float | None, text: str | None) -> float | str:
    """The value of a latest row: its text, or else its number."""
    if text is not None:
        return text
    assert number is not None  # every row holds one of the two
    return number


def minutes_from_rows(rows: Iterable[StoredRow], catalog: SeriesCatalog) -> Minutes:
    """Stored minute rows as aggregates by minute and series."""
    minutes: Minutes = {}
    for start, sid, total, count, low, high, last, offset in rows:
        aggregate = MinuteAggregate(total, count, low, high, last, start * MINUTE_MS + offset)
        minutes.setdefault(start, {})[catalog.keys[sid]] = aggregate
    return minutes


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


def audit_conditions(query: AuditQuery, mark: str, reason: str) -> tuple[list[str], list[object]]:
    """SQL conditions (with ``mark`` as the placeholder) and parameters of an audit query;
    ``reason`` is the backend's expression for the reason in the stored record's JSON (no
    column of its own: the filter is rare, and the other conditions narrow it first)."""
    conditions: list[str] = []
    params: list[object] = []
    for column, value in (
        ("site_id", query.site_id),
        ("device_id", query.device_id),
        ("command", query.command),
        ("outcome", None if query.outcome is None else query.outcome.value),
        (reason, None if query.reason is None else query.reason.value),
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


END_SESSIONS = """
UPDATE sessions SET ended = {mark}, end_reason = {mark}
WHERE ended IS NULL AND (hub = {mark} OR hub NOT IN (SELECT name FROM hubs WHERE seen >= {mark}))
"""
"""End the sessions of one hub process and of those silent since a time (placeholders: ended,
reason, hub, stale_before)."""


def registration_json(registration: Registration) -> str:
    """A registration as stored."""
    return json.dumps(asdict(registration), separators=(",", ":"))


def registration_from_json(text: str) -> Registration:
    """A stored registration."""
    data = json.loads(text)
    assets = tuple(
        AssetInfo(**{**asset, "commands": tuple(asset.get("commands", ()))})
        for asset in data.pop("assets", [])
    )
    return Registration(**data, assets=assets)


def stored_registration(
    agent: str,
    hub: str,
    text: str,
    connected: object,
    updated: float,
    seen: float | None,
    alive_after: float,
) -> StoredRegistration | None:
    """A registrations row (with its hub's last beat) as a :class:`StoredRegistration`; a
    row that no longer parses is skipped."""
    try:
        registration = registration_from_json(text)
    except (ValueError, TypeError):
        return None
    if registration.agent_id != agent:
        return None
    alive = bool(connected) and seen is not None and seen >= alive_after
    return StoredRegistration(registration, hub, alive, updated)
