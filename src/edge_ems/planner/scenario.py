"""The planner's file formats: a scenario in (``planner-bench-scenario/1``), a schedule out
(``planner-bench-schedule/1``), as ``/work/shared/planner/README.md`` defines them.

A scenario may also carry what the benchmark format leaves out: ``batteries`` (a list, beside
or instead of ``battery``), ``ev``/``evs``, ``heat_pump``/``heat_pumps``, per-battery policy
and wear cost, and minimum on/off times for deferrable loads. The schedule then gains the
matching fields (see :func:`schedule`); a plain scenario gets exactly the fields the format
lists, plus ``shortfalls`` and ``curtailed_w`` only when there are any.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import voluptuous as vol

from .. import __version__
from .cop import DATASHEET_AIR_WATER_35, CopCurve
from .errors import PlanInputError
from .plan import Plan
from .problem import (
    Battery,
    ChargeMode,
    Deferrable,
    Ev,
    Grid,
    HeatPump,
    Horizon,
    Problem,
    Pv,
    series,
)
from .validation import apply, integer, iso_time, number, zone

SCENARIO_SCHEMA = "planner-bench-scenario/1"
SCHEDULE_SCHEMA = "planner-bench-schedule/1"
PLANNER_NAME = "edge-ems"

_TEXT = vol.All(str, vol.Length(min=1))
_NONNEG = vol.All(number, vol.Range(min=0))
_FRACTION = vol.All(number, vol.Range(min=0, max=1))
_STEPS = vol.All(integer, vol.Range(min=0))


def _number_or_list(value: Any) -> float | list[float]:
    if isinstance(value, list):
        return [number(item) for item in value]
    return number(value)


_BATTERY = vol.Schema(
    {
        vol.Optional("name"): _TEXT,
        vol.Required("capacity_wh"): vol.All(number, vol.Range(min=0, min_included=False)),
        vol.Required("charge_power_max_w"): _NONNEG,
        vol.Required("discharge_power_max_w"): _NONNEG,
        vol.Optional("power_limits_side", default="ac"): vol.In(
            ["ac"], msg="only AC-side power limits are supported"
        ),
        vol.Required("charge_efficiency"): _FRACTION,
        vol.Required("discharge_efficiency"): _FRACTION,
        vol.Required("soc_min"): _FRACTION,
        vol.Required("soc_max"): _FRACTION,
        vol.Required("soc_initial"): _FRACTION,
        vol.Optional("soc_final"): vol.Any(None, _FRACTION),
        vol.Optional("soc_final_rule", default="equal"): vol.In(["equal", "at_least"]),
        vol.Optional("cycle_cost_per_kwh", default=0.0): _NONNEG,
        vol.Optional("export_allowed"): bool,
        vol.Optional("grid_charge_allowed"): bool,
    }
)

_DEFERRABLE = vol.Schema(
    {
        vol.Required("name"): _TEXT,
        vol.Required("power_w"): vol.All(number, vol.Range(min=0, min_included=False)),
        vol.Optional("duration_hours"): _NONNEG,
        vol.Optional("energy_wh"): _NONNEG,
        vol.Required("required_steps"): _STEPS,
        vol.Optional("on_off", default=True): bool,
        vol.Optional("single_block", default=False): bool,
        vol.Optional("earliest_start_step", default=0): _STEPS,
        vol.Optional("latest_end_step"): _STEPS,
        vol.Optional("min_on_steps", default=1): vol.All(integer, vol.Range(min=1)),
        vol.Optional("min_off_steps", default=1): vol.All(integer, vol.Range(min=1)),
        vol.Optional("running_steps", default=0): _STEPS,
    }
)

_POWER_PAIR = "min_power_w and max_power_w go together"

_EV = vol.Schema(
    {
        vol.Required("name"): _TEXT,
        vol.Required("energy_needed_wh"): _NONNEG,
        vol.Exclusive("departure", "departure"): iso_time,
        vol.Exclusive("depart_step", "departure"): integer,
        vol.Exclusive("arrival", "arrival"): iso_time,
        vol.Exclusive("arrive_step", "arrival"): _STEPS,
        vol.Optional("energy_max_wh"): _NONNEG,
        vol.Optional("phases", default=3): vol.Any(
            vol.In([1, 2, 3]), [vol.In([1, 2, 3], msg="phases are 1, 2 or 3")]
        ),
        vol.Optional("min_current_a", default=6.0): vol.All(number, vol.Range(min=0)),
        vol.Optional("max_current_a", default=16.0): vol.All(number, vol.Range(min=0)),
        vol.Inclusive("min_power_w", "power", msg=_POWER_PAIR): vol.All(number, vol.Range(min=0)),
        vol.Inclusive("max_power_w", "power", msg=_POWER_PAIR): vol.All(number, vol.Range(min=0)),
        vol.Optional("voltage_v", default=230.0): vol.All(number, vol.Range(min=1)),
        vol.Optional("current_step_a", default=1.0): vol.All(
            number, vol.Range(min=0, min_included=False)
        ),
        vol.Optional("efficiency", default=0.9): _FRACTION,
    }
)

_HEAT_PUMP = vol.Schema(
    {
        vol.Required("name"): _TEXT,
        vol.Required("max_power_w"): vol.All(number, vol.Range(min=0, min_included=False)),
        vol.Optional("min_power_w", default=0.0): _NONNEG,
        vol.Required("outdoor_temp_c"): _number_or_list,
        vol.Exclusive("cop", "cop"): _number_or_list,
        vol.Exclusive("cop_curve", "cop"): [vol.ExactSequence([number, number])],
        vol.Required("comfort_min_c"): _number_or_list,
        vol.Required("comfort_max_c"): _number_or_list,
        vol.Required("indoor_temp_c"): number,
        vol.Optional("heat_capacity_kwh_per_k", default=10.0): vol.All(
            number, vol.Range(min=0, min_included=False)
        ),
        vol.Optional("heat_loss_w_per_k", default=200.0): vol.All(
            number, vol.Range(min=0, min_included=False)
        ),
    }
)

_POLICY = vol.Schema(
    {
        vol.Optional("battery_export_allowed", default=True): bool,
        vol.Optional("battery_grid_charge_allowed", default=True): bool,
        vol.Optional("pv_curtailment_allowed", default=False): bool,
        vol.Optional("simultaneous_import_export_allowed", default=False): bool,
        vol.Optional("simultaneous_charge_discharge_allowed", default=False): bool,
        vol.Optional("battery_export_rule"): str,
    }
)

_SCENARIO = vol.Schema(
    {
        vol.Required("schema"): vol.In(
            [SCENARIO_SCHEMA], msg=f"this reads {SCENARIO_SCHEMA} scenarios"
        ),
        vol.Optional("generator"): str,
        vol.Optional("seed"): vol.Any(None, integer),
        vol.Required("time_zone"): zone,
        vol.Required("start"): iso_time,
        vol.Required("step_minutes"): vol.All(integer, vol.Range(min=1, max=1440)),
        vol.Required("n_steps"): vol.All(integer, vol.Range(min=1)),
        vol.Optional("horizon_hours"): number,
        vol.Optional("currency", default="EUR"): vol.All(str, vol.Match(r"^[A-Z]{3}$")),
        vol.Required("timestamps"): [iso_time],
        vol.Required("pv_w"): [number],
        vol.Required("load_w"): [number],
        vol.Required("import_price_per_kwh"): [number],
        vol.Required("export_price_per_kwh"): [number],
        vol.Optional("export_price_rule"): str,
        vol.Optional("battery"): vol.Any(None, _BATTERY),
        vol.Optional("batteries"): [_BATTERY],
        vol.Optional("grid", default=dict): vol.Schema(
            {
                vol.Optional("import_max_w", default=math.inf): _NONNEG,
                vol.Optional("export_max_w", default=math.inf): _NONNEG,
                vol.Optional("fuse_a"): vol.All(number, vol.Range(min=0, min_included=False)),
                vol.Optional("phases", default=3): vol.In([1, 3]),
            }
        ),
        vol.Optional("deferrable_loads", default=list): [_DEFERRABLE],
        vol.Exclusive("ev", "ev"): _EV,
        vol.Exclusive("evs", "ev"): [_EV],
        vol.Exclusive("heat_pump", "heat_pump"): _HEAT_PUMP,
        vol.Exclusive("heat_pumps", "heat_pump"): [_HEAT_PUMP],
        vol.Optional("policy", default=dict): _POLICY,
        vol.Optional("conventions"): dict,
    }
)

_EXTENSIONS = ("batteries", "ev", "evs", "heat_pump", "heat_pumps")


@dataclass(frozen=True, slots=True)
class Scenario:
    """A scenario file read: the problem it poses and what the schedule needs from it."""

    problem: Problem
    sha256: str
    """Of the file's bytes, as the schedule quotes it."""
    seed: int | None
    extended: bool
    """It uses fields beyond ``planner-bench-scenario/1``'s own."""
    battery_names: tuple[str, ...]
    deferrable_names: tuple[str, ...]


def load_scenario(path: Path) -> Scenario:
    """Read a scenario file (blocking: call it off the event loop)."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise PlanInputError(f"{path}: cannot read the scenario: {err.strerror}") from None
    return parse_scenario(raw, source=str(path))


def parse_scenario(raw: bytes, *, source: str = "<scenario>") -> Scenario:
    """A scenario from a file's bytes; :class:`PlanInputError` says what is wrong and where."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PlanInputError(f"{source}: not JSON: {err}") from None
    checked = apply(_SCENARIO, data, source=source)
    return _Reader(checked, source).scenario(hashlib.sha256(raw).hexdigest())


class _Reader:
    def __init__(self, data: dict[str, Any], source: str) -> None:
        self.data = data
        self.source = source
        self.n: int = data["n_steps"]

    def fail(self, where: str, message: str) -> PlanInputError:
        return PlanInputError(f"{self.source}: {where}: {message}")

    def scenario(self, sha256: str) -> Scenario:
        data, n = self.data, self.n
        horizon = self._horizon()
        arrays = {}
        for key in ("pv_w", "load_w", "import_price_per_kwh", "export_price_per_kwh"):
            if len(data[key]) != n:
                raise self.fail(key, f"{len(data[key])} values for {n} steps")
            arrays[key] = series(data[key], n, key)
        for key in ("pv_w", "load_w"):
            if np.any(arrays[key] < 0):
                step = int(np.flatnonzero(arrays[key] < 0)[0])
                raise self.fail(f"{key}.{step}", "power must be 0 or more")
        policy = data["policy"]
        batteries = self._batteries(policy)
        grid = data["grid"]
        evs = tuple(self._ev(ev, horizon) for ev in self._many("ev", "evs"))
        heat_pumps = tuple(self._heat_pump(hp) for hp in self._many("heat_pump", "heat_pumps"))
        loads = tuple(self._deferrable(i, d) for i, d in enumerate(data["deferrable_loads"]))
        try:
            problem = Problem(
                horizon=horizon,
                load_w=arrays["load_w"],
                import_price=arrays["import_price_per_kwh"],
                export_price=arrays["export_price_per_kwh"],
                pv=Pv(arrays["pv_w"], curtailable=policy["pv_curtailment_allowed"]),
                grid=Grid(
                    import_max_w=grid["import_max_w"],
                    export_max_w=grid["export_max_w"],
                    fuse_a=grid.get("fuse_a"),
                    phases=grid["phases"],
                    simultaneous_import_export_allowed=policy["simultaneous_import_export_allowed"],
                ),
                batteries=tuple(batteries),
                evs=evs,
                heat_pumps=heat_pumps,
                deferrables=loads,
                simultaneous_charge_discharge_allowed=policy["simultaneous_charge_discharge_allowed"],
                currency=data["currency"],
            )  # fmt: skip
        except PlanInputError as err:
            raise PlanInputError(f"{self.source}: {err}") from None
        return Scenario(
            problem=problem,
            sha256=sha256,
            seed=data.get("seed"),
            extended=any(key in data for key in _EXTENSIONS),
            battery_names=tuple(b.id for b in batteries),
            deferrable_names=tuple(d.id for d in problem.deferrables),
        )

    def _many(self, one: str, many: str) -> list[dict[str, Any]]:
        if one in self.data:
            return [self.data[one]]
        found: list[dict[str, Any]] = self.data.get(many, [])
        return found

    def _horizon(self) -> Horizon:
        data, n = self.data, self.n
        start: datetime = data["start"]
        step = timedelta(minutes=data["step_minutes"])
        if 1440 % data["step_minutes"]:
            raise self.fail("step_minutes", "must divide a day")
        local = start.astimezone(data["time_zone"])
        if local.utcoffset() != start.utcoffset():
            raise self.fail(
                "start",
                f"{start.isoformat()} is not a time in {data['time_zone'].key} "
                f"(that zone is at UTC{_offset(local)} then)",
            )
        hours = data.get("horizon_hours")
        if hours is not None and not math.isclose(hours, n * step / timedelta(hours=1)):
            raise self.fail(
                "horizon_hours", f"{hours:g} h is not {n} steps of {data['step_minutes']} minutes"
            )
        timestamps: list[datetime] = data["timestamps"]
        if len(timestamps) != n:
            raise self.fail("timestamps", f"{len(timestamps)} values for {n} steps")
        for index, stamp in enumerate(timestamps):
            if stamp != start + index * step:
                raise self.fail(
                    f"timestamps.{index}",
                    f"{stamp.isoformat()} is not the start plus {index} steps",
                )
        return Horizon(local, data["step_minutes"], n)

    def _batteries(self, policy: Mapping[str, Any]) -> list[Battery]:
        described = []
        if self.data.get("battery") is not None:
            described.append(("battery", self.data["battery"]))
        described += [(f"batteries.{i}", b) for i, b in enumerate(self.data.get("batteries", []))]
        batteries = []
        for index, (where, spec) in enumerate(described):
            name = spec.get("name") or ("battery" if index == 0 else f"battery_{index + 1}")
            try:
                batteries.append(
                    Battery(
                        id=name,
                        capacity_wh=spec["capacity_wh"],
                        charge_max_w=spec["charge_power_max_w"],
                        discharge_max_w=spec["discharge_power_max_w"],
                        soc_initial=spec["soc_initial"],
                        charge_efficiency=spec["charge_efficiency"],
                        discharge_efficiency=spec["discharge_efficiency"],
                        soc_min=spec["soc_min"],
                        soc_max=spec["soc_max"],
                        soc_final=spec.get("soc_final"),
                        final_rule=spec["soc_final_rule"],
                        cycle_cost_per_kwh=spec["cycle_cost_per_kwh"],
                        grid_charge_allowed=spec.get(
                            "grid_charge_allowed", policy["battery_grid_charge_allowed"]
                        ),
                        export_allowed=spec.get("export_allowed", policy["battery_export_allowed"]),
                    )
                )
            except PlanInputError as err:
                raise self.fail(where, str(err)) from None
        return batteries

    def _deferrable(self, index: int, spec: dict[str, Any]) -> Deferrable:
        where = f"deferrable_loads.{index}"
        step_hours = self.data["step_minutes"] / 60
        duration = spec.get("duration_hours")
        if duration is not None and not math.isclose(
            spec["required_steps"] * step_hours, duration, abs_tol=1e-9
        ):
            raise self.fail(
                where,
                f"required_steps {spec['required_steps']} is not duration_hours {duration} "
                f"in {self.data['step_minutes']}-minute steps",
            )
        energy = spec.get("energy_wh")
        if energy is not None and not math.isclose(
            spec["required_steps"] * step_hours * spec["power_w"], energy, rel_tol=1e-6
        ):
            raise self.fail(where, f"energy_wh {energy} is not power_w x duration")
        latest = spec.get("latest_end_step", self.n)
        if latest > self.n:
            raise self.fail(where, f"latest_end_step {latest} is beyond the {self.n} steps")
        try:
            return Deferrable(
                id=spec["name"],
                power_w=spec["power_w"],
                required_steps=spec["required_steps"],
                earliest_step=spec["earliest_start_step"],
                latest_step=latest,
                on_off=spec["on_off"],
                single_block=spec["single_block"],
                min_on_steps=spec["min_on_steps"],
                min_off_steps=spec["min_off_steps"],
                running_steps=spec["running_steps"],
            )
        except PlanInputError as err:
            raise self.fail(where, str(err)) from None

    def _ev(self, spec: dict[str, Any], horizon: Horizon) -> Ev:
        where = f"EV {spec['name']!r}"
        if "departure" in spec:
            departure: datetime = spec["departure"]
            if departure <= horizon.start:
                raise self.fail(
                    where,
                    f"departure {departure.isoformat()} is not after the scenario starts "
                    f"({horizon.start.isoformat()})",
                )
            # The car is gone from the step its departure falls in.
            depart_step = horizon.step_at(departure)
        elif "depart_step" in spec:
            depart_step = spec["depart_step"]
        else:
            raise self.fail(where, "needs departure (a time) or depart_step")
        arrive_step = spec.get("arrive_step", 0)
        if "arrival" in spec:
            arrival: datetime = spec["arrival"]
            late = arrival.astimezone(UTC) - horizon.start.astimezone(UTC)
            arrive_step = max(0, math.ceil(late / horizon.step))
        phases = spec["phases"] if isinstance(spec["phases"], list) else [spec["phases"]]
        low, high = spec["min_current_a"], spec["max_current_a"]
        if "min_power_w" in spec:
            # A charger set by power: its range as the current it would draw on those phases.
            if len(phases) > 1:
                raise self.fail(where, "a power range and several phase modes do not mix")
            volts = spec["voltage_v"] * phases[0]
            low, high = spec["min_power_w"] / volts, spec["max_power_w"] / volts
        try:
            modes = tuple(
                ChargeMode(phases=p, min_current_a=low, max_current_a=high) for p in phases
            )
            return Ev(
                id=spec["name"],
                energy_needed_wh=spec["energy_needed_wh"],
                depart_step=depart_step,
                arrive_step=arrive_step,
                energy_max_wh=spec.get("energy_max_wh"),
                modes=modes,
                voltage_v=spec["voltage_v"],
                current_step_a=spec["current_step_a"],
                efficiency=spec["efficiency"],
            )
        except PlanInputError as err:
            raise self.fail(where, str(err)) from None

    def _heat_pump(self, spec: dict[str, Any]) -> HeatPump:
        n, where = self.n, f"heat pump {spec['name']!r}"
        try:
            outdoor = series(spec["outdoor_temp_c"], n, "outdoor_temp_c")
            if "cop" in spec:
                cop = series(spec["cop"], n, "cop")
            else:
                curve = (
                    CopCurve(tuple((t, c) for t, c in spec["cop_curve"]))
                    if "cop_curve" in spec
                    else DATASHEET_AIR_WATER_35
                )
                cop = series(curve(outdoor), n, "cop")
            return HeatPump(
                id=spec["name"],
                max_power_w=spec["max_power_w"],
                min_power_w=spec["min_power_w"],
                cop=cop,
                outdoor_temp_c=outdoor,
                comfort_min_c=series(spec["comfort_min_c"], n, "comfort_min_c"),
                comfort_max_c=series(spec["comfort_max_c"], n, "comfort_max_c"),
                indoor_temp_c=spec["indoor_temp_c"],
                heat_capacity_kwh_per_k=spec["heat_capacity_kwh_per_k"],
                heat_loss_w_per_k=spec["heat_loss_w_per_k"],
            )
        except PlanInputError as err:
            raise self.fail(where, str(err)) from None


def _offset(moment: datetime) -> str:
    offset = moment.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def schedule(scenario: Scenario, plan: Plan) -> dict[str, Any]:
    """The ``planner-bench-schedule/1`` document of ``plan``.

    Powers are rounded to the milliwatt and SOC recomputed from the rounded powers, so a
    scorer recomputing it finds exactly what is written. Several batteries are summed into
    ``battery_charge_w``/``battery_discharge_w`` (their SOC is the total energy over the
    total capacity) and listed one by one under ``batteries``.
    """
    problem = scenario.problem
    n, dt = problem.horizon.n_steps, problem.horizon.step_hours
    charges = [_mw(b.charge_w) for b in plan.batteries]
    discharges = [_mw(b.discharge_w) for b in plan.batteries]
    deferrables = [_mw(d.power_w) for d in plan.deferrables]
    socs = []
    energy_total = np.zeros(n)
    for battery, charge, discharge in zip(problem.batteries, charges, discharges, strict=True):
        energy = battery.soc_initial * battery.capacity_wh + np.cumsum(
            (charge * battery.charge_efficiency - discharge / battery.discharge_efficiency) * dt
        )
        energy_total += energy
        socs.append(energy / battery.capacity_wh)
    document: dict[str, Any] = {
        "schema": SCHEDULE_SCHEMA,
        "grid_import_w": _list(_mw(plan.grid_import_w)),
        "grid_export_w": _list(_mw(plan.grid_export_w)),
        "battery_charge_w": _list(sum(charges, np.zeros(n))),
        "battery_discharge_w": _list(sum(discharges, np.zeros(n))),
        "deferrable_w": [_list(power) for power in deferrables],
    }
    if socs:
        capacity = sum(b.capacity_wh for b in problem.batteries)
        document["soc"] = [round(float(v), 7) for v in energy_total / capacity]
    document.update(
        {
            "planner": {"name": PLANNER_NAME, "version": __version__},
            "scenario_sha256": scenario.sha256,
            "solve_ms": round(plan.solve_ms, 3),
            "status": str(plan.status),
        }
    )
    if scenario.extended:
        document["batteries"] = [
            {"name": b.id, "charge_w": _list(c), "discharge_w": _list(d),
             "soc": [round(float(v), 7) for v in soc]}
            for b, c, d, soc in zip(plan.batteries, charges, discharges, socs, strict=True)
        ]  # fmt: skip
        document["evs"] = [
            {"name": ev.id, "power_w": _list(_mw(ev.power_w)),
             "current_a": [round(float(v), 3) for v in ev.current_a],
             "phases": [int(v) for v in ev.phases]}
            for ev in plan.evs
        ]  # fmt: skip
        document["heat_pumps"] = [
            {"name": hp.id, "power_w": _list(_mw(hp.power_w)),
             "indoor_temp_c": [round(float(v), 4) for v in hp.indoor_temp_c]}
            for hp in plan.heat_pumps
        ]  # fmt: skip
        document["cost"] = round(plan.cost, 6)
    if scenario.extended or np.any(plan.curtailed_w > 0):
        document["curtailed_w"] = _list(_mw(plan.curtailed_w))
    if scenario.extended or plan.shortfalls:
        document["shortfalls"] = [shortfall.as_dict() for shortfall in plan.shortfalls]
    return document


def _mw(values: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, np.dtype[np.float64]]:
    rounded: np.ndarray[Any, np.dtype[np.float64]] = np.round(values, 3) + 0.0
    return rounded


def _list(values: np.ndarray[Any, np.dtype[np.float64]] | Sequence[float]) -> list[float]:
    return [float(v) for v in values]


@dataclass(frozen=True, slots=True)
class ScheduleScore:
    """A schedule scored against its scenario, as the format's README scores it."""

    cost: float
    """Import paid minus export earned, in the scenario's currency."""
    violations: tuple[str, ...]
    """Every rule broken beyond the tolerances (1 W, 1 Wh, 1e-4 SOC), in words."""


def score(scenario: Scenario, document: Mapping[str, Any]) -> ScheduleScore:
    """Recompute cost and SOC from a schedule's powers and check every rule of the format.

    For scenarios with one battery (the benchmark format); a schedule from any planner
    (EMHASS's included) is scored the same way.
    """
    problem = scenario.problem
    n, dt = problem.horizon.n_steps, problem.horizon.step_hours
    violations: list[str] = []

    def array(key: str) -> np.ndarray[Any, np.dtype[np.float64]]:
        values = np.asarray(document.get(key, []), dtype=np.float64)
        if values.shape != (n,):
            violations.append(f"{key}: {values.size} values for {n} steps")
            return np.zeros(n)
        if np.any(values < -1e-6):
            violations.append(f"{key}: negative in step {int(np.flatnonzero(values < -1e-6)[0])}")
        return values

    imports, exports = array("grid_import_w"), array("grid_export_w")
    charge, discharge = array("battery_charge_w"), array("battery_discharge_w")
    loads = [np.asarray(v, dtype=np.float64) for v in document.get("deferrable_w", [])]
    if len(loads) != len(problem.deferrables):
        violations.append(f"deferrable_w: {len(loads)} loads for {len(problem.deferrables)}")
        loads = [np.zeros(n) for _ in problem.deferrables]
    import_max, export_max = problem.grid.limits(n)
    _over(violations, "grid_import_w", imports, import_max)
    _over(violations, "grid_export_w", exports, export_max)
    balance = problem.pv.forecast_w + imports - exports + discharge - charge - problem.load_w
    balance -= sum(loads, np.zeros(n))
    _over(violations, "balance", np.abs(balance), np.zeros(n))
    surplus = np.maximum(0.0, problem.pv.forecast_w - problem.load_w)
    if not problem.grid.simultaneous_import_export_allowed:
        _over(violations, "simultaneous import and export", np.minimum(imports, exports), 0)
    for battery in problem.batteries[:1]:
        _over(violations, "battery_charge_w", charge, np.full(n, battery.charge_max_w))
        _over(violations, "battery_discharge_w", discharge, np.full(n, battery.discharge_max_w))
        if not problem.simultaneous_charge_discharge_allowed:
            both = np.minimum(charge, discharge)
            _over(violations, "simultaneous charge and discharge", both, 0)
        if not battery.export_allowed:
            _over(violations, "export beyond PV surplus", exports, surplus)
        if not battery.grid_charge_allowed:
            _over(violations, "charge beyond PV surplus", charge, surplus)
        energy = battery.soc_initial * battery.capacity_wh + np.cumsum(
            (charge * battery.charge_efficiency - discharge / battery.discharge_efficiency) * dt
        )
        soc = energy / battery.capacity_wh
        low = min(battery.soc_min, battery.soc_initial) - 1e-4
        high = max(battery.soc_max, battery.soc_initial) + 1e-4
        if np.any(soc < low) or np.any(soc > high):
            step = int(np.flatnonzero((soc < low) | (soc > high))[0])
            violations.append(f"soc: {soc[step]:.5f} outside the window in step {step}")
        if battery.soc_final is not None:
            off = soc[-1] - battery.soc_final
            if off < -1e-4 or (battery.final_rule == "equal" and off > 1e-4):
                violations.append(f"soc: ends at {soc[-1]:.5f}, not {battery.soc_final:.5f}")
        stated = document.get("soc")
        if stated is not None and np.max(np.abs(np.asarray(stated) - soc)) > 1e-4:
            violations.append("soc: the stated SOC is not what the powers give")
    for load, power in zip(problem.deferrables, loads, strict=True):
        _deferrable_rules(violations, load, power, n)
    cost = float(np.sum(imports * problem.import_price - exports * problem.export_price)) * dt
    return ScheduleScore(cost / 1000.0, tuple(violations))


def _over(
    violations: list[str],
    name: str,
    values: np.ndarray[Any, np.dtype[np.float64]],
    limit: np.ndarray[Any, np.dtype[np.float64]] | float,
    tolerance: float = 1.0,
) -> None:
    excess = values - limit - tolerance
    if np.any(excess > 0):
        step = int(np.flatnonzero(excess > 0)[0])
        violations.append(f"{name}: {values[step]:.3f} W beyond the limit in step {step}")


def _deferrable_rules(
    violations: list[str], load: Deferrable, power: np.ndarray[Any, np.dtype[np.float64]], n: int
) -> None:
    where = f"deferrable {load.id}"
    if power.shape != (n,):
        violations.append(f"{where}: {power.size} values for {n} steps")
        return
    first, last = load.window(n)
    outside = np.ones(n, dtype=bool)
    outside[first:last] = False
    if np.any(power[outside] > 1.0):
        violations.append(f"{where}: runs outside its window")
    on = power > 1.0
    if load.on_off and np.any(on & (np.abs(power - load.power_w) > 1.0)):
        violations.append(f"{where}: neither off nor at {load.power_w} W")
    ran = float(power.sum()) / load.power_w
    if abs(ran - load.required_steps) > 1e-3:
        violations.append(f"{where}: runs {ran:.3f} steps, not {load.required_steps}")
    if load.single_block and np.count_nonzero(np.diff(np.r_[0, on.astype(int), 0]) == 1) > 1:
        violations.append(f"{where}: runs in more than one block")
