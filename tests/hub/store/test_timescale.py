"""What only the TimescaleDB backend does: hypertables, compression where the build has it."""

from __future__ import annotations

import itertools

import psycopg
import pytest

from edge_ems.hub.store import SeriesFilter, StoreError, open_store
from edge_ems.hub.store.timescale import TimescaleBackend

from .conftest import MINUTE, T0, Clock, batch
from .postgres import fresh_database

_names = itertools.count(1)


async def test_minutes_and_rollups_are_hypertables(postgres_url: str) -> None:
    url = fresh_database(postgres_url, f"hyper_{next(_names)}")
    store = open_store(url)
    async with store:
        assert isinstance(store.backend, TimescaleBackend)
        async with await psycopg.AsyncConnection.connect(url) as db:
            cursor = await db.execute(
                "SELECT hypertable_name FROM timescaledb_information.hypertables ORDER BY 1"
            )
            assert [name for (name,) in await cursor.fetchall()] == [
                "minute",
                "rollup_1h",
                "rollup_5m",
            ]
            license_row = await (
                await db.execute("SELECT current_setting('timescaledb.license')")
            ).fetchone()
        # The Apache-licensed build has no compression; every other build must have it on.
        assert store.backend.compression == (license_row != ("apache",))
    # Opening again finds the schema in place.
    async with open_store(url) as again:
        assert await again.series() == []


async def test_dropped_connections_fail_one_flush_and_lose_nothing(postgres_url: str) -> None:
    url = fresh_database(postgres_url, f"dropped_{next(_names)}")
    clock = Clock()
    async with open_store(url, clock=clock) as store:
        await store.accept(batch(1, {("bess-1", "ac_power_w"): [(T0 + 1000, 4.0)]}))
        async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as admin:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (url.rsplit("/", 1)[1],),
            )
        clock.at(T0 + MINUTE + 11_000)
        with pytest.raises(StoreError, match="PostgreSQL"):
            await store.flush()
        assert store.status().flush_failures == 1
        assert store.durable_seq("agent-1") == 0
        await store.accept(batch(2, {("bess-1", "ac_power_w"): [(T0 + 2000, 6.0)]}))
        await store.flush()  # connects afresh
        assert store.durable_seq("agent-1") == 2
        [found] = await store.query(SeriesFilter(), T0, T0 + MINUTE)
        assert found.points == [(T0, 5.0, 4.0, 6.0, 6.0, 2)]


async def test_an_unreachable_server_is_a_store_error() -> None:
    store = open_store("postgresql://nobody@127.0.0.1:1/nothing")
    with pytest.raises(StoreError, match="cannot open the store on PostgreSQL"):
        await store.open()
    await store.close()
