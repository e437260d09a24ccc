"""The app's backups are cold (``backup: cold``): the Supervisor stops the hub, copies
``/data`` and starts it again. What it copies must hold every minute the hub stored, whatever
state SQLite's WAL was in."""

from __future__ import annotations

import shutil
from pathlib import Path

from edge_ems.hub.store import SeriesFilter, StoreSettings, open_store

from ..hub.store.conftest import MINUTE, T0, YEAR_S, Clock, batch

POWER = ("bess-1", "ac_power_w")


async def test_a_stopped_hub_leaves_every_minute_in_the_database_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    clock = Clock()
    settings = StoreSettings(max_future=YEAR_S)
    store = open_store(data / "edge_ems.db", settings, clock=clock)
    await store.open()
    minutes = 30
    for minute in range(minutes):
        await store.accept(batch(minute + 1, {POWER: [(T0 + minute * MINUTE + 1000, minute)]}))
    clock.at(T0 + minutes * MINUTE + 11_000)
    await store.flush()
    assert (data / "edge_ems.db-wal").stat().st_size > 0  # the commits sit in the WAL
    await store.close()  # what SIGTERM does before the Supervisor copies /data

    # Whatever of the WAL is left, the database file alone now holds it all: a backup
    # restored without its -wal (or -shm) file loses nothing.
    wal = data / "edge_ems.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    restored = tmp_path / "restored"
    restored.mkdir()
    shutil.copy2(data / "edge_ems.db", restored / "edge_ems.db")
    reopened = open_store(restored / "edge_ems.db", settings, clock=clock)
    await reopened.open()
    try:
        [series] = await reopened.query(SeriesFilter(), T0, T0 + minutes * MINUTE)
        assert [point.last for point in series.points] == [float(m) for m in range(minutes)]
        assert reopened.durable_seq("agent-1") == minutes
    finally:
        await reopened.close()
