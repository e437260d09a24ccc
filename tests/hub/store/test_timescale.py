"""What only the TimescaleDB backend does: hypertables, compression where the build has it."""

from __future__ import annotations

import itertools

import psycopg
import pytest

from edge_ems.hub.store import StoreError, open_store
from edge_ems.hub.store.timescale import TimescaleBackend

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


async def test_an_unreachable_server_is_a_store_error() -> None:
    store = open_store("postgresql://nobody@127.0.0.1:1/nothing")
    with pytest.raises(StoreError, match="cannot connect"):
        await store.open()
    await store.close()
