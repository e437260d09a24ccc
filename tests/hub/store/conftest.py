"""The store's tests run against both backends: SQLite in a tmp dir, and PostgreSQL 18 with
TimescaleDB started once per session (a fresh database per test)."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge_ems.gateway.model import SeriesSamples, TelemetryBatch, TextSample
from edge_ems.hub.store import MinuteStore, StoreSettings, open_store

from .postgres import fresh_database, postgres_server

T0 = int(datetime(2026, 12, 6, tzinfo=UTC).timestamp() * 1000)
"""Midnight of a test day, ms."""
MINUTE = 60_000
YEAR_S = 365 * 86_400.0
"""The future allowance of the tests' stores: their clock stands still while batches reach
ahead of it (the allowance itself has its own test)."""

_databases = itertools.count(1)


class Clock:
    """The store's clock, moved by the test (seconds since the epoch)."""

    def __init__(self, now_ms: int = T0) -> None:
        self.now = now_ms / 1000

    def __call__(self) -> float:
        return self.now

    def at(self, ms: int) -> None:
        self.now = ms / 1000


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "timescaledb"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where a test's store lives: a SQLite file, or a fresh database on the server."""
    if request.param == "sqlite":
        return tmp_path / "store.db"
    url: str = request.getfixturevalue("postgres_url")
    return fresh_database(url, f"test_{next(_databases)}")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def stores(database: str | Path, clock: Clock) -> AsyncIterator[Callable[..., MinuteStore]]:
    """Make stores on the test's database (reopen it as a restarted hub would)."""
    made: list[MinuteStore] = []

    def make(
        settings: StoreSettings | None = None,
        *,
        max_future: float = YEAR_S,
        journal: Path | None = None,
    ) -> MinuteStore:
        settings = dataclasses.replace(settings or StoreSettings(), max_future=max_future)
        store = open_store(database, settings, clock=clock, journal=journal)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


@pytest.fixture
async def store(stores: Callable[..., MinuteStore]) -> MinuteStore:
    opened = stores()
    await opened.open()
    return opened


def batch(
    seq: int,
    series: Mapping[tuple[str, str], Sequence[tuple[int, float]]],
    *,
    agent: str = "agent-1",
    site: str = "farm",
    texts: Sequence[tuple[str, str, int, str]] = (),
) -> TelemetryBatch:
    """A batch from ``{(asset, metric): [(ms, value), ...]}``."""
    return TelemetryBatch(
        agent,
        site,
        seq,
        [
            SeriesSamples(asset, metric, [t for t, _ in samples], [v for _, v in samples])
            for (asset, metric), samples in series.items()
        ],
        [TextSample(asset, metric, ts, value) for asset, metric, ts, value in texts],
    )
