"""A plan: what each asset does in each step, what it costs, and what it could not do.

:func:`assemble` turns decisions (battery, EV, heat-pump and deferrable powers) into a plan
the way the site would carry them out: the grid takes the difference, within its limits;
state of charge and indoor temperature follow from the powers; anything the grid cannot
take or give, and every requirement missed, is a :class:`Shortfall`. The solver's plans and
the fallback plan go through the same function, so a plan's figures never depend on which
produced it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np

from .model import KW, surplus_kw
from .problem import Horizon, Problem, Series

ENERGY_TOLERANCE_WH = 1.0
"""Shortfalls smaller than this are rounding, not shortfalls."""
POWER_TOLERANCE_W = 1.0
"""A step's balance this close to zero is balanced (the schedule format's tolerance)."""
KELVIN_TOLERANCE = 0.01
SOC_TOLERANCE = 1e-4
"""A battery's state of charge this close to a target or floor meets it."""


class PlanStatus(StrEnum):
    """How a plan came about."""

    OPTIMAL = "optimal"
    """Solved to within the MIP gap."""
    TIME_LIMIT = "time_limit"
    """The best plan found when the time limit struck (its gap says how good)."""
    FALLBACK = "fallback"
    """The solver found nothing in time: batteries idle, flexible loads off."""


class ShortfallKind(StrEnum):
    """What a plan could not do."""

    UNSERVED_LOAD = "unserved_load"
    EXCESS_GENERATION = "excess_generation"
    SOC_FINAL = "soc_final"
    SOC_FLOOR = "soc_floor"
    EV_ENERGY = "ev_energy"
    RUN_TIME = "run_time"
    COMFORT = "comfort"


@dataclass(frozen=True, slots=True)
class Shortfall:
    """One requirement the plan misses, by how much, and why in words."""

    kind: ShortfallKind
    asset_id: str
    amount: float
    unit: str
    message: str
    first_step: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "kind": str(self.kind),
            "asset_id": self.asset_id,
            "amount": round(self.amount, 3),
            "unit": self.unit,
            "message": self.message,
            "first_step": self.first_step,
        }


@dataclass(frozen=True, slots=True, eq=False)
class BatteryPlan:
    """One battery: AC charge and discharge power (both ≥ 0) and SOC at the end of each step."""

    id: str
    charge_w: Series
    discharge_w: Series
    soc: Series

    @property
    def power_w(self) -> Series:
        """Power with the site's sign: positive discharges (delivers to the bus)."""
        return self.discharge_w - self.charge_w


@dataclass(frozen=True, slots=True, eq=False)
class EvPlan:
    """One EV: power drawn, current and phases per step (0 phases when not charging)."""

    id: str
    power_w: Series
    current_a: Series
    phases: np.ndarray[Any, np.dtype[np.int64]]
    delivered_wh: float


@dataclass(frozen=True, slots=True, eq=False)
class HeatPumpPlan:
    """One heat pump: electric power and the indoor temperature at the end of each step."""

    id: str
    power_w: Series
    indoor_temp_c: Series


@dataclass(frozen=True, slots=True, eq=False)
class DeferrablePlan:
    """One deferrable load: its power per step."""

    id: str
    power_w: Series


@dataclass(frozen=True, slots=True, eq=False)
class Plan:
    """Everything the site is to do over the horizon, and what it costs."""

    horizon: Horizon
    status: PlanStatus
    grid_import_w: Series
    grid_export_w: Series
    pv_w: Series
    """PV used (after curtailment)."""
    curtailed_w: Series
    load_w: Series
    import_price: Series
    export_price: Series
    batteries: tuple[BatteryPlan, ...]
    evs: tuple[EvPlan, ...]
    heat_pumps: tuple[HeatPumpPlan, ...]
    deferrables: tuple[DeferrablePlan, ...]
    shortfalls: tuple[Shortfall, ...]
    cycle_cost: float
    currency: str = "EUR"
    solve_ms: float = 0.0
    mip_gap: float = 0.0
    objective: float = math.nan
    """What the solver minimised: cost, wear and the price of every shortfall."""
    bound: float = -math.inf
    """A proven lower bound on ``objective``: no plan of this problem does better."""
    decisions: dict[tuple[str, str, int], float] = field(default_factory=dict)
    """The integer decisions by (kind, asset, step start in epoch seconds): the next
    re-plan starts from them."""

    @property
    def cost_per_step(self) -> Series:
        """Energy cost of each step: import paid minus export earned."""
        dt = self.horizon.step_hours
        return (self.grid_import_w * self.import_price - self.grid_export_w * self.export_price) * (
            dt / KW
        )

    @property
    def cost(self) -> float:
        """Energy cost over the horizon (negative is net income); wear not included."""
        return float(self.cost_per_step.sum())

    def step_at(self, moment: datetime) -> int | None:
        """The step ``moment`` falls in, or ``None`` outside the horizon."""
        step = self.horizon.step_at(moment)
        return step if 0 <= step < self.horizon.n_steps else None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready description: every series in W (rounded to 0.1 W), SOC as fractions."""
        return {
            "start": self.horizon.start.isoformat(),
            "step_minutes": self.horizon.step_minutes,
            "n_steps": self.horizon.n_steps,
            "status": str(self.status),
            "currency": self.currency,
            "cost": round(self.cost, 6),
            "cycle_cost": round(self.cycle_cost, 6),
            "solve_ms": round(self.solve_ms, 3),
            "mip_gap": self.mip_gap,
            "grid_import_w": _w(self.grid_import_w),
            "grid_export_w": _w(self.grid_export_w),
            "pv_w": _w(self.pv_w),
            "curtailed_w": _w(self.curtailed_w),
            "load_w": _w(self.load_w),
            "batteries": [
                {
                    "id": b.id,
                    "charge_w": _w(b.charge_w),
                    "discharge_w": _w(b.discharge_w),
                    "soc": [round(float(v), 6) for v in b.soc],
                }
                for b in self.batteries
            ],
            "evs": [
                {
                    "id": ev.id,
                    "power_w": _w(ev.power_w),
                    "current_a": [round(float(v), 3) for v in ev.current_a],
                    "phases": [int(v) for v in ev.phases],
                    "delivered_wh": round(ev.delivered_wh, 1),
                }
                for ev in self.evs
            ],
            "heat_pumps": [
                {
                    "id": hp.id,
                    "power_w": _w(hp.power_w),
                    "indoor_temp_c": [round(float(v), 3) for v in hp.indoor_temp_c],
                }
                for hp in self.heat_pumps
            ],
            "deferrables": [{"id": d.id, "power_w": _w(d.power_w)} for d in self.deferrables],
            "shortfalls": [shortfall.as_dict() for shortfall in self.shortfalls],
        }


def _w(values: Series) -> list[float]:
    return [round(float(v), 1) for v in values]


@dataclass(frozen=True, slots=True, eq=False)
class Decisions:
    """What a solver (or the fallback) decided, before the grid and states follow from it."""

    charge_w: tuple[Series, ...]
    discharge_w: tuple[Series, ...]
    deferrable_w: tuple[Series, ...]
    ev_current_a: tuple[Series, ...]
    ev_phases: tuple[np.ndarray[Any, np.dtype[np.int64]], ...]
    heat_pump_w: tuple[Series, ...]
    curtailed_w: Series
    grid_import_w: Series | None = None
    grid_export_w: Series | None = None
    """The solver's own grid flows, kept only when simultaneous import and export is allowed
    (otherwise the grid takes the net)."""

    @classmethod
    def idle(cls, problem: Problem) -> Decisions:
        """Batteries idle, flexible loads off (running blocks carry on), no curtailment."""
        n = problem.horizon.n_steps
        zero = np.zeros(n)
        deferrable = []
        for load in problem.deferrables:
            power = np.zeros(n)
            if load.single_block and load.running_steps > 0:
                latest = n if load.latest_step is None else load.latest_step
                power[: max(0, min(load.required_steps, latest, n))] = load.power_w
            deferrable.append(power)
        return cls(
            charge_w=tuple(zero for _ in problem.batteries),
            discharge_w=tuple(zero for _ in problem.batteries),
            deferrable_w=tuple(deferrable),
            ev_current_a=tuple(zero for _ in problem.evs),
            ev_phases=tuple(np.zeros(n, np.int64) for _ in problem.evs),
            heat_pump_w=tuple(zero for _ in problem.heat_pumps),
            curtailed_w=zero,
        )


def assemble(
    problem: Problem,
    decisions: Decisions,
    *,
    status: PlanStatus,
    solve_ms: float = 0.0,
    mip_gap: float = 0.0,
    objective: float = math.nan,
    bound: float = -math.inf,
    keys: dict[tuple[str, str, int], float] | None = None,
) -> Plan:
    """The plan that ``decisions`` make on ``problem``'s site."""
    horizon, n = problem.horizon, problem.horizon.n_steps
    dt = horizon.step_hours
    shortfalls: list[Shortfall] = []
    pv = problem.pv.forecast_w - decisions.curtailed_w
    ev_power = [
        _ev_power(ev, current, phases)
        for ev, current, phases in zip(
            problem.evs, decisions.ev_current_a, decisions.ev_phases, strict=True
        )
    ]
    consumption = problem.load_w + sum(decisions.deferrable_w, np.zeros(n))
    consumption = consumption + sum(ev_power, np.zeros(n)) + sum(decisions.heat_pump_w, np.zeros(n))
    battery_net = sum(
        (d - c for c, d in zip(decisions.charge_w, decisions.discharge_w, strict=True)), np.zeros(n)
    )
    net = consumption - pv - battery_net
    import_max, export_max = problem.grid.limits(n)
    export_max = _export_cap(problem, decisions, export_max)
    if decisions.grid_import_w is not None and decisions.grid_export_w is not None:
        grid_import, grid_export = decisions.grid_import_w, decisions.grid_export_w
    else:
        grid_import = np.clip(net, 0.0, import_max)
        grid_export = np.clip(-net, 0.0, export_max)
    residual = net - (grid_import - grid_export)
    unserved = np.maximum(0.0, residual)
    excess = np.maximum(0.0, -residual)
    _energy_shortfall(shortfalls, ShortfallKind.UNSERVED_LOAD, "site", unserved, dt,
                      "load the grid, PV and batteries cannot serve")  # fmt: skip
    _energy_shortfall(shortfalls, ShortfallKind.EXCESS_GENERATION, "site", excess, dt,
                      "generation neither the site nor the grid can take")  # fmt: skip
    batteries = tuple(
        _battery_plan(battery, charge, discharge, dt, shortfalls)
        for battery, charge, discharge in zip(
            problem.batteries, decisions.charge_w, decisions.discharge_w, strict=True
        )
    )
    evs = tuple(
        _ev_plan(ev, power, current, phases, problem, shortfalls)
        for ev, power, current, phases in zip(
            problem.evs, ev_power, decisions.ev_current_a, decisions.ev_phases, strict=True
        )
    )
    heat_pumps = tuple(
        _heat_pump_plan(heat_pump, power, dt, shortfalls)
        for heat_pump, power in zip(problem.heat_pumps, decisions.heat_pump_w, strict=True)
    )
    deferrables = tuple(
        _deferrable_plan(load, power, n, dt, shortfalls)
        for load, power in zip(problem.deferrables, decisions.deferrable_w, strict=True)
    )
    wear = sum(
        battery.cycle_cost_per_kwh * float((charge + discharge).sum()) * dt / KW
        for battery, charge, discharge in zip(
            problem.batteries, decisions.charge_w, decisions.discharge_w, strict=True
        )
    )
    return Plan(
        horizon=horizon,
        status=status,
        grid_import_w=grid_import,
        grid_export_w=grid_export,
        pv_w=pv,
        curtailed_w=decisions.curtailed_w,
        load_w=problem.load_w,
        import_price=problem.import_price,
        export_price=problem.export_price,
        batteries=batteries,
        evs=evs,
        heat_pumps=heat_pumps,
        deferrables=deferrables,
        shortfalls=tuple(shortfalls),
        cycle_cost=wear,
        currency=problem.currency,
        solve_ms=solve_ms,
        mip_gap=mip_gap,
        objective=objective,
        bound=bound,
        decisions=keys or {},
    )


def _export_cap(problem: Problem, decisions: Decisions, export_max: Series) -> Series:
    """The grid's export limit, and the batteries' export policy: batteries that may not
    export leave only PV surplus plus what the exporting batteries deliver."""
    if not problem.batteries or all(b.export_allowed for b in problem.batteries):
        return export_max
    allowed = surplus_kw(problem) * KW
    for battery, discharge in zip(problem.batteries, decisions.discharge_w, strict=True):
        if battery.export_allowed:
            allowed = allowed + discharge
    return np.minimum(export_max, allowed)


def _energy_shortfall(
    shortfalls: list[Shortfall],
    kind: ShortfallKind,
    asset: str,
    power_w: Series,
    dt: float,
    what: str,
) -> None:
    energy = float(power_w.sum()) * dt
    if float(power_w.max(initial=0.0)) > POWER_TOLERANCE_W or energy > ENERGY_TOLERANCE_WH:
        first = int(np.flatnonzero(power_w > 0)[0])
        message = f"{energy:.0f} Wh of {what}, from step {first}"
        shortfalls.append(Shortfall(kind, asset, energy, "Wh", message, first))


def _ev_power(ev: Any, current: Series, phases: np.ndarray[Any, np.dtype[np.int64]]) -> Series:
    power: Series = current * phases * ev.voltage_v
    return power


def _battery_plan(
    battery: Any, charge: Series, discharge: Series, dt: float, shortfalls: list[Shortfall]
) -> BatteryPlan:
    capacity = battery.capacity_wh
    stored = np.cumsum(
        (charge * battery.charge_efficiency - discharge / battery.discharge_efficiency) * dt
    )
    energy = battery.soc_initial * capacity + stored
    soc = energy / capacity
    if battery.soc_final is not None:
        missing = (battery.soc_final - soc[-1]) * capacity
        if battery.final_rule == "equal":
            missing = abs(missing)
        if missing > SOC_TOLERANCE * capacity:
            relation = "at" if battery.final_rule == "equal" else "at or above"
            message = (
                f"ends at SOC {soc[-1]:.3f}, not {relation} {battery.soc_final:.3f} "
                f"({missing:.0f} Wh off)"
            )
            shortfalls.append(
                Shortfall(ShortfallKind.SOC_FINAL, battery.id, missing, "Wh", message, len(soc) - 1)
            )
    below = np.maximum(0.0, battery.soc_min * capacity - energy)
    tolerance = SOC_TOLERANCE * capacity
    if battery.soc_initial < battery.soc_min and float(below.max()) > tolerance:
        steps = int(np.count_nonzero(below > tolerance))
        message = (
            f"below its SOC floor {battery.soc_min:.3f} for {steps} steps "
            f"(it starts at {battery.soc_initial:.3f})"
        )
        shortfalls.append(
            Shortfall(ShortfallKind.SOC_FLOOR, battery.id, float(below.sum() * dt), "Wh·h",
                      message, int(np.flatnonzero(below > tolerance)[0]))
        )  # fmt: skip
    return BatteryPlan(battery.id, charge, discharge, soc)


def _ev_plan(
    ev: Any,
    power: Series,
    current: Series,
    phases: np.ndarray[Any, np.dtype[np.int64]],
    problem: Problem,
    shortfalls: list[Shortfall],
) -> EvPlan:
    n, dt = problem.horizon.n_steps, problem.horizon.step_hours
    delivered = float(power.sum()) * dt * ev.efficiency
    after = max(0, ev.depart_step - n) * dt * ev.efficiency * ev.max_power_w
    need = max(0.0, ev.energy_needed_wh - after)
    missing = need - delivered
    if missing > ENERGY_TOLERANCE_WH:
        late = " (within the horizon)" if after > 0 else ""
        message = f"{missing:.0f} Wh short of the {need:.0f} Wh needed by departure{late}"
        shortfalls.append(
            Shortfall(
                ShortfallKind.EV_ENERGY, ev.id, missing, "Wh", message, min(ev.depart_step, n) - 1
            )
        )
    return EvPlan(ev.id, power, current, phases, delivered)


def _heat_pump_plan(
    heat_pump: Any, power: Series, dt: float, shortfalls: list[Shortfall]
) -> HeatPumpPlan:
    ua = heat_pump.heat_loss_w_per_k / KW
    a = math.exp(-ua * dt / heat_pump.heat_capacity_kwh_per_k)
    gain = heat_pump.cop * (1.0 - a) / ua * (power / KW)
    drive = (1.0 - a) * heat_pump.outdoor_temp_c + gain
    temperature = np.empty_like(power)
    previous = heat_pump.indoor_temp_c
    for step, value in enumerate(drive):
        previous = a * previous + value
        temperature[step] = previous
    below = np.maximum(0.0, heat_pump.comfort_min_c - temperature)
    above = np.maximum(0.0, temperature - heat_pump.comfort_max_c)
    for name, excess in (("below", below), ("above", above)):
        if float(excess.max()) > KELVIN_TOLERANCE:
            first = int(np.flatnonzero(excess > KELVIN_TOLERANCE)[0])
            kelvin_hours = float(excess.sum()) * dt
            message = (
                f"{kelvin_hours:.2f} K·h {name} the comfort band, up to {excess.max():.2f} K, "
                f"from step {first}"
            )
            shortfalls.append(
                Shortfall(ShortfallKind.COMFORT, heat_pump.id, kelvin_hours, "K·h", message, first)
            )
    return HeatPumpPlan(heat_pump.id, power, temperature)


def _deferrable_plan(
    load: Any, power: Series, n: int, dt: float, shortfalls: list[Shortfall]
) -> DeferrablePlan:
    ran = float(power.sum()) / load.power_w
    missing = load.required_steps - ran
    if missing * load.power_w * dt > ENERGY_TOLERANCE_WH:
        message = f"runs {ran:.2f} of its {load.required_steps} steps"
        shortfalls.append(
            Shortfall(ShortfallKind.RUN_TIME, load.id, missing, "steps", message, None)
        )
    return DeferrablePlan(load.id, power)
