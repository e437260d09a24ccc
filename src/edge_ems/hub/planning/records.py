"""What the planner keeps in the hub's database: each site's latest plan and its version,
the overrides, the series the sites handed in, and the planned-against-actual reports.

Kept beside the minute store's tables (``planner_*``) in the same database, on connections
of the planner's own: the SQLite file (one thread) or the PostgreSQL server. Several hubs on
one PostgreSQL share them, so a hub taking over as leader continues where the last one
stopped: the next plan's version follows the last one's (a site ignores a plan older than
the one it holds), the overrides still hold, the sites' series are there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import psycopg
from psycopg import AsyncConnection

from ..store.errors import StoreError
from .overrides import Override
from .series import StepSeries

type Row = tuple[Any, ...]

SCHEMA_LOCK = 0x6564_6765_706C  # "edgepl": serialises schema creation among hubs

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS planner_plans (
      site_id TEXT PRIMARY KEY, version BIGINT NOT NULL, made_at BIGINT NOT NULL,
      document TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS planner_overrides (
      id TEXT PRIMARY KEY, site_id TEXT NOT NULL, end_ms BIGINT NOT NULL,
      record TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS planner_inputs (
      site_id TEXT NOT NULL, kind TEXT NOT NULL, received BIGINT NOT NULL,
      record TEXT NOT NULL, PRIMARY KEY (site_id, kind))""",
    """CREATE TABLE IF NOT EXISTS planner_audit (
      site_id TEXT NOT NULL, start_ms BIGINT NOT NULL, version BIGINT NOT NULL,
      record TEXT NOT NULL, PRIMARY KEY (site_id, start_ms))""",
)
_SAVE_PLAN = """
INSERT INTO planner_plans (site_id, version, made_at, document) VALUES (?, ?, ?, ?)
ON CONFLICT (site_id) DO UPDATE SET version = excluded.version, made_at = excluded.made_at,
  document = excluded.document
WHERE planner_plans.version < excluded.version
"""
_SAVE_INPUTS = """
INSERT INTO planner_inputs (site_id, kind, received, record) VALUES (?, ?, ?, ?)
ON CONFLICT (site_id, kind) DO UPDATE SET received = excluded.received,
  record = excluded.record
"""
_SAVE_AUDIT = """
INSERT INTO planner_audit (site_id, start_ms, version, record) VALUES (?, ?, ?, ?)
ON CONFLICT (site_id, start_ms) DO UPDATE SET version = excluded.version,
  record = excluded.record
"""


class Database(Protocol):
    """One connection's worth of SQL, in SQLite's ``?`` style."""

    async def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Execute; the rows it changed."""

    async def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Execute a query; its rows."""

    async def close(self) -> None:
        """Let go of the connection."""


class SqliteDatabase:
    """The hub's SQLite file, on a connection and a thread of its own."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="edge_ems planner db")
        self._db: sqlite3.Connection | None = None

    async def open(self) -> None:
        """Connect and create the planner's tables."""
        await self._call(self._open)

    def _open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self._path, autocommit=True, timeout=30.0)
        db.execute("PRAGMA journal_mode = WAL")
        for statement in _SCHEMA:
            db.execute(statement)
        self._db = db

    async def _call[T](self, work: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, work)
        except sqlite3.Error as err:
            raise StoreError(f"{self._path}: {err}") from err

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError("the planner's records are not open")
        return self._db

    async def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return await self._call(lambda: self._connection().execute(sql, tuple(params)).rowcount)

    async def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return await self._call(
            lambda: list(self._connection().execute(sql, tuple(params)).fetchall())
        )

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, db.close)
        self._executor.shutdown(wait=False)


class PostgresDatabase:
    """The shared PostgreSQL database; a dropped connection is made again at the next call."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._db: AsyncConnection[tuple[Any, ...]] | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        """Connect and create the planner's tables (one hub at a time)."""

        async def create(db: AsyncConnection[tuple[Any, ...]]) -> None:
            async with db.transaction():
                await db.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                for statement in _SCHEMA:
                    await db.execute(statement)

        await self._use(create)

    async def _use[T](self, work: Callable[[AsyncConnection[tuple[Any, ...]]], Awaitable[T]]) -> T:
        async with self._lock:
            try:
                if self._db is None or self._db.closed:
                    self._db = await AsyncConnection.connect(self._url, autocommit=True)
                return await work(self._db)
            except psycopg.OperationalError as err:
                db, self._db = self._db, None
                if db is not None:
                    with contextlib.suppress(psycopg.Error):
                        await db.close()
                raise StoreError(f"PostgreSQL: {err}") from err
            except psycopg.Error as err:
                raise StoreError(f"PostgreSQL: {err}") from err

    async def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        async def work(db: AsyncConnection[tuple[Any, ...]]) -> int:
            cursor = await db.execute(_pg(sql), tuple(params))
            return cursor.rowcount

        return await self._use(work)

    async def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async def work(db: AsyncConnection[tuple[Any, ...]]) -> list[Row]:
            cursor = await db.execute(_pg(sql), tuple(params))
            return list(await cursor.fetchall())

        return await self._use(work)

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(psycopg.Error):
                await db.close()


def _pg(sql: str) -> str:
    return sql.replace("?", "%s")


async def open_database(where: str | Path) -> SqliteDatabase | PostgresDatabase:
    """The database at ``where``: a ``postgresql://`` URL or a SQLite file."""
    if isinstance(where, str) and where.startswith(("postgresql://", "postgres://")):
        database: SqliteDatabase | PostgresDatabase = PostgresDatabase(where)
    else:
        database = SqliteDatabase(Path(where))
    await database.open()
    return database


class PlannerRecords:
    """The planner's tables."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def close(self) -> None:
        """Close the connection."""
        await self._db.close()

    # Plans.

    async def save_plan(
        self, site_id: str, version: int, made_at_ms: int, document: dict[str, Any]
    ) -> bool:
        """Keep ``document`` as the site's plan unless a newer version is stored already."""
        changed = await self._db.run(
            _SAVE_PLAN, (site_id, version, made_at_ms, json.dumps(document, allow_nan=False))
        )
        return changed > 0

    async def plan(self, site_id: str) -> tuple[int, dict[str, Any]] | None:
        """The site's latest plan: its version and document."""
        rows = await self._db.rows(
            "SELECT version, document FROM planner_plans WHERE site_id = ?", (site_id,)
        )
        if not rows:
            return None
        version, document = rows[0]
        return int(version), json.loads(document)

    async def version(self, site_id: str) -> int:
        """The site's latest plan version (0: none yet)."""
        rows = await self._db.rows(
            "SELECT version FROM planner_plans WHERE site_id = ?", (site_id,)
        )
        return int(rows[0][0]) if rows else 0

    # Overrides.

    async def add_override(self, override: Override) -> None:
        """Keep an override."""
        await self._db.run(
            "INSERT INTO planner_overrides (id, site_id, end_ms, record) VALUES (?, ?, ?, ?)",
            (override.id, override.site_id, override.end_ms, json.dumps(override.as_dict())),
        )

    async def overrides(self, site_id: str | None, now_ms: int) -> list[Override]:
        """The overrides not yet over (of one site, or all), oldest first."""
        if site_id is None:
            rows = await self._db.rows(
                "SELECT record FROM planner_overrides WHERE end_ms > ?", (now_ms,)
            )
        else:
            rows = await self._db.rows(
                "SELECT record FROM planner_overrides WHERE site_id = ? AND end_ms > ?",
                (site_id, now_ms),
            )
        found = [Override.from_dict(json.loads(row[0])) for row in rows]
        return sorted(found, key=lambda override: (override.created_ms, override.id))

    async def remove_overrides(
        self, *, site_id: str | None = None, asset_id: str | None = None, id: str | None = None
    ) -> list[Override]:
        """Remove the overrides matching every filter given; the ones removed."""
        conditions, params = [], []
        for column, value in (("site_id", site_id), ("id", id)):
            if value is not None:
                conditions.append(f"{column} = ?")
                params.append(value)
        where = " AND ".join(conditions) or "TRUE"
        rows = await self._db.rows(
            f"SELECT id, record FROM planner_overrides WHERE {where}",  # noqa: S608 - fixed
            params,
        )
        removed = [
            Override.from_dict(json.loads(record))
            for _, record in rows
            if asset_id is None or json.loads(record)["asset_id"] == asset_id
        ]
        for override in removed:
            await self._db.run("DELETE FROM planner_overrides WHERE id = ?", (override.id,))
        return removed

    async def prune_overrides(self, before_ms: int) -> None:
        """Forget overrides that ended before ``before_ms``."""
        await self._db.run("DELETE FROM planner_overrides WHERE end_ms <= ?", (before_ms,))

    # Series the sites handed in.

    async def save_inputs(
        self, site_id: str, kind: str, series: StepSeries, received_ms: int
    ) -> None:
        """Keep a site's series of ``kind`` (replacing the one before)."""
        record = {
            "start_ms": series.start_ms,
            "step_s": series.step_s,
            "values": [float(v) for v in series.values],
            "unit": series.unit,
            "source": series.source,
        }
        await self._db.run(_SAVE_INPUTS, (site_id, kind, received_ms, json.dumps(record)))

    async def inputs(self, site_id: str) -> dict[str, tuple[StepSeries, int]]:
        """The site's series by kind, each with when it arrived (ms)."""
        rows = await self._db.rows(
            "SELECT kind, received, record FROM planner_inputs WHERE site_id = ?", (site_id,)
        )
        found = {}
        for kind, received, record in rows:
            data = json.loads(record)
            values = np.asarray(data["values"], dtype=np.float64)
            values.setflags(write=False)
            series = StepSeries(data["start_ms"], data["step_s"], values, data["unit"],
                                data["source"])  # fmt: skip
            found[str(kind)] = (series, int(received))
        return found

    # Planned against actual.

    async def save_audit(
        self, site_id: str, start_ms: int, version: int, record: dict[str, Any]
    ) -> None:
        """Keep the report of the step starting at ``start_ms``."""
        await self._db.run(
            _SAVE_AUDIT, (site_id, start_ms, version, json.dumps(record, allow_nan=False))
        )

    async def audits(self, site_id: str, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
        """The reports of steps starting in ``[start_ms, end_ms)``, oldest first."""
        rows = await self._db.rows(
            "SELECT record FROM planner_audit WHERE site_id = ? AND start_ms >= ? "
            "AND start_ms < ? ORDER BY start_ms",
            (site_id, start_ms, end_ms),
        )
        return [json.loads(row[0]) for row in rows]

    async def audited(self, site_id: str, start_ms: int) -> bool:
        """Whether the step starting at ``start_ms`` has a report."""
        rows = await self._db.rows(
            "SELECT 1 FROM planner_audit WHERE site_id = ? AND start_ms = ?", (site_id, start_ms)
        )
        return bool(rows)

    async def prune_audits(self, before_ms: int) -> None:
        """Forget reports of steps before ``before_ms``."""
        await self._db.run("DELETE FROM planner_audit WHERE start_ms < ?", (before_ms,))
