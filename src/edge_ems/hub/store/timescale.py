"""The PostgreSQL + TimescaleDB backend, for a fleet headend (``DATABASE_URL``).

The same tables as SQLite (:mod:`.sqlite`), with minutes and rollups as hypertables on their
integer minute column (week-long chunks). Here the key is ``(series_id, start)``: a server's
disks do not wear like an SD card, and series-first keys make a series' range one contiguous
read. Old chunks are compressed (segmented by series) where the server's TimescaleDB build
has compression; the Apache-licensed build (Debian's package) has not, and the store then
runs uncompressed and says so in its log and :attr:`TimescaleBackend.compression`.

One connection writes (each flush one transaction), another reads, each used by one task at
a time; psycopg's async driver keeps all of it off the event loop. A connection the server
dropped is replaced at the next call, so a database restart costs failed flushes (their
minutes are kept and written later), not the hub.

Several hubs may share the database (agents split between them, each hub its own
``instance`` name): series are added with an upsert, and each hub learns the others' series
when it next reads (``series``, ``query``, ``latest``); each series is marked with the hub
that writes it, and a restarted hub rebuilds its open rollups from its own series only.
Schema changes take an advisory lock, so hubs starting together do not collide.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import AsyncConnection

from ...dispatch.audit import AuditRecord
from ...gateway.model import Registration
from ..claims import Claim
from ..redact import display_url, without_userinfo
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
    bucket_rows,
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

_LOGGER = logging.getLogger(__name__)

type Connection = AsyncConnection[tuple[Any, ...]]

SCHEMA_VERSION = 2
SCHEMA_MARK = "schema_version"
SCHEMA_LOCK = 0x6564676520656D73
"""The advisory lock (any agreed number: "edge ems" in ASCII) schema changes hold."""
OUTBOX_DROPPED = "outbox_dropped"
CHUNK_MINUTES = 7 * 24 * 60
COMPRESS_AFTER_MINUTES = 2 * 24 * 60

_TABLES = {
    Resolution.MINUTE: "minute",
    Resolution.FIVE_MINUTES: "rollup_5m",
    Resolution.HOUR: "rollup_1h",
}
_BUCKETS = """(
  series_id INTEGER NOT NULL,
  start BIGINT NOT NULL,
  total DOUBLE PRECISION NOT NULL,
  samples BIGINT NOT NULL,
  low DOUBLE PRECISION NOT NULL,
  high DOUBLE PRECISION NOT NULL,
  last DOUBLE PRECISION NOT NULL,
  last_at BIGINT NOT NULL,
  PRIMARY KEY (series_id, start)
)"""
_SCHEMA = [
    "CREATE EXTENSION IF NOT EXISTS timescaledb",
    """CREATE TABLE IF NOT EXISTS series (
      id INTEGER GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      site_id TEXT NOT NULL, asset_id TEXT NOT NULL, metric TEXT NOT NULL,
      UNIQUE (site_id, asset_id, metric))""",
    *(f"CREATE TABLE IF NOT EXISTS {table} {_BUCKETS}" for table in _TABLES.values()),
    """CREATE OR REPLACE FUNCTION edge_ems_minute_now() RETURNS BIGINT LANGUAGE SQL STABLE
      AS $$ SELECT floor(extract(epoch FROM now()) / 60)::BIGINT $$""",
    *(
        f"SELECT create_hypertable('{table}', by_range('start', {CHUNK_MINUTES}), "
        "if_not_exists => TRUE)"
        for table in _TABLES.values()
    ),
    *(
        f"SELECT set_integer_now_func('{table}', 'edge_ems_minute_now', replace_if_exists => TRUE)"
        for table in _TABLES.values()
    ),
    """CREATE TABLE IF NOT EXISTS latest (
      series_id INTEGER PRIMARY KEY, at BIGINT NOT NULL, value DOUBLE PRECISION, text TEXT)""",
    """CREATE TABLE IF NOT EXISTS agents (
      agent_id TEXT PRIMARY KEY, durable_seq BIGINT NOT NULL, written_seq BIGINT NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS marks (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS late (
      seq BIGINT NOT NULL, start BIGINT NOT NULL, PRIMARY KEY (seq, start))""",
    """CREATE TABLE IF NOT EXISTS audit (
      id TEXT PRIMARY KEY, at DOUBLE PRECISION NOT NULL, site_id TEXT NOT NULL,
      device_id TEXT, command TEXT NOT NULL, outcome TEXT NOT NULL, record TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS audit_at ON audit (at, id)",
    """CREATE TABLE IF NOT EXISTS sessions (
      session_id TEXT PRIMARY KEY, agent_id TEXT NOT NULL, peer TEXT NOT NULL,
      started DOUBLE PRECISION NOT NULL, ended DOUBLE PRECISION, end_reason TEXT)""",
    "CREATE INDEX IF NOT EXISTS sessions_agent ON sessions (agent_id, started)",
    """CREATE TABLE IF NOT EXISTS outbox (
      id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, key TEXT NOT NULL UNIQUE,
      window_start BIGINT NOT NULL, created DOUBLE PRECISION NOT NULL, size INTEGER NOT NULL,
      body BYTEA NOT NULL)""",
    # Version 2.
    "CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS claims (
      kind TEXT NOT NULL, id TEXT NOT NULL, credential TEXT NOT NULL,
      claimed DOUBLE PRECISION NOT NULL, PRIMARY KEY (kind, id))""",
    "ALTER TABLE sessions ADD COLUMN IF NOT EXISTS hub TEXT NOT NULL DEFAULT ''",
    # The hub that writes a series: after a restart it rebuilds its open rollups from those.
    "ALTER TABLE series ADD COLUMN IF NOT EXISTS hub TEXT NOT NULL DEFAULT ''",
    "CREATE TABLE IF NOT EXISTS hubs (name TEXT PRIMARY KEY, seen DOUBLE PRECISION NOT NULL)",
    """CREATE TABLE IF NOT EXISTS registrations (
      agent_id TEXT PRIMARY KEY, hub TEXT NOT NULL, registration TEXT NOT NULL,
      connected BOOLEAN NOT NULL, updated DOUBLE PRECISION NOT NULL)""",
]
_COMPRESSION = [
    statement
    for table in _TABLES.values()
    for statement in (
        f"ALTER TABLE {table} SET (timescaledb.compress, "
        "timescaledb.compress_segmentby = 'series_id', timescaledb.compress_orderby = 'start')",
        f"SELECT add_compression_policy('{table}', BIGINT '{COMPRESS_AFTER_MINUTES}', "
        "if_not_exists => TRUE)",
    )
]

_UPSERT_BUCKET = """
INSERT INTO {table} AS b (start, series_id, total, samples, low, high, last, last_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (series_id, start) DO UPDATE SET
  total = b.total + excluded.total,
  samples = b.samples + excluded.samples,
  low = least(b.low, excluded.low),
  high = greatest(b.high, excluded.high),
  last = CASE WHEN excluded.last_at >= b.last_at THEN excluded.last ELSE b.last END,
  last_at = greatest(b.last_at, excluded.last_at)
"""
_UPSERT_LATEST = """
INSERT INTO latest (series_id, at, value, text) VALUES (%s, %s, %s, %s)
ON CONFLICT (series_id) DO UPDATE SET at = excluded.at, value = excluded.value,
  text = excluded.text
WHERE excluded.at >= latest.at
"""
_UPSERT_AGENT = """
INSERT INTO agents (agent_id, durable_seq, written_seq) VALUES (%s, %s, %s)
ON CONFLICT (agent_id) DO UPDATE SET
  durable_seq = greatest(agents.durable_seq, excluded.durable_seq),
  written_seq = greatest(agents.written_seq, excluded.written_seq)
"""
_SET_MARK = """
INSERT INTO marks (name, value) VALUES (%s, %s)
ON CONFLICT (name) DO UPDATE SET value = excluded.value
"""
_ADD_MARK = """
INSERT INTO marks (name, value) VALUES (%s, %s)
ON CONFLICT (name) DO UPDATE SET value = marks.value + excluded.value
"""
_ADD_SERIES = """
INSERT INTO series (site_id, asset_id, metric) VALUES (%s, %s, %s)
ON CONFLICT (site_id, asset_id, metric) DO UPDATE SET site_id = excluded.site_id
RETURNING id
"""
_SAVE_SESSION = """
INSERT INTO sessions (session_id, agent_id, peer, started, ended, end_reason, hub)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (session_id) DO UPDATE SET peer = excluded.peer, ended = excluded.ended,
  end_reason = excluded.end_reason, hub = excluded.hub
"""
_SAVE_REGISTRATION = """
INSERT INTO registrations VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (agent_id) DO UPDATE SET hub = excluded.hub, registration = excluded.registration,
  connected = excluded.connected, updated = excluded.updated
"""
_COLUMNS = "series_id, start, total, samples, low, high, last"


class _ConnectionLostError(Exception):
    """A connection failed; its cause is psycopg's error."""


class _Conflict(Exception):  # noqa: N818 - an outcome, not an error: it rolls a claim back
    """A claim held by another credential: raised to roll the transaction back."""

    def __init__(self, held: dict[Claim, str]) -> None:
        super().__init__("claimed by another credential")
        self.held = held


class TimescaleBackend:
    """The store's tables in a PostgreSQL database with the TimescaleDB extension."""

    def __init__(self, url: str, *, instance: str = "") -> None:
        self._url = url
        self._instance = instance
        self._mine: frozenset[int] = frozenset()
        """Series this hub process has marked as written by it."""
        self._read_through = 0
        """Every series id up to this was read from the database."""
        self._connections: dict[str, Connection] = {}
        """One to write (each flush one transaction), one to read; each used by one task at
        a time."""
        self._locks = {"write": asyncio.Lock(), "read": asyncio.Lock()}
        self._opened = False
        self._catalog = SeriesCatalog()
        self.compression = False
        """Whether old chunks are compressed (the server's TimescaleDB build allows it)."""

    @property
    def name(self) -> str:
        return "timescaledb"

    @property
    def where(self) -> str:
        """The server and database, without credentials."""
        return f"PostgreSQL with TimescaleDB at {display_url(self._url)}"

    # Connections.

    async def _use[T](
        self, role: str, work: Callable[[Connection], Awaitable[T]], *, retry: bool = False
    ) -> T:
        if not self._opened:
            raise StoreError("the store is not open")
        async with self._locks[role]:
            if retry:
                with contextlib.suppress(_ConnectionLostError):
                    return await self._attempt(role, work)
            try:
                return await self._attempt(role, work)
            except _ConnectionLostError as lost:
                raise StoreError(_message(lost.__cause__)) from lost.__cause__

    async def _attempt[T](self, role: str, work: Callable[[Connection], Awaitable[T]]) -> T:
        db = self._connections.get(role)
        try:
            if db is None or db.closed:
                db = self._connections[role] = await AsyncConnection.connect(
                    self._url, autocommit=True
                )
            return await work(db)
        except psycopg.OperationalError as err:
            # The server went away or restarted: connect afresh next time.
            self._connections.pop(role, None)
            if db is not None:
                await db.close()
            raise _ConnectionLostError from err
        except psycopg.Error as err:
            raise StoreError(_message(err)) from err

    async def _write[T](self, work: Callable[[Connection], Awaitable[T]]) -> T:
        async def in_transaction(db: Connection) -> T:
            async with db.transaction():
                return await work(db)

        return await self._use("write", in_transaction)

    async def _read[T](self, work: Callable[[Connection], Awaitable[T]]) -> T:
        # A read is repeated once on a fresh connection; a write is not: its commit may
        # have landed before the link broke, and merging it twice would count twice.
        return await self._use("read", work, retry=True)

    # Lifecycle.

    async def open(self) -> Stored:
        self._opened = True
        try:
            await self._write(self._create)
            await self._write(self._compress)
            catalog, stored = await self._read(_load)
        except StoreError as err:
            await self.close()
            raise StoreError(f"cannot open the store on PostgreSQL: {err}") from err
        self._catalog = catalog
        self._read_through = max(catalog.keys, default=0)
        return stored

    async def _create(self, db: Connection) -> None:
        # Hubs starting together on one database take turns: concurrent CREATE ... IF NOT
        # EXISTS statements collide in PostgreSQL's catalogs.
        await db.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        version = None
        exists = await (await db.execute("SELECT to_regclass('marks') IS NOT NULL")).fetchone()
        if exists and exists[0]:
            version = await _mark(db, SCHEMA_MARK)
        if version is not None and version > SCHEMA_VERSION:
            raise SchemaError(
                f"the database holds schema version {version}, newer than this version's "
                f"{SCHEMA_VERSION}"
            )
        for statement in _SCHEMA:
            await db.execute(statement)
        await db.execute(_SET_MARK, (SCHEMA_MARK, SCHEMA_VERSION))

    async def _compress(self, db: Connection) -> None:
        await db.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        try:
            async with db.transaction():  # a savepoint: refusal leaves the schema intact
                for statement in _COMPRESSION:
                    await db.execute(statement)
        except psycopg.errors.FeatureNotSupported as err:
            _LOGGER.info("TimescaleDB cannot compress here; storing uncompressed: %s", err)
            self.compression = False
        else:
            self.compression = True

    async def close(self) -> None:
        self._opened = False
        connections, self._connections = self._connections, {}
        for db in connections.values():
            await db.close()

    # Telemetry.

    async def write(self, flush: Flush) -> None:
        known, mine, instance = self._catalog.ids, self._mine, self._instance
        added, marked = await self._write(lambda db: _write_flush(db, flush, known, mine, instance))
        self._catalog = self._catalog.with_ids(added)
        if marked:
            self._mine = mine | marked

    async def _refresh_catalog(self) -> SeriesCatalog:
        """The series catalog with the series other hubs on this database added since."""
        through = self._read_through

        async def run(db: Connection) -> dict[SeriesKey, int]:
            sql = "SELECT id, site_id, asset_id, metric FROM series WHERE id > %s"
            rows = await (await db.execute(sql, (through,))).fetchall()
            return {SeriesKey(site, asset, metric): sid for sid, site, asset, metric in rows}

        found = await self._read(run)
        if found:
            # Through the newest id read, not the newest this hub added: another hub may
            # have taken a lower id and committed it later.
            self._read_through = max(self._read_through, *found.values())
            self._catalog = self._catalog.with_ids(
                {key: sid for key, sid in found.items() if key not in self._catalog.ids}
            )
        return self._catalog

    async def series(self, selection: SeriesFilter) -> list[SeriesKey]:
        catalog = await self._refresh_catalog()
        return sorted(key for key in catalog.ids if selection.matches(key))

    async def query(
        self, selection: SeriesFilter, start: int, end: int, resolution: Resolution
    ) -> list[SeriesRange]:
        catalog = await self._refresh_catalog()
        ids = catalog.select(selection)
        if ids == [] or end <= start:
            return []
        series = "" if ids is None else " AND series_id = ANY(%s)"
        params: tuple[object, ...] = (start, end) if ids is None else (start, end, ids)
        sql = (
            f"SELECT {_COLUMNS} FROM {_TABLES[resolution]} "  # noqa: S608 - ours
            f"WHERE start >= %s AND start < %s{series} ORDER BY series_id, start"
        )

        async def run(db: Connection) -> list[SeriesRange]:
            rows: list[Row] = await (await db.execute(sql, params)).fetchall()
            return ranges(rows, catalog, resolution)

        return await self._read(run)

    async def latest(self, selection: SeriesFilter) -> list[Latest]:
        catalog = await self._refresh_catalog()
        ids = catalog.select(selection)
        if ids == []:
            return []

        async def run(db: Connection) -> list[Latest]:
            sql = "SELECT series_id, at, value, text FROM latest"
            cursor = await (
                db.execute(sql)
                if ids is None
                else db.execute(f"{sql} WHERE series_id = ANY(%s)", (ids,))
            )
            return [
                Latest(catalog.keys[sid], at, latest_value(value, text))
                for sid, at, value, text in await cursor.fetchall()
                if sid in catalog.keys  # added by another hub after the refresh
            ]

        return await self._read(run)

    async def late_windows(self, after: int) -> tuple[list[int], int]:
        async def run(db: Connection) -> tuple[list[int], int]:
            sql = "SELECT DISTINCT start FROM late WHERE seq > %s"
            rows = await (await db.execute(sql, (after,))).fetchall()
            return sorted(start for (start,) in rows), max(after, await _mark(db, LATE_SEQ) or 0)

        return await self._read(run)

    async def stored_minutes(self, start: int) -> Minutes:
        catalog = self._catalog

        async def run(db: Connection) -> Minutes:
            # Only this hub's series: another hub's open rollups are its own to write.
            sql = (
                "SELECT start, series_id, total, samples, low, high, last, last_at FROM minute "
                "WHERE start >= %s AND series_id IN (SELECT id FROM series WHERE hub = %s)"
            )
            rows = await (await db.execute(sql, (start, self._instance))).fetchall()
            return minutes_from_rows(rows, catalog)

        return await self._read(run)

    async def first_minute(self) -> int | None:
        async def run(db: Connection) -> int | None:
            row = await (await db.execute("SELECT min(start) FROM minute")).fetchone()
            return None if row is None or row[0] is None else int(row[0])

        return await self._read(run)

    async def delete_before(self, horizons: Mapping[Resolution, int]) -> None:
        async def run(db: Connection) -> None:
            for resolution, horizon in horizons.items():
                await db.execute(f"DELETE FROM {_TABLES[resolution]} WHERE start < %s", (horizon,))  # noqa: S608 - table names are ours
            if Resolution.MINUTE in horizons:
                horizon = horizons[Resolution.MINUTE]
                await db.execute("DELETE FROM late WHERE start < %s", (horizon,))

        await self._write(run)

    # Audit and sessions.

    async def add_audit(self, records: Sequence[AuditRecord]) -> None:
        rows = [
            (r.id, r.timestamp, r.site_id, r.device_id, r.command, r.outcome.value, audit_json(r))
            for r in records
        ]

        async def run(db: Connection) -> None:
            async with db.cursor() as cursor:
                await cursor.executemany(
                    "INSERT INTO audit VALUES (%s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (id) DO NOTHING",
                    rows,
                )

        await self._write(run)

    async def audit(self, query: AuditQuery) -> AuditPage:
        conditions, params = audit_conditions(query, "%s", "(record::jsonb ->> 'reason')")
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        sql = f"SELECT record FROM audit{where} ORDER BY at DESC, id DESC LIMIT %s"  # noqa: S608 - conditions are ours, values bound

        async def run(db: Connection) -> AuditPage:
            found = await (await db.execute(sql, (*params, query.limit + 1))).fetchall()
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

        async def run(db: Connection) -> None:
            await db.execute(_SAVE_SESSION, row)

        await self._write(run)

    async def sessions(self, agent_id: str | None, limit: int) -> list[SessionRecord]:
        where, params = ("", ()) if agent_id is None else (" WHERE agent_id = %s", (agent_id,))
        sql = (
            "SELECT session_id, agent_id, peer, started, ended, end_reason FROM sessions"  # noqa: S608 - the condition is ours
            f"{where} ORDER BY started DESC, session_id DESC LIMIT %s"
        )

        async def run(db: Connection) -> list[SessionRecord]:
            rows = await (await db.execute(sql, (*params, limit))).fetchall()
            return [SessionRecord(*row) for row in rows]

        return await self._read(run)

    async def end_sessions(
        self, ended: float, reason: str, *, hub: str = "", stale_before: float | None = None
    ) -> int:
        stale = math.inf if stale_before is None else stale_before
        sql = END_SESSIONS.format(mark="%s")

        async def run(db: Connection) -> int:
            cursor = await db.execute(sql, (ended, reason, hub, stale))
            return cursor.rowcount

        return await self._write(run)

    async def durable_seq(self, agent_id: str) -> int:
        sql = "SELECT durable_seq FROM agents WHERE agent_id = %s"

        async def run(db: Connection) -> int:
            row = await (await db.execute(sql, (agent_id,))).fetchone()
            return 0 if row is None else int(row[0])

        return await self._read(run)

    async def beat(self, hub: str, seen: float) -> None:
        sql = (
            "INSERT INTO hubs VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET seen = greatest(hubs.seen, excluded.seen)"
        )

        async def run(db: Connection) -> None:
            await db.execute(sql, (hub, seen))

        await self._write(run)

    async def save_registrations(self, hub: str, rows: Sequence[tuple[Registration, bool]]) -> None:
        now = time.time()
        params = [
            (registration.agent_id, hub, registration_json(registration), connected, now)
            for registration, connected in rows
        ]

        async def run(db: Connection) -> None:
            async with db.cursor() as cursor:
                await cursor.executemany(_SAVE_REGISTRATION, params)

        await self._write(run)

    async def registrations(self, alive_after: float) -> list[StoredRegistration]:
        sql = (
            "SELECT r.agent_id, r.hub, r.registration, r.connected, r.updated, h.seen "
            "FROM registrations AS r LEFT JOIN hubs AS h ON h.name = r.hub ORDER BY r.agent_id"
        )

        async def run(db: Connection) -> list[StoredRegistration]:
            rows = await (await db.execute(sql)).fetchall()
            found = (
                stored_registration(agent, hub, text, connected, updated, seen, alive_after)
                for agent, hub, text, connected, updated, seen in rows
            )
            return [row for row in found if row is not None]

        return await self._read(run)

    # Outbox and marks.

    async def outbox_put(
        self, batch: OutboxBatch, *, budget_bytes: int, marks: Mapping[str, int]
    ) -> int:
        return await self._write(lambda db: _outbox_put(db, batch, budget_bytes, marks))

    async def outbox_head(self, limit: int) -> list[OutboxBatch]:
        async def run(db: Connection) -> list[OutboxBatch]:
            cursor = await db.execute(
                "SELECT key, window_start, created, body FROM outbox ORDER BY id LIMIT %s",
                (limit,),
            )
            return [
                OutboxBatch(key, start, created, bytes(body))
                for key, start, created, body in await cursor.fetchall()
            ]

        return await self._read(run)

    async def outbox_remove(self, key: str) -> None:
        async def run(db: Connection) -> None:
            await db.execute("DELETE FROM outbox WHERE key = %s", (key,))

        await self._write(run)

    async def outbox_stats(self) -> OutboxStats:
        async def run(db: Connection) -> OutboxStats:
            sql = "SELECT count(*), coalesce(sum(size), 0) FROM outbox"
            row = await (await db.execute(sql)).fetchone()
            assert row is not None
            return OutboxStats(int(row[0]), int(row[1]), await _mark(db, OUTBOX_DROPPED) or 0)

        return await self._read(run)

    async def get_mark(self, name: str) -> int | None:
        return await self._read(lambda db: _mark(db, name))

    async def claim(self, claims: Sequence[Claim], credential: str, at: float) -> dict[Claim, str]:
        rows = [(kind.value, claim_id, credential, at) for kind, claim_id in claims]

        async def run(db: Connection) -> dict[Claim, str]:
            # Insert, then read who holds each: a claim another hub made meanwhile is seen
            # (the insert waits for its commit), and any conflict rolls back all of these.
            async with db.cursor() as cursor:
                await cursor.executemany(
                    "INSERT INTO claims VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING", rows
                )
            held: dict[Claim, str] = {}
            for kind, claim_id in claims:
                row = await (
                    await db.execute(
                        "SELECT credential FROM claims WHERE kind = %s AND id = %s",
                        (kind.value, claim_id),
                    )
                ).fetchone()
                assert row is not None
                held[kind, claim_id] = str(row[0])
            if any(holder != credential for holder in held.values()):
                raise _Conflict(held)
            return held

        try:
            return await self._write(run)
        except _Conflict as conflict:
            return conflict.held

    async def keep_first(self, name: str, value: str) -> str:
        async def run(db: Connection) -> str:
            await db.execute(
                "INSERT INTO settings VALUES (%s, %s) ON CONFLICT (name) DO NOTHING", (name, value)
            )
            row = await (
                await db.execute("SELECT value FROM settings WHERE name = %s", (name,))
            ).fetchone()
            assert row is not None
            return str(row[0])

        return await self._write(run)

    async def set_mark(self, name: str, value: int) -> None:
        async def run(db: Connection) -> None:
            await db.execute(_SET_MARK, (name, value))

        await self._write(run)


def _message(err: BaseException | None) -> str:
    # A malformed URL comes back in psycopg's message whole, password included.
    return without_userinfo(f"PostgreSQL: {err}")


async def _mark(db: Connection, name: str) -> int | None:
    row = await (await db.execute("SELECT value FROM marks WHERE name = %s", (name,))).fetchone()
    return None if row is None else int(row[0])


async def _load(db: Connection) -> tuple[SeriesCatalog, Stored]:
    rows = await (await db.execute("SELECT id, site_id, asset_id, metric FROM series")).fetchall()
    ids = {SeriesKey(site, asset, metric): sid for sid, site, asset, metric in rows}
    sql = "SELECT agent_id, durable_seq, written_seq FROM agents"
    agents = await (await db.execute(sql)).fetchall()
    durable = {agent: seq for agent, seq, _ in agents}
    written = {agent: seq for agent, _, seq in agents}
    return SeriesCatalog().with_ids(ids), Stored(durable, written)


async def _write_flush(
    db: Connection,
    flush: Flush,
    known: Mapping[SeriesKey, int],
    mine: frozenset[int],
    instance: str,
) -> tuple[dict[SeriesKey, int], frozenset[int]]:
    added: dict[SeriesKey, int] = {}
    for key in sorted(flush.keys() - known.keys()):
        row = await (await db.execute(_ADD_SERIES, key)).fetchone()
        assert row is not None
        added[key] = row[0]
    ids = {**known, **added} if added else known
    marked = frozenset(ids[key] for key in flush.keys()) - mine  # noqa: SIM118 - a method
    if marked:
        await db.execute(
            "UPDATE series SET hub = %s WHERE id = ANY(%s) AND hub <> %s",
            (instance, sorted(marked), instance),
        )
    async with db.cursor() as cursor:
        for table, buckets in flush_tables(flush):
            rows = bucket_rows(buckets, ids)
            await cursor.executemany(_UPSERT_BUCKET.format(table=table), rows)
        await cursor.executemany(_UPSERT_LATEST, latest_rows(flush, ids))
        await cursor.executemany(_UPSERT_AGENT, agent_rows(flush))
        await cursor.executemany(_SET_MARK, list(flush.marks.items()))
        if flush.late:
            seq = (await _mark(db, LATE_SEQ) or 0) + 1
            late = [(seq, start) for start in flush.late]
            await cursor.executemany("INSERT INTO late VALUES (%s, %s)", late)
            await cursor.execute(_SET_MARK, (LATE_SEQ, seq))
    return added, marked


async def _outbox_put(
    db: Connection, batch: OutboxBatch, budget: int, marks: Mapping[str, int]
) -> int:
    size = len(batch.body)
    dropped = 0
    queued = await (
        await db.execute("SELECT 1 FROM outbox WHERE key = %s", (batch.key,))
    ).fetchone()
    if queued is None:
        row = await (await db.execute("SELECT coalesce(sum(size), 0) FROM outbox")).fetchone()
        total = int(row[0]) if row else 0
        if size > budget:
            dropped = 1
        else:
            while total + size > budget:
                oldest = await (
                    await db.execute("SELECT id, size FROM outbox ORDER BY id LIMIT 1")
                ).fetchone()
                assert oldest is not None
                await db.execute("DELETE FROM outbox WHERE id = %s", (oldest[0],))
                total -= oldest[1]
                dropped += 1
            await db.execute(
                "INSERT INTO outbox (key, window_start, created, size, body) "
                "VALUES (%s, %s, %s, %s, %s)",
                (batch.key, batch.window_start_ms, batch.created, size, batch.body),
            )
    async with db.cursor() as cursor:
        await cursor.executemany(_SET_MARK, list(marks.items()))
    if dropped:
        await db.execute(_ADD_MARK, (OUTBOX_DROPPED, dropped))
    return dropped
