"""A :class:`~.problem.Problem` as a HiGHS model: columns, rows and a sparse matrix, built
with numpy in one pass (no modelling layer: building stays a few milliseconds).

The formulation, in kW, kWh and hours (``dt`` is the step):

- **Balance**, every step: ``import - export + Σ(discharge - charge) - curtailed -
  Σ flexible loads + unserved - excess = load - pv``. ``unserved`` and ``excess`` are slack
  priced far above any energy price, so the model is feasible whatever the forecasts and
  the plan lists them when they are used.
- **Batteries**: ``e_t = e_{t-1} + dt·(η_c·charge_t - discharge_t/η_d)``, ``e`` in the SOC
  window; the final SOC and the SOC floor (for a battery that starts below it) are soft.
- **Deferrable loads**: an on/off load is a binary per step with ``Σ x + short =
  required``; one contiguous block is a binary per possible *start*, its power in step
  ``t`` the sum of the starts that cover ``t`` (an interval matrix: its relaxation is
  integral for a load on its own, so the branch and bound has little left to do); minimum on
  and off times use start/stop variables (the tight up/down-time inequalities).
- **EV**: charge current per step (its mean over the step), semi-continuous from the minimum
  current, energy by departure soft. Several modes (1 or 3 phases) add a binary each.
- **Heat pump**: ``T_t = a·T_{t-1} + (1-a)·T_out + b·COP_t·P_t`` (exact for a first-order
  model with the inputs held over a step), comfort band soft.

Binaries only where the hardware or the prices need them: on/off loads, EV modes, and the
exclusion of simultaneous import and export only in steps where exporting pays more than
importing costs (elsewhere netting the two never costs money, so the solver never wants
both). Simultaneous charge and discharge only wastes energy, which pays only when energy has
a negative value; the solver adds those binaries for the steps that need them (see
:mod:`.solver`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from .problem import Battery, Deferrable, Ev, HeatPump, Problem, Series

KW = 1000.0

CONTINUOUS, INTEGER, SEMI_CONTINUOUS, SEMI_INTEGER = 0, 1, 2, 3
"""HiGHS's variable types (``HighsVarType``)."""

INF = math.inf

type Index = npt.NDArray[np.int64]

NO_COLUMN = -1


@dataclass(frozen=True, slots=True)
class Penalties:
    """What breaking each soft requirement costs, as multiples of the horizon's price scale
    (its largest absolute price, at least 0.01 per kWh).

    The order decides what gives way first when not everything fits: unserved load and
    excess generation (physically impossible plans) last, then EV energy and deferrable run
    time, then the final state of charge, then comfort, then the SOC floor.
    """

    unserved: float = 1000.0
    """Per kWh of load the site cannot serve, or generation it cannot place."""
    requirement: float = 100.0
    """Per kWh of EV energy or deferrable run time not delivered."""
    soc_final: float = 50.0
    """Per kWh missing from (or above, for ``equal``) a battery's final state of charge."""
    comfort: float = 40.0
    """Per kelvin·hour outside the comfort band, times the building's heat capacity over
    the heat pump's lowest COP (the electricity one kelvin costs)."""
    soc_floor: float = 10.0
    """Per kWh·h a battery spends below its SOC floor."""
    throughput: float = 1e-5
    """Per kWh charged or discharged: breaks ties towards not cycling for nothing."""


@dataclass(frozen=True, slots=True)
class BatteryColumns:
    """Where one battery's variables are."""

    charge: Index
    discharge: Index
    energy: Index
    under: Index | None
    """Energy below the SOC floor, when the battery starts below it."""
    final_low: int
    final_high: int
    """Shortfall and excess against the final SOC (``NO_COLUMN`` without a target)."""


@dataclass(frozen=True, slots=True)
class DeferrableColumns:
    """Where one deferrable load's variables are.

    ``steps``: one column per step (``NO_COLUMN`` outside the window), power ``power_kw x
    x``. ``block``: one column per possible start in ``starts``, each covering
    ``block_steps``. ``fixed_kw``: power already decided (a block that is running).
    """

    power_kw: float
    steps: Index | None
    starts: Index | None
    start_columns: Index | None
    block_steps: int
    short: int
    """Shortfall column: steps not run (``steps``) or the block not run (``block``)."""
    short_steps_per_unit: float
    fixed_kw: Series
    fixed_short_steps: int
    """Steps that cannot be run whatever the plan (the window is too short)."""
    up_down: bool = False
    """Minimum on/off times apply (start/stop variables tie the steps together)."""


@dataclass(frozen=True, slots=True)
class EvColumns:
    """Where one EV's variables are: current per mode and step (``NO_COLUMN`` when away)."""

    currents: tuple[Index, ...]
    kw_per_a: tuple[float, ...]
    mode_binaries: tuple[Index, ...] | None
    short: int
    need_kwh: float


@dataclass(frozen=True, slots=True)
class HeatPumpColumns:
    """Where one heat pump's variables are."""

    power: Index
    temperature: Index
    below: Index
    above: Index


@dataclass(frozen=True, slots=True)
class Layout:
    """Where every variable of a :class:`Model` is, to read a solution back."""

    grid_import: Index
    grid_export: Index
    curtailed: Index | None
    unserved: Index
    excess: Index
    batteries: tuple[BatteryColumns, ...]
    deferrables: tuple[DeferrableColumns, ...]
    evs: tuple[EvColumns, ...]
    heat_pumps: tuple[HeatPumpColumns, ...]
    grid_binaries: Index
    grid_binary_steps: Index


@dataclass(frozen=True, slots=True, eq=False)
class Model:
    """Column and row data and the row-wise sparse matrix, as ``Highs.passModel`` takes them."""

    col_cost: npt.NDArray[np.float64]
    col_lower: npt.NDArray[np.float64]
    col_upper: npt.NDArray[np.float64]
    integrality: npt.NDArray[np.int32]
    row_lower: npt.NDArray[np.float64]
    row_upper: npt.NDArray[np.float64]
    a_start: npt.NDArray[np.int32]
    a_index: npt.NDArray[np.int32]
    a_value: npt.NDArray[np.float64]
    layout: Layout
    scale: float
    """The price scale the penalties are multiples of (currency per kWh)."""
    integer_keys: dict[int, tuple[str, str, int]] = field(default_factory=dict)
    """Integer column → (kind, asset id, step start in epoch seconds), for warm starts."""

    @property
    def n_col(self) -> int:
        """Number of columns."""
        return int(self.col_cost.size)

    @property
    def n_row(self) -> int:
        """Number of rows."""
        return int(self.row_lower.size)

    @property
    def is_mip(self) -> bool:
        """Whether any column is integer or semi-continuous."""
        return bool(np.any(self.integrality != CONTINUOUS))


class _Builder:
    """Columns, rows and coefficients gathered as numpy blocks, joined once."""

    def __init__(self) -> None:
        self.n_col = 0
        self.n_row = 0
        self._cost: list[npt.NDArray[np.float64]] = []
        self._lower: list[npt.NDArray[np.float64]] = []
        self._upper: list[npt.NDArray[np.float64]] = []
        self._kind: list[npt.NDArray[np.int32]] = []
        self._row_lower: list[npt.NDArray[np.float64]] = []
        self._row_upper: list[npt.NDArray[np.float64]] = []
        self._rows: list[Index] = []
        self._cols: list[Index] = []
        self._values: list[npt.NDArray[np.float64]] = []

    def columns(
        self,
        n: int,
        lower: float | npt.ArrayLike,
        upper: float | npt.ArrayLike,
        cost: float | npt.ArrayLike = 0.0,
        kind: int = CONTINUOUS,
    ) -> Index:
        index = np.arange(self.n_col, self.n_col + n, dtype=np.int64)
        self.n_col += n
        self._lower.append(np.broadcast_to(np.asarray(lower, dtype=np.float64), (n,)))
        self._upper.append(np.broadcast_to(np.asarray(upper, dtype=np.float64), (n,)))
        self._cost.append(np.broadcast_to(np.asarray(cost, dtype=np.float64), (n,)))
        self._kind.append(np.full(n, kind, dtype=np.int32))
        return index

    def column(self, lower: float, upper: float, cost: float = 0.0, kind: int = CONTINUOUS) -> int:
        return int(self.columns(1, lower, upper, cost, kind)[0])

    def update(
        self,
        columns: Index,
        *,
        lower: npt.ArrayLike | None = None,
        upper: npt.ArrayLike | None = None,
        cost: npt.ArrayLike | None = None,
    ) -> None:
        """Change the bounds or costs of some columns of one earlier block."""
        if columns.size == 0:
            return
        first = int(columns.min())
        offset = 0
        for position, block in enumerate(self._lower):
            if offset <= first < offset + block.size:
                local = columns - offset
                for values, store in (
                    (lower, self._lower),
                    (upper, self._upper),
                    (cost, self._cost),
                ):
                    if values is not None:
                        changed = store[position].copy()
                        changed[local] = values
                        store[position] = changed
                return
            offset += block.size
        raise AssertionError("column block not found")

    def upper_of(self, columns: Index) -> npt.NDArray[np.float64]:
        """The upper bounds of some columns."""
        return np.concatenate(self._upper)[columns]

    def lower_of(self, columns: Index) -> npt.NDArray[np.float64]:
        """The lower bounds of some columns."""
        return np.concatenate(self._lower)[columns]

    def rows(self, n: int, lower: float | npt.ArrayLike, upper: float | npt.ArrayLike) -> Index:
        index = np.arange(self.n_row, self.n_row + n, dtype=np.int64)
        self.n_row += n
        self._row_lower.append(np.broadcast_to(np.asarray(lower, dtype=np.float64), (n,)))
        self._row_upper.append(np.broadcast_to(np.asarray(upper, dtype=np.float64), (n,)))
        return index

    def add(self, rows: npt.ArrayLike, cols: npt.ArrayLike, values: npt.ArrayLike) -> None:
        r, c, v = np.broadcast_arrays(
            np.asarray(rows, dtype=np.int64),
            np.asarray(cols, dtype=np.int64),
            np.asarray(values, dtype=np.float64),
        )
        keep = (v != 0) & (c != NO_COLUMN)
        self._rows.append(r[keep].ravel())
        self._cols.append(c[keep].ravel())
        self._values.append(v[keep].ravel())

    def finish(self, layout: Layout, scale: float, keys: dict[int, tuple[str, str, int]]) -> Model:
        rows = np.concatenate(self._rows) if self._rows else np.zeros(0, np.int64)
        cols = np.concatenate(self._cols) if self._cols else np.zeros(0, np.int64)
        values = np.concatenate(self._values) if self._values else np.zeros(0)
        order = np.lexsort((cols, rows))
        start = np.zeros(self.n_row + 1, dtype=np.int32)
        np.cumsum(np.bincount(rows, minlength=self.n_row), out=start[1:])
        return Model(
            col_cost=np.concatenate(self._cost),
            col_lower=np.concatenate(self._lower),
            col_upper=np.concatenate(self._upper),
            integrality=np.concatenate(self._kind),
            row_lower=_cat(self._row_lower),
            row_upper=_cat(self._row_upper),
            a_start=start,
            a_index=cols[order].astype(np.int32),
            a_value=values[order],
            layout=layout,
            scale=scale,
            integer_keys=keys,
        )


def _cat(parts: list[npt.NDArray[np.float64]]) -> npt.NDArray[np.float64]:
    return np.concatenate(parts) if parts else np.zeros(0)


def price_scale(problem: Problem) -> float:
    """The largest absolute price, wear cost or terminal value, at least 0.01 per kWh."""
    prices = np.concatenate([np.abs(problem.import_price), np.abs(problem.export_price)])
    wear = [battery.cycle_cost_per_kwh for battery in problem.batteries]
    kept = [abs(battery.terminal_value_per_kwh) for battery in problem.batteries]
    return max(float(prices.max(initial=0.0)), *wear, *kept, 0.01)


def surplus_kw(problem: Problem) -> Series:
    """PV beyond the house load, per step: what a battery may export or charge from when
    its policy forbids the grid."""
    return np.maximum(0.0, problem.pv.forecast_w - problem.load_w) / KW


def build(problem: Problem, penalties: Penalties | None = None) -> Model:
    """The model of ``problem``."""
    return _ModelBuilder(problem, penalties or Penalties()).build()


class _ModelBuilder:
    def __init__(self, problem: Problem, penalties: Penalties) -> None:
        self.problem = problem
        self.penalties = penalties
        self.n = problem.horizon.n_steps
        self.dt = problem.horizon.step_hours
        self.scale = price_scale(problem)
        self.b = _Builder()
        self.keys: dict[int, tuple[str, str, int]] = {}
        start = problem.horizon.start.timestamp()
        step_s = problem.horizon.step_minutes * 60
        self.step_epoch = (start + np.arange(self.n) * step_s).astype(np.int64)
        self.load_kw = problem.load_w / KW
        self.pv_kw = problem.pv.forecast_w / KW
        self.fixed_kw = np.zeros(self.n)
        """Consumption already decided (blocks running now), on the balance's right side."""
        for load in problem.deferrables:
            if load.single_block and load.running_steps > 0:
                self.fixed_kw[: _running_end(load, self.n)] += load.power_w / KW

    def build(self) -> Model:
        p, b, n = self.problem, self.b, self.n
        balance = b.rows(
            n, self.load_kw - self.pv_kw + self.fixed_kw, self.load_kw - self.pv_kw + self.fixed_kw
        )
        self.balance = balance
        import_cap, export_cap = self._grid_caps()
        grid_import = b.columns(n, 0.0, import_cap, p.import_price * self.dt)
        grid_export = b.columns(n, 0.0, export_cap, -p.export_price * self.dt)
        b.add(balance, grid_import, 1.0)
        b.add(balance, grid_export, -1.0)
        curtailed = None
        if p.pv.curtailable:
            tie = self.penalties.throughput * self.scale * self.dt
            curtailed = b.columns(n, 0.0, self.pv_kw, tie)
            b.add(balance, curtailed, -1.0)
        big = self.penalties.unserved * self.scale * self.dt
        unserved = b.columns(n, 0.0, INF, big)
        excess = b.columns(n, 0.0, INF, big)
        b.add(balance, unserved, 1.0)
        b.add(balance, excess, -1.0)
        batteries = tuple(self._battery(battery) for battery in p.batteries)
        self._battery_policies(batteries, grid_export)
        deferrables = tuple(self._deferrable(load) for load in p.deferrables)
        evs = tuple(self._ev(ev) for ev in p.evs)
        heat_pumps = tuple(self._heat_pump(heat_pump) for heat_pump in p.heat_pumps)
        self._holds(batteries, deferrables, evs, heat_pumps)
        grid_binaries, grid_steps = self._grid_exclusion(grid_import, grid_export)
        layout = Layout(
            grid_import, grid_export, curtailed, unserved, excess, batteries, deferrables, evs,
            heat_pumps, grid_binaries, grid_steps,
        )  # fmt: skip
        return b.finish(layout, self.scale, self.keys)

    def _holds(
        self,
        batteries: tuple[BatteryColumns, ...],
        deferrables: tuple[DeferrableColumns, ...],
        evs: tuple[EvColumns, ...],
        heat_pumps: tuple[HeatPumpColumns, ...],
    ) -> None:
        """Overrides: in held steps an asset may do at most what it is held at, and every kWh
        of it earns the requirement penalty, so it does all of it unless it cannot."""
        p, b, dt = self.problem, self.b, self.dt
        if not p.holds:
            return
        reward = -self.penalties.requirement * self.scale * dt
        for battery, columns in zip(p.batteries, batteries, strict=True):
            held = p.held(battery.id) / KW
            steps = np.flatnonzero(np.isfinite(held))
            out, into = steps[held[steps] >= 0], steps[held[steps] < 0]
            for active, idle, power in ((columns.discharge, columns.charge, held),
                                        (columns.charge, columns.discharge, -held)):  # fmt: skip
                chosen = out if active is columns.discharge else into
                cap = np.minimum(b.upper_of(active[chosen]), power[chosen])
                b.update(active[chosen], upper=cap, cost=reward)
                b.update(idle[chosen], upper=0.0)
        for ev, ev_columns in zip(p.evs, evs, strict=True):
            held = -p.held(ev.id) / KW
            for mode, factor, currents in zip(
                ev.modes, ev_columns.kw_per_a, ev_columns.currents, strict=True
            ):
                steps = np.flatnonzero(np.isfinite(held) & (currents != NO_COLUMN))
                amps = np.minimum(mode.max_current_a, np.maximum(held[steps], 0.0) / factor)
                blocked = amps < mode.min_current_a
                b.update(currents[steps], upper=np.where(blocked, 0.0, amps),
                         lower=np.where(blocked, 0.0, b.lower_of(currents[steps])),
                         cost=reward * ev.efficiency * factor)  # fmt: skip
        for heat_pump, hp_columns in zip(p.heat_pumps, heat_pumps, strict=True):
            held = -p.held(heat_pump.id) / KW
            steps = np.flatnonzero(np.isfinite(held))
            cap = np.minimum(heat_pump.max_power_w / KW, np.maximum(held[steps], 0.0))
            blocked = cap < heat_pump.min_power_w / KW
            b.update(hp_columns.power[steps], upper=np.where(blocked, 0.0, cap),
                     lower=np.where(blocked, 0.0, b.lower_of(hp_columns.power[steps])),
                     cost=reward)  # fmt: skip
        for load, load_columns in zip(p.deferrables, deferrables, strict=True):
            if load_columns.steps is None:
                continue
            held = -p.held(load.id)
            steps = np.flatnonzero(np.isfinite(held) & (load_columns.steps != NO_COLUMN))
            on = held[steps] >= load.power_w / 2
            # Held off wins over a minimum on time still running.
            b.update(load_columns.steps[steps[~on]], lower=0.0, upper=0.0)
            b.update(load_columns.steps[steps[on]], cost=reward * load.power_w / KW)

    def _key(self, column: int, kind: str, asset: str, step: int) -> None:
        self.keys[column] = (kind, asset, int(self.step_epoch[step]))

    def _grid_caps(self) -> tuple[Series, Series]:
        """Import and export bounds: the grid's limits, tightened to what the site could
        ever draw or deliver (finite bounds keep the exclusion binaries' big-M small)."""
        p = self.problem
        limit_import, limit_export = p.grid.limits(self.n)
        draw = self.load_kw + self.fixed_kw
        draw += sum((battery.charge_max_w for battery in p.batteries), 0.0) / KW
        for load in p.deferrables:
            first, last = load.window(self.n)
            draw[first:last] += load.power_w / KW
        for ev in p.evs:
            draw[ev.arrive_step : ev.depart_step] += ev.max_power_w / KW
        for heat_pump in p.heat_pumps:
            draw += heat_pump.max_power_w / KW
        deliver = self.pv_kw + sum((b.discharge_max_w for b in p.batteries), 0.0) / KW
        return np.minimum(limit_import / KW, draw), np.minimum(limit_export / KW, deliver)

    def _grid_exclusion(self, grid_import: Index, grid_export: Index) -> tuple[Index, Index]:
        """A binary per step where exporting pays more than importing costs: the only steps
        where the solver would gain from doing both at once."""
        p, b = self.problem, self.b
        if p.grid.simultaneous_import_export_allowed:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        steps = np.flatnonzero(p.export_price > p.import_price)
        if steps.size == 0:
            return np.zeros(0, np.int64), steps
        z = b.columns(steps.size, 0.0, 1.0, 0.0, INTEGER)
        cap_import = self.b.upper_of(grid_import[steps])
        cap_export = self.b.upper_of(grid_export[steps])
        rows = b.rows(steps.size, -INF, 0.0)
        b.add(rows, grid_import[steps], 1.0)
        b.add(rows, z, -cap_import)
        rows = b.rows(steps.size, -INF, cap_export)
        b.add(rows, grid_export[steps], 1.0)
        b.add(rows, z, cap_export)
        for column, step in zip(z, steps, strict=True):
            self._key(int(column), "grid_import", "grid", int(step))
        return z, steps

    def _battery(self, battery: Battery) -> BatteryColumns:
        b, n, dt = self.b, self.n, self.dt
        capacity = battery.capacity_wh / KW
        e0 = battery.soc_initial * capacity
        floor, ceiling = battery.soc_min * capacity, battery.soc_max * capacity
        wear = (battery.cycle_cost_per_kwh + self.penalties.throughput * self.scale) * dt
        charge = b.columns(n, 0.0, battery.charge_max_w / KW, wear)
        discharge = b.columns(n, 0.0, battery.discharge_max_w / KW, wear)
        # Stored energy at the end is worth its terminal value (a credit, hence negative).
        energy_cost = np.zeros(n)
        energy_cost[-1] = -battery.terminal_value_per_kwh
        energy = b.columns(n, min(floor, e0), max(ceiling, e0), energy_cost)
        # e_t - e_{t-1} - dt·η_c·charge_t + dt/η_d·discharge_t = 0 (e_{-1} = e0 on the right)
        rows = b.rows(n, np.r_[e0, np.zeros(n - 1)], np.r_[e0, np.zeros(n - 1)])
        b.add(rows, energy, 1.0)
        b.add(rows[1:], energy[:-1], -1.0)
        b.add(rows, charge, -dt * battery.charge_efficiency)
        b.add(rows, discharge, dt / battery.discharge_efficiency)
        under = None
        if e0 < floor:
            under = b.columns(n, 0.0, floor - e0, self.penalties.soc_floor * self.scale * dt)
            rows = b.rows(n, floor, INF)
            b.add(rows, energy, 1.0)
            b.add(rows, under, 1.0)
        final_low = final_high = NO_COLUMN
        if battery.soc_final is not None:
            target = battery.soc_final * capacity
            cost = self.penalties.soc_final * self.scale
            final_low = b.column(0.0, INF, cost)
            final_high = b.column(0.0, INF, cost if battery.final_rule == "equal" else 0.0)
            row = b.rows(1, target, target)
            b.add(row, [energy[-1], final_low, final_high], [1.0, 1.0, -1.0])
        b.add(self.balance, discharge, 1.0)
        b.add(self.balance, charge, -1.0)
        return BatteryColumns(charge, discharge, energy, under, final_low, final_high)

    def _battery_policies(self, batteries: tuple[BatteryColumns, ...], grid_export: Index) -> None:
        """Export only PV surplus plus what exporting batteries deliver; charge batteries
        barred from the grid only from PV surplus."""
        p, b = self.problem, self.b
        if not batteries:
            return
        surplus = surplus_kw(p)
        exporting = [c for s, c in zip(p.batteries, batteries, strict=True) if s.export_allowed]
        if len(exporting) < len(batteries):
            if not exporting:
                b.update(grid_export, upper=np.minimum(b.upper_of(grid_export), surplus))
            else:
                rows = b.rows(self.n, -INF, surplus)
                b.add(rows, grid_export, 1.0)
                for columns in exporting:
                    b.add(rows, columns.discharge, -1.0)
        barred = [
            c for s, c in zip(p.batteries, batteries, strict=True) if not s.grid_charge_allowed
        ]
        if len(barred) == 1:
            charge = barred[0].charge
            b.update(charge, upper=np.minimum(b.upper_of(charge), surplus))
        elif barred:
            rows = b.rows(self.n, -INF, surplus)
            for columns in barred:
                b.add(rows, columns.charge, 1.0)

    def _deferrable(self, load: Deferrable) -> DeferrableColumns:
        b, n, dt = self.b, self.n, self.dt
        power = load.power_w / KW
        first, last = load.window(n)
        required = load.required_steps
        cost_per_step = self.penalties.requirement * self.scale * power * dt
        fixed = np.zeros(n)
        if load.single_block and load.running_steps > 0:
            # Running: it carries on from now until done (or until its window closes).
            end = _running_end(load, n)
            fixed[:end] = power
            short = b.column(0.0, 0.0)
            return DeferrableColumns(power, None, None, None, 0, short, 0.0, fixed, required - end)
        length = max(0, last - first)
        if required == 0 or length == 0:
            short = b.column(0.0, 0.0)
            return DeferrableColumns(power, None, None, None, 0, short, 0.0, fixed, required)
        if load.single_block:
            steps = min(required, length)
            starts = np.arange(first, last - steps + 1, dtype=np.int64)
            columns = b.columns(starts.size, 0.0, 1.0, 0.0, INTEGER)
            for column, start in zip(columns, starts, strict=True):
                self._key(int(column), "block_start", load.id, int(start))
            covered = starts[:, None] + np.arange(steps)[None, :]
            b.add(self.balance[covered], columns[:, None], -power)
            short = b.column(0.0, 1.0, cost_per_step * steps)
            row = b.rows(1, 1.0, 1.0)
            b.add(row, np.r_[columns, short], 1.0)
            return DeferrableColumns(
                power, None, starts, columns, steps, short, float(steps), fixed, required - steps
            )
        kind = INTEGER if load.on_off else CONTINUOUS
        lower = np.zeros(length)
        if load.running_steps > 0 and first == 0:
            hold = max(0, load.min_on_steps - load.running_steps)
            lower[: min(hold, length, required)] = 1.0
        window = b.columns(length, lower, 1.0, 0.0, kind)
        x = np.full(n, NO_COLUMN, dtype=np.int64)
        x[first:last] = window
        if load.on_off:
            for column, step in zip(window, range(first, last), strict=True):
                self._key(int(column), "on", load.id, step)
        b.add(self.balance[first:last], window, -power)
        short = b.column(0.0, required, cost_per_step)
        row = b.rows(1, required, required)
        b.add(row, np.r_[window, short], 1.0)
        up_down = load.min_on_steps > 1 or load.min_off_steps > 1
        if up_down:
            was_on = 1.0 if load.running_steps > 0 and first == 0 else 0.0
            self._up_down(load, window, was_on)
        return DeferrableColumns(
            power, x, None, None, 0, short, 1.0, fixed, max(0, required - length), up_down
        )

    def _up_down(self, load: Deferrable, x: Index, was_on: float) -> None:
        """Minimum on and off times with start (v) and stop (w) variables:
        ``x_t - x_{t-1} = v_t - w_t``, ``Σ_{last UT} v ≤ x_t``, ``Σ_{last DT} w ≤ 1 - x_t``."""
        b = self.b
        length = x.size
        up, down = load.min_on_steps, load.min_off_steps
        start_upper = np.ones(length)
        if up > 1:
            # A run must fit before the window closes (the load is off after it).
            start_upper[max(0, length - up + 1) :] = 0.0
        v = b.columns(length, 0.0, start_upper)
        w = b.columns(length, 0.0, 1.0)
        rows = b.rows(
            length, np.r_[was_on, np.zeros(length - 1)], np.r_[was_on, np.zeros(length - 1)]
        )
        b.add(rows, x, 1.0)
        b.add(rows[1:], x[:-1], -1.0)
        b.add(rows, v, -1.0)
        b.add(rows, w, 1.0)
        for span, columns, sign, upper in ((up, v, -1.0, 0.0), (down, w, 1.0, 1.0)):
            if span <= 1:
                continue
            rows = b.rows(length, -INF, upper)
            t = np.arange(length)
            for lag in range(span):
                valid = t - lag >= 0
                b.add(rows[valid], columns[t[valid] - lag], 1.0)
            b.add(rows, x, sign)

    def _ev(self, ev: Ev) -> EvColumns:
        b, n, dt = self.b, self.n, self.dt
        first, last = min(ev.arrive_step, n), min(ev.depart_step, n)
        length = last - first
        kw_per_a = tuple(ev.mode_kw_per_a(mode) for mode in ev.modes)
        # What must be delivered inside the horizon: anything the hours after it cannot, and
        # no more than the window can hold at full power (the rest is missed whatever the
        # plan; penalising it would only blur the gap). The plan still lists all of it.
        after = max(0, ev.depart_step - n) * dt * ev.efficiency * ev.max_power_w / KW
        most_possible = max(0, last - first) * dt * ev.efficiency * ev.max_power_w / KW
        need = min(max(0.0, ev.energy_needed_wh / KW - after), most_possible)
        most = (ev.energy_max_wh if ev.energy_max_wh is not None else ev.energy_needed_wh) / KW
        currents: list[Index] = []
        binaries: list[Index] = []
        if length <= 0 or most <= 0:
            short = b.column(0.0, need, self.penalties.requirement * self.scale)
            row = b.rows(1, need, INF)
            b.add(row, short, 1.0)
            empty = tuple(np.full(n, NO_COLUMN, np.int64) for _ in ev.modes)
            return EvColumns(empty, kw_per_a, None, short, need)
        single = len(ev.modes) == 1
        energy_row = b.rows(1, need, most)
        for mode, factor in zip(ev.modes, kw_per_a, strict=True):
            if single:
                kind = SEMI_CONTINUOUS
                current = b.columns(length, mode.min_current_a, mode.max_current_a, 0.0, kind)
            else:
                kind = CONTINUOUS
                current = b.columns(length, 0.0, mode.max_current_a)
            if kind != CONTINUOUS:
                for column, step in zip(current, range(first, last), strict=True):
                    self._key(int(column), f"current_{mode.phases}p", ev.id, step)
            b.add(self.balance[first:last], current, -factor)
            b.add(energy_row, current, ev.efficiency * factor * dt)
            full = np.full(n, NO_COLUMN, np.int64)
            full[first:last] = current
            currents.append(full)
        if not single:
            chosen = b.rows(length, -INF, 1.0)
            for mode, full in zip(ev.modes, currents, strict=True):
                s = b.columns(length, 0.0, 1.0, 0.0, INTEGER)
                for column, step in zip(s, range(first, last), strict=True):
                    self._key(int(column), f"mode_{mode.phases}p", ev.id, step)
                # min·s ≤ I ≤ max·s
                rows = b.rows(length, -INF, 0.0)
                b.add(rows, full[first:last], 1.0)
                b.add(rows, s, -mode.max_current_a)
                rows = b.rows(length, 0.0, INF)
                b.add(rows, full[first:last], 1.0)
                b.add(rows, s, -mode.min_current_a)
                b.add(chosen, s, 1.0)
                whole = np.full(n, NO_COLUMN, np.int64)
                whole[first:last] = s
                binaries.append(whole)
        short = b.column(0.0, need, self.penalties.requirement * self.scale)
        b.add(energy_row, short, 1.0)
        return EvColumns(
            tuple(currents), kw_per_a, tuple(binaries) if binaries else None, short, need
        )

    def _heat_pump(self, heat_pump: HeatPump) -> HeatPumpColumns:
        b, n, dt = self.b, self.n, self.dt
        ua = heat_pump.heat_loss_w_per_k / KW
        capacity = heat_pump.heat_capacity_kwh_per_k
        a = math.exp(-ua * dt / capacity)
        gain = heat_pump.cop * (1.0 - a) / ua
        kind = SEMI_CONTINUOUS if heat_pump.min_power_w > 0 else CONTINUOUS
        lower = heat_pump.min_power_w / KW if kind == SEMI_CONTINUOUS else 0.0
        power = b.columns(n, lower, heat_pump.max_power_w / KW, 0.0, kind)
        if kind != CONTINUOUS:
            for column, step in zip(power, range(n), strict=True):
                self._key(int(column), "heat", heat_pump.id, step)
        temperature = b.columns(n, -INF, INF)
        drift = (1.0 - a) * heat_pump.outdoor_temp_c
        rhs = drift.copy()
        rhs[0] += a * heat_pump.indoor_temp_c
        rows = b.rows(n, rhs, rhs)
        b.add(rows, temperature, 1.0)
        b.add(rows[1:], temperature[:-1], -a)
        b.add(rows, power, -gain)
        kelvin_cost = self.penalties.comfort * self.scale * capacity / float(heat_pump.cop.min())
        below = b.columns(n, 0.0, INF, kelvin_cost * dt)
        above = b.columns(n, 0.0, INF, kelvin_cost * dt)
        rows = b.rows(n, heat_pump.comfort_min_c, heat_pump.comfort_max_c)
        b.add(rows, temperature, 1.0)
        b.add(rows, below, 1.0)
        b.add(rows, above, -1.0)
        b.add(self.balance, power, -1.0)
        return HeatPumpColumns(power, temperature, below, above)


def _running_end(load: Deferrable, n: int) -> int:
    """The end of a running block: done, or its window closes, or the horizon ends."""
    latest = n if load.latest_step is None else load.latest_step
    return max(0, min(load.required_steps, latest, n))
