"""Does a plan keep every physical limit of its problem, and list every requirement it misses?

The planner's own test of a plan, whoever made it: grid limits and the energy balance in
every step (with unserved load and excess generation counted only where the plan lists them),
battery powers and state of charge, the policies, deferrable loads (on/off, window, blocks,
minimum on/off times), EV currents and modes, heat-pump power. Requirements (final SOC, EV
energy, run time, comfort) may be missed, but then the plan must say so.
"""

from __future__ import annotations

import numpy as np

from .model import KW, surplus_kw
from .plan import ENERGY_TOLERANCE_WH, POWER_TOLERANCE_W, SOC_TOLERANCE, Plan, ShortfallKind
from .problem import Battery, Deferrable, Ev, HeatPump, Problem, Series

WATT = POWER_TOLERANCE_W
SOC = SOC_TOLERANCE


def violations(problem: Problem, plan: Plan) -> list[str]:
    """Every limit ``plan`` breaks, in words (empty when it keeps them all)."""
    found: list[str] = []
    n = problem.horizon.n_steps
    listed = {(s.kind, s.asset_id) for s in plan.shortfalls}
    _grid(found, problem, plan, listed)
    exporting = np.zeros(n)
    for spec, battery in zip(problem.batteries, plan.batteries, strict=True):
        _battery(found, problem, spec, battery.charge_w, battery.discharge_w, battery.soc, listed)
        if spec.export_allowed:
            exporting += battery.discharge_w
    surplus = surplus_kw(problem) * KW
    if problem.batteries and not all(b.export_allowed for b in problem.batteries):
        _limit(found, "export beyond PV surplus", plan.grid_export_w, surplus + exporting)
    barred = [b.charge_w for s, b in zip(problem.batteries, plan.batteries, strict=True)
              if not s.grid_charge_allowed]  # fmt: skip
    if barred:
        _limit(found, "charge from the grid", sum(barred, np.zeros(n)), surplus)
    for load, load_plan in zip(problem.deferrables, plan.deferrables, strict=True):
        _deferrable(found, load, load_plan.power_w, problem.horizon.step_hours, listed)
    for ev, ev_plan in zip(problem.evs, plan.evs, strict=True):
        _ev(found, ev, ev_plan.power_w, ev_plan.current_a, ev_plan.phases, n)
    for heat_pump, hp_plan in zip(problem.heat_pumps, plan.heat_pumps, strict=True):
        _heat_pump(found, heat_pump, hp_plan.power_w)
    return found


def _grid(
    found: list[str], problem: Problem, plan: Plan, listed: set[tuple[ShortfallKind, str]]
) -> None:
    """Grid limits, curtailment, and the energy balance of every step."""
    n = problem.horizon.n_steps
    import_max, export_max = problem.grid.limits(n)
    _limit(found, "grid import", plan.grid_import_w, import_max)
    _limit(found, "grid export", plan.grid_export_w, export_max)
    _nonnegative(found, "grid import", plan.grid_import_w)
    _nonnegative(found, "grid export", plan.grid_export_w)
    if not problem.grid.simultaneous_import_export_allowed:
        both = np.minimum(plan.grid_import_w, plan.grid_export_w)
        _limit(found, "import and export at once", both, 0.0)
    curtailable = problem.pv.forecast_w if problem.pv.curtailable else np.zeros(n)
    _limit(found, "curtailment", plan.curtailed_w, curtailable)
    consumption = problem.load_w.copy()
    for flexible in (plan.deferrables, plan.evs, plan.heat_pumps):
        for asset in flexible:
            consumption += asset.power_w
    supply = plan.pv_w + plan.grid_import_w - plan.grid_export_w
    for battery in plan.batteries:
        supply = supply + battery.discharge_w - battery.charge_w
    residual = consumption - supply
    if np.any(residual > WATT) and (ShortfallKind.UNSERVED_LOAD, "site") not in listed:
        found.append(f"balance: {residual.max():.1f} W short in step {int(np.argmax(residual))}")
    if np.any(residual < -WATT) and (ShortfallKind.EXCESS_GENERATION, "site") not in listed:
        found.append(f"balance: {-residual.min():.1f} W over in step {int(np.argmin(residual))}")


def _limit(found: list[str], name: str, values: Series, limit: Series | float) -> None:
    excess = values - limit
    if np.any(excess > WATT):
        step = int(np.argmax(excess))
        found.append(f"{name}: {excess[step]:.1f} W beyond the limit in step {step}")


def _nonnegative(found: list[str], name: str, values: Series) -> None:
    if np.any(values < -1e-6):
        found.append(f"{name}: negative in step {int(np.argmin(values))}")


def _battery(
    found: list[str],
    problem: Problem,
    spec: Battery,
    charge: Series,
    discharge: Series,
    soc: Series,
    listed: set[tuple[ShortfallKind, str]],
) -> None:
    where = f"battery {spec.id}"
    dt = problem.horizon.step_hours
    _nonnegative(found, f"{where} charge", charge)
    _nonnegative(found, f"{where} discharge", discharge)
    _limit(found, f"{where} charge", charge, spec.charge_max_w)
    _limit(found, f"{where} discharge", discharge, spec.discharge_max_w)
    if not problem.simultaneous_charge_discharge_allowed:
        _limit(
            found, f"{where} charging and discharging at once", np.minimum(charge, discharge), 0.0
        )
    energy = spec.soc_initial * spec.capacity_wh + np.cumsum(
        (charge * spec.charge_efficiency - discharge / spec.discharge_efficiency) * dt
    )
    if np.max(np.abs(energy / spec.capacity_wh - soc)) > SOC:
        found.append(f"{where}: its SOC is not what its powers give")
    low = min(spec.soc_min, spec.soc_initial) - SOC
    high = max(spec.soc_max, spec.soc_initial) + SOC
    if np.any(soc < low) or np.any(soc > high):
        found.append(f"{where}: SOC outside [{low:.4f}, {high:.4f}]")
    below = spec.soc_initial < spec.soc_min and bool(np.any(soc < spec.soc_min - SOC))
    if below and (ShortfallKind.SOC_FLOOR, spec.id) not in listed:
        found.append(f"{where}: below its floor and not listed")
    if spec.soc_final is not None:
        off = soc[-1] - spec.soc_final
        missed = off < -SOC or (spec.final_rule == "equal" and off > SOC)
        if missed and (ShortfallKind.SOC_FINAL, spec.id) not in listed:
            found.append(f"{where}: misses its final SOC and does not say so")


def _deferrable(
    found: list[str],
    load: Deferrable,
    power: Series,
    step_hours: float,
    listed: set[tuple[ShortfallKind, str]],
) -> None:
    where = f"deferrable {load.id}"
    n = power.size
    _nonnegative(found, where, power)
    on = power > WATT
    first, last = load.window(n)
    running = load.running_steps > 0
    allowed = np.zeros(n, dtype=bool)
    allowed[first:last] = True
    if running and load.single_block:
        allowed[: min(load.required_steps, n)] = True
    if np.any(on & ~allowed):
        found.append(f"{where}: runs outside its window")
    if load.on_off and np.any(on & (np.abs(power - load.power_w) > WATT)):
        found.append(f"{where}: neither off nor at {load.power_w} W")
    if np.any(power > load.power_w + WATT):
        found.append(f"{where}: above {load.power_w} W")
    ran = float(power.sum()) / load.power_w
    if ran > load.required_steps + 1e-3:
        found.append(f"{where}: runs {ran:.2f} steps, more than {load.required_steps}")
    # Less than a watt-hour short is rounding, which a plan does not list (as it assembles).
    missing_wh = (load.required_steps - ran) * load.power_w * step_hours
    if missing_wh > ENERGY_TOLERANCE_WH and (ShortfallKind.RUN_TIME, load.id) not in listed:
        found.append(f"{where}: runs {ran:.2f} of {load.required_steps} steps and does not say so")
    starts = np.flatnonzero(np.diff(np.r_[1 if running else 0, on.astype(int)]) == 1)
    stops = np.flatnonzero(np.diff(np.r_[1 if running else 0, on.astype(int), 0]) == -1)
    if load.single_block and starts.size + (1 if running and on[0] else 0) > 1:
        found.append(f"{where}: runs in more than one block")
    if load.min_on_steps > 1 or load.min_off_steps > 1:
        for start in starts:
            length = int(np.argmin(np.r_[on[start:], False]))
            if length < load.min_on_steps and start + load.min_on_steps <= n:
                found.append(f"{where}: a run of {length} steps is shorter than its minimum")
        for stop in stops:
            following = starts[starts > stop]
            if following.size and following[0] - stop < load.min_off_steps:
                found.append(f"{where}: a rest of {following[0] - stop} steps is too short")


def _ev(
    found: list[str],
    ev: Ev,
    power: Series,
    current: Series,
    phases: np.ndarray[tuple[int], np.dtype[np.int64]],
    n: int,
) -> None:
    where = f"EV {ev.id}"
    _nonnegative(found, where, power)
    away = np.ones(n, dtype=bool)
    away[min(ev.arrive_step, n) : min(ev.depart_step, n)] = False
    if np.any(power[away] > WATT):
        found.append(f"{where}: charges while away")
    for step in np.flatnonzero(power > WATT):
        modes = [m for m in ev.modes if m.phases == phases[step]]
        if not modes:
            found.append(f"{where}: no mode with {phases[step]} phases (step {step})")
            continue
        mode = modes[0]
        if not mode.min_current_a - 1e-6 <= current[step] <= mode.max_current_a + 1e-6:
            found.append(f"{where}: {current[step]:.2f} A outside its range (step {step})")
    expected = current * phases * ev.voltage_v
    if np.any(np.abs(expected - power) > WATT):
        found.append(f"{where}: power is not current x phases x voltage")


def _heat_pump(found: list[str], heat_pump: HeatPump, power: Series) -> None:
    where = f"heat pump {heat_pump.id}"
    _nonnegative(found, where, power)
    _limit(found, where, power, heat_pump.max_power_w)
    if heat_pump.min_power_w > 0:
        low = (power > WATT) & (power < heat_pump.min_power_w - WATT)
        if np.any(low):
            found.append(f"{where}: runs below its minimum power")
