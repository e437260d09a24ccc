"""The uplink: 5-minute windows of minute data, queued in the store's outbox, POSTed upstream.

Windows. Every closed 5-minute window (all its minutes flushed) becomes one batch: the
minute buckets of every series, as gzipped JSON. The batch and the ``uplink_next_window``
mark are written in one transaction, so a window is queued exactly once, crash or not.

Late samples. Samples that reach the store after their window closed (an agent offline
for longer, a resend after a crash) are recorded by the store as late for that window; the
uplink then queues the whole window again as a new revision (its own key, a higher
``revision`` in the body), which the receiver keeps in place of the older one.

Delivery. Batches go oldest first, each with an ``Idempotency-Key`` derived from the hub id
and the window: a batch resent after a lost answer carries the same key, so the receiver
keeps one copy. A 2xx (or 409, "already have it") removes the batch; any other 4xx is
final too (the receiver will never take it: logged and counted as rejected, so one bad
batch cannot block the rest); a 5xx, 408, 429 or a network failure leaves it queued and
backs off exponentially with full jitter. TLS certificates are always verified (a private
CA can be named with ``ca_file``).

Disk budget. The outbox holds at most ``budget_bytes``; past it the oldest batches are
dropped and counted (:attr:`UplinkStatus.dropped_batches`), so a months-long outage cannot
fill the disk.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from ..exceptions import ConfigError
from ..resilience import Backoff
from .redact import display_url, has_userinfo, without_userinfo
from .store import MinuteStore, OutboxBatch, SeriesFilter, StoreError

_LOGGER = logging.getLogger(__name__)

WINDOW_MS = 5 * 60_000
MARK = "uplink_next_window"
"""The store mark: the start (ms) of the first window not yet queued."""
LATE_MARK = "uplink_late_seq"
"""The store mark: the store's late seq up to which late windows are queued again."""
_RETRY_STATUSES = frozenset({408, 429})
SCHEMA = "edge-ems.uplink/1"


class UplinkError(Exception):
    """One delivery attempt failed and is to be retried."""


@dataclass(frozen=True, slots=True)
class UplinkSettings:
    """Where and how the uplink sends."""

    url: str
    """May carry ``user:password@`` (sent as basic auth) instead of a token; it is never
    shown with them."""
    token: str | None = None
    """Sent as ``Authorization: Bearer``."""
    hub_id: str = "edge-ems-hub"
    """Names this hub upstream; part of every idempotency key."""
    ca_file: str | None = None
    """A CA bundle to verify the endpoint with instead of the system's."""
    budget_bytes: int = 64 * 1024 * 1024
    interval: float = 30.0
    """Seconds between looks for newly closed windows while all is delivered."""
    request_timeout: float = 30.0
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    batches_per_pass: int = 50

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ConfigError(f"uplink url must be an http(s) URL, not {display_url(self.url)!r}")
        if self.token and has_userinfo(self.url):
            raise ConfigError("uplink url carries a user and password: give no token with it")
        numbers = (
            self.interval,
            self.request_timeout,
            self.backoff_base,
            self.backoff_cap,
            self.budget_bytes,
            self.batches_per_pass,
        )
        if not all(number > 0 for number in numbers):
            raise ConfigError("uplink timings, budget and batch count must be positive")


@dataclass(frozen=True, slots=True)
class UplinkStatus:
    """The uplink for ``/health`` and ``/metrics``."""

    url: str
    """The endpoint without userinfo, query or fragment."""
    next_window_ms: int | None
    """The first window not yet queued."""
    queued_batches: int
    queued_bytes: int
    dropped_batches: int
    """Batches the disk budget made the outbox drop, ever."""
    sent_batches: int
    rejected_batches: int
    """Batches the endpoint refused for good (a 4xx), since start."""
    failed_attempts: int
    last_success: float | None
    last_error: str | None


@dataclass(slots=True)
class _Counters:
    sent: int = 0
    rejected: int = 0
    failed: int = 0
    queued: int = 0
    queued_bytes: int = 0
    dropped: int = 0
    last_success: float | None = None
    last_error: str | None = None
    next_window: int | None = None
    backoff: Backoff = field(default_factory=Backoff)


def idempotency_key(hub_id: str, window_start_ms: int, revision: int = 0) -> str:
    """The key of a window's batch (of one revision): the same every time it is sent."""
    name = f"{hub_id}\0{window_start_ms}" + (f"\0{revision}" if revision else "")
    return hashlib.sha256(name.encode()).hexdigest()[:32]


class Uplink:
    """Queues closed windows and delivers them to ``settings.url`` through ``session``."""

    def __init__(
        self,
        store: MinuteStore,
        settings: UplinkSettings,
        session: aiohttp.ClientSession,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self.settings = settings
        self._session = session
        self._clock = clock
        self._ssl = (
            ssl.create_default_context(cafile=settings.ca_file) if settings.ca_file else True
        )
        self._counters = _Counters(
            backoff=Backoff(base=settings.backoff_base, cap=settings.backoff_cap)
        )

    # Windows into the outbox.

    async def enqueue_closed(self) -> int:
        """Queue every closed window after the mark; return how many batches were queued."""
        flushed = self._store.flushed_through_ms
        if flushed is None:
            return 0
        backend = self._store.backend
        start = await backend.get_mark(MARK)
        if start is None:
            first = await backend.first_minute()
            if first is None:
                return 0
            start = first * 60_000 // WINDOW_MS * WINDOW_MS
        queued = 0
        while start + WINDOW_MS <= flushed:
            body = await self._window_body(start)
            following = start + WINDOW_MS
            if body is None:
                await backend.set_mark(MARK, following)
            else:
                key = idempotency_key(self.settings.hub_id, start)
                batch = OutboxBatch(key, start, self._clock(), body)
                dropped = await backend.outbox_put(
                    batch, budget_bytes=self.settings.budget_bytes, marks={MARK: following}
                )
                if dropped:
                    _LOGGER.warning("Uplink outbox over budget: dropped %d old batches", dropped)
                queued += 1
            start = following
        self._counters.next_window = start
        queued += await self._requeue_late(start)
        await self._refresh()
        return queued

    async def _requeue_late(self, queued_before: int) -> int:
        """Queue again, as a new revision, each window before ``queued_before`` that the
        store recorded late samples for since the last look."""
        backend = self._store.backend
        after = await backend.get_mark(LATE_MARK) or 0
        windows, revision = await backend.late_windows(after)
        queued = 0
        for start in (minute * 60_000 for minute in windows):
            if start >= queued_before:
                continue  # not queued yet: the regular pass sends it whole
            body = await self._window_body(start, revision)
            if body is not None:
                key = idempotency_key(self.settings.hub_id, start, revision)
                batch = OutboxBatch(key, start, self._clock(), body)
                await backend.outbox_put(batch, budget_bytes=self.settings.budget_bytes, marks={})
                queued += 1
        if revision > after:
            await backend.set_mark(LATE_MARK, revision)
        return queued

    async def _window_body(self, start: int, revision: int = 0) -> bytes | None:
        found = await self._store.query(SeriesFilter(), start, start + WINDOW_MS, written_only=True)
        series = [
            {
                "site_id": item.key.site_id,
                "asset_id": item.key.asset_id,
                "metric": item.key.metric,
                "points": [list(point) for point in item.points],
            }
            for item in found
            if item.points
        ]
        if not series:
            return None
        document: dict[str, Any] = {
            "schema": SCHEMA,
            "hub_id": self.settings.hub_id,
            "window_start_ms": start,
            "window_end_ms": start + WINDOW_MS,
            "revision": revision,
            "columns": ["start_ms", "avg", "min", "max", "last", "samples"],
            "series": series,
        }
        # A fleet's window is megabytes of JSON: encode it off the event loop.
        return await asyncio.to_thread(_encode, document)

    # The outbox out.

    async def deliver(self) -> int:
        """Send queued batches oldest first until the outbox is empty or a send fails.

        Returns the batches delivered; raises :class:`UplinkError` on a failure to retry.
        """
        delivered = 0
        while batches := await self._store.backend.outbox_head(self.settings.batches_per_pass):
            for batch in batches:
                await self._send(batch)
                await self._store.backend.outbox_remove(batch.key)
                delivered += 1
            await self._refresh()
        return delivered

    async def _send(self, batch: OutboxBatch) -> None:
        headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "Idempotency-Key": batch.key,
        }
        if self.settings.token:
            headers["Authorization"] = f"Bearer {self.settings.token}"
        timeout = aiohttp.ClientTimeout(total=self.settings.request_timeout)
        try:
            async with self._session.post(
                self.settings.url, data=batch.body, headers=headers, ssl=self._ssl, timeout=timeout
            ) as response:
                status = response.status
                await response.read()
        except (aiohttp.ClientError, TimeoutError) as err:
            raise UplinkError(without_userinfo(f"{type(err).__name__}: {err}")) from err
        if 200 <= status < 300 or status == 409:
            self._counters.sent += 1
            self._counters.last_success = self._clock()
            return
        if 400 <= status < 500 and status not in _RETRY_STATUSES:
            self._counters.rejected += 1
            _LOGGER.error(
                "Uplink endpoint refused batch %s (window %d) with HTTP %d; dropping it",
                batch.key,
                batch.window_start_ms,
                status,
            )
            return
        raise UplinkError(f"HTTP {status}")

    async def _refresh(self) -> None:
        stats = await self._store.backend.outbox_stats()
        counters = self._counters
        counters.queued, counters.queued_bytes, counters.dropped = (
            stats.batches,
            stats.bytes,
            stats.dropped,
        )

    # The loop.

    async def run(self) -> None:
        """Queue and deliver until cancelled, backing off while the endpoint fails."""
        counters = self._counters
        while True:
            try:
                await self.enqueue_closed()
                await self.deliver()
            except (UplinkError, StoreError) as err:
                counters.failed += 1
                counters.last_error = without_userinfo(str(err))
                delay = counters.backoff.delay()
                _LOGGER.warning("Uplink: %s; retrying in %.1f s", err, delay)
                await asyncio.sleep(delay)
                continue
            counters.backoff.reset()
            counters.last_error = None
            await asyncio.sleep(self.settings.interval)

    def status(self) -> UplinkStatus:
        """State and counters (outbox figures as of the last queue or delivery)."""
        counters = self._counters
        return UplinkStatus(
            url=display_url(self.settings.url),
            next_window_ms=counters.next_window,
            queued_batches=counters.queued,
            queued_bytes=counters.queued_bytes,
            dropped_batches=counters.dropped,
            sent_batches=counters.sent,
            rejected_batches=counters.rejected,
            failed_attempts=counters.failed,
            last_success=counters.last_success,
            last_error=counters.last_error,
        )


def _encode(document: dict[str, Any]) -> bytes:
    raw = json.dumps(document, separators=(",", ":"), allow_nan=False).encode()
    return gzip.compress(raw, mtime=0)  # same window, same bytes
