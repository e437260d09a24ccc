"""A week of rolling plans on a simulated site: forecasts wrong, plans carried out through
the Dispatcher, cost counted from what the simulated battery did.

Run: ``scripts/in-env python bench/mpc_week.py`` (``--pv-error``, ``--load-error``,
``--seed``, ``--days``).

The site: a 10 kWh / 5 kW battery (``edge_ems.sim.bess.SimulatedBess`` over
``edge_ems.sim.physics.Battery``, 95 % each way, 10-100 % SOC) behind a house with 6 kWp
of PV, starting a Monday in March. Truth (PV, house load, day-ahead prices, export at
``min(0.5 x import, 0.15)``) comes from ``bench/_scenarios.py``. Every 15 simulated minutes:

1. read the battery's SOC through the device;
2. forecast PV and load as truth x (1 + error): the error is ``--pv-error`` (default 0.2)
   and ``--load-error`` (0.1) standard deviations of a per-day and a per-step seeded normal,
   scaled by ``sqrt(min(1, lead / 12 h))`` (the next hours are forecast better);
3. plan from now to the end of the known prices (tomorrow's from 13:00, as the day-ahead
   market publishes them), the battery's leftover energy valued at the median import price
   of the horizon times the round-trip efficiency, warm-started from the previous plan;
4. send the first step's battery power through a ``Dispatcher`` (``PlanExecutor``, a
   30-minute lease), and advance the simulated clock minute by minute: the battery
   integrates, clamps at its SOC limits, and the grid takes the rest of the true load and PV.

Compared with: the same week planned once with perfect knowledge (the same model over all
672 steps, ending at the SOC the rolling plans ended at, so both leave the same energy
behind), the battery in plain self-consumption, and no battery. Figures: each cost, the
rolling plans' gap to perfect foresight (``gap_vs_perfect_pct``, relative to perfect
foresight's cost, target at most 5 %; ``gap_vs_perfect_savings_pct``, relative to what
perfect foresight saves over no battery, which stays meaningful in a week whose cost nets
out near zero), the share of perfect foresight's savings over self-consumption they
captured, and solve times.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from _common import emit, median, progress
from _scenarios import house_load, import_prices, solar
from edge_ems.dispatch import ControlPolicy, Dispatcher
from edge_ems.planner.audit import grid_cost, self_consumption
from edge_ems.planner.execute import PlanExecutor
from edge_ems.planner.plan import Plan
from edge_ems.planner.problem import Battery, Grid, Horizon, Problem, Pv, series
from edge_ems.planner.solver import solve
from edge_ems.sim.bess import SimulatedBess
from edge_ems.sim.physics import Battery as PhysicalBattery

ZONE = ZoneInfo("Europe/Prague")
STEP = timedelta(minutes=15)
START = datetime(2026, 3, 9, tzinfo=ZONE)  # a Monday
CAPACITY_WH, POWER_W, EFFICIENCY = 10_000.0, 5000.0, 0.95
SOC_MIN, SOC_MAX, SOC_START = 0.10, 1.0, 0.5
PUBLISHED_HOUR = 13


class SimClock:
    """Simulated time, moved by the bench."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def battery(soc: float, *, final: float | None = None, value: float = 0.0) -> Battery:
    return Battery(
        id="battery", capacity_wh=CAPACITY_WH, charge_max_w=POWER_W, discharge_max_w=POWER_W,
        soc_initial=soc, charge_efficiency=EFFICIENCY, discharge_efficiency=EFFICIENCY,
        soc_min=SOC_MIN, soc_max=SOC_MAX, soc_final=final, final_rule="equal",
        terminal_value_per_kwh=value,
    )  # fmt: skip


class Truth:
    """What really happens, step by step, and the forecasts of it."""

    def __init__(self, days: int, seed: int, pv_error: float, load_error: float) -> None:
        rng = np.random.default_rng(seed)
        total = (days + 2) * 96
        self.times = [(START.astimezone(UTC) + k * STEP).astimezone(ZONE) for k in range(total)]
        self.pv = solar(self.times, rng, 6000.0)
        self.load = house_load(self.times, rng)
        self.buy = import_prices(self.times, rng)
        self.sell = np.round(np.minimum(0.5 * self.buy, 0.15), 5)
        day_of = np.array([(t.date() - START.date()).days for t in self.times])
        self.pv_noise = rng.normal(0, 1, size=days + 3)[day_of] + 0.5 * rng.normal(0, 1, size=total)
        self.load_noise = rng.normal(0, 1, size=days + 3)[day_of] + 0.5 * rng.normal(
            0, 1, size=total
        )
        self.pv_error, self.load_error = pv_error, load_error

    def known_until(self, step: int) -> int:
        """The first step whose price is not yet published at ``step``."""
        now = self.times[step]
        last_day = now.date() + timedelta(days=1 if now.hour >= PUBLISHED_HOUR else 0)
        end = datetime.combine(last_day + timedelta(days=1), datetime.min.time(), tzinfo=ZONE)
        return min(len(self.times), int((end.astimezone(UTC) - START.astimezone(UTC)) / STEP))

    def forecast(self, step: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        lead = np.arange(end - step) * 0.25
        scale = np.sqrt(np.minimum(1.0, lead / 12.0))
        pv = self.pv[step:end] * np.maximum(
            0.0, 1 + self.pv_error * scale * self.pv_noise[step:end]
        )
        load = self.load[step:end] * np.maximum(
            0.2, 1 + self.load_error * scale * self.load_noise[step:end]
        )
        return pv, load


async def rolling(truth: Truth, steps: int) -> tuple[float, float, list[float], np.ndarray]:
    """The week under rolling plans; (cost, final SOC, solve ms, battery power per step)."""
    clock = SimClock(START.timestamp())
    physical = PhysicalBattery(
        capacity_wh=CAPACITY_WH, max_charge_w=POWER_W, max_discharge_w=POWER_W,
        soc_pct=SOC_START * 100, soc_min_pct=SOC_MIN * 100, soc_max_pct=SOC_MAX * 100,
        efficiency=EFFICIENCY,
    )  # fmt: skip
    bess = SimulatedBess("bess-1", physical, clock=clock)
    policy = ControlPolicy(enable_control=True, dry_run=False, lease_ttl=1800.0,
                           writes_per_minute=1000)  # fmt: skip
    dispatcher = Dispatcher("week", policy, lambda record: None, clock=clock, monotonic=clock)
    dispatcher.add_device("bess-1", bess, bess.limits)
    await bess.connect()
    executor = PlanExecutor(dispatcher, {"battery": "bess-1"}, lease_s=1800.0)
    solve_ms: list[float] = []
    grid = np.zeros(steps)
    delivered = np.zeros(steps)
    previous: Plan | None = None
    try:
        for step in range(steps):
            readings = await bess.read()
            soc = float(readings["soc_pct"].value) / 100.0  # type: ignore[arg-type]
            end = truth.known_until(step)
            pv, load = truth.forecast(step, end)
            n = end - step
            buy, sell = truth.buy[step:end], truth.sell[step:end]
            value = float(np.median(buy)) * EFFICIENCY * EFFICIENCY
            problem = Problem(
                horizon=Horizon(truth.times[step], 15, n),
                load_w=series(load, n, "load"), import_price=series(buy, n, "buy"),
                export_price=series(sell, n, "sell"), pv=Pv(series(pv, n, "pv")),
                grid=Grid(import_max_w=17_000.0, export_max_w=10_000.0),
                batteries=(battery(min(max(soc, 0.0), 1.0), value=value),),
            )  # fmt: skip
            began = time.perf_counter()
            plan = solve(problem, previous=previous)
            solve_ms.append((time.perf_counter() - began) * 1000.0)
            previous = plan
            await executor.apply(plan, truth.times[step])
            before = physical.discharge_energy_wh - physical.charge_energy_wh
            for _ in range(15):
                clock.now += 60.0
                await bess.read()
            after = physical.discharge_energy_wh - physical.charge_energy_wh
            delivered[step] = (after - before) / 0.25
            grid[step] = truth.load[step] - truth.pv[step] - delivered[step]
            if (step + 1) % 96 == 0:
                progress(f"  day {(step + 1) // 96}: SOC {physical.soc_pct:.1f} %, "
                         f"median solve {median(solve_ms):.1f} ms")  # fmt: skip
    finally:
        await dispatcher.close(release=False)
    cost = grid_cost(grid, truth.buy[:steps], truth.sell[:steps], 0.25)
    return cost, physical.soc_pct / 100.0, solve_ms, delivered


def perfect(truth: Truth, steps: int, final_soc: float) -> float:
    """The same model over the whole week with the truth, ending where the rolling plans did."""
    problem = Problem(
        horizon=Horizon(truth.times[0], 15, steps),
        load_w=series(truth.load[:steps], steps, "load"),
        import_price=series(truth.buy[:steps], steps, "buy"),
        export_price=series(truth.sell[:steps], steps, "sell"),
        pv=Pv(series(truth.pv[:steps], steps, "pv")),
        grid=Grid(import_max_w=17_000.0, export_max_w=10_000.0),
        batteries=(battery(SOC_START, final=min(max(final_soc, SOC_MIN), SOC_MAX)),),
    )
    plan = solve(problem)
    assert not plan.shortfalls, plan.shortfalls
    return plan.cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--pv-error", type=float, default=0.2)
    parser.add_argument("--load-error", type=float, default=0.1)
    args = parser.parse_args()
    truth = Truth(args.days, args.seed, args.pv_error, args.load_error)
    steps = args.days * 96
    progress(f"{args.days} days, re-planned every 15 minutes ({steps} plans)")
    began = time.perf_counter()
    cost, final_soc, solve_ms, _ = asyncio.run(rolling(truth, steps))
    elapsed = time.perf_counter() - began
    best = perfect(truth, steps, final_soc)
    net = truth.load[:steps] - truth.pv[:steps]
    sc_grid, _ = self_consumption(net, [battery(SOC_START)], 0.25)
    sc_cost = grid_cost(sc_grid, truth.buy[:steps], truth.sell[:steps], 0.25)
    bare = grid_cost(net, truth.buy[:steps], truth.sell[:steps], 0.25)
    gap = (cost - best) / abs(best) * 100.0 if best else math.inf
    # The same against what is at stake (perfect foresight's savings over no battery): the
    # plain percentage means little in a week whose cost nets out near zero.
    stake = (cost - best) / (bare - best) * 100.0 if bare != best else math.nan
    captured = (sc_cost - cost) / (sc_cost - best) * 100.0 if sc_cost != best else math.nan
    emit(
        {
            "bench": "mpc_week",
            "days": args.days,
            "plans": steps,
            "pv_error": args.pv_error,
            "load_error": args.load_error,
            "seed": args.seed,
            "rolling_cost_eur": round(cost, 4),
            "perfect_foresight_cost_eur": round(best, 4),
            "self_consumption_cost_eur": round(sc_cost, 4),
            "no_battery_cost_eur": round(bare, 4),
            "gap_vs_perfect_pct": round(gap, 2),
            "gap_vs_perfect_savings_pct": round(stake, 2),
            "captured_savings_vs_self_consumption_pct": round(captured, 1),
            "final_soc": round(final_soc, 4),
            "solve_median_ms": round(median(solve_ms), 2),
            "solve_p95_ms": round(float(np.percentile(solve_ms, 95)), 2),
            "wall_s": round(elapsed, 1),
        }
    )


if __name__ == "__main__":
    main()
