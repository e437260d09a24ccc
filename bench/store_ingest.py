"""The minute store on SQLite: write rate, bytes written per minute, and query latency.

Run: ``scripts/in-env python bench/store_ingest.py``. Three parts, all on one SQLite file in
WAL mode (``synchronous=FULL``) in a temporary directory:

- **Rows/s.** 24 hours of 500 series, one sample per series and minute, accepted by the
  store and flushed an hour at a time (30,000 minute rows per transaction, with their
  5-minute and hourly rollups, latest values and durable marks). ``rows_per_s`` is minute
  rows over flush time; ``end_to_end_rows_per_s`` adds the time folding samples in. The
  baseline, ``raw_rows_per_s``, is ``sqlite3.executemany`` inserting the same number of
  rows into a bare table of the same layout in transactions of the same size, hour by hour
  in turn with the store (so both see the same load from the rest of the machine);
  ``ratio_vs_raw_sqlite`` is the first over the last (target: at least 0.5). The same
  figures at production's cadence (one flush a minute of 500 rows) come from the
  bytes-per-minute hour below: ``minute_flush_rows_per_s``, ``raw_minute_rows_per_s`` and
  their ratio. There the store's fixed cost per flush (a few ms of Python: rollup merges,
  latest values, the hop to the writer thread) outweighs 500 bare inserts, so that ratio is
  low while the cost itself is a few ms a minute.
- **Bytes per minute.** After that day, 60 more minutes as production runs them: 500 series
  sampled every 5 s, one flush per minute. Bytes the process wrote (``wchar`` of
  ``/proc/self/io``: WAL frames, checkpoints into the database, everything) over the hour,
  a final checkpoint included, per minute. For comparison the same hour goes with raw
  ``executemany`` into bare tables keyed time-first (the store's order) and series-first
  (``PRIMARY KEY (series, minute)``): key order decides how many pages each flush dirties,
  and so how fast an SD card wears.
- **Query latency.** The store's side of ``/measurements``: 24 h of all 500 series at
  minute, 5-minute and hourly resolution, and of one series, ``REPEATS`` times each; medians
  in ms. ``measurements_p50_ms`` is all 500 series at minute resolution, the heaviest.
- **REST latency.** The same 24 h of all 500 series through the hub's API app (token,
  middlewares, the points check, JSON encoding) on loopback, ``REPEATS`` times at each
  resolution: ``measurements_api_p50_ms_<resolution>`` from sending the request to having
  read the whole body, with ``measurements_api_bytes_<resolution>`` its size and
  ``measurements_api_loop_stall_ms_<resolution>`` the longest the event loop went without
  running another task meanwhile (the median over the runs; the store's reader thread and
  the encoder contend with it for the GIL). The client reads on the same loop, so the
  latency includes reading the body. At minute resolution the answer is 720,000 points,
  more than the hub's default cap (``max_measurement_points``, 200,000), so this app's cap
  is raised to fit it; ``measurements_api_refused_p50_ms`` is the same request refused by
  an app with the default cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sqlite3
import tempfile
import time
from pathlib import Path

import aiohttp

from _common import emit, median, progress
from edge_ems.gateway.model import SeriesSamples, TelemetryBatch
from edge_ems.hub.api import ApiServer, ApiSettings, AuditTrail, HubServices, create_app
from edge_ems.hub.config import MAX_MEASUREMENT_POINTS
from edge_ems.hub.gateway import GatewayServer
from edge_ems.hub.store import (
    MinuteStore,
    Resolution,
    SeriesFilter,
    StoreSettings,
    open_store,
)

SERIES = 500
HOURS = 24
REPEATS = 7
T0 = 1_796_515_200_000  # 2026-12-06 00:00 UTC
MINUTE = 60_000
TARGET_RATIO = 0.5
API_TOKEN = "bench-token-0123456789"


class Clock:
    def __init__(self) -> None:
        self.now = T0 / 1000

    def __call__(self) -> float:
        return self.now


def written_bytes() -> int:
    with open("/proc/self/io") as io:
        for line in io:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    raise RuntimeError("no wchar in /proc/self/io")


def minute_batch(seq: int, minute: int, per_minute: int, rng: random.Random) -> TelemetryBatch:
    """One batch with ``per_minute`` samples of every series in ``minute``."""
    start = T0 + minute * MINUTE
    stamps = [start + k * (MINUTE // per_minute) for k in range(per_minute)]
    series = [
        SeriesSamples(
            f"asset-{n // 10:03d}",
            f"metric_{n % 10}",
            stamps,
            [rng.uniform(-5000, 5000) for _ in stamps],
        )
        for n in range(SERIES)
    ]
    return TelemetryBatch("bench", "site", seq, series)


async def store_day(path: Path, clock: Clock, raw: Raw) -> dict[str, float]:
    rng = random.Random(1)
    # The clock moves after each hour is fed: allow samples an hour and more ahead of it.
    settings = StoreSettings(max_open_rows=10**7, max_future=7 * 86_400)
    flush_time = fold_time = 0.0
    rows = 0
    async with open_store(path, settings, clock=clock) as store:
        seq = 0
        for hour in range(HOURS):
            batches = []
            for minute in range(hour * 60, hour * 60 + 60):
                seq += 1
                batches.append(minute_batch(seq, minute, 1, rng))
            t0 = time.perf_counter()
            for one in batches:
                await store.accept(one)
            fold_time += time.perf_counter() - t0
            clock.now = (T0 + (hour + 1) * 60 * MINUTE) / 1000 + 11
            t0 = time.perf_counter()
            rows += await store.flush()
            flush_time += time.perf_counter() - t0
            raw.hour(hour)
        progress(f"  store: {rows:,} rows, flush {flush_time:.2f} s, fold {fold_time:.2f} s")

        # Production cadence: 12 samples per series and minute, one flush a minute.
        await asyncio.to_thread(_checkpoint, path)
        before = written_bytes()
        minute_flush_time = 0.0
        for minute in range(HOURS * 60, HOURS * 60 + 60):
            seq += 1
            await store.accept(minute_batch(seq, minute, 12, rng))
            clock.now = (T0 + (minute + 1) * MINUTE) / 1000 + 11
            t0 = time.perf_counter()
            await store.flush()
            minute_flush_time += time.perf_counter() - t0
        await store.backend.close()
        await asyncio.to_thread(_checkpoint, path)
        per_minute = (written_bytes() - before) / 60

    async with open_store(path, clock=clock) as store:
        end = T0 + HOURS * 60 * MINUTE
        latency: dict[str, float] = {}
        for resolution in Resolution:
            for label, selection in (
                ("", SeriesFilter()),
                ("_one_series", SeriesFilter(assets={"asset-025"}, metrics={"metric_3"})),
            ):
                times = []
                expected = (SERIES if not label else 1) * HOURS * 60 // resolution.minutes
                for _ in range(REPEATS):
                    t0 = time.perf_counter()
                    found = await store.query(selection, T0, end, resolution)
                    times.append(time.perf_counter() - t0)
                    assert sum(len(s.points) for s in found) == expected
                    del found  # as a server answering one request after another would
                latency[f"measurements_p50_ms_{resolution.value}{label}"] = round(
                    median(times) * 1000, 2
                )
        latency |= await api_latency(store)
    return {
        "rows": rows,
        "rows_per_s": rows / flush_time,
        "end_to_end_rows_per_s": rows / (flush_time + fold_time),
        "bytes_per_minute": per_minute,
        "minute_flush_rows_per_s": 60 * SERIES / minute_flush_time,
        **latency,
    }


async def api_latency(store: MinuteStore) -> dict[str, float]:
    """``/measurements`` for 24 h of every series through the API app on loopback."""
    services = HubServices(GatewayServer(store, {}), store, AuditTrail(store.backend), 0)
    servers = [
        ApiServer(
            create_app(
                services, ApiSettings(API_TOKEN, rate_limit=1e6, rate_burst=10**6, max_points=cap)
            )
        )
        for cap in (SERIES * HOURS * 60, MAX_MEASUREMENT_POINTS)
    ]
    urls = [f"http://127.0.0.1:{await server.start('127.0.0.1', 0)}" for server in servers]
    figures: dict[str, float] = {}
    window = {"from": str(T0), "to": str(T0 + HOURS * 60 * MINUTE)}
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    try:
        async with aiohttp.ClientSession(headers=headers) as http:
            for resolution in Resolution:
                times, stalls = [], []
                params = window | {"resolution": resolution.value}
                for _ in range(REPEATS):
                    async with Stall() as stall:
                        t0 = time.perf_counter()
                        async with http.get(urls[0] + "/measurements", params=params) as answer:
                            body = await answer.read()
                        times.append(time.perf_counter() - t0)
                    stalls.append(stall.worst)
                    assert answer.status == 200, body[:300]
                expected = SERIES * HOURS * 60 // resolution.minutes
                found = json.loads(body)["series"]
                assert sum(len(series["points"]) for series in found) == expected
                progress(f"  REST {resolution.value}: {len(body) / 1e6:.1f} MB")
                name = resolution.value
                figures[f"measurements_api_p50_ms_{name}"] = round(median(times) * 1000, 1)
                figures[f"measurements_api_bytes_{name}"] = len(body)
                figures[f"measurements_api_loop_stall_ms_{name}"] = round(median(stalls) * 1000, 1)
                del body, found
            times = []
            for _ in range(REPEATS):
                t0 = time.perf_counter()
                async with http.get(urls[1] + "/measurements", params=window) as answer:
                    refusal = await answer.json()
                times.append(time.perf_counter() - t0)
                assert refusal["error"]["code"] == "too_many_points", refusal
            figures["measurements_api_refused_p50_ms"] = round(median(times) * 1000, 2)
    finally:
        for server in servers:
            await server.stop()
    return figures


class Stall:
    """The longest the event loop went without running a ticking task, while in the block."""

    TICK = 0.001

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(self.TICK)
            self.worst = max(self.worst, time.perf_counter() - t0 - self.TICK)

    async def __aenter__(self) -> Stall:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def _checkpoint(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


_RAW_TABLE = """CREATE TABLE minute (
  start INTEGER NOT NULL, series_id INTEGER NOT NULL, total REAL NOT NULL,
  samples INTEGER NOT NULL, low REAL NOT NULL, high REAL NOT NULL, last REAL NOT NULL,
  last_at INTEGER NOT NULL, PRIMARY KEY ({key})) WITHOUT ROWID"""


class Raw:
    """The baseline: ``executemany`` into a bare table with the given primary key."""

    def __init__(self, path: Path, key: str) -> None:
        self._rng = random.Random(1)
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = FULL")
        self.db.execute(_RAW_TABLE.format(key=key))
        self.rows = 0
        self.elapsed = 0.0
        self.minute_elapsed = 0.0
        """Time spent in the production hour's 60 transactions."""

    def _rows(self, minute: int, samples: int) -> list[tuple[object, ...]]:
        start = T0 // MINUTE + minute
        found: list[tuple[object, ...]] = []
        for sid in range(1, SERIES + 1):
            value = self._rng.uniform(-5000, 5000)
            found.append((start, sid, value * samples, samples, value, value, value, 0))
        return found

    def _write(self, rows: list[tuple[object, ...]]) -> None:
        self.db.execute("BEGIN")
        self.db.executemany("INSERT INTO minute VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        self.db.execute("COMMIT")

    def hour(self, hour: int) -> None:
        """One hour of one sample per series and minute, in one transaction (timed)."""
        rows = [row for m in range(hour * 60, hour * 60 + 60) for row in self._rows(m, 1)]
        t0 = time.perf_counter()
        self._write(rows)
        self.elapsed += time.perf_counter() - t0
        self.rows += len(rows)

    def production_hour(self) -> float:
        """Bytes written per minute over an hour of one flush a minute."""
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        before = written_bytes()
        for minute in range(HOURS * 60, HOURS * 60 + 60):
            rows = self._rows(minute, 12)
            t0 = time.perf_counter()
            self._write(rows)
            self.minute_elapsed += time.perf_counter() - t0
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return (written_bytes() - before) / 60


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="edge-ems-bench-") as directory:
        root = Path(directory)
        progress(f"store and raw executemany in turn: {HOURS} h of {SERIES} series")
        raw = Raw(root / "raw.db", "start, series_id")
        store = await store_day(root / "store.db", Clock(), raw)
        raw_rate = raw.rows / raw.elapsed
        raw_bytes = raw.production_hour()
        progress("raw executemany, series-first layout")
        series_first = Raw(root / "series_first.db", "series_id, start")
        for hour in range(HOURS):
            series_first.hour(hour)
        series_first_bytes = series_first.production_hour()
    ratio = store["rows_per_s"] / raw_rate
    emit(
        {
            "bench": "store_ingest",
            "backend": "sqlite",
            "series": SERIES,
            "rows": int(store["rows"]),
            "rows_per_s": round(store["rows_per_s"]),
            "end_to_end_rows_per_s": round(store["end_to_end_rows_per_s"]),
            "raw_rows_per_s": round(raw_rate),
            "ratio_vs_raw_sqlite": round(ratio, 2),
            "minute_flush_rows_per_s": round(store["minute_flush_rows_per_s"]),
            "raw_minute_rows_per_s": round(60 * SERIES / raw.minute_elapsed),
            "ratio_vs_raw_sqlite_minute_flushes": round(
                store["minute_flush_rows_per_s"] * raw.minute_elapsed / (60 * SERIES), 2
            ),
            "target_ratio_vs_raw_sqlite": TARGET_RATIO,
            "bytes_written_per_minute": round(store["bytes_per_minute"]),
            "raw_time_first_bytes_per_minute": round(raw_bytes),
            "raw_series_first_bytes_per_minute": round(series_first_bytes),
            "measurements_p50_ms": store["measurements_p50_ms_1m"],
            **{k: v for k, v in store.items() if k.startswith("measurements_")},
            "repeats": REPEATS,
            "cpus": os.cpu_count(),
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
