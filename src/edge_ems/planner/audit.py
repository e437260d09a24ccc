"""Planned against actual: what each asset was to do and did, what it cost, and why it
differed; and a day's savings against a battery in plain self-consumption and against no
battery at all.

Pure functions over arrays: the hub (phase 2) reads the measured side from its minute store
every 15 minutes and keeps the reports; here is only the arithmetic.

Every power has the site's sign: positive delivers to the site bus (PV, battery discharge),
negative consumes (the house load, EV, heat pump, deferrable loads, battery charge); the
grid is positive on import. A step's deviation is ``measured - planned``. Its reason:

- ``override``: someone held the asset at another value (an override was active);
- ``device_did_not_follow``: a controllable asset (battery, EV, heat pump, deferrable load)
  was told one thing and did another;
- ``forecast_error``: PV produced or the house drew other than forecast;
- ``no_data``: the asset was not measured (no series, or only NaN);
- ``on_plan``: within tolerance (50 W, or 5 % of the planned power if more).

The grid's deviation in a step, and the cost it makes, is put down to the reason of the
largest deviation among the assets that step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from .model import KW
from .plan import Plan
from .problem import Battery, Series

TOLERANCE_W = 50.0
TOLERANCE_SHARE = 0.05


class Reason(StrEnum):
    """Why measured differs from planned."""

    ON_PLAN = "on_plan"
    OVERRIDE = "override"
    DEVICE_DID_NOT_FOLLOW = "device_did_not_follow"
    FORECAST_ERROR = "forecast_error"
    NO_DATA = "no_data"


PV = "pv"
LOAD = "load"


@dataclass(frozen=True, slots=True, eq=False)
class Measured:
    """What happened over the audited steps (means per step, the plan's steps)."""

    grid_w: Series
    pv_w: Series
    load_w: Series
    """The house load without the planned assets (positive)."""
    assets_w: Mapping[str, Series]
    """Each planned asset's power, site sign (a battery discharging +, an EV charging -)."""
    overrides: Mapping[str, np.ndarray[Any, np.dtype[np.bool_]]] = field(default_factory=dict)
    """Steps in which an override held the asset."""


@dataclass(frozen=True, slots=True)
class AssetAudit:
    """One asset over the audited steps (energies in Wh, site sign)."""

    asset_id: str
    kind: str
    planned_wh: float
    actual_wh: float
    reason: Reason
    """The reason behind most of the deviation (``on_plan`` if none)."""
    steps_off_plan: int

    @property
    def deviation_wh(self) -> float:
        """Measured minus planned."""
        return self.actual_wh - self.planned_wh


@dataclass(frozen=True, slots=True)
class StepAudit:
    """One step: the grid planned and measured, the cost of each, and why they differ."""

    step: int
    planned_grid_wh: float
    actual_grid_wh: float
    planned_cost: float
    actual_cost: float
    reason: Reason


@dataclass(frozen=True, slots=True)
class AuditReport:
    """Planned against actual over some of a plan's steps."""

    first_step: int
    assets: tuple[AssetAudit, ...]
    steps: tuple[StepAudit, ...]
    planned_cost: float
    actual_cost: float
    cost_by_reason: Mapping[Reason, float]
    """Actual minus planned cost, put down to each step's reason."""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "first_step": self.first_step,
            "planned_cost": round(self.planned_cost, 6),
            "actual_cost": round(self.actual_cost, 6),
            "cost_by_reason": {str(k): round(v, 6) for k, v in self.cost_by_reason.items()},
            "assets": [
                {
                    "asset_id": a.asset_id,
                    "kind": a.kind,
                    "planned_wh": round(a.planned_wh, 1),
                    "actual_wh": round(a.actual_wh, 1),
                    "deviation_wh": round(a.deviation_wh, 1),
                    "reason": str(a.reason),
                    "steps_off_plan": a.steps_off_plan,
                }
                for a in self.assets
            ],
            "steps": [
                {
                    "step": s.step,
                    "planned_grid_wh": round(s.planned_grid_wh, 1),
                    "actual_grid_wh": round(s.actual_grid_wh, 1),
                    "planned_cost": round(s.planned_cost, 6),
                    "actual_cost": round(s.actual_cost, 6),
                    "reason": str(s.reason),
                }
                for s in self.steps
            ],
        }


def planned_assets(plan: Plan) -> dict[str, tuple[str, Series]]:
    """Every asset's planned power (site sign) by id, with its kind; PV and the house load
    under ``pv`` and ``load``."""
    assets: dict[str, tuple[str, Series]] = {PV: ("pv", plan.pv_w), LOAD: ("load", -plan.load_w)}
    for battery in plan.batteries:
        assets[battery.id] = ("battery", battery.power_w)
    for ev in plan.evs:
        assets[ev.id] = ("ev", -ev.power_w)
    for heat_pump in plan.heat_pumps:
        assets[heat_pump.id] = ("heat_pump", -heat_pump.power_w)
    for load in plan.deferrables:
        assets[load.id] = ("deferrable", -load.power_w)
    return assets


def audit(plan: Plan, measured: Measured, first_step: int = 0) -> AuditReport:
    """Compare ``measured`` (its steps starting at ``first_step`` of ``plan``) with the plan."""
    count = measured.grid_w.size
    steps = slice(first_step, first_step + count)
    if first_step < 0 or steps.stop > plan.horizon.n_steps:
        raise ValueError(f"steps {first_step}..{steps.stop} are not all in the plan")
    dt = plan.horizon.step_hours
    measured_assets: dict[str, Series | None] = {PV: measured.pv_w, LOAD: -measured.load_w}
    measured_assets.update(measured.assets_w)
    reasons: dict[str, list[Reason]] = {}
    deviations: dict[str, Series] = {}
    results = []
    for asset_id, (kind, planned_all) in planned_assets(plan).items():
        planned = planned_all[steps]
        actual = measured_assets.get(asset_id)
        if actual is None or bool(np.all(np.isnan(actual))):
            reason = [Reason.NO_DATA] * count
            deviation = np.zeros(count)
            actual = planned * np.nan
        else:
            deviation = actual - planned
            reason = _reasons(kind, deviation, planned, measured.overrides.get(asset_id), count)
        reasons[asset_id], deviations[asset_id] = reason, deviation
        results.append(
            AssetAudit(
                asset_id=asset_id,
                kind=kind,
                planned_wh=float(planned.sum() * dt),
                actual_wh=float(np.nansum(actual) * dt),
                reason=_main_reason(reason, deviation),
                steps_off_plan=sum(r is not Reason.ON_PLAN for r in reason),
            )
        )
    planned_grid = (plan.grid_import_w - plan.grid_export_w)[steps]
    planned_cost = plan.cost_per_step[steps]
    buy, sell = plan.import_price[steps], plan.export_price[steps]
    actual_cost = np.where(measured.grid_w > 0, measured.grid_w * buy, measured.grid_w * sell)
    actual_cost = actual_cost * dt / KW
    rows = []
    by_reason: dict[Reason, float] = {}
    for index in range(count):
        cause = _step_reason(index, reasons, deviations)
        rows.append(
            StepAudit(
                step=first_step + index,
                planned_grid_wh=float(planned_grid[index] * dt),
                actual_grid_wh=float(measured.grid_w[index] * dt),
                planned_cost=float(planned_cost[index]),
                actual_cost=float(actual_cost[index]),
                reason=cause,
            )
        )
        delta = float(actual_cost[index] - planned_cost[index])
        by_reason[cause] = by_reason.get(cause, 0.0) + delta
    return AuditReport(
        first_step=first_step,
        assets=tuple(results),
        steps=tuple(rows),
        planned_cost=float(planned_cost.sum()),
        actual_cost=float(actual_cost.sum()),
        cost_by_reason=by_reason,
    )


def _reasons(
    kind: str,
    deviation: Series,
    planned: Series,
    overridden: np.ndarray[Any, np.dtype[np.bool_]] | None,
    count: int,
) -> list[Reason]:
    off = np.abs(deviation) > np.maximum(TOLERANCE_W, TOLERANCE_SHARE * np.abs(planned))
    held = np.zeros(count, dtype=bool) if overridden is None else np.asarray(overridden, bool)
    cause = Reason.FORECAST_ERROR if kind in ("pv", "load") else Reason.DEVICE_DID_NOT_FOLLOW
    return [
        Reason.OVERRIDE if held[step] else cause if off[step] else Reason.ON_PLAN
        for step in range(count)
    ]


def _main_reason(reason: list[Reason], deviation: Series) -> Reason:
    weights: dict[Reason, float] = {}
    for value, size in zip(reason, np.abs(deviation), strict=True):
        if value is not Reason.ON_PLAN:
            weights[value] = weights.get(value, 0.0) + float(size)
    if not weights:
        return Reason.ON_PLAN
    return max(weights, key=lambda key: weights[key])


def _step_reason(
    index: int,
    reasons: Mapping[str, list[Reason]],
    deviations: Mapping[str, Series],
) -> Reason:
    best, largest = Reason.ON_PLAN, -1.0
    for asset_id, reason in reasons.items():
        value = reason[index]
        if value is Reason.ON_PLAN:
            continue
        size = abs(float(deviations[asset_id][index]))
        if value is Reason.OVERRIDE or value is Reason.NO_DATA:
            size = max(size, 1e-9)
        if size > largest:
            best, largest = value, size
    return best


# The day's savings.


@dataclass(frozen=True, slots=True)
class DailySummary:
    """A day's cost as it happened and as it would have been without the planner."""

    actual_cost: float
    self_consumption_cost: float
    """The same day with the batteries in plain self-consumption: charging only from PV
    surplus, discharging only to cover the load, never to or from the grid."""
    no_battery_cost: float

    @property
    def savings_vs_self_consumption(self) -> float:
        """What planning saved against self-consumption alone."""
        return self.self_consumption_cost - self.actual_cost

    @property
    def savings_vs_no_battery(self) -> float:
        """What planning and the batteries saved against having none."""
        return self.no_battery_cost - self.actual_cost


def grid_cost(grid_w: Series, import_price: Series, export_price: Series, dt: float) -> float:
    """What a net grid flow (W, + import) costs over steps of ``dt`` hours."""
    per_step = np.where(grid_w > 0, grid_w * import_price, grid_w * export_price)
    return float(per_step.sum() * dt / KW)


def self_consumption(
    net_load_w: Series, batteries: Sequence[Battery], dt: float
) -> tuple[Series, list[Series]]:
    """Batteries in self-consumption: the grid flow that leaves (W, + import) and each
    battery's power (site sign). ``net_load_w`` is everything else: consumption minus PV.
    The batteries start at their initial SOC and take their turn in order."""
    grid = np.asarray(net_load_w, dtype=np.float64).copy()
    powers = []
    for battery in batteries:
        energy = battery.soc_initial * battery.capacity_wh
        low, high = battery.soc_min * battery.capacity_wh, battery.soc_max * battery.capacity_wh
        power = np.zeros(grid.size)
        for step, need in enumerate(grid):
            if need > 0:
                room = max(0.0, energy - low) * battery.discharge_efficiency / dt
                delivered = min(need, battery.discharge_max_w, room)
                energy -= delivered * dt / battery.discharge_efficiency
                power[step] = delivered
            elif need < 0:
                room = max(0.0, high - energy) / (battery.charge_efficiency * dt)
                taken = min(-need, battery.charge_max_w, room)
                energy += taken * dt * battery.charge_efficiency
                power[step] = -taken
        grid -= power
        powers.append(power)
    return grid, powers


def daily_summary(
    measured: Measured,
    battery_ids: Sequence[str],
    batteries: Sequence[Battery],
    import_price: Series,
    export_price: Series,
    dt: float,
) -> DailySummary:
    """A day's costs: as measured, with the batteries in self-consumption, and without them.

    The counterfactuals keep everything else as it happened (PV, the house, the EV and heat
    pump as they ran); only the batteries differ. ``batteries`` are the batteries as they
    stood at the day's start (their ``soc_initial``).
    """
    none = np.zeros(measured.grid_w.size)
    battery_net = sum((measured.assets_w.get(b, none) for b in battery_ids), none)
    without = measured.grid_w + battery_net
    grid_sc, _ = self_consumption(without, batteries, dt)
    return DailySummary(
        actual_cost=grid_cost(measured.grid_w, import_price, export_price, dt),
        self_consumption_cost=grid_cost(grid_sc, import_price, export_price, dt),
        no_battery_cost=grid_cost(without, import_price, export_price, dt),
    )
