"""Planned against actual, and a day's savings."""

from __future__ import annotations

import numpy as np
import pytest

from edge_ems.planner.audit import (
    LOAD,
    PV,
    Measured,
    Reason,
    audit,
    daily_summary,
    grid_cost,
    planned_assets,
    self_consumption,
)
from edge_ems.planner.problem import ChargeMode, Ev
from edge_ems.planner.solver import solve

from .support import battery, problem

PRICES = [0.1, 0.1, 0.1, 0.1, 0.4, 0.4, 0.4, 0.4]
PV_W = [0, 0, 2000, 3000, 3000, 1000, 0, 0]


def planned_case():  # type: ignore[no-untyped-def]
    ev = Ev("car", energy_needed_wh=3000.0, depart_step=8, modes=(ChargeMode(1, 6, 16),))
    case = problem(buy=PRICES, pv=PV_W, sell=0.05, batteries=[battery(soc_final=0.5)], evs=[ev])
    return case, solve(case)


def as_measured(plan, **changes):  # type: ignore[no-untyped-def]
    """What the meters would show had everything gone to plan, then ``changes``."""
    assets = {asset: power.copy() for asset, (_, power) in planned_assets(plan).items()}
    for asset, (step, value) in changes.items():
        assets[asset][step] = value
    grid = -sum(assets.values())
    pv, load = assets.pop(PV), -assets.pop(LOAD)
    return Measured(grid_w=grid, pv_w=pv, load_w=load, assets_w=assets)


def test_a_plan_followed_to_the_letter_audits_clean() -> None:
    _, plan = planned_case()
    report = audit(plan, as_measured(plan))
    assert {a.reason for a in report.assets} == {Reason.ON_PLAN}
    assert report.actual_cost == pytest.approx(report.planned_cost)
    assert {s.reason for s in report.steps} == {Reason.ON_PLAN}


def test_each_deviation_gets_its_reason_and_its_cost() -> None:
    _, plan = planned_case()
    store = plan.batteries[0].power_w
    busy = int(np.flatnonzero(np.abs(store) > 100)[0])
    measured = as_measured(plan, pv=(3, 1500.0), battery=(busy, 0.0))
    report = audit(plan, measured)
    by_id = {a.asset_id: a for a in report.assets}
    assert by_id["pv"].reason is Reason.FORECAST_ERROR
    assert by_id["pv"].deviation_wh == pytest.approx(-1500.0)
    assert by_id["battery"].reason is Reason.DEVICE_DID_NOT_FOLLOW
    assert by_id["battery"].steps_off_plan == 1
    assert by_id["car"].reason is Reason.ON_PLAN
    assert report.steps[3].reason is Reason.FORECAST_ERROR
    assert report.steps[busy].reason in (Reason.DEVICE_DID_NOT_FOLLOW, Reason.FORECAST_ERROR)
    total = sum(report.cost_by_reason.values())
    assert total == pytest.approx(report.actual_cost - report.planned_cost)
    assert report.cost_by_reason.get(Reason.FORECAST_ERROR, 0.0) != 0.0
    document = report.as_dict()
    assert document["assets"][0]["reason"] in {r.value for r in Reason}


def test_an_override_wins_over_not_following_and_missing_data_is_said() -> None:
    _, plan = planned_case()
    charging = int(np.flatnonzero(plan.evs[0].power_w > 0)[0])
    measured = as_measured(plan, car=(charging, 0.0))
    held = Measured(
        measured.grid_w, measured.pv_w, measured.load_w,
        {k: v for k, v in measured.assets_w.items() if k != "battery"},
        overrides={"car": np.arange(8) == charging},
    )  # fmt: skip
    report = audit(plan, held)
    by_id = {a.asset_id: a for a in report.assets}
    assert by_id["car"].reason is Reason.OVERRIDE
    assert by_id["battery"].reason is Reason.NO_DATA
    assert report.steps[charging].reason in (Reason.OVERRIDE, Reason.NO_DATA)


def test_pv_or_load_unmeasured_is_no_data_not_on_plan() -> None:
    _, plan = planned_case()
    measured = as_measured(plan)
    unknown = np.full(8, np.nan)
    report = audit(plan, Measured(measured.grid_w, unknown, unknown, measured.assets_w))
    by_id = {a.asset_id: a for a in report.assets}
    assert by_id[PV].reason is Reason.NO_DATA
    assert by_id[LOAD].reason is Reason.NO_DATA
    assert by_id[PV].actual_wh == 0.0


def test_part_of_a_plan_can_be_audited() -> None:
    _, plan = planned_case()
    full = as_measured(plan)
    part = Measured(full.grid_w[2:5], full.pv_w[2:5], full.load_w[2:5],
                    {k: v[2:5] for k, v in full.assets_w.items()})  # fmt: skip
    report = audit(plan, part, first_step=2)
    assert [s.step for s in report.steps] == [2, 3, 4]
    with pytest.raises(ValueError, match="not all in the plan"):
        audit(plan, part, first_step=7)


def test_self_consumption_charges_from_surplus_and_covers_the_load() -> None:
    store = battery(soc_initial=0.1, soc_min=0.1)
    net = np.array([-2000.0, -2000.0, 1000.0, 1000.0])
    grid, [power] = self_consumption(net, [store], dt=1.0)
    assert power.tolist() == [-2000.0, -2000.0, 1000.0, 1000.0]
    assert grid.tolist() == [0.0, 0.0, 0.0, 0.0]
    empty = battery(soc_initial=0.1, soc_min=0.1)
    grid, [power] = self_consumption(np.array([500.0]), [empty], dt=1.0)
    assert grid.tolist() == [500.0]


def test_a_day_summary_counts_savings_against_both_baselines() -> None:
    _, plan = planned_case()
    measured = as_measured(plan)
    summary = daily_summary(
        measured, ["battery"], [battery(soc_final=0.5)], plan.import_price, plan.export_price,
        plan.horizon.step_hours,
    )  # fmt: skip
    assert summary.actual_cost == pytest.approx(plan.cost)
    assert summary.savings_vs_no_battery > 0
    assert summary.savings_vs_self_consumption >= -1e-9
    assert grid_cost(
        np.array([1000.0, -1000.0]), np.array([0.3, 0.3]), np.array([0.1, 0.1]), 1.0
    ) == pytest.approx(0.2)
