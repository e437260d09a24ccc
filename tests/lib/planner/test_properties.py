"""Any problem, feasible or not, gets a plan that keeps every physical limit and lists what
it misses (hypothesis draws the problems: tight grids, empty batteries, negative prices,
EVs wanting more than their window holds, cold houses, windows too short)."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_ems.planner.check import violations
from edge_ems.planner.plan import PlanStatus
from edge_ems.planner.problem import (
    Battery,
    ChargeMode,
    Deferrable,
    Ev,
    Grid,
    HeatPump,
    Hold,
    Horizon,
    Problem,
    Pv,
    series,
)
from edge_ems.planner.solver import SolveOptions, solve

from .support import START

POWER = st.floats(0, 6000, allow_nan=False)
PRICE = st.floats(-0.3, 0.8, allow_nan=False)
FRACTION = st.floats(0, 1, allow_nan=False)


def arrays(n: int, values: st.SearchStrategy[float]) -> st.SearchStrategy[list[float]]:
    return st.lists(values, min_size=n, max_size=n)


@st.composite
def batteries(draw: st.DrawFn, index: int) -> Battery:
    low, high = sorted((draw(FRACTION), draw(FRACTION)))
    final = draw(st.none() | FRACTION)
    return Battery(
        id=f"b{index}",
        capacity_wh=draw(st.floats(500, 20_000)),
        charge_max_w=draw(st.floats(0, 6000)),
        discharge_max_w=draw(st.floats(0, 6000)),
        soc_initial=draw(FRACTION),
        charge_efficiency=draw(st.floats(0.5, 1)),
        discharge_efficiency=draw(st.floats(0.5, 1)),
        soc_min=low,
        soc_max=high,
        soc_final=final,
        final_rule=draw(st.sampled_from(["equal", "at_least"])),
        cycle_cost_per_kwh=draw(st.floats(0, 0.1)),
        grid_charge_allowed=draw(st.booleans()),
        export_allowed=draw(st.booleans()),
    )


@st.composite
def deferrables(draw: st.DrawFn, index: int, n: int) -> Deferrable:
    on_off = draw(st.booleans())
    single = on_off and draw(st.booleans())
    timed = on_off and not single and draw(st.booleans())
    earliest = draw(st.integers(0, n - 1))
    return Deferrable(
        id=f"d{index}",
        power_w=draw(st.floats(100, 4000)),
        required_steps=draw(st.integers(0, n)),
        earliest_step=earliest,
        latest_step=draw(st.integers(earliest + 1, n)),
        on_off=on_off,
        single_block=single,
        min_on_steps=draw(st.integers(1, 3)) if timed else 1,
        min_off_steps=draw(st.integers(1, 3)) if timed else 1,
        running_steps=draw(st.integers(0, 2)) if on_off and earliest == 0 else 0,
    )


@st.composite
def evs(draw: st.DrawFn, n: int) -> Ev:
    arrive = draw(st.integers(0, n - 1))
    phases = draw(st.sampled_from([(1,), (3,), (1, 3)]))
    low = draw(st.floats(6, 10))
    need = draw(st.floats(0, 40_000))
    return Ev(
        id="car",
        energy_needed_wh=need,
        arrive_step=arrive,
        depart_step=draw(st.integers(arrive + 1, n + 4)),
        energy_max_wh=need + draw(st.floats(0, 5000)),
        modes=tuple(ChargeMode(p, low, draw(st.floats(low, 32))) for p in phases),
    )


@st.composite
def heat_pumps(draw: st.DrawFn, n: int) -> HeatPump:
    low = draw(st.floats(17, 22))
    return HeatPump(
        id="hp",
        max_power_w=draw(st.floats(500, 5000)),
        min_power_w=draw(st.sampled_from([0.0, 300.0])),
        cop=series(draw(arrays(n, st.floats(1.5, 5))), n, "cop"),
        outdoor_temp_c=series(draw(arrays(n, st.floats(-15, 20))), n, "outdoor"),
        comfort_min_c=series(low, n, "min"),
        comfort_max_c=series(low + draw(st.floats(0, 4)), n, "max"),
        indoor_temp_c=draw(st.floats(12, 26)),
        heat_capacity_kwh_per_k=draw(st.floats(2, 20)),
        heat_loss_w_per_k=draw(st.floats(50, 400)),
    )


@st.composite
def problems(draw: st.DrawFn) -> Problem:
    n = draw(st.integers(2, 12))
    step = draw(st.sampled_from([15, 30, 60]))
    import_max = draw(st.sampled_from([np.inf, 3000.0, 11_000.0]))
    export_max = draw(st.sampled_from([np.inf, 0.0, 2000.0]))
    buy = draw(arrays(n, PRICE))
    sell = [min(b, s) for b, s in zip(buy, draw(arrays(n, PRICE)), strict=True)]
    if draw(st.booleans()):  # now and then export pays more than import
        sell = draw(arrays(n, PRICE))
    kwargs: dict[str, Any] = {
        "batteries": tuple(draw(batteries(i)) for i in range(draw(st.integers(0, 2)))),
        "deferrables": tuple(draw(deferrables(i, n)) for i in range(draw(st.integers(0, 2)))),
        "evs": (draw(evs(n)),) if draw(st.booleans()) else (),
        "heat_pumps": (draw(heat_pumps(n)),) if draw(st.booleans()) else (),
    }
    holdable = [a.id for group in kwargs.values() for a in group
                if not getattr(a, "single_block", False)]  # fmt: skip
    holds = []
    for asset in holdable:
        if draw(st.booleans()):
            first = draw(st.integers(0, n - 1))
            last = draw(st.integers(first + 1, n))
            holds.append(Hold(asset, first, last, draw(st.floats(-8000, 8000))))
    kwargs["holds"] = tuple(holds)
    return Problem(
        horizon=Horizon(START, step, n),
        load_w=series(draw(arrays(n, POWER)), n, "load"),
        import_price=series(buy, n, "buy"),
        export_price=series(sell, n, "sell"),
        pv=Pv(series(draw(arrays(n, POWER)), n, "pv"), curtailable=draw(st.booleans())),
        grid=Grid(
            import_max_w=import_max,
            export_max_w=export_max,
            simultaneous_import_export_allowed=draw(st.booleans()),
        ),
        simultaneous_charge_discharge_allowed=draw(st.booleans()),
        **kwargs,
    )


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_every_problem_gets_a_plan_within_its_limits(problem: Problem) -> None:
    plan = solve(problem, SolveOptions(time_limit_s=30))
    assert plan.status is not PlanStatus.FALLBACK
    assert violations(problem, plan) == []
    assert plan.objective >= plan.bound - 1e-6 * max(1.0, abs(plan.objective))
