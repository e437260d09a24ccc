"""A PV forecast: mean AC power per quarter-hour, from a start on a quarter-hour.

Sources (:mod:`.sources.open_meteo`, :mod:`.sources.forecast_solar`) publish on their own
grids; each turns its answer into this one shape, and :meth:`PvForecast.for_horizon` puts it
on the plan's steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from .errors import PlanInputError, SourceDataError
from .prices import QUARTER
from .problem import Horizon, Series


@dataclass(frozen=True, slots=True, eq=False)
class PvForecast:
    """Mean PV power (W, AC) per quarter-hour from ``start``."""

    source: str
    start: datetime
    power_w: Series

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or int(self.start.timestamp()) % 900:
            raise SourceDataError(f"{self.source}: a forecast starts on a quarter-hour")
        if self.power_w.ndim != 1 or not np.all(np.isfinite(self.power_w)):
            raise SourceDataError(f"{self.source}: a forecast value is not a number")

    @property
    def end(self) -> datetime:
        """The end of the last quarter-hour."""
        return self.start.astimezone(UTC) + self.power_w.size * QUARTER

    def for_horizon(self, horizon: Horizon) -> Series:
        """The mean power of each step of ``horizon``; :class:`PlanInputError` when the
        forecast does not cover it."""
        per = horizon.step_minutes // 15
        if per == 0 or horizon.step_minutes % 15:
            raise PlanInputError("a PV forecast needs steps of whole quarter-hours")
        offset = (horizon.start.astimezone(UTC) - self.start.astimezone(UTC)) / QUARTER
        if offset != int(offset) or offset < 0:
            raise PlanInputError(f"{self.source} does not cover {horizon.start.isoformat()}")
        first = int(offset)
        last = first + horizon.n_steps * per
        if last > self.power_w.size:
            raise PlanInputError(
                f"{self.source} ends at {self.end.isoformat()}, before the plan does"
            )
        values: Series = self.power_w[first:last].reshape(horizon.n_steps, per).mean(axis=1)
        return values


def sum_forecasts(parts: list[PvForecast], source: str) -> PvForecast:
    """Several planes' forecasts added up, over the quarter-hours they all cover."""
    if not parts:
        raise SourceDataError(f"{source}: no planes")
    start = max(part.start.astimezone(UTC) for part in parts)
    end = min(part.end for part in parts)
    count = int((end - start) / QUARTER)
    if count <= 0:
        raise SourceDataError(f"{source}: the planes' forecasts do not overlap")
    total = np.zeros(count)
    for part in parts:
        offset = int((start - part.start.astimezone(UTC)) / QUARTER)
        total += part.power_w[offset : offset + count]
    return PvForecast(source, start, total)
