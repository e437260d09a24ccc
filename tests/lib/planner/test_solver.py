"""The solver on problems small enough to know the answer."""

from __future__ import annotations

import numpy as np
import pytest

from edge_ems.planner.check import violations
from edge_ems.planner.errors import PlanInputError
from edge_ems.planner.plan import Decisions, PlanStatus, ShortfallKind, assemble
from edge_ems.planner.problem import ChargeMode, Deferrable, Ev, Grid, HeatPump, series
from edge_ems.planner.solver import SolveOptions, solve

from .support import battery, on_steps, problem

CHEAP_THEN_DEAR = [0.1] * 4 + [0.5] * 4


def kinds(plan: object) -> set[tuple[str, str]]:
    return {(str(s.kind), s.asset_id) for s in plan.shortfalls}  # type: ignore[attr-defined]


def test_battery_buys_cheap_and_serves_the_dear_hours() -> None:
    case = problem(buy=CHEAP_THEN_DEAR, batteries=[battery(soc_final=0.5, final_rule="equal")])
    plan = solve(case)
    [store] = plan.batteries
    assert plan.status is PlanStatus.OPTIMAL
    assert violations(case, plan) == []
    assert store.charge_w[:4].sum() > 0
    assert store.charge_w[4:].sum() == pytest.approx(0.0, abs=1e-6)
    assert store.discharge_w[4:].sum() > 0
    assert store.soc[-1] == pytest.approx(0.5, abs=1e-4)
    idle = solve(problem(buy=CHEAP_THEN_DEAR))
    assert plan.cost < idle.cost
    assert plan.shortfalls == ()


def test_an_on_off_load_takes_the_cheapest_steps() -> None:
    prices = [0.3, 0.1, 0.4, 0.05, 0.2, 0.15, 0.5, 0.25]
    load = Deferrable("washer", power_w=2000.0, required_steps=3)
    plan = solve(problem(buy=prices, deferrables=[load]))
    assert on_steps(plan.deferrables[0].power_w) == [1, 3, 5]
    assert set(plan.deferrables[0].power_w) <= {0.0, 2000.0}


def test_a_single_block_runs_in_one_piece_at_its_cheapest() -> None:
    prices = [0.05, 0.5, 0.05, 0.2, 0.2, 0.2, 0.5, 0.5]
    load = Deferrable("dryer", power_w=1000.0, required_steps=3, single_block=True)
    plan = solve(problem(buy=prices, deferrables=[load]))
    assert on_steps(plan.deferrables[0].power_w) == [2, 3, 4]


def test_a_window_too_short_is_a_listed_shortfall() -> None:
    load = Deferrable("pump", power_w=500.0, required_steps=4, earliest_step=5, latest_step=7)
    case = problem(deferrables=[load])
    plan = solve(case)
    assert on_steps(plan.deferrables[0].power_w) == [5, 6]
    assert kinds(plan) == {("run_time", "pump")}
    assert violations(case, plan) == []


def test_minimum_on_and_off_times_shape_the_runs() -> None:
    prices = [0.1, 0.5, 0.1, 0.5, 0.1, 0.5, 0.1, 0.5, 0.1, 0.5]
    load = Deferrable("heater", 1000.0, required_steps=4, min_on_steps=2, min_off_steps=2)
    case = problem(buy=prices, n=10, deferrables=[load])
    plan = solve(case)
    steps = on_steps(plan.deferrables[0].power_w)
    assert len(steps) == 4
    assert violations(case, plan) == []


def test_a_running_block_carries_on() -> None:
    load = Deferrable("oven", 1500.0, required_steps=2, single_block=True, running_steps=1,
                      earliest_step=0)  # fmt: skip
    plan = solve(problem(buy=[0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1], deferrables=[load]))
    assert on_steps(plan.deferrables[0].power_w) == [0, 1]


def test_an_ev_that_cannot_get_its_energy_charges_flat_out_and_says_so() -> None:
    ev = Ev("car", energy_needed_wh=30_000.0, arrive_step=2, depart_step=5,
            modes=(ChargeMode(phases=3, min_current_a=6, max_current_a=16),))  # fmt: skip
    case = problem(evs=[ev])
    plan = solve(case)
    [car] = plan.evs
    assert on_steps(car.power_w) == [2, 3, 4]
    assert car.current_a[2:5] == pytest.approx([16.0] * 3)
    assert kinds(plan) == {("ev_energy", "car")}
    assert violations(case, plan) == []


def test_an_ev_charges_at_least_its_minimum_current_when_it_charges() -> None:
    ev = Ev("car", energy_needed_wh=2000.0, depart_step=8,
            modes=(ChargeMode(phases=1, min_current_a=6, max_current_a=16),))  # fmt: skip
    prices = [0.3, 0.2, 0.1, 0.4, 0.5, 0.6, 0.7, 0.8]
    plan = solve(problem(buy=prices, evs=[ev]))
    [car] = plan.evs
    charging = car.current_a[car.current_a > 0]
    assert np.all(charging >= 6 - 1e-6)
    assert car.delivered_wh == pytest.approx(2000.0, abs=1.0)
    assert plan.shortfalls == ()


def test_an_ev_with_phase_switching_uses_one_mode_at_a_time() -> None:
    ev = Ev("car", energy_needed_wh=6000.0, depart_step=6,
            modes=(ChargeMode(1, 6, 16), ChargeMode(3, 6, 16)))  # fmt: skip
    case = problem(pv=[3000.0] * 6 + [0.0] * 2, load=200.0, evs=[ev])
    plan = solve(case)
    assert violations(case, plan) == []
    assert set(plan.evs[0].phases.tolist()) <= {0, 1, 3}
    assert plan.shortfalls == ()


def test_an_ev_leaving_before_the_start_is_refused() -> None:
    with pytest.raises(PlanInputError, match="departure is not after the plan starts"):
        Ev("car", energy_needed_wh=1000.0, depart_step=0)


def heat_pump(indoor: float, n: int = 12, outdoor: float = 0.0) -> HeatPump:
    return HeatPump(
        id="hp", max_power_w=3000.0, cop=series(3.0, n, "cop"),
        outdoor_temp_c=series(outdoor, n, "outdoor"), comfort_min_c=series(20.0, n, "min"),
        comfort_max_c=series(22.0, n, "max"), indoor_temp_c=indoor,
        heat_capacity_kwh_per_k=5.0, heat_loss_w_per_k=150.0, min_power_w=600.0,
    )  # fmt: skip


def test_the_heat_pump_keeps_the_comfort_band_and_heats_when_cheap() -> None:
    prices = [0.1] * 4 + [0.6] * 8
    case = problem(n=12, buy=prices, heat_pumps=[heat_pump(21.0)])
    plan = solve(case)
    [hp] = plan.heat_pumps
    assert plan.shortfalls == ()
    assert np.all(hp.indoor_temp_c >= 20.0 - 0.01)
    assert np.all(hp.indoor_temp_c <= 22.0 + 0.01)
    assert hp.power_w[:4].sum() > hp.power_w[4:8].sum()
    assert violations(case, plan) == []


def test_a_cold_house_is_a_listed_comfort_shortfall() -> None:
    plan = solve(problem(n=12, heat_pumps=[heat_pump(15.0)]))
    assert ("comfort", "hp") in kinds(plan)
    assert plan.heat_pumps[0].power_w[0] == pytest.approx(3000.0)


def test_negative_prices_never_make_a_battery_charge_and_discharge_at_once() -> None:
    prices = [0.2, -0.3, -0.3, -0.1, 0.4, 0.4, -0.2, 0.3]
    case = problem(buy=prices, sell=prices, batteries=[battery(soc_final=0.5)])
    plan = solve(case)
    [store] = plan.batteries
    assert np.all(np.minimum(store.charge_w, store.discharge_w) <= 1e-6)
    assert violations(case, plan) == []


def test_a_battery_that_may_not_export_only_lets_pv_surplus_out() -> None:
    pv = [0, 0, 3000, 3000, 3000, 0, 0, 0]
    case = problem(pv=pv, sell=0.4, buy=0.1, batteries=[battery(export_allowed=False)])
    plan = solve(case)
    surplus = np.maximum(0.0, np.array(pv) - 500.0)
    assert np.all(plan.grid_export_w <= surplus + 1.0)
    assert violations(case, plan) == []


def test_a_battery_barred_from_the_grid_charges_from_pv_only() -> None:
    pv = [0, 0, 1500, 1500, 0, 0, 0, 0]
    case = problem(pv=pv, buy=CHEAP_THEN_DEAR, batteries=[battery(grid_charge_allowed=False)])
    plan = solve(case)
    surplus = np.maximum(0.0, np.array(pv) - 500.0)
    assert np.all(plan.batteries[0].charge_w <= surplus + 1.0)
    assert violations(case, plan) == []


def test_export_paying_more_than_import_never_does_both_at_once() -> None:
    case = problem(buy=0.1, sell=0.3, pv=2000.0, grid=Grid(import_max_w=5000, export_max_w=5000))
    plan = solve(case)
    assert np.all(np.minimum(plan.grid_import_w, plan.grid_export_w) <= 1e-6)


def test_load_beyond_every_supply_is_unserved_and_listed_not_infeasible() -> None:
    case = problem(load=8000.0, grid=Grid(import_max_w=5000.0))
    plan = solve(case)
    assert plan.status is PlanStatus.OPTIMAL
    assert kinds(plan) == {("unserved_load", "site")}
    assert plan.grid_import_w == pytest.approx([5000.0] * 8)
    assert violations(case, plan) == []


def test_pv_beyond_the_export_limit_is_curtailed_where_it_may_be() -> None:
    stuck = problem(pv=9000.0, grid=Grid(export_max_w=3000.0))
    assert kinds(solve(stuck)) == {("excess_generation", "site")}
    curtailable = problem(pv=9000.0, grid=Grid(export_max_w=3000.0), curtailable=True)
    plan = solve(curtailable)
    assert plan.shortfalls == ()
    assert plan.curtailed_w == pytest.approx([5500.0] * 8)
    assert violations(curtailable, plan) == []


def test_negative_export_prices_curtail_instead_of_paying() -> None:
    case = problem(pv=4000.0, sell=-0.1, curtailable=True)
    plan = solve(case)
    assert plan.grid_export_w == pytest.approx([0.0] * 8, abs=1e-6)


def test_an_empty_battery_is_below_its_floor_and_says_so() -> None:
    store = battery(soc_initial=0.0, soc_min=0.2, charge_max_w=1000.0)
    case = problem(batteries=[store], buy=0.1)
    plan = solve(case)
    assert kinds(plan) == {("soc_floor", "battery")}
    # It charges as fast as it can until it is back above its floor.
    assert plan.batteries[0].charge_w[:2] == pytest.approx([1000.0, 1000.0])
    assert plan.batteries[0].soc[-1] >= 0.2 - 1e-4
    assert violations(case, plan) == []


def test_an_unreachable_final_soc_is_listed() -> None:
    store = battery(soc_initial=0.1, soc_final=1.0, final_rule="equal", charge_max_w=500.0)
    case = problem(batteries=[store])
    plan = solve(case)
    assert kinds(plan) == {("soc_final", "battery")}
    assert violations(case, plan) == []


def test_a_re_plan_starts_from_the_previous_plan() -> None:
    prices = [0.3, 0.1, 0.4, 0.05, 0.2, 0.15, 0.5, 0.25]
    load = Deferrable("washer", power_w=2000.0, required_steps=3)
    first = solve(problem(buy=prices, deferrables=[load]))
    again = solve(problem(buy=prices, deferrables=[load]), previous=first)
    assert on_steps(again.deferrables[0].power_w) == on_steps(first.deferrables[0].power_w)
    assert first.decisions
    assert again.cost == pytest.approx(first.cost)


def test_branch_and_bound_alone_agrees_with_the_rounding() -> None:
    prices = [0.3, 0.1, 0.4, 0.05, 0.2, 0.15, 0.5, 0.25]
    loads = [Deferrable("a", 2000.0, 3), Deferrable("b", 1000.0, 2, single_block=True)]
    case = problem(buy=prices, deferrables=loads, batteries=[battery()])
    quick = solve(case)
    plain = solve(case, SolveOptions(heuristic=False, mip_rel_gap=1e-6))
    assert quick.objective == pytest.approx(plain.objective, rel=1e-3)


def test_the_fallback_plan_idles_and_lists_what_it_misses() -> None:
    load = Deferrable("washer", power_w=2000.0, required_steps=3)
    case = problem(deferrables=[load], batteries=[battery(soc_final=0.8)])
    plan = assemble(case, Decisions.idle(case), status=PlanStatus.FALLBACK)
    assert kinds(plan) == {("run_time", "washer"), ("soc_final", "battery")}
    assert violations(case, plan) == []
    assert plan.grid_import_w == pytest.approx([500.0] * 8)


def test_shortfall_kinds_have_stable_keys() -> None:
    assert {str(kind) for kind in ShortfallKind} == {
        "unserved_load", "excess_generation", "soc_final", "soc_floor", "ev_energy",
        "run_time", "comfort",
    }  # fmt: skip


def test_holds_win_and_the_plan_goes_around_them() -> None:
    from edge_ems.planner.problem import Hold

    dear_then_cheap = [0.5] * 4 + [0.1] * 4
    ev = Ev("car", energy_needed_wh=4000.0, depart_step=8, modes=(ChargeMode(1, 6, 16),))
    washer = Deferrable("washer", 1000.0, required_steps=2)
    # What the battery is made to store is worth keeping: the car charges from the grid.
    stored = battery(terminal_value_per_kwh=0.4)
    case = problem(
        buy=dear_then_cheap, batteries=[stored], evs=[ev], deferrables=[washer],
        holds=(
            Hold("battery", 0, 2, -2000.0),  # charge 2 kW now, dear or not
            Hold("car", 4, 6, 0.0),  # the car may not charge in steps 4 and 5
            Hold("washer", 1, 2, -1000.0),  # run the washer in step 1
        ),
    )  # fmt: skip
    plan = solve(case)
    assert plan.batteries[0].charge_w[:2] == pytest.approx([2000.0, 2000.0])
    assert plan.evs[0].power_w[4:6] == pytest.approx([0.0, 0.0])
    assert plan.evs[0].power_w[6:].sum() > 0  # charges in the cheap steps it may use
    assert on_steps(plan.deferrables[0].power_w)[0] == 1
    assert violations(case, plan) == []


def test_a_hold_the_battery_cannot_keep_is_kept_as_far_as_it_can() -> None:
    from edge_ems.planner.problem import Hold

    empty = battery(soc_initial=0.1, soc_min=0.1)
    plan = solve(problem(batteries=[empty], holds=(Hold("battery", 0, 4, 2000.0),)))
    assert plan.batteries[0].discharge_w == pytest.approx([0.0] * 8, abs=1e-6)
    with pytest.raises(PlanInputError, match="no such asset to hold"):
        problem(holds=(Hold("nothing", 0, 1, 0.0),))
