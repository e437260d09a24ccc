"""Hourly Parquet export: hive partitions DuckDB and pandas read as they are, atomic and
idempotent files, and the store mark that tracks what is exported."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from edge_ems.hub.parquet import MARK, ExportError, ParquetExporter, partition_path
from edge_ems.hub.store import MinuteStore, StoreSettings, open_store

from .store.conftest import MINUTE, T0, YEAR_S, Clock, batch

HOUR = 60 * MINUTE
SETTINGS = StoreSettings(max_future=YEAR_S)
"""fill() runs hours ahead of the clock."""
DAY = date(2026, 12, 6)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(tmp_path: Path, clock: Clock) -> AsyncIterator[MinuteStore]:
    async with open_store(tmp_path / "store.db", SETTINGS, clock=clock) as opened:
        yield opened


async def fill(store: MinuteStore, clock: Clock, hours: int = 2) -> None:
    """Two sites, three series, one sample every 20 s for ``hours`` hours; all flushed."""
    seq = 0
    for minute in range(hours * 60):
        start = T0 + minute * MINUTE
        for agent, site, asset in (("a1", "farm", "bess-1"), ("a2", "barn", "pv-1")):
            seq += 1
            series = {
                (asset, "ac_power_w"): [(start + s * 20_000, float(minute + s)) for s in range(3)]
            }
            if site == "farm":
                series[(asset, "soc_pct")] = [(start, 50.0 + minute / 10)]
            await store.accept(batch(seq, series, agent=agent, site=site))
    clock.at(T0 + hours * HOUR + 11_000)
    await store.flush()


async def test_an_hour_becomes_one_file_per_site_that_duckdb_and_pandas_read(
    store: MinuteStore, clock: Clock, tmp_path: Path
) -> None:
    await fill(store, clock)
    root = tmp_path / "parquet"
    exporter = ParquetExporter(store, root, clock=clock)
    paths = await exporter.export_hour(T0 + HOUR)
    assert paths == [
        root / "site=barn" / "date=2026-12-06" / "01.parquet",
        root / "site=farm" / "date=2026-12-06" / "01.parquet",
    ]

    glob = str(root / "**" / "*.parquet")
    rows = duckdb.sql(
        f"SELECT site, date, asset_id, metric, count(*) AS n, sum(samples) AS s, "
        f"min(minute) AS first FROM read_parquet('{glob}', hive_partitioning = true) "
        "GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    assert [row[:6] for row in rows] == [
        ("barn", DAY, "pv-1", "ac_power_w", 60, 180),
        ("farm", DAY, "bess-1", "ac_power_w", 60, 180),
        ("farm", DAY, "bess-1", "soc_pct", 60, 60),
    ]
    assert {row[6].timestamp() for row in rows} == {(T0 + HOUR) / 1000}

    frame = pd.read_parquet(root)
    assert len(frame) == 180
    farm = frame[(frame["site"] == "farm") & (frame["metric"] == "ac_power_w")]
    first = farm.sort_values("minute").iloc[0]
    assert (first["avg"], first["min"], first["max"], first["last"]) == (61.0, 60.0, 62.0, 62.0)
    assert first["minute"] == pd.Timestamp(T0 + HOUR, unit="ms", tz="UTC")

    meta = pq.ParquetFile(paths[1]).metadata
    for index, name in ((0, "asset_id"), (1, "metric")):
        column = meta.row_group(0).column(index)
        assert column.path_in_schema == name
        assert column.has_dictionary_page
        assert column.compression == "ZSTD"


async def test_re_export_is_idempotent_and_leaves_no_temporary_files(
    store: MinuteStore, clock: Clock, tmp_path: Path
) -> None:
    await fill(store, clock, hours=1)
    exporter = ParquetExporter(store, tmp_path, clock=clock)
    [first, _] = await exporter.export_hour(T0)
    content = first.read_bytes()
    await exporter.export_hour(T0)
    assert first.read_bytes() == content
    assert sorted(p.name for p in first.parent.iterdir()) == ["00.parquet"]
    assert await exporter.export_hour(T0 + 5 * HOUR) == []  # nothing stored: no empty files


async def test_pending_hours_are_exported_once_and_the_mark_survives(
    tmp_path: Path, clock: Clock
) -> None:
    path = tmp_path / "store.db"
    async with open_store(path, SETTINGS, clock=clock) as store:
        await fill(store, clock, hours=3)
        exporter = ParquetExporter(store, tmp_path / "out", grace=120, clock=clock)
        # Hour 2 ended 11 s ago: within the grace, not exported yet.
        assert await exporter.export_pending() == 2
        assert exporter.status().next_hour_ms == T0 + 2 * HOUR
        assert exporter.status().files_written == 4
        clock.at(T0 + 3 * HOUR + 200_000)
        assert await exporter.export_pending() == 1
    async with open_store(path, SETTINGS, clock=clock) as store:
        assert await store.backend.get_mark(MARK) == T0 + 3 * HOUR
        assert await ParquetExporter(store, tmp_path / "out", clock=clock).export_pending() == 0
    hours = sorted(p.name for p in (tmp_path / "out" / "site=farm" / "date=2026-12-06").iterdir())
    assert hours == ["00.parquet", "01.parquet", "02.parquet"]


async def test_an_hour_that_late_samples_reach_is_exported_again(
    store: MinuteStore, clock: Clock, tmp_path: Path
) -> None:
    await fill(store, clock, hours=2)
    clock.at(T0 + 2 * HOUR + 200_000)
    exporter = ParquetExporter(store, tmp_path, clock=clock)
    assert await exporter.export_pending() == 2
    late = {("bess-1", "ac_power_w"): [(T0 + 10 * MINUTE + 30_000, -7.0)]}
    await store.accept(batch(10_000, late, agent="a1"))
    await store.flush()
    assert await exporter.export_pending() == 1
    assert await exporter.export_pending() == 0
    frame = pd.read_parquet(tmp_path / "site=farm")
    row = frame[
        (frame["metric"] == "ac_power_w")
        & (frame["minute"] == pd.Timestamp(T0 + 10 * MINUTE, unit="ms", tz="UTC"))
    ]
    assert (int(row["samples"].iloc[0]), float(row["min"].iloc[0])) == (4, -7.0)


async def test_site_ids_cannot_leave_their_partition(tmp_path: Path) -> None:
    path = partition_path(tmp_path, "../etc", T0)
    assert path.parent.parent.name == "site=..%2Fetc"
    assert path.is_relative_to(tmp_path)


async def test_bad_hours_and_unwritable_roots_are_export_errors(
    store: MinuteStore, clock: Clock, tmp_path: Path
) -> None:
    await fill(store, clock, hours=1)
    exporter = ParquetExporter(store, tmp_path, clock=clock)
    with pytest.raises(ExportError, match="not the start of an hour"):
        await exporter.export_hour(T0 + 5)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the root should be")
    with pytest.raises(ExportError, match="cannot write"):
        await ParquetExporter(store, blocked, clock=clock).export_hour(T0)


async def test_the_export_loop_writes_closed_hours_as_it_starts(
    store: MinuteStore, clock: Clock, tmp_path: Path
) -> None:
    await fill(store, clock, hours=2)
    clock.at(T0 + 2 * HOUR + 200_000)
    exporter = ParquetExporter(store, tmp_path, clock=clock)
    task = asyncio.get_running_loop().create_task(exporter.run())
    try:
        async with asyncio.timeout(60):
            while exporter.status().next_hour_ms != T0 + 2 * HOUR:  # noqa: ASYNC110 - the loop moves it
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    status = exporter.status()
    assert (status.files_written, status.rows_written, status.last_error) == (4, 360, None)
