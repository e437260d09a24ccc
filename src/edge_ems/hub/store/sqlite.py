"""The SQLite backend: one file in WAL mode, written by one thread, read by another.

Layout. Minutes and both rollups live in ``WITHOUT ROWID`` tables keyed ``(start,
series_id)``: time first. A flush of closed minutes then appends at the right edge of the
B-tree and dirties a handful of pages, where a ``(series_id, start)`` key dirties one page
per series. ``bench/store_ingest.py`` measures it with 500 series and one flush a minute
(WAL frames and checkpoints): about 85 KiB a minute for bare minute rows time-first against
4.7 MiB series-first, 125 KiB for the whole store (minutes, latest values, rollups as their
buckets close): some 180 MB a day on an SD card instead of 6.8 GB. Series-first would read
one series' range in one seek; time-first, a query for a few series seeks ``(minute,
series)`` bucket by bucket through a recursive CTE instead of scanning (24 h of one series
at minute resolution in about 5 ms), and scans only when it wants a good share of all
series. Time first also makes uplink windows, Parquet hours and retention (a prefix delete)
contiguous reads and writes.

Durability. ``synchronous=FULL``: in WAL mode each commit fsyncs the WAL once, so a
committed flush survives power loss, not only a crash. ``NORMAL`` would pass the kill -9
test too (the OS keeps what the process wrote), but the store acknowledges durable seqs
to agents, which then delete their copy; after a power cut ``NORMAL`` may roll back a commit
that was acknowledged. With one flush a minute the fsync costs nothing worth saving.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache
from itertools import chain
from pathlib import Path
from typing import Literal

from ...dispatch.audit import AuditRecord
from ...gateway.model import Registration
from ..claims import Claim
from ..sessions import SessionRecord
from .aggregate import Minutes
from .backend import (
    END_SESSIONS,
    LATE_SEQ,
    Flush,
    Row,
    SeriesCatalog,
    Stored,
    agent_rows,
    audit_conditions,
    audit_from_json,
    audit_json,
    audit_page,
    bucket_params,
    flush_tables,
    latest_rows,
    latest_value,
    minutes_from_rows,
    ranges,
    registration_json,
    stored_registration,
)
from .errors import SchemaError, StoreError
from .model import (
    AuditPage,
    AuditQuery,
    Latest,
    OutboxBatch,
    OutboxStats,
    Resolution,
    SeriesFilter,
    SeriesKey,
    SeriesRange,
    StoredRegistration,
)

type Synchronous = Literal["FULL", "NORMAL", "EXTRA"]

SCHEMA_VERSION = 2
OUTBOX_DROPPED = "outbox_dropped"
SEEK_SHARE = 20
"""Seek minute by minute when fewer than one series in this many is wanted (see above)."""
CHUNK_ROWS = 250
"""Rows per upsert statement (buckets, latest values). ``executemany`` binds, steps and
resets once per statement, so with a row per statement that overhead costs about as much
again as the B-tree insert; 250 rows to a statement upsert some 1.7 times as fast."""

_STORED_COLUMNS = "start, series_id, total, samples, low, high, last, last_at"
_TABLES = {
    Resolution.MINUTE: "minute",
    Resolution.FIVE_MINUTES: "rollup_5m",
    Resolution.HOUR: "rollup_1h",
}
_BUCKETS = """(
  start INTEGER NOT NULL,
  series_id INTEGER NOT NULL,
  total REAL NOT NULL,
  samples INTEGER NOT NULL,
  low REAL NOT NULL,
  high REAL NOT NULL,
  last REAL NOT NULL,
  last_at INTEGER NOT NULL,
  PRIMARY KEY (start, series_id)
) WITHOUT ROWID"""
_VERSION_2 = """
CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE claims (
  kind TEXT NOT NULL,
  id TEXT NOT NULL,
  credential TEXT NOT NULL,
  claimed REAL NOT NULL,
  PRIMARY KEY (kind, id)
) WITHOUT ROWID;
ALTER TABLE sessions ADD COLUMN hub TEXT NOT NULL DEFAULT '';
CREATE TABLE hubs (name TEXT PRIMARY KEY, seen REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE registrations (
  agent_id TEXT PRIMARY KEY,
  hub TEXT NOT NULL,
  registration TEXT NOT NULL,
  connected INTEGER NOT NULL,
  updated REAL NOT NULL
) WITHOUT ROWID;
"""
"""What version 2 added (a version 1 file gets it when opened)."""
_SCHEMA = f"""
CREATE TABLE series (
  id INTEGER PRIMARY KEY,
  site_id TEXT NOT NULL,
  asset_id TEXT NOT NULL,
  metric TEXT NOT NULL,
  UNIQUE (site_id, asset_id, metric)
);
CREATE TABLE minute {_BUCKETS};
CREATE TABLE rollup_5m {_BUCKETS};
CREATE TABLE rollup_1h {_BUCKETS};
CREATE TABLE latest (
  series_id INTEGER PRIMARY KEY,
  at INTEGER NOT NULL,
  value REAL,
  text TEXT
);
CREATE TABLE agents (
  agent_id TEXT PRIMARY KEY,
  durable_seq INTEGER NOT NULL,
  written_seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE marks (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE late (
  seq INTEGER NOT NULL,
  start INTEGER NOT NULL,
  PRIMARY KEY (seq, start)
) WITHOUT ROWID;
CREATE TABLE audit (
  id TEXT PRIMARY KEY,
  at REAL NOT NULL,
  site_id TEXT NOT NULL,
  device_id TEXT,
  command TEXT NOT NULL,
  outcome TEXT NOT NULL,
  record TEXT NOT NULL
);
CREATE INDEX audit_at ON audit (at, id);
CREATE TABLE sessions (
  session_id TEXT PRIMARY KEY,
  agent_id TEXT NOT NULL,
  peer TEXT NOT NULL,
  started REAL NOT NULL,
  ended REAL,
  end_reason TEXT
);
CREATE INDEX sessions_agent ON sessions (agent_id, started);
CREATE TABLE outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  key TEXT NOT NULL UNIQUE,
  window_start INTEGER NOT NULL,
  created REAL NOT NULL,
  size INTEGER NOT NULL,
  body BLOB NOT NULL
);
{_VERSION_2}
"""

_UPSERT_BUCKETS = """
INSERT INTO {table} (start, series_id, total, samples, low, high, last, last_at)
VALUES {values}
ON CONFLICT (start, series_id) DO UPDATE SET
  total = total + excluded.total,
  samples = samples + excluded.samples,
  low = min(low, excluded.low),
  high = max(high, excluded.high),
  last = iif(excluded.last_at >= last_at, excluded.last, last),
  last_at = max(last_at, excluded.last_at)
"""
_UPSERT_LATEST = """
INSERT INTO latest (series_id, at, value, text) VALUES {values}
ON CONFLICT (series_id) DO UPDATE SET at = excluded.at, value = excluded.value,
  text = excluded.text
WHERE excluded.at >= latest.at
"""
_UPSERT_AGENT = """
INSERT INTO agents (agent_id, durable_seq, written_seq) VALUES (?, ?, ?)
ON CONFLICT (agent_id) DO UPDATE SET durable_seq = max(durable_seq, excluded.durable_seq),
  written_seq = max(written_seq, excluded.written_seq)
"""
_SET_MARK = """
INSERT INTO marks (name, value) VALUES (?, ?)
ON CONFLICT (name) DO UPDATE SET value = excluded.value
"""
_ADD_SERIES = """
INSERT INTO series (site_id, asset_id, metric) VALUES (?, ?, ?)
ON CONFLICT (site_id, asset_id, metric) DO UPDATE SET site_id = excluded.site_id
RETURNING id
"""
_SAVE_SESSION = """
INSERT INTO sessions (session_id, agent_id, peer, started, ended, end_reason, hub)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (session_id) DO UPDATE SET peer = excluded.peer, ended = excluded.ended,
  end_reason = excluded.end_reason, hub = excluded.hub
"""
_SAVE_REGISTRATION = """
INSERT INTO registrations VALUES (?, ?, ?, ?, ?)
ON CONFLICT (agent_id) DO UPDATE SET hub = excluded.hub, registration = excluded.registration,
  connected = excluded.connected, updated = excluded.updated
"""


class SqliteBackend:
    """The store's tables in one SQLite file."""

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: Synchronous = "FULL",
        checkpoint_pages: int = 1000,
        wal_limit_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self._path = Path(path)
        self._synchronous = synchronous
        self._checkpoint_pages = checkpoint_pages
        self._wal_limit = wal_limit_bytes
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="edge-ems-store-write")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="edge-ems-store-read")
        self._write_db: sqlite3.Connection | None = None
        """Used only on the writer thread."""
        self._read_db: sqlite3.Connection | None = None
        """Used only on the reader thread."""
        self._catalog = SeriesCatalog()
        self._closed = False

    @property
    def name(self) -> str:
        return "sqlite"

    @property
    def where(self) -> str:
        """The database file."""
        return f"SQLite in WAL mode at {self._path}"

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    # Threads.

    async def _call[T](self, executor: ThreadPoolExecutor, work: Callable[[], T]) -> T:
        if self._closed:
            raise StoreError(f"{self._path}: the store is closed")
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, work)
        except (sqlite3.Error, OSError) as err:
            raise StoreError(f"{self._path}: {err}") from err

    async def _write[T](self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await self._call(self._writer, lambda: work(_opened(self._write_db)))

    async def _read[T](self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await self._call(self._reader, lambda: work(_opened(self._read_db)))

    # Lifecycle.

    async def open(self) -> Stored:
        await self._call(self._writer, self._open_writer)
        await self._call(self._reader, self._open_reader)
        catalog, stored = await self._read(_load)
        self._catalog = catalog
        return stored

    def _open_writer(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        db = self._connect()
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise SchemaError(
                    f"{self._path}: schema version {version} is newer than this version's "
                    f"{SCHEMA_VERSION}"
                )
            if version < SCHEMA_VERSION:
                script = _SCHEMA if version == 0 else _VERSION_2
                with _transaction(db):
                    for statement in script.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
        except BaseException:
            db.close()
            raise
        self._write_db = db

    def _open_reader(self) -> None:
        db = self._connect()
        db.execute("PRAGMA query_only = 1")
        self._read_db = db

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._path, autocommit=True, timeout=30.0)
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            db.close()
            raise StoreError(f"{self._path}: cannot use WAL mode (got {mode})")
        db.execute(f"PRAGMA synchronous = {self._synchronous}")
        db.execute(f"PRAGMA wal_autocheckpoint = {self._checkpoint_pages:d}")
        db.execute(f"PRAGMA journal_size_limit = {self._wal_limit:d}")
        return db

    async def close(self) -> None:
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        for executor, attribute in ((self._reader, "_read_db"), (self._writer, "_write_db")):
            db = getattr(self, attribute)
            if db is not None:
                setattr(self, attribute, None)
                await loop.run_in_executor(executor, db.close)
            executor.shutdown(wait=False)
        self._closed = True

    # Telemetry.

    async def write(self, flush: Flush) -> None:
        known = self._catalog.ids
        added = await self._write(lambda db: _write_flush(db, flush, known))
        self._catalog = self._catalog.with_ids(added)

    async def series(self, selection: SeriesFilter) -> list[SeriesKey]:
        return sorted(key for key in self._catalog.ids if selection.matches(key))

    async def query(
        self, selection: SeriesFilter, start: int, end: int, resolution: Resolution
    ) -> list[SeriesRange]:
        catalog = self._catalog
        ids = catalog.select(selection)
        if ids == [] or end <= start:
            return []
        seek = ids is not None and len(ids) * SEEK_SHARE < len(catalog.ids)
        series = "" if ids is None else f" AND series_id IN ({','.join(map(str, ids))})"
        table, size = _TABLES[resolution], resolution.minutes

        def run(db: sqlite3.Connection) -> list[SeriesRange]:
            return ranges(_stored(db, table, size, start, end, series, seek), catalog, resolution)

        return await self._read(run)

    async def latest(self, selection: SeriesFilter) -> list[Latest]:
        catalog = self._catalog
        ids = catalog.select(selection)
        if ids == []:
            return []
        where = "" if ids is None else f" WHERE series_id IN ({','.join(map(str, ids))})"

        def run(db: sqlite3.Connection) -> list[Latest]:
            rows = db.execute(f"SELECT series_id, at, value, text FROM latest{where}")  # noqa: S608 - ids are ints
            return [
                Latest(catalog.keys[sid], at, latest_value(value, text))
                for sid, at, value, text in rows
            ]

        return await self._read(run)

    async def late_windows(self, after: int) -> tuple[list[int], int]:
        def run(db: sqlite3.Connection) -> tuple[list[int], int]:
            rows = db.execute("SELECT DISTINCT start FROM late WHERE seq > ?", (after,))
            starts = sorted(start for (start,) in rows)
            return starts, max(after, _mark(db, LATE_SEQ) or 0)

        return await self._read(run)

    async def stored_minutes(self, start: int) -> Minutes:
        catalog = self._catalog

        def run(db: sqlite3.Connection) -> Minutes:
            sql = f"SELECT {_STORED_COLUMNS} FROM minute WHERE start >= ?"  # noqa: S608 - ours
            return minutes_from_rows(db.execute(sql, (start,)), catalog)

        return await self._read(run)

    async def first_minute(self) -> int | None:
        def run(db: sqlite3.Connection) -> int | None:
            first: int | None = db.execute("SELECT min(start) FROM minute").fetchone()[0]
            return first

        return await self._read(run)

    async def delete_before(self, horizons: Mapping[Resolution, int]) -> None:
        def run(db: sqlite3.Connection) -> None:
            with _transaction(db):
                for resolution, horizon in horizons.items():
                    db.execute(f"DELETE FROM {_TABLES[resolution]} WHERE start < ?", (horizon,))  # noqa: S608 - table names are ours
                if Resolution.MINUTE in horizons:
                    db.execute("DELETE FROM late WHERE start < ?", (horizons[Resolution.MINUTE],))

        await self._write(run)

    # Audit and sessions.

    async def add_audit(self, records: Sequence[AuditRecord]) -> None:
        rows = [
            (r.id, r.timestamp, r.site_id, r.device_id, r.command, r.outcome.value, audit_json(r))
            for r in records
        ]

        def run(db: sqlite3.Connection) -> None:
            with _transaction(db):
                db.executemany("INSERT OR IGNORE INTO audit VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

        await self._write(run)

    async def audit(self, query: AuditQuery) -> AuditPage:
        conditions, params = audit_conditions(query, "?", "json_extract(record, '$.reason')")
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        sql = f"SELECT record FROM audit{where} ORDER BY at DESC, id DESC LIMIT ?"  # noqa: S608 - conditions are ours, values bound

        def run(db: sqlite3.Connection) -> AuditPage:
            found = db.execute(sql, (*params, query.limit + 1)).fetchall()
            return audit_page([audit_from_json(text) for (text,) in found], query.limit)

        return await self._read(run)

    async def save_session(self, record: SessionRecord, hub: str = "") -> None:
        row = (
            record.session_id,
            record.agent_id,
            record.peer,
            record.started,
            record.ended,
            record.end_reason,
            hub,
        )
        await self._write(lambda db: db.execute(_SAVE_SESSION, row).close())

    async def sessions(self, agent_id: str | None, limit: int) -> list[SessionRecord]:
        where, params = ("", ()) if agent_id is None else (" WHERE agent_id = ?", (agent_id,))
        sql = (
            "SELECT session_id, agent_id, peer, started, ended, end_reason FROM sessions"  # noqa: S608 - the condition is ours
            f"{where} ORDER BY started DESC, session_id DESC LIMIT ?"
        )

        def run(db: sqlite3.Connection) -> list[SessionRecord]:
            return [SessionRecord(*row) for row in db.execute(sql, (*params, limit))]

        return await self._read(run)

    async def end_sessions(
        self, ended: float, reason: str, *, hub: str = "", stale_before: float | None = None
    ) -> int:
        stale = math.inf if stale_before is None else stale_before
        sql = END_SESSIONS.format(mark="?")

        def run(db: sqlite3.Connection) -> int:
            return db.execute(sql, (ended, reason, hub, stale)).rowcount

        return await self._write(run)

    async def durable_seq(self, agent_id: str) -> int:
        sql = "SELECT durable_seq FROM agents WHERE agent_id = ?"

        def run(db: sqlite3.Connection) -> int:
            row = db.execute(sql, (agent_id,)).fetchone()
            return 0 if row is None else int(row[0])

        return await self._read(run)

    async def beat(self, hub: str, seen: float) -> None:
        sql = (
            "INSERT INTO hubs VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET seen = max(seen, excluded.seen)"
        )
        await self._write(lambda db: db.execute(sql, (hub, seen)).close())

    async def save_registrations(self, hub: str, rows: Sequence[tuple[Registration, bool]]) -> None:
        now = time.time()
        params = [
            (registration.agent_id, hub, registration_json(registration), int(connected), now)
            for registration, connected in rows
        ]

        def run(db: sqlite3.Connection) -> None:
            with _transaction(db):
                db.executemany(_SAVE_REGISTRATION, params)

        await self._write(run)

    async def registrations(self, alive_after: float) -> list[StoredRegistration]:
        sql = (
            "SELECT r.agent_id, r.hub, r.registration, r.connected, r.updated, h.seen "
            "FROM registrations AS r LEFT JOIN hubs AS h ON h.name = r.hub ORDER BY r.agent_id"
        )

        def run(db: sqlite3.Connection) -> list[StoredRegistration]:
            found = (
                stored_registration(agent, hub, text, connected, updated, seen, alive_after)
                for agent, hub, text, connected, updated, seen in db.execute(sql)
            )
            return [row for row in found if row is not None]

        return await self._read(run)

    # Outbox and marks.

    async def outbox_put(
        self, batch: OutboxBatch, *, budget_bytes: int, marks: Mapping[str, int]
    ) -> int:
        return await self._write(lambda db: _outbox_put(db, batch, budget_bytes, marks))

    async def outbox_head(self, limit: int) -> list[OutboxBatch]:
        def run(db: sqlite3.Connection) -> list[OutboxBatch]:
            rows = db.execute(
                "SELECT key, window_start, created, body FROM outbox ORDER BY id LIMIT ?",
                (limit,),
            )
            return [OutboxBatch(key, start, created, body) for key, start, created, body in rows]

        return await self._read(run)

    async def outbox_remove(self, key: str) -> None:
        await self._write(lambda db: db.execute("DELETE FROM outbox WHERE key = ?", (key,)).close())

    async def outbox_stats(self) -> OutboxStats:
        def run(db: sqlite3.Connection) -> OutboxStats:
            sql = "SELECT count(*), coalesce(sum(size), 0) FROM outbox"
            count, size = db.execute(sql).fetchone()
            return OutboxStats(count, size, _mark(db, OUTBOX_DROPPED) or 0)

        return await self._read(run)

    async def get_mark(self, name: str) -> int | None:
        return await self._read(lambda db: _mark(db, name))

    async def claim(self, claims: Sequence[Claim], credential: str, at: float) -> dict[Claim, str]:
        def run(db: sqlite3.Connection) -> dict[Claim, str]:
            with _transaction(db):
                held = {
                    claim: row[0] if row else None
                    for claim in claims
                    for row in [
                        db.execute(
                            "SELECT credential FROM claims WHERE kind = ? AND id = ?", claim
                        ).fetchone()
                    ]
                }
                if all(holder in (None, credential) for holder in held.values()):
                    db.executemany(
                        "INSERT INTO claims VALUES (?, ?, ?, ?)",
                        [(*claim, credential, at) for claim, holder in held.items() if not holder],
                    )
            return {claim: holder or credential for claim, holder in held.items()}

        return await self._write(run)

    async def keep_first(self, name: str, value: str) -> str:
        def run(db: sqlite3.Connection) -> str:
            with _transaction(db):
                db.execute("INSERT OR IGNORE INTO settings VALUES (?, ?)", (name, value))
                stored: str = db.execute(
                    "SELECT value FROM settings WHERE name = ?", (name,)
                ).fetchone()[0]
            return stored

        return await self._write(run)

    async def set_mark(self, name: str, value: int) -> None:
        await self._write(lambda db: db.execute(_SET_MARK, (name, value)).close())


def _opened(db: sqlite3.Connection | None) -> sqlite3.Connection:
    if db is None:
        raise StoreError("the store is not open")
    return db


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if db.in_transaction:  # some errors (a full disk) have rolled back already
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _mark(db: sqlite3.Connection, name: str) -> int | None:
    row = db.execute("SELECT value FROM marks WHERE name = ?", (name,)).fetchone()
    return None if row is None else int(row[0])


def _load(db: sqlite3.Connection) -> tuple[SeriesCatalog, Stored]:
    ids = {
        SeriesKey(site, asset, metric): sid
        for sid, site, asset, metric in db.execute(
            "SELECT id, site_id, asset_id, metric FROM series"
        )
    }
    agents = db.execute("SELECT agent_id, durable_seq, written_seq FROM agents").fetchall()
    durable = {agent: seq for agent, seq, _ in agents}
    written = {agent: seq for agent, _, seq in agents}
    return SeriesCatalog().with_ids(ids), Stored(durable, written)


def _write_flush(
    db: sqlite3.Connection, flush: Flush, known: Mapping[SeriesKey, int]
) -> dict[SeriesKey, int]:
    with _transaction(db):
        # New series get ids in key order, so rows come out of a flush nearly sorted.
        added = {
            key: db.execute(_ADD_SERIES, key).fetchone()[0]
            for key in sorted(flush.keys() - known.keys())
        }
        ids = {**known, **added} if added else known
        for table, buckets in flush_tables(flush):
            sql = _UPSERT_BUCKETS.replace("{table}", table)
            _upsert_many(db, sql, 8, bucket_params(buckets, ids))
        _upsert_many(db, _UPSERT_LATEST, 4, list(chain.from_iterable(latest_rows(flush, ids))))
        db.executemany(_UPSERT_AGENT, agent_rows(flush))
        db.executemany(_SET_MARK, flush.marks.items())
        if flush.late:
            seq = (_mark(db, LATE_SEQ) or 0) + 1
            db.executemany("INSERT INTO late VALUES (?, ?)", [(seq, m) for m in flush.late])
            db.execute(_SET_MARK, (LATE_SEQ, seq))
    return added


def _upsert_many(
    db: sqlite3.Connection, statement: str, width: int, params: Sequence[object]
) -> None:
    """Run ``statement`` (with ``{values}`` for its rows) over the rows of ``width`` values
    that ``params`` holds one after another, in their order, many rows to a statement (see
    :data:`CHUNK_ROWS`)."""
    limit = db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width
    step = max(1, min(CHUNK_ROWS, limit)) * width
    whole = len(params) - len(params) % step
    if whole:
        chunks = (params[at : at + step] for at in range(0, whole, step))
        db.executemany(_with_rows(statement, width, step // width), chunks)
    rows = (params[at : at + width] for at in range(whole, len(params), width))
    db.executemany(_with_rows(statement, width, 1), rows)


@cache
def _with_rows(statement: str, width: int, rows: int) -> str:
    row = f"({', '.join('?' * width)})"
    return statement.format(values=", ".join([row] * rows))


def _stored(
    db: sqlite3.Connection, table: str, size: int, start: int, end: int, series: str, seek: bool
) -> list[Row]:
    """Stored buckets of ``table`` in ``[start, end)``, time-ordered."""
    if end <= start:
        return []
    columns = "x.series_id, x.start, x.total, x.samples, x.low, x.high, x.last"
    if seek:  # one primary-key lookup per bucket and series instead of a scan of all series
        sql = (
            f"WITH RECURSIVE t(s) AS (SELECT ? UNION ALL SELECT s + {size} FROM t "  # noqa: S608 - ours
            f"WHERE s + {size} < ?) SELECT {columns} FROM t CROSS JOIN {table} AS x "
            f"ON x.start = t.s{series}"
        )
    else:
        sql = f"SELECT {columns} FROM {table} AS x WHERE x.start >= ? AND x.start < ?{series}"  # noqa: S608 - ours
    return db.execute(sql, (start, end)).fetchall()


def _outbox_put(
    db: sqlite3.Connection, batch: OutboxBatch, budget: int, marks: Mapping[str, int]
) -> int:
    size = len(batch.body)
    dropped = 0
    with _transaction(db):
        queued = db.execute("SELECT 1 FROM outbox WHERE key = ?", (batch.key,)).fetchone()
        if queued is None:
            total = db.execute("SELECT coalesce(sum(size), 0) FROM outbox").fetchone()[0]
            if size > budget:
                dropped = 1
            else:
                while total + size > budget:
                    oldest, freed = db.execute(
                        "SELECT id, size FROM outbox ORDER BY id LIMIT 1"
                    ).fetchone()
                    db.execute("DELETE FROM outbox WHERE id = ?", (oldest,))
                    total -= freed
                    dropped += 1
                db.execute(
                    "INSERT INTO outbox (key, window_start, created, size, body) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (batch.key, batch.window_start_ms, batch.created, size, batch.body),
                )
        db.executemany(_SET_MARK, marks.items())
        if dropped:
            db.execute(
                "INSERT INTO marks (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                (OUTBOX_DROPPED, dropped),
            )
    return dropped
