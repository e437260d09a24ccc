"""The load baseline (from the hub's real minute store on SQLite, and from a reader in
memory) and the heat pump's COP curve."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from edge_ems.gateway.model import SeriesSamples, TelemetryBatch
from edge_ems.hub.store import Retention, StoreSettings, open_store
from edge_ems.planner.baseline import BaselineSpec, Term, build_baseline
from edge_ems.planner.cop import DATASHEET_AIR_WATER_35, CopCurve, cop_curve, fit_cop
from edge_ems.planner.errors import PlanInputError
from edge_ems.planner.problem import Horizon
from edge_ems.planner.store_reader import StoreMinuteReader

PRAGUE = ZoneInfo("Europe/Prague")
# Monday 2 March 2026, local midnight: 15 days of history end on Tuesday 17 March.
HISTORY = datetime(2026, 3, 2, tzinfo=PRAGUE)
NOW = HISTORY + timedelta(days=15)
SPEC = BaselineSpec(
    "home", PRAGUE, load=(Term("meter", "load_power_w"),),
    controllable=(Term("wallbox", "ac_power_w", -1.0),), weeks=2,
)  # fmt: skip


def house(moment: datetime) -> tuple[float, float]:
    """The meter's load and the wallbox's power (negative: it consumes) at ``moment``."""
    local = moment.astimezone(PRAGUE)
    load = 400.0
    if local.weekday() < 5 and 18 <= local.hour < 19:
        load += 2000.0
    car = -7000.0 if local.weekday() == 1 and local.hour >= 22 else 0.0
    return load - car, car


async def test_a_baseline_from_the_minute_store_leaves_the_car_out(tmp_path: Path) -> None:
    # Minutes kept 30 days: the default 14 would start trimming the first hour of the window.
    settings = StoreSettings(retention=Retention(minute_days=30))
    store = open_store(tmp_path / "store.db", settings, clock=lambda: NOW.timestamp() + 3600)
    await store.open()
    try:
        start = int(HISTORY.timestamp() * 1000)
        times = list(range(start, int(NOW.timestamp() * 1000), 300_000))
        values = [house(datetime.fromtimestamp(t / 1000, UTC)) for t in times]
        for seq, first in enumerate(range(0, len(times), 288), start=1):
            chunk = slice(first, first + 288)
            meter = [v[0] for v in values[chunk]]
            car = [v[1] for v in values[chunk]]
            series = [
                SeriesSamples("meter", "load_power_w", times[chunk], meter),
                SeriesSamples("wallbox", "ac_power_w", times[chunk], car),
            ]
            await store.accept(TelemetryBatch("agent", "home", seq, series))
        await store.flush(full=True)
        baseline = await build_baseline(StoreMinuteReader(store), SPEC, NOW)
    finally:
        await store.close()
    profile = baseline.profile_w
    tuesday, saturday, monday = 1, 5, 0
    assert profile[tuesday, 22 * 4] == pytest.approx(400.0)  # the car is not the house
    assert profile[monday, 18 * 4 + 2] == pytest.approx(2400.0)
    assert profile[saturday, 18 * 4] == pytest.approx(400.0)
    assert baseline.samples == 14 * 96
    horizon = Horizon(datetime(2026, 3, 17, 17, tzinfo=PRAGUE), 30, 6)
    assert baseline.forecast(horizon) == pytest.approx([400, 400, 2400, 2400, 400, 400])


class MemoryReader:
    """Minute data in memory: {(asset, metric): [(ms, mean), ...]} at 5 minutes."""

    def __init__(self, data: dict[tuple[str, str], list[tuple[int, float]]]) -> None:
        self.data = data

    async def mean_power(
        self, site_id: str, asset_id: str, metric: str, start_ms: int, end_ms: int
    ) -> Sequence[tuple[int, float]]:
        rows = self.data.get((asset_id, metric), [])
        return [(t, v) for t, v in rows if start_ms <= t < end_ms]


async def test_a_short_history_borrows_from_similar_days() -> None:
    start = int(datetime(2026, 3, 9, tzinfo=PRAGUE).timestamp() * 1000)
    # One week only: each weekday has one sample per slot, so weekdays share theirs.
    rows = [(start + k * 300_000, 300.0 + (100.0 if k % 288 < 12 else 0.0))
            for k in range(7 * 288)]  # fmt: skip
    reader = MemoryReader({("meter", "load_power_w"): rows})
    spec = BaselineSpec("home", PRAGUE, load=(Term("meter", "load_power_w"),), weeks=1)
    baseline = await build_baseline(reader, spec, datetime(2026, 3, 16, tzinfo=PRAGUE))
    assert baseline.profile_w[2, 0] == pytest.approx(400.0)
    assert baseline.profile_w[2, 50] == pytest.approx(300.0)
    with pytest.raises(PlanInputError, match="no load data for site 'home'"):
        await build_baseline(MemoryReader({}), spec, datetime(2026, 3, 16, tzinfo=PRAGUE))
    with pytest.raises(PlanInputError, match="at least one load term"):
        BaselineSpec("home", PRAGUE, load=())


def test_the_datasheet_curve_interpolates_and_holds_flat_beyond() -> None:
    curve = DATASHEET_AIR_WATER_35
    assert curve([-7.0, 2.0, 30.0, -30.0]) == pytest.approx([2.7, 3.5, 5.2, 2.0])
    assert curve([-2.5])[0] == pytest.approx(3.1)
    with pytest.raises(PlanInputError, match="must rise"):
        CopCurve(((5.0, 3.0), (0.0, 2.5)))


def test_cop_fitted_from_enough_history() -> None:
    rng = np.random.default_rng(3)
    outdoor = rng.uniform(-10, 12, 600)
    true_cop = 3.2 + 0.09 * outdoor
    electric = rng.uniform(800, 2500, 600)
    heat = electric * true_cop * rng.normal(1, 0.03, 600)
    fitted = fit_cop(outdoor, heat, -electric)  # the heat pump's power is negative: it consumes
    assert fitted is not None
    assert fitted.source == "history"
    assert fitted([0.0, 10.0]) == pytest.approx([3.2, 4.1], abs=0.08)


def test_too_little_history_falls_back_to_the_datasheet() -> None:
    outdoor = np.full(50, 5.0)  # one narrow band of temperatures is not a curve
    electric = np.full(50, 1000.0)
    assert fit_cop(outdoor, electric * 4, electric) is None
    assert cop_curve((outdoor, electric * 4, electric)) is DATASHEET_AIR_WATER_35
    assert cop_curve(None) is DATASHEET_AIR_WATER_35
    standby = fit_cop(np.linspace(-10, 10, 100), np.full(100, 50.0), np.full(100, 20.0))
    assert standby is None
    with pytest.raises(PlanInputError, match="differ in length"):
        fit_cop([1.0, 2.0], [1.0], [1.0])
    assert math.isfinite(float(DATASHEET_AIR_WATER_35([0.0])[0]))
