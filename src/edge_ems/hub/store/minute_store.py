"""The minute store: where the gateway's telemetry goes, and what the REST API reads.

Ingest. :meth:`MinuteStore.accept` folds a batch into open per-minute aggregates in memory
(:mod:`.aggregate`). A flush, once a minute at the minute boundary plus a grace, writes the
minutes that closed, every agent's new durable seq, the latest values and what the minutes
add to the 5-minute and hourly rollups (:mod:`.rollup`), all in one transaction
(:class:`~.backend.Flush`); then it tells subscribers (the gateway) which seqs became
durable, and the gateway acknowledges them to the agents. A batch is durable once every
minute it touched is written, so a batch arriving at 12:00:03 is acknowledged after the
12:01:10 flush. The open minute stays in memory: each minute is written once, which halves
the rows written against flushing partial minutes, and the acknowledgement lags no more (a
batch waits for the next flush either way). Only when a batch has waited
``max_ack_delay`` (samples stamped in the future) are open minutes written too, as partial
aggregates that later flushes merge into.

With an ingest journal (:mod:`.journal`, what the hub runs), a batch is durable, and
acknowledged, once a group commit has journaled it, a fraction of a second after it came;
the minutes are still written once, and each flush lets the journal drop the segments the
database now holds. At start the journal's batches are folded again, as resent ones would
be (below), so what was acknowledged and not yet written is not lost.

Exactly once. Seqs at or below the agent's accepted mark are dropped, minutes merge by
upsert (sum, count, min, max, last by timestamp), and the durable mark commits with the
minutes it covers: after a crash the agent resends from the durable mark, nothing before
it. A batch reaching into a minute still open is not durable, yet its part in the closed
minutes was written; so each flush also commits, per agent, the highest seq accepted so
far and the closed mark, and after a restart a resent batch up to that seq folds only its
samples from that mark on.

Queries read the backend: series, time ranges at minute, 5-minute or hourly resolution
(each from its own table), and the latest values, with the open aggregates' newer values on
top. Audit records, agent sessions, the uplink outbox and marks are plain persistence:
:attr:`backend`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from ...exceptions import ConfigError
from ...gateway.model import TelemetryBatch
from ..telemetry import DurableCallback
from .aggregate import MinuteAggregator, Minutes, newest_by_series
from .backend import Backend, Flush
from .errors import QueryError, StoreError
from .journal import IngestJournal
from .model import MINUTE_MS, Latest, Resolution, SeriesFilter, SeriesKey, SeriesRange
from .rollup import MARKS, ROLLUPS, OpenRollups, merge_points, retention_horizon

FLUSHED_THROUGH = "flushed_through"
"""The store mark: every minute before it is closed and written."""
WINDOW = Resolution.FIVE_MINUTES.minutes
"""Late samples are recorded by the 5-minute window (the uplink's) they fall in."""

_LOGGER = logging.getLogger(__name__)

RESTART_REASON = "hub stopped"
"""End reason of the sessions a previous run left open."""
HUB_SILENCE = 60.0
"""Seconds without a beat after which another hub on a shared database counts as gone (its
sessions are ended, its agents shown disconnected)."""


@dataclass(frozen=True, slots=True)
class Retention:
    """How long each resolution is kept, in days (``None``: forever)."""

    minute_days: float = 14.0
    five_minute_days: float = 90.0
    hour_days: float | None = None

    def __post_init__(self) -> None:
        # Coarser data outlives finer: a range too old for minutes still has its rollups.
        longest = math.inf if self.hour_days is None else self.hour_days
        if not 0 < self.minute_days <= self.five_minute_days <= longest:
            raise ConfigError(
                "retention must keep minutes > 0 days, 5-minute rollups at least as long, "
                "hourly rollups at least as long as those"
            )


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """Flush cadence, memory bounds and retention."""

    flush_interval: float = 60.0
    """Seconds between flushes; at 60 or more they fall on minute boundaries plus the grace.
    Shorter intervals (tests, benchmarks) write closed minutes sooner, not open ones."""
    flush_grace: float = 10.0
    """Seconds after a minute ends before it counts as closed and is flushed (agents send
    every 5 s, so their last batch of the minute is in by then)."""
    max_ack_delay: float = 150.0
    """Without a journal: a batch not durable after this many seconds gets open minutes
    flushed too."""
    journal_interval: float = 0.1
    """With a journal: seconds a group commit waits for more batches before it writes (and
    acknowledges) them all."""
    max_future: float = 300.0
    """Samples stamped more than this many seconds past the hub's clock are dropped (and
    counted): a clock far ahead, or a corrupt stamp, would otherwise stay its series'
    latest value for good and hold the agent's acknowledgements back."""
    max_open_rows: int = 200_000
    """Past this many open aggregates (a long replay), closed minutes are flushed at once."""
    maintenance_interval: float = 3600.0
    """Seconds between retention passes."""
    retention: Retention = field(default_factory=Retention)

    def __post_init__(self) -> None:
        timings = (
            self.flush_interval,
            self.flush_grace,
            self.max_ack_delay,
            self.max_future,
            self.journal_interval,
        )
        if not all(math.isfinite(t) and t > 0 for t in timings) or self.flush_grace >= 60:
            raise ConfigError(
                "store flush interval, grace (under 60 s), ack delay, future allowance and "
                "journal interval must be positive seconds"
            )
        if self.max_open_rows < 1 or not self.maintenance_interval > 0:
            raise ConfigError("store max_open_rows and maintenance_interval must be positive")


@dataclass(frozen=True, slots=True)
class StoreStatus:
    """The store for ``/health``."""

    backend: str
    open_rows: int
    """Aggregates in memory, not yet written."""
    waiting_batches: int
    """Batches accepted and not yet durable."""
    flushed_through_ms: int | None
    """Every sample before this time that had arrived is durable."""
    last_flush: float | None
    last_error: str | None
    flushes: int
    flush_failures: int
    rows_written: int
    duplicate_batches: int
    dropped_samples: int
    """Samples refused: not finite, older than the minute retention, or from the future."""
    future_samples: int = 0
    """Of the dropped, those stamped more than ``max_future`` past the hub's clock."""
    resent_samples: int = 0
    """Samples of batches resent after a restart that the earlier run had stored, skipped."""
    journal_pending: int | None = None
    """Batches accepted and not yet in the ingest journal (``None``: no journal)."""
    journal_segments: int | None = None
    """Journal files kept until the database holds what they hold."""


@dataclass(slots=True)
class _Waiting:
    """A run of an agent's batches waiting for the database, all with the same newest
    minute: a flush makes the whole run durable or none of it. One per run, not per batch:
    a fleet's agents send a dozen batches a minute each."""

    seq: int
    """The run's highest seq."""
    last_minute: int | None
    accepted: float
    """When the run's first batch was accepted."""
    batches: int = 1


def next_flush_delay(now: float, grace: float) -> float:
    """Seconds from ``now`` to the next minute boundary plus ``grace``."""
    closed = math.floor((now - grace) / 60)
    return (closed + 1) * 60 + grace - now


class MinuteStore:
    """Per-minute telemetry over a :class:`~.backend.Backend`; a ``TelemetrySink``."""

    def __init__(
        self,
        backend: Backend,
        settings: StoreSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        instance: str = "",
        journal: IngestJournal | None = None,
    ) -> None:
        self._backend = backend
        self._journal = journal
        self.settings = settings or StoreSettings()
        self._clock = clock
        self.instance = instance
        """Names this hub process among those sharing the database (sessions are kept under
        it); empty for a hub that has its database to itself."""
        self._aggregator = MinuteAggregator()
        self._durable: dict[str, int] = {}
        """Per agent, the seq up to which the agent is told its batches are durable: in the
        database, or in the journal."""
        self._committed: dict[str, int] = {}
        """Per agent, the seq up to which the database holds every sample."""
        self._accepted: dict[str, int] = {}
        self._waiting: dict[str, list[_Waiting]] = {}
        self._flushed_through: int | None = None
        self._rollups = OpenRollups()
        self._callbacks: list[DurableCallback] = []
        self._lock = asyncio.Lock()
        self._flushes: set[asyncio.Task[int]] = set()
        self._wake = asyncio.Event()
        self._stopping = False
        self._runner: asyncio.Task[None] | None = None
        self._journaling: asyncio.Task[None] | None = None
        self._journal_wake = asyncio.Event()
        self._opened = False
        self._last_flush: float | None = None
        self._last_error: str | None = None
        self._flush_count = self._failures = self._rows_written = 0
        self._duplicates = self._dropped = self._already_stored = self._future = 0
        self._written: dict[str, int] = {}
        self._resent: tuple[dict[str, int], int | None] = ({}, None)
        """What the last run wrote (per agent its written seq, and the closed mark then):
        the parts of resent batches it already stored."""

    def _own(self, mark: str) -> str:
        """A mark of this hub's own progress: hubs sharing a database keep theirs apart."""
        return f"{mark}@{self.instance}" if self.instance else mark

    @property
    def backend(self) -> Backend:
        """The database: audit records, sessions, outbox and marks are read and written here."""
        return self._backend

    @property
    def flushed_through_ms(self) -> int | None:
        """Every minute before this (ms) is closed and written, as far as it had arrived."""
        closed = self._flushed_through
        return None if closed is None else closed * MINUTE_MS

    # Lifecycle.

    async def open(self) -> None:
        """Open the backend; end the sessions a previous run left open."""
        stored = await self._backend.open()
        self._durable = dict(stored.durable)
        self._committed = dict(stored.durable)
        self._accepted = dict(stored.durable)
        self._written = dict(stored.written)
        self._flushed_through = await self._backend.get_mark(self._own(FLUSHED_THROUGH))
        self._resent = (dict(stored.written), self._flushed_through)
        marks = {
            rollup: await self._backend.get_mark(self._own(MARKS[rollup])) for rollup in ROLLUPS
        }
        known = [mark for mark in marks.values() if mark is not None]
        minutes = await self._backend.stored_minutes(min(known)) if known else {}
        self._rollups.restore(marks, minutes)
        if self._journal is not None:
            replayed = 0
            async for batches in self._journal.replay():
                taken = [batch for batch in batches if self._fold(batch, replay=True)]
                self._made_durable((batch.agent_id, batch.seq) for batch in taken)
                replayed += len(taken)
            if replayed:
                _LOGGER.info("Took %d batches back from the ingest journal", replayed)
        now = self._clock()
        ended = await self._backend.end_sessions(
            now, RESTART_REASON, hub=self.instance, stale_before=now - HUB_SILENCE
        )
        if ended:
            _LOGGER.info("Ended %d agent sessions a previous run left open", ended)
        self._opened = True

    def start(self) -> None:
        """Flush once a minute (and retain once an hour), and commit the journal, until
        :meth:`close`."""
        loop = asyncio.get_running_loop()
        if self._runner is None:
            self._runner = loop.create_task(self._run(), name="edge_ems store flush")
        if self._journal is not None and self._journaling is None:
            self._journaling = loop.create_task(self._run_journal(), name="edge_ems store journal")

    async def close(self) -> None:
        """Stop flushing, write everything still open, close the backend."""
        self._stopping = True
        self._wake.set()
        self._journal_wake.set()
        for task in (self._runner, self._journaling):
            if task is not None:
                await task
        self._runner = self._journaling = None
        if self._opened:
            self._opened = False
            try:
                await self.flush(full=True)
            except StoreError:
                _LOGGER.exception(
                    "Could not write the open minutes on close; the journal or the agents have them"
                )
            if self._journal is not None:
                try:
                    await self._journal.close(self._committed)
                except OSError:
                    _LOGGER.exception("Could not tidy the ingest journal on close")
            await self._backend.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.close()

    async def _run(self) -> None:
        next_maintenance = self._clock()
        while True:
            delay = self.settings.flush_interval
            if delay >= 60:
                delay = next_flush_delay(self._clock(), self.settings.flush_grace)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                await self.flush()
                if self._clock() >= next_maintenance:
                    await self.maintain()
                    next_maintenance = self._clock() + self.settings.maintenance_interval
            except StoreError:
                _LOGGER.exception("Store flush failed; the open minutes are kept and retried")

    async def _run_journal(self) -> None:
        """Group commits: once a batch waits, gather more for ``journal_interval``, then
        write them all at once. A failing journal is said once and tried again less and
        less often (up to every 10 s); nothing is acknowledged meanwhile."""
        failures = 0
        while True:
            await self._journal_wake.wait()
            await asyncio.sleep(min(10.0, self.settings.journal_interval * 2**failures))
            self._journal_wake.clear()
            try:
                await self.sync()
            except StoreError:
                if not failures:
                    _LOGGER.exception("Ingest journal write failed; trying again")
                failures += 1
                self._journal_wake.set()
            else:
                if failures:
                    _LOGGER.warning("Ingest journal writes again after %d failures", failures)
                    self._last_error = None
                failures = 0
            if self._stopping:
                return

    async def sync(self) -> None:
        """Write the batches waiting for the journal and announce them durable (a no-op
        without a journal); ``start`` does this every ``journal_interval`` while any wait."""
        if self._journal is None:
            return
        try:
            self._made_durable(await self._journal.commit())
        except StoreError as err:
            self._failures += 1
            self._last_error = str(err)
            raise

    def _made_durable(self, seqs: Iterable[tuple[str, int]]) -> None:
        """Raise each agent's durable seq to what ``seqs`` say, and tell the subscribers."""
        highest: dict[str, int] = {}
        for agent, seq in seqs:
            highest[agent] = max(seq, highest.get(agent, 0))
        for agent, seq in highest.items():
            if seq > self._durable.get(agent, 0):
                self._durable[agent] = seq
                self._announce(agent, seq)

    # The TelemetrySink contract.

    def durable_seq(self, agent_id: str) -> int:
        """The highest seq of ``agent_id`` whose samples are all durably stored (0 if none)."""
        return self._durable.get(agent_id, 0)

    async def resume(self, agent_id: str) -> int:
        """The durable seq of a (re)connecting agent, with what another hub on the same
        database made durable of it since this store opened: those batches are not taken
        again. (What that hub had accepted but not made durable is taken whole.)"""
        stored = await self._backend.durable_seq(agent_id)
        if stored > self._durable.get(agent_id, 0) and not self._waiting.get(agent_id):
            self._durable[agent_id] = stored
            self._accepted[agent_id] = max(self._accepted.get(agent_id, 0), stored)
        return self._durable.get(agent_id, 0)

    async def accept(self, batch: TelemetryBatch) -> None:
        """Fold a batch into the open minutes (and queue it for the journal); a seq already
        accepted is dropped."""
        if self._fold(batch) and self._journal is not None:
            self._journal.append(batch)
            self._journal_wake.set()

    def _fold(self, batch: TelemetryBatch, *, replay: bool = False) -> bool:
        """Fold a batch into the open minutes; ``False`` for a seq already accepted (from the
        agent, a duplicate; from the journal, one the database holds)."""
        agent = batch.agent_id
        if batch.seq <= self._accepted.get(agent, 0):
            self._duplicates += not replay
            return False
        now = self._clock()
        horizon = self._horizon(now)
        written, before = self._resent
        resent = False
        if before is not None and batch.seq <= written.get(agent, 0):
            # Accepted by an earlier run and not durable then, but whatever of it fell in
            # minutes its last flush closed was written: only the rest is new.
            horizon, resent = max(horizon, before), True
        until_ms = math.floor((now + self.settings.max_future) * 1000)
        folded = self._aggregator.add(batch, horizon=horizon, until_ms=until_ms)
        self._future += folded.future
        if resent:
            self._already_stored += folded.dropped - folded.future
            self._dropped += folded.future
        else:
            self._dropped += folded.dropped
        self._accepted[agent] = batch.seq
        waiting = self._waiting.setdefault(agent, [])
        if waiting and waiting[-1].last_minute == folded.last_minute:
            waiting[-1].seq = batch.seq
            waiting[-1].batches += 1
        else:
            waiting.append(_Waiting(batch.seq, folded.last_minute, now))
        if self._aggregator.rows > self.settings.max_open_rows:
            self._wake.set()
        return True

    def subscribe(self, callback: DurableCallback) -> Callable[[], None]:
        """Call ``callback(agent_id, seq)`` whenever more of an agent's telemetry is durable."""
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)

    # Flushing and retention.

    async def flush(self, *, full: bool = False) -> int:
        """Write the closed minutes (all open ones if ``full``); return the rows written.

        The write runs to its end even if the caller is cancelled, so what was taken from
        memory is either committed and announced or put back.
        """
        task = asyncio.get_running_loop().create_task(self._flush(full))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)
        return await asyncio.shield(task)

    async def _flush(self, full: bool) -> int:
        async with self._lock:
            now = self._clock()
            closed = math.floor((now - self.settings.flush_grace) / 60)
            # With a journal, the acknowledgement waits for no flush: minutes are written once.
            overdue = self._journal is None and self._overdue(now)
            boundary = None if full or overdue else closed
            taken = self._aggregator.take(boundary)
            # A minute that expired while open is past the retention: writing it would
            # resurrect a row the next retention pass deletes again.
            for minute in [m for m in taken.minutes if m < self._horizon(now)]:
                self._dropped += sum(a.count for a in taken.minutes.pop(minute).values())
            durable = self._newly_durable(boundary)
            rollups = self._rollups.plan(taken.minutes, closed)
            # With nothing new, a flush still writes buckets that time closed, and the closed
            # mark once a window closes (what closed must stay closed after a restart).
            if not (
                taken.minutes
                or taken.texts
                or durable
                or any(rollups.buckets.values())
                or self._window(closed) > self._window(self._flushed_through)
            ):
                return 0
            seqs = {agent: seq for agent, (seq, _) in durable.items()}
            written = {a: s for a, s in self._accepted.items() if s > self._written.get(a, 0)}
            marks = {
                self._own(name): value
                for name, value in {
                    **rollups.marks,
                    FLUSHED_THROUGH: max(closed, self._flushed_through or closed),
                }.items()
            }
            late = self._late(taken.minutes)
            flush = Flush(
                taken.minutes,
                taken.texts,
                seqs,
                written,
                rollups.buckets,
                marks,
                newest_by_series(rollups.added),  # a few hours, not every minute
                late,
            )
            try:
                await self._backend.write(flush)
            except StoreError as err:
                self._aggregator.put_back(taken)
                self._failures += 1
                self._last_error = str(err)
                raise
            self._rollups.commit(rollups)
            self._written.update(written)
            self._advance(closed)
            self._flush_count += 1
            self._rows_written += taken.rows
            self._last_flush, self._last_error = now, None
            for agent, (_, runs) in durable.items():
                del self._waiting[agent][:runs]
            self._committed.update(seqs)
            self._made_durable(seqs.items())
            if self._journal is not None:
                try:
                    await self._journal.rotate(self._committed)
                except OSError:
                    _LOGGER.exception("Could not delete written ingest journal segments")
            return taken.rows

    def _horizon(self, now: float) -> int:
        """The oldest minute the minute retention keeps."""
        return retention_horizon(math.floor(now / 60), self.settings.retention.minute_days)

    def _overdue(self, now: float) -> bool:
        oldest = now - self.settings.max_ack_delay
        return any(waiting and waiting[0].accepted < oldest for waiting in self._waiting.values())

    def _newly_durable(self, boundary: int | None) -> dict[str, tuple[int, int]]:
        """Per agent, the seq a flush up to ``boundary`` makes durable and the runs of
        batches it covers: the leading runs whose minutes all lie before the boundary."""
        found = {}
        for agent, waiting in self._waiting.items():
            count = 0
            for entry in waiting:
                if boundary is not None and (entry.last_minute or 0) >= boundary:
                    break
                count += 1
            if count:
                found[agent] = (waiting[count - 1].seq, count)
        return found

    @staticmethod
    def _window(minute: int | None) -> int:
        return -1 if minute is None else minute // WINDOW

    def _late(self, minutes: Minutes) -> frozenset[int]:
        """Windows already closed (so possibly exported) that ``minutes`` add to."""
        closed = self._flushed_through
        if closed is None:
            return frozenset()
        return frozenset(m - m % WINDOW for m in minutes if m - m % WINDOW + WINDOW <= closed)

    def _advance(self, closed: int) -> None:
        if self._flushed_through is None or closed > self._flushed_through:
            self._flushed_through = closed

    def _announce(self, agent: str, seq: int) -> None:
        for callback in list(self._callbacks):
            try:
                callback(agent, seq)
            except Exception:
                _LOGGER.exception("A durable-seq subscriber failed")

    async def maintain(self) -> None:
        """Drop what the retention no longer keeps."""
        retention = self.settings.retention
        now = math.floor(self._clock() / 60)
        horizons = {
            Resolution.MINUTE: self._horizon(self._clock()),
            Resolution.FIVE_MINUTES: retention_horizon(now, retention.five_minute_days),
        }
        if retention.hour_days is not None:
            horizons[Resolution.HOUR] = retention_horizon(now, retention.hour_days)
        await self._backend.delete_before(horizons)

    # Queries.

    async def series(self, selection: SeriesFilter | None = None) -> list[SeriesKey]:
        """Series matching ``selection`` (all by default), stored or with a minute still
        open, sorted."""
        selection = selection or SeriesFilter()
        stored = await self._backend.series(selection)
        return sorted({*stored, *self._aggregator.series(selection)})

    async def query(
        self,
        selection: SeriesFilter,
        start_ms: int,
        end_ms: int,
        resolution: Resolution = Resolution.MINUTE,
        *,
        written_only: bool = False,
    ) -> list[SeriesRange]:
        """Buckets overlapping ``[start_ms, end_ms)`` of each matching series, sorted by
        series, each oldest first; buckets still open (the current minute, hour...) as they
        stand, unless ``written_only`` (what exports send: what a flush wrote)."""
        if end_ms <= start_ms:
            raise QueryError(f"empty time range {start_ms}..{end_ms}")
        size = resolution.minutes
        start = start_ms // MINUTE_MS // size * size
        end = -(-end_ms // (MINUTE_MS * size)) * size
        found = await self._backend.query(selection, start, end, resolution)
        if written_only:
            return found
        if resolution is Resolution.MINUTE:
            opened = self._aggregator.points(selection, start, end)
        else:
            opened = self._rollups.points(resolution, selection, start, end)
        if not opened:
            return found
        merged = merge_points(((item.key, list(item.points)) for item in found), opened)
        return [SeriesRange(key, resolution, merged[key]) for key in sorted(merged)]

    async def latest(self, selection: SeriesFilter | None = None) -> list[Latest]:
        """The newest value of each matching series, open minutes included, sorted."""
        selection = selection or SeriesFilter()
        newest = {latest.key: latest for latest in await self._backend.latest(selection)}
        for key, timestamp_ms, value in self._aggregator.newest():
            held = newest.get(key)
            if selection.matches(key) and (held is None or timestamp_ms > held.timestamp_ms):
                newest[key] = Latest(key, timestamp_ms, value)
        return [newest[key] for key in sorted(newest)]

    def status(self) -> StoreStatus:
        """Counters and state for ``/health``."""
        return StoreStatus(
            backend=self._backend.name,
            open_rows=self._aggregator.rows,
            waiting_batches=sum(run.batches for runs in self._waiting.values() for run in runs),
            flushed_through_ms=self.flushed_through_ms,
            last_flush=self._last_flush,
            last_error=self._last_error,
            flushes=self._flush_count,
            flush_failures=self._failures,
            rows_written=self._rows_written,
            duplicate_batches=self._duplicates,
            dropped_samples=self._dropped,
            future_samples=self._future,
            resent_samples=self._already_stored,
            journal_pending=None if self._journal is None else self._journal.pending,
            journal_segments=None if self._journal is None else self._journal.segments,
        )
