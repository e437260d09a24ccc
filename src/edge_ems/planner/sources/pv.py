"""PV forecasts from Open-Meteo (irradiance, turned into power here) and Forecast.Solar
(power estimates), per plane of modules; several planes are summed.

Open-Meteo: ``GET {base}/v1/forecast?latitude=..&longitude=..&minutely_15=
global_tilted_irradiance,temperature_2m&tilt=..&azimuth=..&timeformat=unixtime&timezone=GMT
&forecast_days=N`` answers ``minutely_15.time`` (epoch seconds) with the irradiance on the
plane as the mean over the *preceding* 15 minutes; errors answer ``{"error": true,
"reason": ...}``. Power is ``kWp x GTI/1000 x performance ratio x (1 + k(T_cell - 25))``,
the cell warmer than the air by ``GTI/800 x (NOCT - 20)``.

Forecast.Solar: ``GET {base}/[key/]estimate/lat/lon/dec/az/kwp?time=utc`` answers
``result.watt_hours_period`` (energy in the period *ending* at each timestamp) and a
``message`` with ``type`` and ``ratelimit``; each period's energy is spread evenly over it.
Both take azimuth as 0 = south, -90 = east, 90 = west.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import aiohttp
import numpy as np
from yarl import URL

from ..errors import SourceDataError
from ..forecast import PvForecast, sum_forecasts
from ..prices import QUARTER
from .http import fetch

OPEN_METEO_URL = URL("https://api.open-meteo.com")
FORECAST_SOLAR_URL = URL("https://api.forecast.solar")


@dataclass(frozen=True, slots=True)
class Plane:
    """One plane of modules: orientation and size."""

    tilt_deg: float
    azimuth_deg: float
    """0 south, -90 east, 90 west."""
    kwp: float


@dataclass(frozen=True, slots=True)
class PvSite:
    """Where the modules are, how they face, and how they perform."""

    latitude: float
    longitude: float
    planes: tuple[Plane, ...]
    performance_ratio: float = 0.85
    """Losses from irradiance to AC: wiring, inverter, soiling, mismatch."""
    temperature_coefficient: float = -0.004
    """Power change per kelvin of cell temperature above 25 °C."""
    noct_c: float = 45.0
    inverter_max_w: float = math.inf


class OpenMeteoClient:
    """PV power from Open-Meteo's 15-minutely irradiance on each plane."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        site: PvSite,
        *,
        forecast_days: int = 3,
        base_url: URL | str = OPEN_METEO_URL,
    ) -> None:
        self._session = session
        self._site = site
        self._days = forecast_days
        self._base = URL(str(base_url))

    @property
    def name(self) -> str:
        """For messages."""
        return "Open-Meteo"

    async def forecast(self) -> PvForecast:
        """The forecast from now (the quarter-hour now in) for ``forecast_days``."""
        parts = [await self._plane(plane) for plane in self._site.planes]
        total = sum_forecasts(parts, self.name)
        return PvForecast(
            self.name, total.start, np.minimum(total.power_w, self._site.inverter_max_w)
        )

    async def _plane(self, plane: Plane) -> PvForecast:
        site = self._site
        _, body = await fetch(
            self._session,
            self._base.with_path("/v1/forecast"),
            params={
                "latitude": f"{site.latitude:.4f}",
                "longitude": f"{site.longitude:.4f}",
                "minutely_15": "global_tilted_irradiance,temperature_2m",
                "tilt": f"{plane.tilt_deg:g}",
                "azimuth": f"{plane.azimuth_deg:g}",
                "timeformat": "unixtime",
                "timezone": "GMT",
                "forecast_days": str(self._days),
            },
            name=self.name,
        )
        return parse_open_meteo(body, site, plane)


def parse_open_meteo(body: bytes, site: PvSite, plane: Plane) -> PvForecast:
    """One plane's answer as power per quarter-hour."""
    name = "Open-Meteo"
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SourceDataError(f"{name}: not JSON") from None
    if isinstance(data, dict) and data.get("error"):
        raise SourceDataError(f"{name}: {data.get('reason', 'error without a reason')}")
    try:
        block = data["minutely_15"]
        times = [int(t) for t in block["time"]]
        irradiance = block["global_tilted_irradiance"]
        temperature = block["temperature_2m"]
    except (KeyError, TypeError, ValueError):
        raise SourceDataError(f"{name}: no 15-minutely irradiance in the answer") from None
    if not times or not len(times) == len(irradiance) == len(temperature):
        raise SourceDataError(f"{name}: the 15-minutely series differ in length or are empty")
    if any(b - a != 900 for a, b in pairwise(times)) or times[0] % 900:
        raise SourceDataError(f"{name}: the 15-minutely times are not every quarter-hour")
    gti = _numbers(irradiance, name, "irradiance")
    air = _numbers(temperature, name, "temperature")
    # Radiation is the mean over the preceding quarter-hour: the first value's quarter
    # starts 15 minutes before its time.
    start = datetime.fromtimestamp(times[0], UTC) - QUARTER
    gti = np.maximum(gti, 0.0)  # Open-Meteo can answer small negative irradiance at night
    cell = air + gti / 800.0 * (site.noct_c - 20.0)
    derate = 1.0 + site.temperature_coefficient * (cell - 25.0)
    power = plane.kwp * gti * site.performance_ratio * np.clip(derate, 0.0, None)
    return PvForecast(name, start, power)


def _numbers(values: Any, name: str, what: str) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Numbers; trailing nulls (the end of the model's range) are cut, others refused."""
    array = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
    valid = np.flatnonzero(np.isfinite(array))
    if valid.size == 0:
        raise SourceDataError(f"{name}: no {what} values")
    trimmed = array[: valid[-1] + 1]
    if not np.all(np.isfinite(trimmed)):
        gap = int(np.flatnonzero(~np.isfinite(trimmed))[0])
        raise SourceDataError(f"{name}: {what} missing at quarter-hour {gap}")
    return trimmed


class ForecastSolarClient:
    """PV power estimates from Forecast.Solar, one request per plane."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        site: PvSite,
        *,
        api_key: str | None = None,
        base_url: URL | str = FORECAST_SOLAR_URL,
    ) -> None:
        self._session = session
        self._site = site
        self._key = api_key
        self._base = URL(str(base_url))

    @property
    def name(self) -> str:
        """For messages."""
        return "Forecast.Solar"

    async def forecast(self) -> PvForecast:
        """Today's and the coming days' estimates (as many as the account gives)."""
        parts = [await self._plane(plane) for plane in self._site.planes]
        total = sum_forecasts(parts, self.name)
        return PvForecast(
            self.name, total.start, np.minimum(total.power_w, self._site.inverter_max_w)
        )

    async def _plane(self, plane: Plane) -> PvForecast:
        site = self._site
        parts = [self._key] if self._key else []
        parts += [
            "estimate", f"{site.latitude:.4f}", f"{site.longitude:.4f}",
            f"{plane.tilt_deg:g}", f"{plane.azimuth_deg:g}", f"{plane.kwp:g}",
        ]  # fmt: skip
        _, body = await fetch(
            self._session,
            self._base.with_path("/" + "/".join(parts)),
            params={"time": "utc"},
            headers={"Accept": "application/json"},
            name=self.name,
            secret=self._key,
        )
        return parse_forecast_solar(body)


def parse_forecast_solar(body: bytes) -> PvForecast:
    """An estimate as power per quarter-hour."""
    name = "Forecast.Solar"
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SourceDataError(f"{name}: not JSON") from None
    message = data.get("message", {}) if isinstance(data, dict) else {}
    if isinstance(message, dict) and message.get("type") == "error":
        raise SourceDataError(f"{name}: {message.get('text') or 'error without a text'}")
    try:
        periods = data["result"]["watt_hours_period"]
        stamps = sorted(
            (datetime.fromisoformat(key).astimezone(UTC), float(value))
            for key, value in periods.items()
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        raise SourceDataError(f"{name}: no watt_hours_period in the answer") from None
    if len(stamps) < 2:
        raise SourceDataError(f"{name}: too few estimates to make a forecast")
    first = stamps[0][0]
    start = datetime.fromtimestamp(int(first.timestamp()) // 900 * 900, UTC)
    count = math.ceil((stamps[-1][0] - start) / QUARTER)
    energy = np.zeros(count)
    for (begin, _), (end, watt_hours) in pairwise(stamps):
        _spread(energy, start, begin, end, watt_hours)
    return PvForecast(name, start, energy / 0.25)


def _spread(
    energy: np.ndarray[Any, np.dtype[np.float64]],
    start: datetime,
    begin: datetime,
    end: datetime,
    watt_hours: float,
) -> None:
    """Add ``watt_hours`` spread evenly over ``[begin, end)`` to the quarter-hour bins."""
    span = (end - begin).total_seconds()
    if span <= 0 or watt_hours == 0:
        return
    rate = watt_hours / span
    moment = begin
    while moment < end:
        index = int((moment - start) / QUARTER)
        bin_end = start + (index + 1) * QUARTER
        upto = min(bin_end, end)
        if 0 <= index < energy.size:
            energy[index] += rate * (upto - moment).total_seconds()
        moment = upto
