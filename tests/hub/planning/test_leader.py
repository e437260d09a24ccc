"""The leader lease on the real PostgreSQL server, and the planner's tables on both
databases: one leader at a time, a standby that takes over, a leader that fences itself."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from edge_ems.hub.planning.config import LeaderConfig
from edge_ems.hub.planning.leader import PostgresLeadership
from edge_ems.hub.planning.overrides import Override
from edge_ems.hub.planning.records import PlannerRecords, open_database
from edge_ems.hub.planning.series import from_values

from ..store.postgres import fresh_database
from .conftest import T0

FAST = LeaderConfig(heartbeat_s=0.3, fence_s=1.5, server_timeout_s=3.0)
_names = itertools.count(1)


@pytest.fixture
def shared(postgres_url: str) -> str:
    return fresh_database(postgres_url, f"planner_{next(_names)}")


@contextlib.asynccontextmanager
async def leading(url: str, name: str) -> AsyncIterator[PostgresLeadership]:
    leadership = PostgresLeadership(url, name, FAST)
    task = asyncio.get_running_loop().create_task(leadership.run())
    try:
        yield leadership
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(condition, within: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - state another task changes
            await asyncio.sleep(0.05)


async def test_one_leads_and_a_standby_takes_over(shared: str) -> None:
    async with leading(shared, "hub-b") as standby:
        async with leading(shared, "hub-a") as first:
            await until(lambda: first.is_leader or standby.is_leader)
            leader, waiting = (first, standby) if first.is_leader else (standby, first)
            await until(lambda: waiting.leader == leader.name)
            for _ in range(10):  # never two leaders
                await asyncio.sleep(FAST.heartbeat_s)
                assert leader.is_leader
                assert not waiting.is_leader
        # hub-a has gone: its connection closed, and its lock with it if it held one.
        await until(lambda: standby.is_leader, within=FAST.server_timeout_s + 5)


async def test_a_leader_that_cannot_confirm_fences_itself(shared: str) -> None:
    clock = [0.0]
    leadership = PostgresLeadership(shared, "hub-a", FAST, monotonic=lambda: clock[0])
    task = asyncio.get_running_loop().create_task(leadership.run())
    try:
        await until(lambda: leadership.is_leader)
        clock[0] += FAST.fence_s  # no confirmation for fence_s: no longer the leader
        assert not leadership.is_leader
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture(params=["sqlite", "postgresql"])
async def records(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[PlannerRecords]:
    where: str | Path = tmp_path / "store.db"
    if request.param == "postgresql":
        where = fresh_database(request.getfixturevalue("postgres_url"), f"records_{next(_names)}")
    opened = PlannerRecords(await open_database(where))
    yield opened
    await opened.close()


def ms(moment) -> int:  # type: ignore[no-untyped-def]
    return round(moment.timestamp() * 1000)


async def test_the_planner_tables(records: PlannerRecords) -> None:
    assert await records.plan("farm") is None
    assert await records.version("farm") == 0
    assert await records.save_plan("farm", 3, 1, {"version": 3})
    assert not await records.save_plan("farm", 2, 2, {"version": 2})  # an older one loses
    assert await records.plan("farm") == (3, {"version": 3})
    held = Override("farm", "bat", "battery_power_setpoint_w", -1000, ms(T0),
                    ms(T0 + timedelta(hours=1)), "ann", ms(T0))  # fmt: skip
    other = Override("farm", "ev", "ev_charging_enabled", False, ms(T0),
                     ms(T0 + timedelta(hours=2)), "bob", ms(T0) + 1)  # fmt: skip
    for override in (held, other):
        await records.add_override(override)
    assert await records.overrides("farm", ms(T0)) == [held, other]
    assert await records.overrides("farm", ms(T0 + timedelta(minutes=90))) == [other]
    assert await records.remove_overrides(site_id="farm", asset_id="ev") == [other]
    assert await records.overrides(None, ms(T0)) == [held]
    series = from_values(T0, timedelta(hours=1), [0.1, 0.2], "EUR/kWh", "sensor.price")
    await records.save_inputs("farm", "spot_price", series, 5)
    [(kind, (kept, received))] = (await records.inputs("farm")).items()
    assert (kind, received, kept.source, kept.step_s) == ("spot_price", 5, "sensor.price", 3600)
    assert np.array_equal(kept.values, series.values)
    await records.save_audit("farm", ms(T0), 3, {"a": 1})
    await records.save_audit("farm", ms(T0), 3, {"a": 2})
    assert await records.audits("farm", ms(T0), ms(T0) + 1) == [{"a": 2}]
    assert await records.audited("farm", ms(T0))
    await records.prune_audits(ms(T0) + 1)
    assert await records.audits("farm", 0, ms(T0) + 1) == []
