"""Two hubs on one TimescaleDB, as a fleet headend scales out: each sees the other's series,
sessions and registrations, and neither counts the other's data again after a restart."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable

import pytest

from edge_ems.gateway.model import AssetInfo, Registration
from edge_ems.hub.sessions import SessionRecord
from edge_ems.hub.store import MinuteStore, Resolution, SeriesFilter, StoreSettings, open_store

from .conftest import MINUTE, T0, YEAR_S, Clock, batch
from .postgres import fresh_database

HOUR = 60 * MINUTE
POWER = ("bess-1", "ac_power_w")
OTHER = ("bess-9", "ac_power_w")

type Maker = Callable[[str], MinuteStore]
_databases = itertools.count(1)


@pytest.fixture
async def shared(postgres_url: str, clock: Clock) -> AsyncIterator[Maker]:
    url = fresh_database(postgres_url, f"shared_{next(_databases)}")
    made: list[MinuteStore] = []

    def make(instance: str) -> MinuteStore:
        store = open_store(url, StoreSettings(max_future=YEAR_S), clock=clock, instance=instance)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


async def test_each_hub_sees_the_series_the_other_writes(shared: Maker, clock: Clock) -> None:
    a, b = shared("hub-a"), shared("hub-b")
    await a.open()
    await b.open()  # before a has any series
    await a.accept(batch(1, {POWER: [(T0 + 1000, 5.0)]}, agent="farm-gw", site="farm"))
    await b.accept(batch(1, {OTHER: [(T0 + 1000, 7.0)]}, agent="barn-gw", site="barn"))
    clock.at(T0 + MINUTE + 11_000)
    await a.flush()
    await b.flush()
    for store in (a, b):
        assert {key.site_id for key in await store.series()} == {"farm", "barn"}
        found = await store.query(SeriesFilter(), T0, T0 + MINUTE)
        assert {(s.key.site_id, s.points[0].avg) for s in found} == {("farm", 5.0), ("barn", 7.0)}
        assert {latest.key.site_id for latest in await store.latest()} == {"farm", "barn"}


async def test_a_restarted_hub_rebuilds_only_its_own_open_rollups(
    shared: Maker, clock: Clock
) -> None:
    a, b = shared("hub-a"), shared("hub-b")
    await a.open()
    await b.open()
    for minute in range(30):  # both write the first half hour of an hour
        stamp = T0 + minute * MINUTE + 1000
        await a.accept(batch(minute + 1, {POWER: [(stamp, 1.0)]}, agent="farm-gw", site="farm"))
        await b.accept(batch(minute + 1, {OTHER: [(stamp, 2.0)]}, agent="barn-gw", site="barn"))
        clock.at(stamp + MINUTE + 10_000)
        await a.flush()
        await b.flush()
    await a.close()
    a = shared("hub-a")  # a restarts mid-hour and rebuilds its open hour from the minutes
    await a.open()
    clock.at(T0 + HOUR + 11_000)
    await a.flush()
    await b.flush()
    [barn, farm] = sorted(
        await a.query(SeriesFilter(), T0, T0 + HOUR, Resolution.HOUR), key=lambda s: s.key
    )
    assert [(p.samples, p.avg) for p in barn.points] == [(30, 2.0)]
    assert [(p.samples, p.avg) for p in farm.points] == [(30, 1.0)]


async def test_a_restart_ends_its_own_sessions_not_the_other_hub_s(
    shared: Maker, clock: Clock
) -> None:
    a, b = shared("hub-a"), shared("hub-b")
    await a.open()
    await b.open()
    await a.backend.beat("hub-a", clock())
    await b.backend.beat("hub-b", clock())
    await a.backend.save_session(SessionRecord("s-a", "farm-gw", "ipv4:1", clock()), "hub-a")
    await b.backend.save_session(SessionRecord("s-b", "barn-gw", "ipv4:2", clock()), "hub-b")
    await a.close()
    clock.at(T0 + 10_000)
    a = shared("hub-a")
    await a.open()
    ended = {s.session_id: s.end_reason for s in await a.backend.sessions(None, 10)}
    assert ended == {"s-a": "hub stopped", "s-b": None}
    clock.at(T0 + 600_000)  # hub-b has been silent for ten minutes: gone
    again = shared("hub-a")
    await again.open()
    assert {s.end_reason for s in await again.backend.sessions(None, 10)} == {"hub stopped"}


async def test_registrations_show_connected_while_their_hub_beats(
    shared: Maker, clock: Clock
) -> None:
    a, b = shared("hub-a"), shared("hub-b")
    await a.open()
    await b.open()
    farm = Registration("farm-gw", "farm", assets=(AssetInfo("bess-1", commands=("x",)),))
    await a.backend.save_registrations("hub-a", [(farm, True)])
    await a.backend.beat("hub-a", 100.0)
    [row] = await b.backend.registrations(alive_after=50.0)
    assert (row.registration, row.hub, row.connected) == (farm, "hub-a", True)
    [row] = await b.backend.registrations(alive_after=150.0)  # hub-a silent since
    assert row.connected is False
