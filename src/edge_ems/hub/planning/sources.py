"""The planner's price and PV sources, made from the configuration with the hub's
``aiohttp`` session; and recorded files replayed onto today, so a hub plans offline.

A replayed price file gives its first recorded day for today, its second for tomorrow, and
so on round; a replayed PV file likewise by local day. A recorded day is matched to the
day it stands in for by wall clock, so a recording of a 96-quarter day serves a 92- or
100-quarter DST day too.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import aiohttp
import numpy as np
import voluptuous as vol

from ...exceptions import ConfigError
from ...planner.errors import PlanInputError, SourceDataError
from ...planner.forecast import PvForecast
from ...planner.prices import QUARTER, DayAheadPrices, PriceFile, PriceSource, day_start
from ...planner.sources import entsoe, nordpool, ote
from ...planner.sources.entsoe import EntsoeClient
from ...planner.sources.nordpool import NordPoolClient
from ...planner.sources.ote import OteClient
from ...planner.sources.pv import (
    FORECAST_SOLAR_URL,
    OPEN_METEO_URL,
    ForecastSolarClient,
    OpenMeteoClient,
    Plane,
    PvSite,
)
from ...planner.validation import apply, iso_time, number, zone
from .config import PriceSourceConfig, PvSourceConfig

PV_FILE_SCHEMA = "edge-ems-pv-forecast/1"
REPLAY_DAYS = 3
"""Days a replayed PV file covers from today's midnight."""


class PvSource(Protocol):
    """Anything that forecasts a site's PV power."""

    @property
    def name(self) -> str:
        """For messages."""

    async def forecast(self) -> PvForecast:
        """The forecast from about now on."""


def read_secret(path: Path, what: str) -> str:
    """A token or key from a file (blocking), without its line break."""
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the {what}: {err.strerror}") from None
    if not value:
        raise ConfigError(f"{path}: the {what} file is empty")
    return value


async def price_source(
    config: PriceSourceConfig, session: aiohttp.ClientSession
) -> PriceSource | None:
    """The day-ahead source ``config`` names (``None``: prices only from the sites)."""
    match config.source:
        case "ote":
            return OteClient(session, base_url=config.base_url or ote.BASE_URL)
        case "entsoe":
            assert config.token_file is not None
            assert config.area is not None
            assert config.market_zone is not None
            token = await asyncio.to_thread(read_secret, config.token_file, "ENTSO-E token")
            return EntsoeClient(
                session, token, config.area, config.market_zone,
                base_url=config.base_url or entsoe.BASE_URL,
            )  # fmt: skip
        case "nordpool":
            assert config.area
            return NordPoolClient(
                session, config.area, currency=config.currency,
                base_url=config.base_url or nordpool.BASE_URL,
            )  # fmt: skip
        case "file":
            assert config.path is not None
            assert config.area is not None
            assert config.market_zone is not None
            if config.replay:
                return ReplayedPriceFile(config.path, config.area, config.market_zone)
            return PriceFile(config.path, config.area, config.market_zone)
    return None


async def pv_source(
    config: PvSourceConfig,
    session: aiohttp.ClientSession,
    zone_of_site: ZoneInfo,
    clock: Callable[[], datetime],
) -> PvSource | None:
    """The PV source ``config`` names (``None``: the forecast only from the site)."""
    if config.source in ("open_meteo", "forecast_solar"):
        assert config.latitude is not None
        assert config.longitude is not None
        site = PvSite(
            config.latitude,
            config.longitude,
            tuple(Plane(tilt, azimuth, kwp) for tilt, azimuth, kwp in config.planes),
            performance_ratio=config.performance_ratio,
            inverter_max_w=config.inverter_max_w,
        )
        if config.source == "open_meteo":
            return OpenMeteoClient(session, site, base_url=config.base_url or OPEN_METEO_URL)
        key = None
        if config.api_key_file is not None:
            key = await asyncio.to_thread(read_secret, config.api_key_file, "Forecast.Solar key")
        return ForecastSolarClient(
            session, site, api_key=key, base_url=config.base_url or FORECAST_SOLAR_URL
        )
    if config.source == "file":
        assert config.path is not None
        return PvFile(config.path, zone_of_site, clock, replay=config.replay)
    return None


def _by_wall_clock(
    times: list[datetime], values: np.ndarray[Any, np.dtype[np.float64]]
) -> list[tuple[int, float]]:
    """(minute of the local day, value), the first of each minute, sorted."""
    seen: dict[int, float] = {}
    for moment, value in zip(times, values, strict=True):
        seen.setdefault(moment.hour * 60 + moment.minute, float(value))
    return sorted(seen.items())


def _at_wall_clock(recorded: list[tuple[int, float]], minute: int) -> float:
    """The recorded value in force at ``minute`` of the day (the last at or before it)."""
    found = recorded[0][1]
    for at, value in recorded:
        if at > minute:
            break
        found = value
    return found


@dataclass(frozen=True, slots=True)
class ReplayedPriceFile:
    """A price file whose recorded days stand in for today and the days after."""

    path: Path
    area: str
    zone: ZoneInfo

    @property
    def name(self) -> str:
        """For messages."""
        return f"price file {self.path} ({self.area}, replayed)"

    async def day_ahead(self, day: date) -> DayAheadPrices:
        """The recorded day standing in for ``day`` (read in a thread)."""
        days = await asyncio.to_thread(PriceFile(self.path, self.area, self.zone).load)
        if not days:
            raise SourceDataError(f"{self.name}: no days in the file")
        days.sort(key=lambda prices: prices.day)
        recorded = days[(day - days[0].day).days % len(days)]
        wall = _by_wall_clock(recorded.times(), recorded.prices_mwh)
        start = day_start(day, self.zone).astimezone(UTC)
        end = day_start(day + timedelta(days=1), self.zone).astimezone(UTC)
        count = int((end - start) / QUARTER)
        values = [
            _at_wall_clock(wall, _minute((start + k * QUARTER).astimezone(self.zone)))
            for k in range(count)
        ]
        return DayAheadPrices(
            recorded.market, recorded.area, recorded.currency, self.zone, day,
            np.asarray(values, dtype=np.float64), recorded.resolution_minutes,
        )  # fmt: skip


def _minute(moment: datetime) -> int:
    return moment.hour * 60 + moment.minute


_PV_FILE = vol.Schema(
    {
        vol.Required("schema"): vol.In([PV_FILE_SCHEMA], msg=f"expected {PV_FILE_SCHEMA}"),
        vol.Required("time_zone"): zone,
        vol.Required("start"): iso_time,
        vol.Required("step_minutes"): vol.In([15, 30, 60]),
        vol.Required("power_w"): vol.All([vol.All(number, vol.Range(min=0))], vol.Length(min=1)),
        vol.Optional("source"): str,
    }
)


class PvFile:
    """A PV forecast from a file (``edge-ems-pv-forecast/1``): mean W per step from
    ``start``; with ``replay`` its whole local days stand in for today and the next days."""

    def __init__(
        self,
        path: Path,
        zone_of_site: ZoneInfo,
        clock: Callable[[], datetime],
        *,
        replay: bool = False,
    ) -> None:
        self._path = path
        self._zone = zone_of_site
        self._clock = clock
        self._replay = replay

    @property
    def name(self) -> str:
        """For messages."""
        return f"PV file {self._path}" + (" (replayed)" if self._replay else "")

    async def forecast(self) -> PvForecast:
        """The forecast (read in a thread)."""
        start, quarters, file_zone = await asyncio.to_thread(self._load)
        if not self._replay:
            return PvForecast(self.name, start, quarters)
        if start.astimezone(file_zone).time() != time(0):
            raise PlanInputError(f"{self._path}: a replayed forecast starts at local midnight")
        times = [(start.astimezone(UTC) + k * QUARTER).astimezone(file_zone) for k in range(
            quarters.size)]  # fmt: skip
        days: dict[date, list[tuple[datetime, float]]] = {}
        for moment, value in zip(times, quarters, strict=True):
            days.setdefault(moment.date(), []).append((moment, float(value)))
        recorded = [
            _by_wall_clock([m for m, _ in entries], np.array([v for _, v in entries]))
            for entries in days.values()
        ]
        today = self._clock().astimezone(self._zone).date()
        first = day_start(today, self._zone).astimezone(UTC)
        end = day_start(today + timedelta(days=REPLAY_DAYS), self._zone).astimezone(UTC)
        values = []
        for k in range(int((end - first) / QUARTER)):
            local = (first + k * QUARTER).astimezone(self._zone)
            day = recorded[(local.date() - today).days % len(recorded)]
            values.append(_at_wall_clock(day, _minute(local)))
        return PvForecast(self.name, first, np.asarray(values, dtype=np.float64))

    def _load(self) -> tuple[datetime, np.ndarray[Any, np.dtype[np.float64]], ZoneInfo]:
        try:
            data = json.loads(self._path.read_bytes())
        except OSError as err:
            raise PlanInputError(
                f"{self._path}: cannot read the forecast: {err.strerror}"
            ) from None
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise PlanInputError(f"{self._path}: not JSON: {err}") from None
        checked = apply(_PV_FILE, data, source=str(self._path))
        start: datetime = checked["start"]
        if int(start.timestamp()) % 900:
            raise PlanInputError(f"{self._path}: start is not on a quarter-hour")
        per = checked["step_minutes"] // 15
        quarters = np.repeat(np.asarray(checked["power_w"], dtype=np.float64), per)
        if self._replay and (quarters.size * 15) % 1440:
            raise PlanInputError(f"{self._path}: a replayed forecast holds whole days")
        return start, quarters, checked["time_zone"]


def pv_every(config: PvSourceConfig, zone_of_site: ZoneInfo, after: datetime) -> datetime:
    """The next forecast time after ``after``: every ``every_hours`` from local midnight, at
    ``at_minute`` (a time inside a spring-forward gap moves on by the gap)."""
    local = after.astimezone(zone_of_site)
    for days in range(3):
        day = local.date() + timedelta(days=days)
        for hour in range(0, 24, config.every_hours):
            wall = datetime.combine(day, time(hour, config.at_minute), tzinfo=zone_of_site)
            moment = wall.astimezone(UTC).astimezone(zone_of_site)
            if moment > after:
                return moment
    raise AssertionError("a forecast time recurs every day")  # pragma: no cover
