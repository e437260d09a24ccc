"""What the planner plans: a horizon, forecasts, prices and the site's flexible assets.

Everything here is plain data, checked when it is made: a :class:`Problem` that exists is one
the model can be built from. Powers are W and energies Wh, as everywhere in Edge EMS; the
model converts to kW inside. Per-step values are numpy arrays of the horizon's length (a
scalar given for one is spread over every step). Step ``t`` covers ``[start + t·step,
start + (t+1)·step)``; a state (state of charge, temperature) is the one at the **end** of its
step, and the initial state is the one before step 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np
import numpy.typing as npt

from .errors import PlanInputError

type Series = npt.NDArray[np.float64]
type SeriesLike = float | Sequence[float] | npt.NDArray[np.floating]

FinalRule = Literal["equal", "at_least"]


def series(value: SeriesLike, n: int, name: str) -> Series:
    """``value`` as ``n`` finite floats (a scalar repeats); a clear error otherwise."""
    array = np.array(value, dtype=np.float64)
    if array.ndim == 0:
        array = np.full(n, float(array))
    if array.shape != (n,):
        raise PlanInputError(f"{name}: {array.size} values for {n} steps")
    if not np.all(np.isfinite(array)):
        bad = int(np.flatnonzero(~np.isfinite(array))[0])
        raise PlanInputError(f"{name}: step {bad} is not a finite number")
    array.setflags(write=False)
    return array


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise PlanInputError(message)


def _positive(value: float, name: str) -> None:
    _check(math.isfinite(value) and value > 0, f"{name} must be positive, got {value}")


def _nonnegative(value: float, name: str) -> None:
    _check(math.isfinite(value) and value >= 0, f"{name} must be 0 or more, got {value}")


def _fraction(value: float, name: str, *, low: float = 0.0) -> None:
    _check(
        math.isfinite(value) and low <= value <= 1.0,
        f"{name} must be between {low} and 1, got {value}",
    )


@dataclass(frozen=True, slots=True)
class Horizon:
    """The steps a plan covers: equal steps from ``start`` (a zone-aware time)."""

    start: datetime
    step_minutes: int
    n_steps: int

    def __post_init__(self) -> None:
        _check(self.start.tzinfo is not None, "the horizon's start needs a time zone")
        _check(
            self.step_minutes > 0 and 1440 % self.step_minutes == 0,
            f"step_minutes must divide a day, got {self.step_minutes}",
        )
        _check(self.n_steps > 0, f"a horizon needs at least one step, got {self.n_steps}")

    @property
    def step_hours(self) -> float:
        """The length of one step in hours."""
        return self.step_minutes / 60.0

    @property
    def step(self) -> timedelta:
        """The length of one step."""
        return timedelta(minutes=self.step_minutes)

    @property
    def end(self) -> datetime:
        """The end of the last step."""
        return self.time(self.n_steps)

    def time(self, step: int) -> datetime:
        """The start of ``step`` in the start's zone (steps are equal in absolute time, so a
        DST change shifts the wall clock, never the step)."""
        zone = self.start.tzinfo
        utc = self.start.astimezone(UTC) + step * self.step
        return utc.astimezone(zone)

    def timestamps(self) -> list[datetime]:
        """The start of every step."""
        return [self.time(step) for step in range(self.n_steps)]

    def step_at(self, moment: datetime) -> int:
        """The step ``moment`` falls in (may be before 0 or after the last)."""
        _check(moment.tzinfo is not None, f"{moment.isoformat()} has no time zone")
        # In UTC: two times in one zone subtract as wall clocks, an hour off across DST.
        return math.floor((moment.astimezone(UTC) - self.start.astimezone(UTC)) / self.step)


@dataclass(frozen=True, slots=True)
class Battery:
    """A battery behind its own inverter; powers are on the AC side.

    Stored energy changes per hour by ``charge x charge_efficiency - discharge /
    discharge_efficiency``. ``soc_*`` are fractions of ``capacity_wh``. A battery that starts
    outside ``[soc_min, soc_max]`` (an empty one, say) is never forced back in, but every step
    it spends below ``soc_min`` is penalised, so the plan climbs back when it can.
    """

    id: str
    capacity_wh: float
    charge_max_w: float
    discharge_max_w: float
    soc_initial: float
    charge_efficiency: float = 0.95
    discharge_efficiency: float = 0.95
    soc_min: float = 0.1
    soc_max: float = 1.0
    soc_final: float | None = None
    """State of charge to end the horizon at; ``None`` leaves it free."""
    final_rule: FinalRule = "at_least"
    """``equal``: end exactly at ``soc_final``; ``at_least``: at it or above."""
    cycle_cost_per_kwh: float = 0.0
    """Wear: cost of each kWh charged plus each kWh discharged (AC side)."""
    terminal_value_per_kwh: float = 0.0
    """What a kWh still stored when the horizon ends is worth: a rolling plan that sees
    only until its prices end should not empty the battery just because the horizon does."""
    grid_charge_allowed: bool = True
    """``False``: charge only from PV surplus (``charge ≤ max(0, pv - load)``)."""
    export_allowed: bool = True
    """``False``: never discharge to the grid (``export ≤ max(0, pv - load)`` plus what the
    batteries that may export deliver)."""

    def __post_init__(self) -> None:
        where = f"battery {self.id!r}"
        _positive(self.capacity_wh, f"{where}: capacity_wh")
        _nonnegative(self.charge_max_w, f"{where}: charge_max_w")
        _nonnegative(self.discharge_max_w, f"{where}: discharge_max_w")
        _fraction(self.charge_efficiency, f"{where}: charge_efficiency", low=0.01)
        _fraction(self.discharge_efficiency, f"{where}: discharge_efficiency", low=0.01)
        _fraction(self.soc_min, f"{where}: soc_min")
        _fraction(self.soc_max, f"{where}: soc_max")
        _check(self.soc_min <= self.soc_max, f"{where}: soc_min is above soc_max")
        _fraction(self.soc_initial, f"{where}: soc_initial")
        if self.soc_final is not None:
            _fraction(self.soc_final, f"{where}: soc_final")
        _check(
            self.final_rule in ("equal", "at_least"),
            f"{where}: final_rule must be 'equal' or 'at_least', got {self.final_rule!r}",
        )
        _nonnegative(self.cycle_cost_per_kwh, f"{where}: cycle_cost_per_kwh")
        _check(
            math.isfinite(self.terminal_value_per_kwh),
            f"{where}: terminal_value_per_kwh is not a number",
        )


@dataclass(frozen=True, slots=True)
class Grid:
    """The grid connection. Limits may vary per step (a main fuse shared with something
    else, a grid operator's export cap); the fuse, if given, caps both directions."""

    import_max_w: SeriesLike = math.inf
    export_max_w: SeriesLike = math.inf
    fuse_a: float | None = None
    """Main fuse per phase; with ``phases`` and ``voltage_v`` it caps total power."""
    phases: int = 3
    voltage_v: float = 230.0
    simultaneous_import_export_allowed: bool = False

    def __post_init__(self) -> None:
        if self.fuse_a is not None:
            _positive(self.fuse_a, "grid: fuse_a")
        _check(self.phases in (1, 3), f"grid: phases must be 1 or 3, got {self.phases}")
        _positive(self.voltage_v, "grid: voltage_v")

    def limits(self, n: int) -> tuple[Series, Series]:
        """Import and export limits per step, in W, the fuse applied."""
        fuse = math.inf if self.fuse_a is None else self.fuse_a * self.voltage_v * self.phases
        limits = []
        for name, value in (
            ("import_max_w", self.import_max_w),
            ("export_max_w", self.export_max_w),
        ):
            array = np.array(value, dtype=np.float64)
            array = np.full(n, float(array)) if array.ndim == 0 else array
            if array.shape != (n,) or np.any(np.isnan(array)) or np.any(array < 0):
                raise PlanInputError(f"grid: {name} needs {n} values, each 0 or more")
            limits.append(np.minimum(array, fuse))
        return limits[0], limits[1]


@dataclass(frozen=True, slots=True)
class Pv:
    """PV production forecast (AC, W) and whether the inverter can curtail it."""

    forecast_w: Series
    curtailable: bool = False


@dataclass(frozen=True, slots=True)
class ChargeMode:
    """One way an EV charger can charge: a current range on a number of phases."""

    phases: int = 3
    min_current_a: float = 6.0
    max_current_a: float = 16.0

    def __post_init__(self) -> None:
        _check(self.phases in (1, 2, 3), f"EV: phases must be 1, 2 or 3, got {self.phases}")
        _positive(self.min_current_a, "EV: min_current_a")
        _check(
            self.max_current_a >= self.min_current_a,
            f"EV: max_current_a {self.max_current_a} is below min_current_a {self.min_current_a}",
        )


@dataclass(frozen=True, slots=True)
class Ev:
    """An EV on a charger: energy to deliver by departure, inside its connection window.

    The charger's power is 0 or between its minimum and maximum current (semi-continuous),
    per mode; several modes (1 and 3 phases) are chosen between per step. The planned current
    is a step's mean: a charger that takes ``current_step_a`` steps gets it as the two nearest
    settings in turn within the step (:func:`edge_ems.planner.execute.dither`).
    """

    id: str
    energy_needed_wh: float
    depart_step: int
    """The first step the car is gone (charging happens in ``[arrive_step, depart_step)``)."""
    arrive_step: int = 0
    energy_max_wh: float | None = None
    """The most it may take (room left in the car's battery); default ``energy_needed_wh``."""
    modes: tuple[ChargeMode, ...] = (ChargeMode(),)
    voltage_v: float = 230.0
    current_step_a: float = 1.0
    efficiency: float = 0.9
    """Energy reaching the car's battery per unit drawn from the site."""

    def __post_init__(self) -> None:
        where = f"EV {self.id!r}"
        _nonnegative(self.energy_needed_wh, f"{where}: energy_needed_wh")
        if self.energy_max_wh is not None:
            _check(
                self.energy_max_wh >= self.energy_needed_wh,
                f"{where}: energy_max_wh is below energy_needed_wh",
            )
        _check(
            self.depart_step > 0,
            f"{where}: departure is not after the plan starts (step {self.depart_step})",
        )
        _check(self.arrive_step >= 0, f"{where}: arrive_step must be 0 or more")
        _check(self.arrive_step < self.depart_step, f"{where}: arrives at or after departure")
        _check(len(self.modes) >= 1, f"{where}: needs at least one charge mode")
        _positive(self.voltage_v, f"{where}: voltage_v")
        _positive(self.current_step_a, f"{where}: current_step_a")
        _fraction(self.efficiency, f"{where}: efficiency", low=0.01)

    def mode_kw_per_a(self, mode: ChargeMode) -> float:
        """kW drawn per ampere in ``mode``."""
        return self.voltage_v * mode.phases / 1000.0

    @property
    def max_power_w(self) -> float:
        """The most any mode draws."""
        return max(self.mode_kw_per_a(m) * m.max_current_a for m in self.modes) * 1000.0


@dataclass(frozen=True, slots=True)
class HeatPump:
    """A heat pump heating a building, as a first-order thermal model.

    ``C dT/dt = COP·P - UA·(T - T_out)``, integrated exactly over each step with the power
    and outdoor temperature held. The indoor temperature at the end of each step should stay
    in ``[comfort_min_c, comfort_max_c]``; every kelvin·step outside is penalised and listed.
    """

    id: str
    max_power_w: float
    cop: Series
    """Coefficient of performance per step (see :mod:`edge_ems.planner.cop`)."""
    outdoor_temp_c: Series
    comfort_min_c: Series
    comfort_max_c: Series
    indoor_temp_c: float
    """Indoor temperature now (before step 0)."""
    heat_capacity_kwh_per_k: float = 10.0
    heat_loss_w_per_k: float = 200.0
    min_power_w: float = 0.0
    """0: modulates from 0; above 0: off or at least this (semi-continuous)."""

    def __post_init__(self) -> None:
        where = f"heat pump {self.id!r}"
        _positive(self.max_power_w, f"{where}: max_power_w")
        _nonnegative(self.min_power_w, f"{where}: min_power_w")
        _check(self.min_power_w <= self.max_power_w, f"{where}: min_power_w is above max_power_w")
        _positive(self.heat_capacity_kwh_per_k, f"{where}: heat_capacity_kwh_per_k")
        _positive(self.heat_loss_w_per_k, f"{where}: heat_loss_w_per_k")
        _check(math.isfinite(self.indoor_temp_c), f"{where}: indoor_temp_c is not a number")
        _check(bool(np.all(self.cop > 0)), f"{where}: every COP must be positive")
        _check(
            bool(np.all(self.comfort_min_c <= self.comfort_max_c)),
            f"{where}: comfort_min_c is above comfort_max_c",
        )


@dataclass(frozen=True, slots=True)
class Deferrable:
    """A load that runs for a while somewhere in a window: a dishwasher, a boiler, a pump.

    ``required_steps`` at ``power_w`` inside ``[earliest_step, latest_step)``. ``on_off``:
    the power is 0 or ``power_w`` (otherwise anything between, same energy). ``single_block``:
    one contiguous run. ``min_on_steps``/``min_off_steps`` bound how briefly it may run or
    rest. ``running_steps`` > 0 says it is running now and has been for that many steps: a
    single block then continues until it is done, and ``min_on_steps`` counts them.
    """

    id: str
    power_w: float
    required_steps: int
    earliest_step: int = 0
    latest_step: int | None = None
    """End of the window (exclusive); ``None`` is the end of the horizon."""
    on_off: bool = True
    single_block: bool = False
    min_on_steps: int = 1
    min_off_steps: int = 1
    running_steps: int = 0

    def __post_init__(self) -> None:
        where = f"deferrable load {self.id!r}"
        _positive(self.power_w, f"{where}: power_w")
        _check(self.required_steps >= 0, f"{where}: required_steps must be 0 or more")
        _check(self.earliest_step >= 0, f"{where}: earliest_step must be 0 or more")
        if self.latest_step is not None:
            _check(
                self.latest_step > self.earliest_step,
                f"{where}: the window [{self.earliest_step}, {self.latest_step}) is empty",
            )
        _check(self.min_on_steps >= 1, f"{where}: min_on_steps must be 1 or more")
        _check(self.min_off_steps >= 1, f"{where}: min_off_steps must be 1 or more")
        _check(self.running_steps >= 0, f"{where}: running_steps must be 0 or more")
        _check(
            self.running_steps == 0 or self.earliest_step == 0,
            f"{where}: it is running, so its window must be open now (earliest_step 0)",
        )
        _check(
            not self.single_block or self.on_off,
            f"{where}: a single block needs on_off (a block of varying power is not one run)",
        )
        _check(
            self.on_off or (self.min_on_steps == 1 and self.min_off_steps == 1),
            f"{where}: minimum on and off times need on_off",
        )

    def window(self, n_steps: int) -> tuple[int, int]:
        """The window clipped to the horizon."""
        latest = n_steps if self.latest_step is None else min(self.latest_step, n_steps)
        return min(self.earliest_step, n_steps), max(latest, 0)


@dataclass(frozen=True, slots=True)
class Hold:
    """An override: an asset held at ``power_w`` (site sign: a battery discharging +, an EV
    or heat pump consuming -) in steps ``[first_step, last_step)``. The plan follows it as
    far as the asset can (a battery stops at its SOC limits, an EV at its minimum current or
    when full) and plans everything else around it. A single-block load cannot be held."""

    asset_id: str
    first_step: int
    last_step: int
    power_w: float

    def __post_init__(self) -> None:
        _check(
            0 <= self.first_step < self.last_step,
            f"hold on {self.asset_id!r}: the steps [{self.first_step}, {self.last_step}) are empty",
        )
        _check(math.isfinite(self.power_w), f"hold on {self.asset_id!r}: power is not a number")


@dataclass(frozen=True, slots=True)
class Problem:
    """One planning problem: forecasts, prices and assets over a horizon.

    Cost is ``Σ import_kWh x import_price - Σ export_kWh x export_price``; both prices may
    be negative. ``load_w`` is the house load without any asset planned here.
    """

    horizon: Horizon
    load_w: Series
    import_price: Series
    export_price: Series
    pv: Pv
    grid: Grid = field(default_factory=Grid)
    batteries: tuple[Battery, ...] = ()
    evs: tuple[Ev, ...] = ()
    heat_pumps: tuple[HeatPump, ...] = ()
    deferrables: tuple[Deferrable, ...] = ()
    simultaneous_charge_discharge_allowed: bool = False
    currency: str = "EUR"
    holds: tuple[Hold, ...] = ()
    """Overrides the plan must follow (see :class:`Hold`)."""

    def __post_init__(self) -> None:
        n = self.horizon.n_steps
        for name in ("load_w", "import_price", "export_price"):
            value = getattr(self, name)
            _check(
                isinstance(value, np.ndarray) and value.shape == (n,),
                f"{name} needs {n} values (use planner.problem.series)",
            )
        _check(self.pv.forecast_w.shape == (n,), f"pv forecast needs {n} values")
        _check(bool(np.all(self.load_w >= 0)), "load_w must be 0 or more in every step")
        _check(bool(np.all(self.pv.forecast_w >= 0)), "the PV forecast must be 0 or more")
        self.grid.limits(n)
        ids = [asset.id for group in self._assets() for asset in group]
        duplicates = sorted({name for name in ids if ids.count(name) > 1})
        _check(not duplicates, f"asset ids must be unique; repeated: {', '.join(duplicates)}")
        holdable = {asset.id for group in self._assets() for asset in group}
        holdable -= {load.id for load in self.deferrables if load.single_block}
        for hold in self.holds:
            _check(hold.asset_id in holdable, f"hold on {hold.asset_id!r}: no such asset to hold")
        for heat_pump in self.heat_pumps:
            for name in ("cop", "outdoor_temp_c", "comfort_min_c", "comfort_max_c"):
                _check(
                    getattr(heat_pump, name).shape == (n,),
                    f"heat pump {heat_pump.id!r}: {name} needs {n} values",
                )

    def _assets(self) -> tuple[Sequence[Battery | Ev | HeatPump | Deferrable], ...]:
        return (self.batteries, self.evs, self.heat_pumps, self.deferrables)

    def held(self, asset_id: str) -> Series:
        """The power ``asset_id`` is held at in each step (NaN where it is free)."""
        values = np.full(self.horizon.n_steps, np.nan)
        for hold in self.holds:
            if hold.asset_id == asset_id:
                values[hold.first_step : hold.last_step] = hold.power_w
        return values
