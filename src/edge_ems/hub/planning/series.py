"""Series on even steps (a site's prices, a PV forecast) put on a plan's steps, and the
checks a series a site hands the planner (``PlanInputs``) must pass.

A site sends what another integration publishes: prices per hour or per quarter-hour, a
solar forecast per hour or half hour. Each value holds over its step; a plan step takes the
time-weighted mean of what covers it. A bad series is refused with a reason a person can act
on (``pv_forecast from energy:forecast_solar: unit 'kW', expected 'W'``), and the planner
keeps the last good one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from ...gateway.model import PlanInputs
from ...planner.errors import PlanInputError
from ...planner.problem import Horizon, Series

MAX_DAYS = 14
"""The most a series may span: nothing a planner uses reaches further."""
MAX_PRICE_PER_KWH = 100.0
"""A price beyond this per kWh is a price per MWh sent as one per kWh."""
MAX_PV_W = 10_000_000.0
PRICE_KINDS = ("spot_price", "import_price", "export_price")


@dataclass(frozen=True, slots=True, eq=False)
class StepSeries:
    """Values on even steps from ``start_ms``, each holding over its step."""

    start_ms: int
    step_s: int
    values: Series
    unit: str
    source: str

    @property
    def end_ms(self) -> int:
        """The end of the last step."""
        return self.start_ms + self.step_s * 1000 * self.values.size

    @property
    def start(self) -> datetime:
        """The start, aware (UTC)."""
        return datetime.fromtimestamp(self.start_ms / 1000, UTC)

    @property
    def end(self) -> datetime:
        """The end, aware (UTC)."""
        return datetime.fromtimestamp(self.end_ms / 1000, UTC)

    def covered_steps(self, horizon: Horizon) -> int:
        """How many of ``horizon``'s steps, from the first, this series covers entirely."""
        start = _ms(horizon.start)
        step = horizon.step_minutes * 60_000
        if start < self.start_ms:
            return 0
        return max(0, min(horizon.n_steps, (self.end_ms - start) // step))

    def on(self, horizon: Horizon, *, fill: float | None = None) -> Series:
        """The mean over each step of ``horizon``. A step not entirely covered takes
        ``fill``, or is a :class:`PlanInputError` naming it when ``fill`` is ``None``."""
        result = np.empty(horizon.n_steps)
        plan_step = horizon.step_minutes * 60_000
        own = self.step_s * 1000
        first = _ms(horizon.start)
        for index in range(horizon.n_steps):
            begin = first + index * plan_step
            end = begin + plan_step
            if begin < self.start_ms or end > self.end_ms:
                if fill is None:
                    raise PlanInputError(
                        f"{self.source} does not cover step {index} "
                        f"({horizon.time(index).isoformat()})"
                    )
                result[index] = fill
                continue
            low = (begin - self.start_ms) // own
            high = -(-(end - self.start_ms) // own)
            total = 0.0
            for k in range(low, high):
                part_start = max(begin, self.start_ms + k * own)
                part_end = min(end, self.start_ms + (k + 1) * own)
                total += float(self.values[k]) * (part_end - part_start)
            result[index] = total / plan_step
        return result


def _ms(moment: datetime) -> int:
    return round(moment.astimezone(UTC).timestamp() * 1000)


def from_values(
    start: datetime, step: timedelta, values: Sequence[float] | Series, unit: str, source: str
) -> StepSeries:
    """A series from its start, step and values."""
    array = np.asarray(values, dtype=np.float64)
    array.setflags(write=False)
    return StepSeries(_ms(start), int(step.total_seconds()), array, unit, source)


def check_inputs(
    inputs: PlanInputs, *, now: datetime, spot_currency: str, plan_currency: str
) -> StepSeries:
    """A site's series, checked: its step, length, unit and values. Prices are per kWh in
    the spot currency (``spot_price``) or the plan's (``import_price``, ``export_price``);
    a PV forecast is in W. :class:`PlanInputError` says what is wrong."""
    where = f"{inputs.kind} from {inputs.source or 'the site'}"
    step = inputs.step_s
    if not 60 <= step <= 86_400 or 86_400 % step:
        raise PlanInputError(f"{where}: a step of {step} s does not divide a day into minutes")
    align = min(step, 900) * 1000
    if inputs.start_ms % align:
        raise PlanInputError(
            f"{where}: it starts at {_iso(inputs.start_ms)}, not on a step of {min(step, 900)} s"
        )
    count = len(inputs.values)
    if count == 0 or count * step > MAX_DAYS * 86_400:
        raise PlanInputError(f"{where}: {count} values of {step} s; at most {MAX_DAYS} days")
    values = np.asarray(inputs.values, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise PlanInputError(f"{where}: a value is not a finite number")
    end_ms = inputs.start_ms + count * step * 1000
    if end_ms <= _ms(now):
        raise PlanInputError(f"{where}: it ends at {_iso(end_ms)}, before now")
    if inputs.kind == "pv_forecast":
        if inputs.unit != "W":
            raise PlanInputError(f"{where}: unit {inputs.unit!r}, expected 'W'")
        if np.any(values < 0) or np.any(values > MAX_PV_W):
            raise PlanInputError(f"{where}: power must be between 0 and {MAX_PV_W:g} W")
    elif inputs.kind in PRICE_KINDS:
        currency = spot_currency if inputs.kind == "spot_price" else plan_currency
        expected = f"{currency}/kWh"
        if inputs.unit != expected:
            raise PlanInputError(f"{where}: unit {inputs.unit!r}, expected {expected!r}")
        if float(np.max(np.abs(values))) > MAX_PRICE_PER_KWH:
            raise PlanInputError(
                f"{where}: a price of {float(np.max(np.abs(values))):g} {expected} is not "
                "believable (a price per MWh?)"
            )
    else:
        raise PlanInputError(f"{where}: unknown kind")
    values.setflags(write=False)
    return StepSeries(inputs.start_ms, step, values, inputs.unit, inputs.source or "site")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def median_or(values: Series, default: float) -> float:
    """The median of ``values`` (``default`` when empty)."""
    return float(np.median(values)) if values.size else default


def finite(value: float) -> float | None:
    """``value``, or ``None`` when it is not finite (JSON has no infinity)."""
    return value if math.isfinite(value) else None
