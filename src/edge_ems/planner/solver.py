"""Solve a :class:`~.problem.Problem` with HiGHS and read the plan back.

One call, :func:`solve`, never fails on a valid problem: the model is feasible by
construction (see :mod:`.model`), and should HiGHS find nothing within the time limit the
plan is the fallback (batteries idle, flexible loads off), with every requirement it misses
listed.

How it gets there fast. The model's relaxation is tight (an on/off load's LP values are
already 0 or 1 in most steps, a block's starts nearly one-hot), so a good plan is usually one
rounding away and most decisions are settled by the relaxation alone:

1. solve the relaxation (integrality dropped): a lower bound, and reduced costs;
2. round it (each on/off load keeps its ``k`` highest steps, each block its likeliest start,
   each EV or heat-pump step is on when the relaxation runs it at half its minimum or more,
   a load with minimum on/off times gets the runs closest to the relaxation that keep them)
   and solve the LP with those decisions fixed: a plan, and an upper bound;
3. move single steps of on/off loads (or a block's start) where the reduced costs promise a
   saving and the LP confirms it, a few times;
4. if the plan and the bound are within ``polish_gap`` (0.1 %), that is the plan;
5. otherwise every binary whose reduced cost exceeds the gap keeps its relaxed value (no
   better plan can differ there: reduced-cost fixing, exact), and HiGHS branches on the few
   decisions left open, from the rounded plan: until the plan is proven within
   ``mip_rel_gap`` (1 %) and then for at most ``polish_time_s`` towards ``polish_gap``.

A previous plan (a re-plan 15 minutes later) is rounded the same way, from its decisions
matched by asset and time, and the better start wins.

Simultaneous charge and discharge of one battery wastes energy, so a minimum-cost plan only
does it when wasting pays: when energy has a negative price. Binaries that forbid it are
therefore added up front only in negative-price steps, and afterwards only in the steps
where a plan still does it (rare), after which the solve runs again.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import highspy
import numpy as np
import numpy.typing as npt
from highspy._core import _Highs

from .model import (
    CONTINUOUS,
    INTEGER,
    KW,
    NO_COLUMN,
    SEMI_CONTINUOUS,
    DeferrableColumns,
    EvColumns,
    Model,
    Penalties,
    build,
)
from .plan import Decisions, Plan, PlanStatus, assemble
from .problem import Deferrable, Ev, Problem, Series

type Values = npt.NDArray[np.float64]
type Columns = npt.NDArray[np.int32]

SIMULTANEOUS_KW = 1e-4
"""Charge and discharge both above this (kW) in one step is simultaneous."""
MAX_ROUNDS = 3
"""Rounds of adding exclusion binaries before they go into every step."""
IMPROVEMENT = 1e-9
SWAPS = 2
"""Improving moves tried per on/off load or block after rounding (each an LP or four)."""
SWAP_CANDIDATES = 3
SWAP_TRIALS = 4
_POLISH_OPTIONS = (
    "mip_heuristic_run_feasibility_jump",
    "mip_heuristic_run_rins",
    "mip_heuristic_run_rens",
    "mip_heuristic_run_zi_round",
    "mip_heuristic_run_shifting",
    "mip_heuristic_run_root_reduced_cost",
)


@dataclass(frozen=True, slots=True)
class SolveOptions:
    """How hard HiGHS works."""

    mip_rel_gap: float = 0.01
    """Stop once the plan is proven within this share of the best possible."""
    mip_abs_gap: float = 0.001
    """... or within this much money (a tenth of a cent over the horizon does not matter)."""
    time_limit_s: float = 10.0
    """Stop with the best plan found after this long."""
    penalties: Penalties = field(default_factory=Penalties)
    polish_gap: float = 0.001
    """A plan proven within ``mip_rel_gap`` but not within this is improved for at most
    ``polish_time_s`` more, branching only on the decisions still open."""
    polish_time_s: float = 0.25
    heuristic: bool = True
    """Round the relaxation before branching (off: HiGHS alone, for comparison)."""


def solve(
    problem: Problem, options: SolveOptions | None = None, previous: Plan | None = None
) -> Plan:
    """The cheapest plan for ``problem`` found within ``options``."""
    options = options or SolveOptions()
    began = time.perf_counter()
    model = build(problem, options.penalties)
    session = _Session(problem, model, options, began)
    session.exclude(session.risky_steps())
    outcome: _Outcome | None = None
    for round_ in range(MAX_ROUNDS + 1):
        outcome = session.optimise(previous)
        if outcome is None:
            break
        wasteful = session.simultaneous(outcome.values)
        if not wasteful:
            break
        session.exclude(session.every_step() if round_ == MAX_ROUNDS - 1 else wasteful)
    if outcome is None:
        elapsed = (time.perf_counter() - began) * 1000.0
        idle = Decisions.idle(problem)
        return assemble(problem, idle, status=PlanStatus.FALLBACK, solve_ms=elapsed)
    decisions = _decisions(problem, model, outcome.values)
    keys = {key: round(float(outcome.values[c]), 6) for c, key in model.integer_keys.items()}
    return assemble(
        problem,
        decisions,
        status=outcome.status,
        solve_ms=(time.perf_counter() - began) * 1000.0,
        mip_gap=outcome.gap,
        objective=outcome.objective,
        bound=outcome.bound,
        keys=keys,
    )


@dataclass(frozen=True, slots=True)
class _Outcome:
    values: Values
    objective: float
    bound: float
    status: PlanStatus

    @property
    def gap(self) -> float:
        return _gap(self.objective, self.bound)


class _Session:
    """One HiGHS instance, switched between the relaxation, fixed LPs and the MIP."""

    def __init__(self, problem: Problem, model: Model, options: SolveOptions, began: float) -> None:
        self.problem = problem
        self.model = model
        self.options = options
        self.began = began
        self.highs = _highs(options)
        _pass(self.highs, model)
        self.lower = model.col_lower.copy()
        self.upper = model.col_upper.copy()
        self.kind = model.integrality.copy()
        self.excluded: set[int] = set()
        self.exclusion_binaries: list[tuple[int, npt.NDArray[np.int64], Columns]] = []
        """(battery, steps, binary columns) of every exclusion added."""

    # Exclusion of simultaneous charge and discharge.

    def risky_steps(self) -> list[int]:
        """Steps where energy has a negative price: wasting it may pay."""
        p = self.problem
        return [int(s) for s in np.flatnonzero((p.import_price < 0) | (p.export_price < 0))]

    def every_step(self) -> list[int]:
        return list(range(self.problem.horizon.n_steps))

    def simultaneous(self, values: Values) -> list[int]:
        if self.problem.simultaneous_charge_discharge_allowed:
            return []
        steps: set[int] = set()
        for columns in self.model.layout.batteries:
            both = np.minimum(values[columns.charge], values[columns.discharge])
            steps.update(int(step) for step in np.flatnonzero(both > SIMULTANEOUS_KW))
        return sorted(steps - self.excluded)

    def exclude(self, steps: list[int]) -> None:
        """Add a binary per battery and step: ``charge ≤ Pc·z``, ``discharge ≤ Pd·(1 - z)``."""
        steps = [step for step in steps if step not in self.excluded]
        if self.problem.simultaneous_charge_discharge_allowed or not steps:
            return
        self.excluded.update(steps)
        chosen = np.array(steps, dtype=np.int64)
        k = chosen.size
        for index, (battery, columns) in enumerate(
            zip(self.problem.batteries, self.model.layout.batteries, strict=True)
        ):
            first = self.highs.getNumCol()
            self.highs.addVars(k, np.zeros(k), np.ones(k))
            binaries = np.arange(first, first + k, dtype=np.int32)
            self.highs.changeColsIntegrality(k, binaries, np.full(k, INTEGER, dtype=np.uint8))
            self.lower = np.r_[self.lower, np.zeros(k)]
            self.upper = np.r_[self.upper, np.ones(k)]
            self.kind = np.r_[self.kind, np.full(k, INTEGER, dtype=np.int32)]
            self.exclusion_binaries.append((index, chosen, binaries))
            charge_max = battery.charge_max_w / KW
            discharge_max = battery.discharge_max_w / KW
            entries = np.empty(4 * k, dtype=np.int32)
            entries[0::4] = columns.charge[chosen]
            entries[1::4] = binaries
            entries[2::4] = columns.discharge[chosen]
            entries[3::4] = binaries
            values = np.empty(4 * k)
            values[0::4], values[1::4] = 1.0, -charge_max
            values[2::4], values[3::4] = 1.0, discharge_max
            upper = np.empty(2 * k)
            upper[0::2], upper[1::2] = 0.0, discharge_max
            starts = np.arange(0, 4 * k, 2, dtype=np.int32)
            self.highs.addRows(
                2 * k, np.full(2 * k, -np.inf), upper, 4 * k, starts, entries, values
            )

    # Solving.

    def remaining_s(self) -> float:
        return max(0.001, self.options.time_limit_s - (time.perf_counter() - self.began))

    def optimise(self, previous: Plan | None) -> _Outcome | None:
        integer = np.flatnonzero(self.kind != CONTINUOUS).astype(np.int32)
        if integer.size == 0:
            found = self._run()
            if found is None:
                return None
            return _Outcome(found[0], found[1], found[1], PlanStatus.OPTIMAL)
        options = self.options
        if not options.heuristic:
            if previous is not None:
                _warm_start(self.highs, self.model, previous)
            return self._branch(integer, None, -math.inf, options.mip_rel_gap, self.remaining_s())
        self._relax(integer)
        relaxed = self._run()
        if relaxed is None:  # cannot happen (the model is feasible), but never fail
            self._restore(integer)
            return self._branch(integer, None, -math.inf, options.mip_rel_gap, self.remaining_s())
        bound = relaxed[1]
        reduced = self.reduced_costs()
        best: tuple[Values, float] | None = None
        starts = [_Rounding(self).from_values(relaxed[0])]
        if previous is not None:
            starts.append(_Rounding(self).from_plan(previous, relaxed[0]))
        for rounding in starts:
            candidate = rounding.fixed_plan() if rounding is not None else None
            if candidate is not None and (best is None or candidate[1] < best[1]):
                best = candidate
        self._restore(integer)
        if best is not None:
            gap = _gap(best[1], bound)
            target = min(options.mip_rel_gap, options.polish_gap)
            if gap <= target or best[1] - bound <= options.mip_abs_gap:
                return _Outcome(best[0], best[1], bound, PlanStatus.OPTIMAL)
            # Decisions the relaxation prices out of reach of the plan in hand are settled:
            # only the open ones are left to branch on (reduced-cost fixing, exact).
            self._settle(integer, relaxed[0], reduced, best[1] - bound)
            if gap > options.mip_rel_gap:
                outcome = self._branch(
                    integer, best, bound, options.mip_rel_gap, self.remaining_s()
                )
                if outcome is None or outcome.gap <= target:
                    return outcome
                best, bound = (outcome.values, outcome.objective), outcome.bound
            seconds = min(options.polish_time_s, self.remaining_s())
            return self._branch(integer, best, bound, target, seconds)
        return self._branch(integer, best, bound, options.mip_rel_gap, self.remaining_s())

    def _settle(self, integer: Columns, relaxed: Values, reduced: Values, slack: float) -> None:
        """Fix each binary whose reduced cost exceeds the gap at its relaxed value: no plan
        better than the one in hand can have it otherwise."""
        binary = integer[(self.lower[integer] == 0.0) & (self.upper[integer] == 1.0)
                         & (self.kind[integer] == INTEGER)]  # fmt: skip
        x, cost = relaxed[binary], reduced[binary]
        margin = slack * (1 + 1e-6) + 1e-7
        settled = ((x < 1e-9) & (cost > margin)) | ((x > 1 - 1e-9) & (cost < -margin))
        chosen = binary[settled]
        value = np.round(x[settled])
        self.fix(chosen, value, value)

    def _branch(
        self,
        integer: Columns,
        best: tuple[Values, float] | None,
        bound: float,
        gap_target: float,
        seconds: float,
    ) -> _Outcome | None:
        """HiGHS's branch and bound, from ``best`` if there is one."""
        highs = self.highs
        if best is not None:
            start = best[0].copy()
            binary = integer[self.kind[integer] == INTEGER]
            start[binary] = np.round(start[binary])
            everything = np.arange(start.size, dtype=np.int32)
            highs.setSolution(int(start.size), everything, start)
            # A good plan is in hand: spend the time on the bound, not on finding plans.
            for name in _POLISH_OPTIONS:
                highs.setOptionValue(name, False)
        highs.setOptionValue("mip_rel_gap", gap_target)
        highs.setOptionValue("time_limit", max(seconds, 0.001))
        found = self._run()
        if found is None:
            if best is None:
                return None
            return _Outcome(best[0], best[1], bound, PlanStatus.TIME_LIMIT)
        values, objective = found
        if best is not None and best[1] < objective - IMPROVEMENT:
            values, objective = best
        info = self.highs.getInfo()
        lower = info.mip_dual_bound if math.isfinite(info.mip_dual_bound) else bound
        # A decision settled by reduced costs bounds only plans better than ``best``.
        lower = min(max(lower, bound), objective)
        gap = _gap(objective, lower)
        proven = gap <= self.options.mip_rel_gap or objective - lower <= self.options.mip_abs_gap
        return _Outcome(
            values, objective, lower, PlanStatus.OPTIMAL if proven else PlanStatus.TIME_LIMIT
        )

    def _run(self) -> tuple[Values, float] | None:
        self.highs.run()
        info = self.highs.getInfo()
        if info.primal_solution_status != highspy.kSolutionStatusFeasible:
            return None
        values = np.asarray(self.highs.getSolution().col_value, dtype=np.float64)
        return values, float(info.objective_function_value)

    def _relax(self, integer: Columns) -> None:
        """Drop integrality; a semi-continuous column may then take anything from 0."""
        k = integer.size
        self.highs.changeColsIntegrality(k, integer, np.zeros(k, dtype=np.uint8))
        semi = integer[self.kind[integer] == SEMI_CONTINUOUS]
        if semi.size:
            self.highs.changeColsBounds(int(semi.size), semi, np.zeros(semi.size), self.upper[semi])

    def _restore(self, integer: Columns) -> None:
        """Integrality back, and every bound (rounding fixes continuous columns too)."""
        self.highs.changeColsIntegrality(
            int(integer.size), integer, self.kind[integer].astype(np.uint8)
        )
        everything = np.arange(self.lower.size, dtype=np.int32)
        self.fix(everything, self.lower, self.upper)

    def fix(self, columns: Columns, lower: Values, upper: Values) -> None:
        if columns.size:
            self.highs.changeColsBounds(int(columns.size), columns, lower, upper)

    def reduced_costs(self) -> Values:
        return np.asarray(self.highs.getSolution().col_dual, dtype=np.float64)

    def run_fixed(self) -> tuple[Values, float] | None:
        return self._run()


class _Rounding:
    """Integer decisions from LP values (or a previous plan), and the plan they make."""

    def __init__(self, session: _Session) -> None:
        self.session = session
        self.groups: list[tuple[Columns, int]] = []
        """Binaries of which a fixed number are 1: a load's steps, a block's starts."""
        self.columns: list[npt.NDArray[np.int64]] = []
        self.lower: list[Values] = []
        self.upper: list[Values] = []

    def _set(self, columns: npt.ArrayLike, lower: npt.ArrayLike, upper: npt.ArrayLike) -> None:
        cols = np.asarray(columns, dtype=np.int64)
        self.columns.append(cols)
        self.lower.append(np.broadcast_to(np.asarray(lower, dtype=np.float64), cols.shape))
        self.upper.append(np.broadcast_to(np.asarray(upper, dtype=np.float64), cols.shape))

    def from_values(self, values: Values) -> _Rounding | None:
        """Round the relaxation's values."""
        session = self.session
        layout, problem = session.model.layout, session.problem
        if layout.grid_binaries.size:
            steps = layout.grid_binary_steps
            imports = values[layout.grid_import[steps]] >= values[layout.grid_export[steps]]
            self._set(layout.grid_binaries, imports, imports)
        for battery, steps, binaries in session.exclusion_binaries:
            store = layout.batteries[battery]
            charging = values[store.charge[steps]] >= values[store.discharge[steps]]
            self._set(binaries, charging, charging)
        for load, load_columns in zip(problem.deferrables, layout.deferrables, strict=True):
            self._deferrable(load, load_columns, values)
        for ev, ev_columns in zip(problem.evs, layout.evs, strict=True):
            self._ev(ev, ev_columns, values)
        for heat_pump, heat in zip(problem.heat_pumps, layout.heat_pumps, strict=True):
            if heat_pump.min_power_w > 0:
                minimum = heat_pump.min_power_w / KW
                on = values[heat.power] >= minimum / 2
                self._set(heat.power, np.where(on, minimum, 0.0),
                          np.where(on, heat_pump.max_power_w / KW, 0.0))  # fmt: skip
        return self

    def from_plan(self, previous: Plan, values: Values) -> _Rounding | None:
        """The previous plan's decisions where they apply; the relaxation's elsewhere."""
        merged = values.copy()
        known = previous.decisions
        matched = False
        for column, key in self.session.model.integer_keys.items():
            if key in known:
                merged[column] = known[key]
                matched = True
        if not matched:
            return None
        # Its decisions are already whole: rounding keeps them.
        return self.from_values(merged)

    def _deferrable(self, load: Deferrable, columns: DeferrableColumns, values: Values) -> None:
        if columns.steps is not None and load.on_off:
            window = columns.steps[columns.steps != NO_COLUMN]
            x = values[window]
            chosen = min(round(float(x.sum())), window.size)
            if columns.up_down:
                lower, upper = self.session.lower[window], self.session.upper[window]
                was_on = load.running_steps > 0 and load.earliest_step == 0
                on = runs(x, chosen, load.min_on_steps, load.min_off_steps, was_on, lower, upper)
            else:
                on = np.zeros(window.size)
                on[np.argsort(-x, kind="stable")[:chosen]] = 1.0
                self.groups.append((window.astype(np.int32), chosen))
            self._set(window, on, on)
        elif columns.start_columns is not None:
            y = values[columns.start_columns]
            on = np.zeros(y.size)
            if y.sum() >= 0.5:
                on[int(np.argmax(y))] = 1.0
            self._set(columns.start_columns, on, on)
            self.groups.append((columns.start_columns.astype(np.int32), int(on.sum())))

    def _ev(self, ev: Ev, columns: EvColumns, values: Values) -> None:
        """Steps the relaxation charges at half the minimum or more charge, in the mode it
        uses most, the strongest first and only as many as the car can take at their
        minimum current."""
        present = columns.currents[0] != NO_COLUMN
        if not present.any():
            return
        per_mode = np.vstack(
            [values[currents[present]] * factor
             for factor, currents in zip(columns.kw_per_a, columns.currents, strict=True)]
        )  # fmt: skip
        mode = np.argmax(per_mode, axis=0)
        power = per_mode.max(axis=0)
        floors = np.array(
            [m.min_current_a * f for m, f in zip(ev.modes, columns.kw_per_a, strict=True)]
        )
        floor = floors[mode]
        wanted = power >= floor / 2
        room = (ev.energy_max_wh if ev.energy_max_wh is not None else ev.energy_needed_wh) / KW
        minimum = floor * self.session.problem.horizon.step_hours * ev.efficiency
        on = np.zeros(power.size, dtype=bool)
        for step in np.argsort(-power, kind="stable"):
            if wanted[step] and minimum[step] <= room + 1e-9:
                on[step] = True
                room -= minimum[step]
        for index, (spec, currents) in enumerate(zip(ev.modes, columns.currents, strict=True)):
            chosen = on & (mode == index)
            self._set(currents[present], np.where(chosen, spec.min_current_a, 0.0),
                      np.where(chosen, spec.max_current_a, 0.0))  # fmt: skip
            if columns.mode_binaries is not None:
                self._set(columns.mode_binaries[index][present], chosen, chosen)

    def fixed_plan(self) -> tuple[Values, float] | None:
        """Fix the decisions and solve the LP: the plan and its objective, or ``None`` if the
        fixed LP has no solution."""
        session = self.session
        columns = np.concatenate(self.columns).astype(np.int32)
        lower, upper = np.concatenate(self.lower), np.concatenate(self.upper)
        # Never past a column's own bounds (a semi-continuous column's lower bound is its
        # threshold, not a bound: off is 0 below it).
        plain = session.kind[columns] != SEMI_CONTINUOUS
        low, high = session.lower[columns[plain]], session.upper[columns[plain]]
        lower[plain] = np.clip(lower[plain], low, high)
        upper[plain] = np.clip(upper[plain], low, high)
        semi = ~plain
        upper[semi] = np.minimum(upper[semi], session.upper[columns[semi]])
        lower[semi] = np.minimum(lower[semi], upper[semi])
        session.fix(columns, lower, upper)
        found = session.run_fixed()
        if found is None:
            return found
        return self._swaps(found)

    def _swaps(self, found: tuple[Values, float]) -> tuple[Values, float]:
        """Move a step of an on/off load (or a block's start) while that pays: the moves the
        reduced costs rank best are tried by solving the LP, the first that pays is kept."""
        session = self.session
        values, objective = found
        reduced = session.reduced_costs()
        groups = [(c, k) for c, k in self.groups if 0 < k < c.size]
        for _ in range(SWAPS * max(1, len(groups))):
            moves = []
            for columns, _chosen in groups:
                state = values[columns] > 0.5
                on, off = columns[state], columns[~state]
                # Only moves the columns' own bounds allow (a hold may pin a step).
                on, off = on[session.lower[on] <= 0.0], off[session.upper[off] >= 1.0]
                if on.size == 0 or off.size == 0:
                    continue
                leave = on[np.argsort(-reduced[on], kind="stable")[:SWAP_CANDIDATES]]
                enter = off[np.argsort(reduced[off], kind="stable")[:SWAP_CANDIDATES]]
                moves += [(reduced[e] - reduced[o], int(o), int(e)) for o in leave for e in enter]
            moves.sort()
            improved = False
            for estimate, leaving, entering in moves[:SWAP_TRIALS]:
                if estimate >= -IMPROVEMENT:
                    break
                pair = np.array([leaving, entering], dtype=np.int32)
                session.fix(pair, np.array([0.0, 1.0]), np.array([0.0, 1.0]))
                trial = session.run_fixed()
                if trial is not None and trial[1] < objective - IMPROVEMENT:
                    values, objective = trial
                    reduced = session.reduced_costs()
                    improved = True
                    break
                session.fix(pair, np.array([1.0, 0.0]), np.array([1.0, 0.0]))
            if not improved:
                break
        return values, objective


def runs(
    score: Values,
    required: int,
    up: int,
    down: int,
    was_on: bool,
    forced: Values,
    allowed: Values | None = None,
) -> Values:
    """The on/off steps (1/0) of a load with minimum on and off times that run as close to
    ``required`` steps as the times allow, the highest total ``score`` among them.

    A dynamic programme over (steps on so far, state), the state being the current run's
    length (1 .. ``up``, the last meaning long enough to stop) or the current rest's
    (1 .. ``down``, the last meaning long enough to start again). A run may only start where
    it fits before the window closes; ``forced`` steps (1) must be on, steps ``allowed`` 0
    (held off) must be off. ``was_on``: a run long enough to stop is going on as the window
    opens.
    """
    permitted = np.ones(score.size, dtype=bool) if allowed is None else allowed >= 0.5
    length, counts = score.size, required + 1
    rest = up  # index of a rest of one step; ``up - 1`` is a run long enough to stop
    last = up + down - 1  # a rest long enough to start again
    value = np.full((counts, up + down), -np.inf)
    value[0, up - 1 if was_on else last] = 0.0
    came = np.zeros((length, counts, up + down), dtype=np.int16)

    def move(
        nxt: Values, back: np.ndarray, source: int, target: int, on: bool, gain: float
    ) -> None:
        if on:
            candidate = value[:-1, source] + gain
            better = candidate > nxt[1:, target]
            nxt[1:, target][better] = candidate[better]
            back[1:, target][better] = source
        else:
            candidate = value[:, source]
            better = candidate > nxt[:, target]
            nxt[:, target][better] = candidate[better]
            back[:, target][better] = source

    for t in range(length):
        nxt = np.full_like(value, -np.inf)
        back = came[t]
        gain = float(score[t])
        if permitted[t]:
            for run in range(up):
                move(nxt, back, run, min(run + 1, up - 1), True, gain)
            if t <= length - up:
                move(nxt, back, last, 0, True, gain)
        if forced[t] < 0.5:
            move(nxt, back, up - 1, rest if down > 1 else last, False, 0.0)
            for pause in range(rest, last + 1):
                move(nxt, back, pause, min(pause + 1, last), False, 0.0)
        value = nxt
    feasible = [c for c in range(required, -1, -1) if np.isfinite(value[c]).any()]
    if not feasible:  # the forced steps cannot all be kept: run those that are allowed
        return ((forced >= 0.5) & permitted).astype(np.float64)
    count = feasible[0]
    state = int(np.argmax(value[count]))
    on = np.zeros(length)
    for t in range(length - 1, -1, -1):
        previous = int(came[t, count, state])
        if state < up:
            on[t] = 1.0
            count -= 1
        state = previous
    return on


def _gap(upper: float, lower: float) -> float:
    if not math.isfinite(lower):
        return math.inf
    return max(0.0, upper - lower) / max(abs(upper), 1e-9)


def _highs(options: SolveOptions) -> _Highs:
    # The bare solver class: ``highspy.Highs`` adds Python callbacks we do not use and, on
    # its first construction in a process, prints HiGHS's banner to stdout (the hub's log
    # is JSON lines, the CLI's stdout is the user's).
    highs = _Highs()
    highs.setOptionValue("output_flag", False)
    # Presolve costs more than it saves on models this size, LP and MIP alike (measured).
    highs.setOptionValue("presolve", "off")
    highs.setOptionValue("mip_rel_gap", options.mip_rel_gap)
    highs.setOptionValue("mip_abs_gap", options.mip_abs_gap)
    highs.setOptionValue("time_limit", options.time_limit_s)
    return highs


def _pass(highs: _Highs, model: Model) -> None:
    status = highs.passModel(
        model.n_col,
        model.n_row,
        int(model.a_index.size),
        int(highspy.MatrixFormat.kRowwise),
        int(highspy.ObjSense.kMinimize),
        0.0,
        model.col_cost,
        model.col_lower,
        model.col_upper,
        model.row_lower,
        model.row_upper,
        model.a_start,
        model.a_index,
        model.a_value,
        model.integrality,
    )
    if status == highspy.HighsStatus.kError:
        raise RuntimeError("HiGHS refused the model")  # a bug in the builder, never input


def _warm_start(highs: _Highs, model: Model, previous: Plan) -> None:
    """Hand HiGHS the previous plan's integer decisions where they still apply."""
    known = previous.decisions
    columns = [column for column, key in model.integer_keys.items() if key in known]
    if not columns:
        return
    values = np.array([known[model.integer_keys[c]] for c in columns], dtype=np.float64)
    highs.setSolution(len(columns), np.array(columns, dtype=np.int32), values)


def _decisions(problem: Problem, model: Model, values: Values) -> Decisions:
    layout, n = model.layout, problem.horizon.n_steps
    charges, discharges = [], []
    for columns in layout.batteries:
        charge = np.maximum(values[columns.charge], 0.0) * KW
        discharge = np.maximum(values[columns.discharge], 0.0) * KW
        if not problem.simultaneous_charge_discharge_allowed:
            both = np.minimum(charge, discharge)
            charge, discharge = charge - both, discharge - both
        charges.append(charge)
        discharges.append(discharge)
    deferrables = [
        _deferrable_power(load.on_off, load_columns, values, n)
        for load, load_columns in zip(problem.deferrables, layout.deferrables, strict=True)
    ]
    currents, phases = [], []
    for ev, ev_columns in zip(problem.evs, layout.evs, strict=True):
        current = np.zeros(n)
        used = np.zeros(n, dtype=np.int64)
        for mode, mode_columns in zip(ev.modes, ev_columns.currents, strict=True):
            present = mode_columns != NO_COLUMN
            amps = np.zeros(n)
            amps[present] = values[mode_columns[present]]
            chosen = amps >= mode.min_current_a - 1e-6
            current[chosen] = np.minimum(amps[chosen], mode.max_current_a)
            used[chosen] = mode.phases
        currents.append(current)
        phases.append(used)
    heat = []
    for heat_pump, heat_columns in zip(problem.heat_pumps, layout.heat_pumps, strict=True):
        power = np.clip(values[heat_columns.power], 0.0, heat_pump.max_power_w / KW) * KW
        if heat_pump.min_power_w > 0:
            power[power < heat_pump.min_power_w - 1e-3] = 0.0
        heat.append(power)
    curtailed = np.zeros(n)
    if layout.curtailed is not None:
        curtailed = np.clip(values[layout.curtailed] * KW, 0.0, problem.pv.forecast_w)
    grid_import = grid_export = None
    if problem.grid.simultaneous_import_export_allowed:
        grid_import = np.maximum(values[layout.grid_import], 0.0) * KW
        grid_export = np.maximum(values[layout.grid_export], 0.0) * KW
    return Decisions(
        charge_w=tuple(charges),
        discharge_w=tuple(discharges),
        deferrable_w=tuple(deferrables),
        ev_current_a=tuple(currents),
        ev_phases=tuple(phases),
        heat_pump_w=tuple(heat),
        curtailed_w=curtailed,
        grid_import_w=grid_import,
        grid_export_w=grid_export,
    )


def _deferrable_power(on_off: bool, columns: DeferrableColumns, values: Values, n: int) -> Series:
    power = columns.fixed_kw.copy()
    if columns.steps is not None:
        present = columns.steps != NO_COLUMN
        x = np.zeros(n)
        x[present] = np.clip(values[columns.steps[present]], 0.0, 1.0)
        power += columns.power_kw * (np.round(x) if on_off else x)
    if columns.starts is not None and columns.start_columns is not None:
        chosen = columns.starts[np.round(values[columns.start_columns]) >= 1]
        for start in chosen[:1]:
            power[start : start + columns.block_steps] += columns.power_kw
    return power * KW
