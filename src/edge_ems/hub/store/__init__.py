"""The hub's minute store: telemetry folded into per-minute aggregates, with rollups,
latest values, audit records, agent sessions, the uplink outbox and named marks.

``open_store(path)`` gives a store on SQLite (the default, one file in WAL mode);
``open_store("postgresql://…")`` one on PostgreSQL with TimescaleDB (a fleet headend)::

    async with open_store(data_dir / "store.db") as store:
        store.start()  # flush once a minute until the block ends
        gateway = GatewayServer(store, tokens)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ...exceptions import ConfigError
from .backend import Backend
from .errors import QueryError, SchemaError, StoreError
from .journal import IngestJournal
from .minute_store import MinuteStore, Retention, StoreSettings, StoreStatus
from .model import (
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
from .sqlite import SqliteBackend

__all__ = [
    "AuditPage",
    "AuditQuery",
    "Backend",
    "IngestJournal",
    "Latest",
    "MinuteStore",
    "OutboxBatch",
    "OutboxStats",
    "Point",
    "QueryError",
    "Resolution",
    "Retention",
    "SchemaError",
    "SeriesFilter",
    "SeriesKey",
    "SeriesRange",
    "SqliteBackend",
    "StoreError",
    "StoreSettings",
    "StoreStatus",
    "StoredRegistration",
    "is_database_url",
    "open_store",
]

_URL_SCHEMES = ("postgresql://", "postgres://")


def is_database_url(database: str | Path) -> bool:
    """Whether ``database`` names a PostgreSQL server rather than a SQLite file."""
    return isinstance(database, str) and database.startswith(_URL_SCHEMES)


def open_store(
    database: str | Path,
    settings: StoreSettings | None = None,
    *,
    clock: Callable[[], float] = time.time,
    instance: str = "",
    journal: Path | None = None,
) -> MinuteStore:
    """A store on ``database``: a file path (SQLite) or a ``postgresql://`` URL (TimescaleDB,
    as ``DATABASE_URL`` gives it). Nothing is opened yet: use ``async with`` or
    :meth:`MinuteStore.open`, and :meth:`MinuteStore.close` when done. Hubs sharing one
    database each give their own ``instance`` name. With a ``journal`` directory (each hub
    its own), batches are acknowledged once journaled, not once their minutes are written
    (:mod:`.journal`)."""
    ingest_journal = None if journal is None else IngestJournal(journal)
    if is_database_url(database):
        try:
            from .timescale import TimescaleBackend  # psycopg is only needed for this backend
        except ImportError as err:
            raise ConfigError(
                f"a PostgreSQL store needs psycopg (pip install 'edge-ems[hub]'): {err}"
            ) from err
        return MinuteStore(
            TimescaleBackend(str(database), instance=instance),
            settings,
            clock=clock,
            instance=instance,
            journal=ingest_journal,
        )
    return MinuteStore(
        SqliteBackend(database), settings, clock=clock, instance=instance, journal=ingest_journal
    )
