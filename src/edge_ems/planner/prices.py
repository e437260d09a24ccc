"""Day-ahead prices: one delivery day of a market, per quarter-hour, and what keeps them.

The coupled European day-ahead market trades 15-minute products since 1 October 2025; a
source that still publishes hours is spread over the hour's four quarters. A delivery day
is the market zone's calendar day, so it has 92, 96 or 100 quarter-hours (DST days), each
checked. :class:`PriceFeed` fetches a day through any :class:`PriceSource` and keeps the
last good prices when a fetch fails; :class:`FetchTimes` says when to fetch, as wall-clock
times in the market's zone (OTE publishes about 13:00 Prague time: 13:30, a retry at 14:00,
and 00:05 for anything missed).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

import numpy as np
import voluptuous as vol

from .errors import PlanInputError, SourceDataError, SourceError
from .problem import Horizon, Series
from .validation import apply, integer, iso_time, number, zone

_LOGGER = logging.getLogger(__name__)

QUARTER = timedelta(minutes=15)


def day_start(day: date, market_zone: ZoneInfo) -> datetime:
    """Local midnight starting ``day`` in ``market_zone``."""
    return datetime.combine(day, time(0), tzinfo=market_zone)


def quarter_hours(day: date, market_zone: ZoneInfo) -> int:
    """How many quarter-hours ``day`` has in ``market_zone`` (92, 96 or 100)."""
    start = day_start(day, market_zone).astimezone(UTC)
    end = day_start(day + timedelta(days=1), market_zone).astimezone(UTC)
    return int((end - start) / QUARTER)


@dataclass(frozen=True, slots=True, eq=False)
class DayAheadPrices:
    """One delivery day's prices per quarter-hour, in ``currency`` per MWh."""

    market: str
    area: str
    currency: str
    zone: ZoneInfo
    day: date
    prices_mwh: Series
    resolution_minutes: int = 15
    """What the source published: 15, or 60 (each hour then spread over its quarters)."""

    def __post_init__(self) -> None:
        expected = quarter_hours(self.day, self.zone)
        where = f"{self.market} {self.area} {self.day.isoformat()}"
        if self.prices_mwh.shape != (expected,):
            raise SourceDataError(
                f"{where}: {self.prices_mwh.size} quarter-hours, but the day has {expected} "
                f"in {self.zone.key}"
            )
        if not np.all(np.isfinite(self.prices_mwh)):
            raise SourceDataError(f"{where}: a price is not a number")

    @property
    def start(self) -> datetime:
        """The start of the delivery day (local midnight, aware)."""
        return day_start(self.day, self.zone)

    @property
    def end(self) -> datetime:
        """The end of the delivery day."""
        return day_start(self.day + timedelta(days=1), self.zone)

    @property
    def per_kwh(self) -> Series:
        """Prices per kWh."""
        values: Series = self.prices_mwh / 1000.0
        return values

    def times(self) -> list[datetime]:
        """The start of every quarter-hour (equal steps in absolute time)."""
        start = self.start.astimezone(UTC)
        return [(start + k * QUARTER).astimezone(self.zone) for k in range(self.prices_mwh.size)]

    @classmethod
    def from_hours(
        cls,
        market: str,
        area: str,
        currency: str,
        zone: ZoneInfo,
        day: date,
        hourly_mwh: Sequence[float],
    ) -> DayAheadPrices:
        """A day published per hour (23, 24 or 25 of them), spread over the quarters."""
        hours = np.asarray(hourly_mwh, dtype=np.float64)
        return cls(market, area, currency, zone, day, np.repeat(hours, 4), resolution_minutes=60)


def hourly_to_quarters(hourly: Sequence[float] | Series) -> Series:
    """Hourly values repeated for each quarter-hour."""
    return np.repeat(np.asarray(hourly, dtype=np.float64), 4)


class PriceSource(Protocol):
    """Anything that fetches one delivery day (OTE, ENTSO-E, Nord Pool, a price file)."""

    @property
    def name(self) -> str:
        """The market and area, for messages."""

    @property
    def zone(self) -> ZoneInfo:
        """The market's time zone: delivery days and fetch times are in it."""

    async def day_ahead(self, day: date) -> DayAheadPrices:
        """The prices of delivery day ``day``; a :class:`SourceError` if there are none."""


@dataclass(slots=True)
class PriceFeed:
    """Prices as far as they are known, kept through failed fetches.

    A fetch that fails (the service is down, answers garbage, publishes a day with gaps)
    changes nothing but :attr:`last_error`: the last good prices stay in use.
    """

    source: PriceSource
    days: dict[date, DayAheadPrices] = field(default_factory=dict)
    last_error: SourceError | None = None

    async def refresh(self, day: date) -> bool:
        """Fetch delivery day ``day``; whether it worked."""
        try:
            prices = await self.source.day_ahead(day)
        except SourceError as err:
            self.last_error = err
            _LOGGER.warning("%s: keeping the last good prices: %s", self.source.name, err)
            return False
        self.days[day] = prices
        self.last_error = None
        return True

    def forget_before(self, day: date) -> None:
        """Drop delivery days before ``day``."""
        for known in [d for d in self.days if d < day]:
            del self.days[known]

    @property
    def known_until(self) -> datetime | None:
        """The end of the last day known without a gap from the first."""
        if not self.days:
            return None
        day = min(self.days)
        while day + timedelta(days=1) in self.days:
            day += timedelta(days=1)
        return self.days[day].end

    def series(self, horizon: Horizon) -> Series:
        """The price (per kWh) of each step of ``horizon``: the mean of its quarter-hours.
        :class:`PlanInputError` names the first step no known day covers."""
        return prices_for(horizon, self.days.values())


def prices_for(horizon: Horizon, days: Iterable[DayAheadPrices]) -> Series:
    """Per-kWh prices for each step of ``horizon`` from the quarter-hours of ``days``."""
    quarters: dict[int, float] = {}
    for prices in days:
        first = int(prices.start.timestamp()) // 900
        for offset, value in enumerate(prices.per_kwh):
            quarters[first + offset] = float(value)
    start = int(horizon.start.timestamp())
    if start % 900:
        raise PlanInputError("a plan on day-ahead prices starts on a quarter-hour")
    per_step = horizon.step_minutes // 15
    if per_step == 0 or horizon.step_minutes % 15:
        raise PlanInputError("day-ahead prices need steps of whole quarter-hours")
    result = np.empty(horizon.n_steps)
    base = start // 900
    for step in range(horizon.n_steps):
        values = [quarters.get(base + step * per_step + k) for k in range(per_step)]
        if any(v is None for v in values):
            moment = horizon.time(step).isoformat()
            raise PlanInputError(f"no day-ahead price known for step {step} ({moment})")
        result[step] = math.fsum(v for v in values if v is not None) / per_step
    return result


@dataclass(frozen=True, slots=True)
class FetchTimes:
    """When to fetch prices: wall-clock times in the market's zone, every day."""

    times: tuple[time, ...]
    zone: ZoneInfo

    @classmethod
    def parse(cls, values: Sequence[str], zone_name: str) -> FetchTimes:
        """``["13:30", "14:00", "00:05"]`` in ``Europe/Prague``, say."""
        try:
            market_zone = ZoneInfo(zone_name)
        except (KeyError, ValueError):
            raise PlanInputError(f"unknown time zone {zone_name!r}") from None
        parsed = []
        for value in values:
            try:
                parsed.append(time.fromisoformat(value))
            except ValueError:
                raise PlanInputError(f"fetch time {value!r} is not HH:MM") from None
        if not parsed:
            raise PlanInputError("at least one fetch time is needed")
        return cls(tuple(sorted(set(parsed))), market_zone)

    def next_after(self, moment: datetime) -> datetime:
        """The first fetch time strictly after ``moment`` (aware, in the market's zone).

        A wall-clock time that does not exist that day (inside the spring-forward gap) moves
        on by the gap (02:30 becomes 03:30); one that exists twice (autumn) counts once, the
        first time.
        """
        local = moment.astimezone(self.zone)
        for days in range(3):
            day = local.date() + timedelta(days=days)
            for wall in self.times:
                candidate = _resolve(day, wall, self.zone)
                if candidate > moment:
                    return candidate
        raise AssertionError("a fetch time recurs every day")  # pragma: no cover


def _resolve(day: date, wall: time, market_zone: ZoneInfo) -> datetime:
    # Through UTC and back: a time in the spring gap comes out moved on by the gap.
    aware = datetime.combine(day, wall, tzinfo=market_zone)
    return aware.astimezone(UTC).astimezone(market_zone)


# A price file: prices recorded or made by hand, for a site offline or a demo.

PRICE_FILE_SCHEMA = "edge-ems-prices/1"

_PRICE_FILE = vol.Schema(
    {
        vol.Required("schema"): vol.In([PRICE_FILE_SCHEMA], msg=f"expected {PRICE_FILE_SCHEMA}"),
        vol.Required("market"): vol.All(str, vol.Length(min=1)),
        vol.Required("area"): vol.All(str, vol.Length(min=1)),
        vol.Required("time_zone"): zone,
        vol.Required("currency"): vol.All(str, vol.Match(r"^[A-Z]{3}$")),
        vol.Required("resolution_minutes"): vol.All(integer, vol.In([15, 60])),
        vol.Required("days"): [
            {
                vol.Required("day"): vol.All(str, vol.Coerce(date.fromisoformat)),
                vol.Required("prices_mwh"): [number],
            }
        ],
        vol.Optional("recorded_at"): iso_time,
    }
)


@dataclass(frozen=True, slots=True)
class PriceFile:
    """Prices from a JSON file, checked to be for the area asked for."""

    path: Path
    area: str
    zone: ZoneInfo

    @property
    def name(self) -> str:
        """The file and the area."""
        return f"price file {self.path} ({self.area})"

    async def day_ahead(self, day: date) -> DayAheadPrices:
        """The day from the file (read in a thread: the event loop never blocks on disk)."""
        import asyncio

        days = await asyncio.to_thread(self.load)
        for prices in days:
            if prices.day == day:
                return prices
        raise SourceDataError(f"{self.name}: no prices for {day.isoformat()}")

    def load(self) -> list[DayAheadPrices]:
        """Every day in the file (blocking)."""
        try:
            data = json.loads(self.path.read_bytes())
        except OSError as err:
            raise PlanInputError(
                f"{self.path}: cannot read the price file: {err.strerror}"
            ) from None
        except json.JSONDecodeError as err:
            raise PlanInputError(f"{self.path}: not JSON: {err}") from None
        checked = apply(_PRICE_FILE, data, source=str(self.path))
        if checked["area"] != self.area or checked["time_zone"] != self.zone:
            raise PlanInputError(
                f"{self.path}: prices for {checked['area']} in {checked['time_zone'].key}, "
                f"but this site's market is {self.area} in {self.zone.key}"
            )
        result = []
        for entry in checked["days"]:
            values = np.asarray(entry["prices_mwh"], dtype=np.float64)
            if checked["resolution_minutes"] == 60:
                values = hourly_to_quarters(values)
            try:
                result.append(
                    DayAheadPrices(checked["market"], checked["area"], checked["currency"],
                                   checked["time_zone"], entry["day"], values,
                                   checked["resolution_minutes"])
                )  # fmt: skip
            except SourceDataError as err:
                raise PlanInputError(f"{self.path}: {err}") from None
        return result
