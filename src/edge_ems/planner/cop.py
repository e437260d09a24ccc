"""A heat pump's coefficient of performance against outdoor temperature.

From history when there is enough of it (hours with real heating spread over a useful range
of outdoor temperatures), else from the datasheet: a few (outdoor °C, COP) points, as
EN 14511 datasheets give them (A-7/W35, A2/W35, A7/W35...), interpolated linearly and held
flat beyond the ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .errors import PlanInputError
from .problem import Series

COP_RANGE = (1.0, 8.0)
"""What a fitted COP is clipped to: below 1 a heat pump would be a worse heater than a
resistor, above 8 no air-source unit reaches."""


@dataclass(frozen=True, slots=True)
class CopCurve:
    """COP at outdoor temperatures between (and flat beyond) the given points."""

    points: tuple[tuple[float, float], ...]
    source: str = "datasheet"
    """``datasheet`` or ``history``."""

    def __post_init__(self) -> None:
        if not self.points:
            raise PlanInputError("a COP curve needs at least one (temperature, COP) point")
        temperatures = [t for t, _ in self.points]
        if temperatures != sorted(set(temperatures)):
            raise PlanInputError("COP curve temperatures must rise, each once")
        if any(not cop > 0 for _, cop in self.points):
            raise PlanInputError("every COP on the curve must be positive")

    def __call__(self, outdoor_temp_c: Series | Sequence[float]) -> Series:
        """COP at each of ``outdoor_temp_c``."""
        temperatures = np.array([t for t, _ in self.points])
        cops = np.array([c for _, c in self.points])
        result: Series = np.interp(np.asarray(outdoor_temp_c, dtype=np.float64), temperatures, cops)
        return result


DATASHEET_AIR_WATER_35 = CopCurve(((-15.0, 2.0), (-7.0, 2.7), (2.0, 3.5), (7.0, 4.5), (12.0, 5.2)))
"""A typical air-to-water unit at 35 °C flow (underfloor heating), from EN 14511 points."""


@dataclass(frozen=True, slots=True)
class CopFitSettings:
    """What makes history enough to fit from."""

    min_electric_w: float = 300.0
    """Samples drawing less are standby or defrost, not heating."""
    bin_k: float = 2.0
    min_samples_per_bin: int = 6
    min_bins: int = 4
    min_span_k: float = 8.0
    """The bins must cover at least this range of outdoor temperatures."""


def fit_cop(
    outdoor_temp_c: npt.ArrayLike,
    heat_w: npt.ArrayLike,
    electric_w: npt.ArrayLike,
    settings: CopFitSettings | None = None,
) -> CopCurve | None:
    """A COP curve from history (hourly means, say), or ``None`` when there is not enough.

    Samples are binned by outdoor temperature; each bin's COP is its total heat over its
    total electricity (robust against single odd hours); a straight line through the bins,
    weighted by their sample counts, gives the curve at the bins' centres.
    """
    settings = settings or CopFitSettings()
    temperature = np.asarray(outdoor_temp_c, dtype=np.float64)
    heat = np.asarray(heat_w, dtype=np.float64)
    electric = np.abs(np.asarray(electric_w, dtype=np.float64))
    if not temperature.shape == heat.shape == electric.shape:
        raise PlanInputError("COP history: temperature, heat and electricity differ in length")
    usable = (
        np.isfinite(temperature)
        & np.isfinite(heat)
        & np.isfinite(electric)
        & (electric >= settings.min_electric_w)
        & (heat > 0)
    )
    if not usable.any():
        return None
    temperature, heat, electric = temperature[usable], heat[usable], electric[usable]
    bins = np.floor(temperature / settings.bin_k).astype(np.int64)
    centres, cops, weights = [], [], []
    for label in np.unique(bins):
        members = bins == label
        count = int(members.sum())
        if count < settings.min_samples_per_bin:
            continue
        centres.append(float(temperature[members].mean()))
        cops.append(float(heat[members].sum() / electric[members].sum()))
        weights.append(count)
    if len(centres) < settings.min_bins or max(centres) - min(centres) < settings.min_span_k:
        return None
    slope, intercept = np.polyfit(centres, cops, 1, w=np.sqrt(weights))
    fitted = np.clip(intercept + slope * np.array(centres), *COP_RANGE)
    points = tuple((round(t, 3), round(float(c), 4)) for t, c in zip(centres, fitted, strict=True))
    return CopCurve(points, source="history")


def cop_curve(
    history: tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike] | None,
    datasheet: CopCurve = DATASHEET_AIR_WATER_35,
) -> CopCurve:
    """The curve fitted from ``history`` (outdoor °C, heat W, electric W) if it is enough,
    else ``datasheet``."""
    if history is not None:
        fitted = fit_cop(*history)
        if fitted is not None:
            return fitted
    return datasheet
