"""The house load the planner cannot move: a weekday x quarter-hour profile from recent weeks
of minute data, the controllable loads taken out.

For each quarter-hour of the last ``weeks`` weeks, the site's load is the sum of its load
terms (a meter's ``load_power_w``, or grid + PV + battery where no meter measures the load)
less what the controllable loads drew (EV chargers, heat pumps, deferrable loads the
planner runs: their own consumption, so the plan does not count them twice). The profile
for a weekday and quarter-hour is the median of those weeks' values at that time (robust to
one odd day); with fewer than two weeks there, the median over all weekdays (or weekend
days) at that time, then over all days, then the median of everything.

It reads only through :class:`MinuteReader`, a small protocol the hub's minute store meets
through :class:`edge_ems.planner.store_reader.StoreMinuteReader`; tests and other stores
implement it directly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import numpy as np

from .errors import PlanInputError
from .problem import Horizon, Series

SLOTS = 96
"""Quarter-hours of a day in the profile."""
QUARTER_MS = 15 * 60_000


class MinuteReader(Protocol):
    """What the baseline needs of a store of minute data."""

    async def mean_power(
        self, site_id: str, asset_id: str, metric: str, start_ms: int, end_ms: int
    ) -> Sequence[tuple[int, float]]:
        """(bucket start in ms, mean value) of each stored bucket of 15 minutes or less
        (whole divisors of 15: 1 or 5 minutes) in ``[start_ms, end_ms)``, oldest first."""


@dataclass(frozen=True, slots=True)
class Term:
    """One series and its weight: the series' value x weight is W the term adds."""

    asset_id: str
    metric: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class BaselineSpec:
    """Which series make the site's load and its controllable part."""

    site_id: str
    zone: ZoneInfo
    load: tuple[Term, ...]
    """Added up: the site's whole load, e.g. ``Term(meter, "load_power_w")``."""
    controllable: tuple[Term, ...] = ()
    """Each the power a controllable load draws (positive), e.g. ``Term(ev,
    "ac_power_w", -1)`` (an asset's power is negative when it consumes). A series with no
    data in a quarter-hour counts as 0 there (a charger that is off may stay silent)."""
    weeks: int = 4

    def __post_init__(self) -> None:
        if not self.load:
            raise PlanInputError("a baseline needs at least one load term")
        if not 1 <= self.weeks <= 26:
            raise PlanInputError(f"weeks must be between 1 and 26, got {self.weeks}")


@dataclass(frozen=True, slots=True, eq=False)
class LoadBaseline:
    """The profile: W per weekday (Monday 0) and quarter-hour of the local day."""

    zone: ZoneInfo
    profile_w: np.ndarray[tuple[int, int], np.dtype[np.float64]]
    samples: int
    """Quarter-hours of history behind it."""

    def forecast(self, horizon: Horizon) -> Series:
        """The baseline for each step of ``horizon`` (the mean of the quarter-hours a step
        covers, by local time)."""
        result = np.empty(horizon.n_steps)
        start = horizon.start.astimezone(UTC)
        step = horizon.step
        sub = max(1, horizon.step_minutes // 15)
        for index in range(horizon.n_steps):
            values = []
            for part in range(sub):
                moment = (start + index * step + part * timedelta(minutes=15)).astimezone(self.zone)
                slot = (moment.hour * 60 + moment.minute) // 15
                values.append(self.profile_w[moment.weekday(), slot])
            result[index] = float(np.mean(values))
        return result


async def build_baseline(reader: MinuteReader, spec: BaselineSpec, now: datetime) -> LoadBaseline:
    """The profile from the ``spec.weeks`` weeks of data before ``now``."""
    end_ms = int(now.timestamp() * 1000) // QUARTER_MS * QUARTER_MS
    start_ms = end_ms - spec.weeks * 7 * 24 * 4 * QUARTER_MS
    load = await _sum(reader, spec, spec.load, start_ms, end_ms, required=True)
    controllable = await _sum(reader, spec, spec.controllable, start_ms, end_ms, required=False)
    if not load:
        raise PlanInputError(
            f"no load data for site {spec.site_id!r} in the {spec.weeks} weeks before "
            f"{now.isoformat()}"
        )
    by_slot: dict[tuple[int, int], list[float]] = defaultdict(list)
    for quarter, value in load.items():
        moment = datetime.fromtimestamp(quarter * QUARTER_MS / 1000, UTC).astimezone(spec.zone)
        slot = (moment.hour * 60 + moment.minute) // 15
        baseline = max(0.0, value - max(0.0, controllable.get(quarter, 0.0)))
        by_slot[(moment.weekday(), slot)].append(baseline)
    return LoadBaseline(spec.zone, _profile(by_slot), len(load))


async def _sum(
    reader: MinuteReader,
    spec: BaselineSpec,
    terms: tuple[Term, ...],
    start_ms: int,
    end_ms: int,
    *,
    required: bool,
) -> dict[int, float]:
    """Quarter-hour means of the weighted sum of ``terms``, by quarter-hour number. With
    ``required`` a quarter needs every term; otherwise a missing term counts as 0."""
    total: dict[int, float] = {}
    present: dict[int, int] = defaultdict(int)
    for term in terms:
        rows = await reader.mean_power(spec.site_id, term.asset_id, term.metric, start_ms, end_ms)
        quarters: dict[int, list[float]] = defaultdict(list)
        for start, value in rows:
            if np.isfinite(value):
                quarters[start // QUARTER_MS].append(value)
        for quarter, values in quarters.items():
            total[quarter] = total.get(quarter, 0.0) + term.weight * float(np.mean(values))
            present[quarter] += 1
    if required:
        return {q: v for q, v in total.items() if present[q] == len(terms)}
    return total


def _profile(
    by_slot: dict[tuple[int, int], list[float]],
) -> np.ndarray[tuple[int, int], np.dtype[np.float64]]:
    """Median per (weekday, slot), falling back to weekday/weekend, all days, everything."""
    everything = [v for values in by_slot.values() for v in values]
    overall = float(np.median(everything))
    profile = np.empty((7, SLOTS))
    for slot in range(SLOTS):
        all_days = [v for day in range(7) for v in by_slot.get((day, slot), [])]
        for day in range(7):
            own = by_slot.get((day, slot), [])
            group = range(5) if day < 5 else range(5, 7)
            similar = [v for other in group for v in by_slot.get((other, slot), [])]
            for candidate in (own, similar, all_days):
                if len(candidate) >= 2:
                    profile[day, slot] = float(np.median(candidate))
                    break
            else:
                profile[day, slot] = float(np.median(all_days)) if all_days else overall
    return profile
