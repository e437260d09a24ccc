"""Planned against actual, one step at a time, from the minute store; and each day's cost
and savings from those steps.

After a step ends (and the store has written its minutes) the planner measures what each
part of the site did over it, compares it with the plan that was in force
(:func:`edge_ems.planner.audit.audit`: the reason for each deviation) and keeps one record
per step. A record carries what the day's summary needs (the measured means, the prices,
each battery and its SOC when the step began), so a day's cost and its savings against a
battery in plain self-consumption and against no battery
(:func:`edge_ems.planner.audit.daily_summary`) come from the records alone, whichever hub
made them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from ...planner.audit import Measured, audit, daily_summary
from ...planner.baseline import MinuteReader, Term
from ...planner.plan import Plan
from ...planner.problem import Battery, Problem
from ...planner.site_plan import DayCost
from .measure import mean_power
from .overrides import EV_DEMAND, Override

FIVE_MINUTES_MS = 300_000


@dataclass(frozen=True, slots=True)
class SiteSeries:
    """Which stored series make each part of a site (site sign)."""

    grid: tuple[Term, ...]
    pv: tuple[Term, ...]
    load: tuple[Term, ...]
    """The whole house, planned consumers included."""
    assets: Mapping[str, tuple[Term, ...]]
    """Each planned asset's power (+ delivers to the site)."""
    consumers: tuple[str, ...] = ()
    """The planned assets that consume (their power is taken out of the house load)."""


def _none_if_nan(value: float) -> float | None:
    return None if math.isnan(value) else value


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else float(value)


async def audit_step(
    reader: MinuteReader,
    site_id: str,
    plan: Plan,
    problem: Problem,
    version: int,
    step: int,
    series: SiteSeries,
    overrides: Iterable[Override],
) -> dict[str, Any] | None:
    """The record of ``step`` of ``plan`` (made from ``problem``), or ``None`` when the
    site's grid was not measured (without it there is no cost to compare)."""
    start = plan.horizon.time(step)
    start_ms = round(start.timestamp() * 1000)
    end_ms = start_ms + plan.horizon.step_minutes * 60_000
    grid = await mean_power(reader, site_id, series.grid, start_ms, end_ms)
    if grid is None:
        return None
    pv = await mean_power(reader, site_id, series.pv, start_ms, end_ms)
    load = await mean_power(reader, site_id, series.load, start_ms, end_ms)
    assets: dict[str, float | None] = {}
    for asset_id, terms in series.assets.items():
        assets[asset_id] = await mean_power(reader, site_id, terms, start_ms, end_ms)
    if load is not None:
        # The house without the planned consumers (their power is negative).
        for asset_id in series.consumers:
            load += assets.get(asset_id) or 0.0
    held = {
        o.asset_id
        for o in overrides
        if o.start_ms < end_ms
        and o.end_ms > start_ms
        and o.site_id == site_id
        and o.command != EV_DEMAND  # a need the plan was made for, not a hold
    }
    measured = Measured(
        grid_w=np.array([grid]),
        pv_w=np.array([_nan_if_none(pv)]),
        load_w=np.array([_nan_if_none(load)]),
        assets_w={a: np.array([v]) for a, v in assets.items() if v is not None},
        overrides={a: np.array([True]) for a in held},
    )
    report = audit(plan, measured, first_step=step)
    soc_start: dict[str, float] = {}
    for battery in problem.batteries:
        soc = await mean_power(
            reader, site_id, (Term(battery.id, "soc_pct"),), start_ms, start_ms + FIVE_MINUTES_MS
        )
        if soc is not None:
            soc_start[battery.id] = soc / 100.0
    return {
        "start": start.astimezone(UTC).isoformat(),
        "start_ms": start_ms,
        "end_ms": end_ms,
        "plan_version": version,
        "currency": plan.currency,
        "import_price": float(plan.import_price[step]),
        "export_price": float(plan.export_price[step]),
        "measured": {
            "grid_w": grid,
            "pv_w": pv,
            "load_w": load,
            "assets_w": assets,
        },
        "overridden": sorted(held),
        "soc_start": soc_start,
        "batteries": [_battery(b) for b in problem.batteries],
        "report": report.as_dict(),
    }


def _battery(battery: Battery) -> dict[str, Any]:
    return {
        "id": battery.id,
        "capacity_wh": battery.capacity_wh,
        "charge_max_w": battery.charge_max_w,
        "discharge_max_w": battery.discharge_max_w,
        "charge_efficiency": battery.charge_efficiency,
        "discharge_efficiency": battery.discharge_efficiency,
        "soc_min": battery.soc_min,
        "soc_max": battery.soc_max,
    }


def day_cost(records: Sequence[Mapping[str, Any]], day: date, zone: ZoneInfo) -> DayCost | None:
    """The cost of ``day`` (the site's calendar day) as measured by the steps audited so
    far, and what planning saved against self-consumption and against no battery."""
    rows = sorted(
        (
            r
            for r in records
            if datetime.fromtimestamp(r["start_ms"] / 1000, UTC).astimezone(zone).date() == day
        ),
        key=lambda r: r["start_ms"],
    )
    if not rows:
        return None
    dt = (rows[0]["end_ms"] - rows[0]["start_ms"]) / 3_600_000
    specs: dict[str, Battery] = {}
    for row in rows:
        for spec in row["batteries"]:
            if spec["id"] in specs:
                continue
            soc = row["soc_start"].get(spec["id"], spec["soc_min"])
            specs[spec["id"]] = Battery(
                id=spec["id"],
                capacity_wh=spec["capacity_wh"],
                charge_max_w=spec["charge_max_w"],
                discharge_max_w=spec["discharge_max_w"],
                soc_initial=min(1.0, max(0.0, soc)),
                charge_efficiency=spec["charge_efficiency"],
                discharge_efficiency=spec["discharge_efficiency"],
                soc_min=spec["soc_min"],
                soc_max=spec["soc_max"],
            )
    grid = np.array([float(r["measured"]["grid_w"]) for r in rows])
    assets = {
        battery_id: np.array(
            [r["measured"]["assets_w"].get(battery_id) or 0.0 for r in rows], dtype=np.float64
        )
        for battery_id in specs
    }
    summary = daily_summary(
        Measured(grid, np.zeros(len(rows)), np.zeros(len(rows)), assets),
        list(specs),
        list(specs.values()),
        np.array([float(r["import_price"]) for r in rows]),
        np.array([float(r["export_price"]) for r in rows]),
        dt,
    )
    until = datetime.fromtimestamp(rows[-1]["end_ms"] / 1000, UTC)
    return DayCost(
        day=day,
        actual_cost=summary.actual_cost,
        until=until,
        savings_vs_self_consumption=summary.savings_vs_self_consumption,
        savings_vs_no_battery=summary.savings_vs_no_battery,
    )
