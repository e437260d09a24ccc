"""Prices and solar forecasts in the shapes other software already publishes them, as even
series a planner can take.

Inside Home Assistant a site's prices usually come from another integration: Nord Pool,
ENTSO-e, Energi Data Service, Octopus Energy and the like keep the day's prices in a
sensor's attributes as a list of ``{start, end, value}``-like entries (each names the keys
its own way), and the Energy dashboard's solar forecast providers give energy per period
(``{"wh_hours": {start: Wh}}``). These functions read those shapes without Home Assistant:
they find the list, the time and value keys, the unit, and return one
:class:`PublishedSeries` on an even step, or say clearly why they cannot.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any, Final

from ..errors import SourceDataError

TIME_KEYS: Final = (
    "start",
    "start_time",
    "startsAt",
    "period_start",
    "valid_from",
    "from",
    "time",
    "hour",
    "datetime",
)
"""Where an entry keeps the start of its interval, in the order they are tried."""
END_KEYS: Final = ("end", "end_time", "endsAt", "period_end", "valid_to", "to")
VALUE_KEYS: Final = (
    "value",
    "price",
    "total",
    "value_inc_vat",
    "price_inc_vat",
    "price_per_kwh",
)
LIST_ATTRIBUTES: Final = (
    "raw_today",
    "raw_tomorrow",
    "prices_today",
    "prices_tomorrow",
    "today",
    "tomorrow",
    "prices",
    "rates",
    "forecast",
    "data",
)
"""Attributes that may hold a price list; every one present is read and the lists merged."""

MINOR_UNITS: Final = {
    "ct": 100.0,
    "c": 100.0,
    "cent": 100.0,
    "cents": 100.0,
    "öre": 100.0,
    "øre": 100.0,
    "ore": 100.0,
    "p": 100.0,
    "gr": 100.0,
    "haléř": 100.0,
}
"""Sub-units of a currency: a price in them is divided by this to get the currency."""
MINOR_CURRENCY: Final = {"p": "GBP", "öre": "SEK", "øre": "NOK", "gr": "PLN"}
"""Sub-units that name their currency; the others take the site's."""
ENERGY_UNITS: Final = {"wh": 0.001, "kwh": 1.0, "mwh": 1000.0}
"""kWh per unit of energy a price is quoted for."""

_UNIT = re.compile(r"^\s*(?P<money>[^/\s]+)\s*/\s*(?P<energy>[kKmM]?[wW][hH])\s*$")


@dataclass(frozen=True, slots=True)
class PublishedSeries:
    """Values on an even step from ``start``: prices per kWh, or power in W."""

    start: datetime
    step: timedelta
    values: tuple[float, ...]
    unit: str

    @property
    def end(self) -> datetime:
        """The end of the last step."""
        return self.start + self.step * len(self.values)


def price_factor(unit: str | None, site_currency: str) -> tuple[str, float]:
    """The currency a price unit is in and the factor to a price per kWh of it:
    ``EUR/MWh`` is ``("EUR", 0.001)``, ``ct/kWh`` with a site in EUR is ``("EUR", 0.01)``."""
    if not unit:
        raise SourceDataError("the price has no unit; expected one like EUR/kWh or öre/kWh")
    match = _UNIT.match(unit)
    if match is None:
        raise SourceDataError(f"{unit!r} is not a price unit (expected one like EUR/kWh)")
    money, energy = match["money"], match["energy"].lower()
    per_kwh = 1.0 / ENERGY_UNITS[energy]
    minor = MINOR_UNITS.get(money) or MINOR_UNITS.get(money.lower())
    if minor is not None:
        currency = MINOR_CURRENCY.get(money.lower(), site_currency)
        return currency, per_kwh / minor
    currency = {"€": "EUR", "£": "GBP", "$": "USD", "kr": site_currency}.get(money, money)
    if not (len(currency) == 3 and currency.isalpha()):
        raise SourceDataError(f"{unit!r}: {money!r} is not a currency")
    return currency.upper(), per_kwh


def entity_prices(
    attributes: Mapping[str, Any], unit: str | None, site_currency: str
) -> PublishedSeries:
    """The prices a price sensor's attributes hold, per kWh in its currency (the series'
    ``unit``, e.g. ``EUR/kWh``); :class:`SourceDataError` when there are none or they are
    not usable (a gap, overlapping entries, a value that is not a number)."""
    currency, factor = price_factor(unit, site_currency)
    entries: list[Any] = []
    for key in LIST_ATTRIBUTES:
        found = attributes.get(key)
        if isinstance(found, list):
            entries.extend(found)
    if not entries:
        raise SourceDataError(
            "no price list in the entity's attributes (looked for "
            + ", ".join(LIST_ATTRIBUTES)
            + ")"
        )
    return price_list(entries, factor, f"{currency}/kWh")


def price_list(entries: Iterable[Any], factor: float, unit: str) -> PublishedSeries:
    """A list of price entries (each a mapping with a start, maybe an end, and a value),
    times ``factor``, as an even series."""
    intervals = [_interval(entry, index) for index, entry in enumerate(entries)]
    return even(
        [(start, end, value * factor) for start, end, value in intervals], unit, "price list"
    )


def solar_forecast(wh_by_period: Mapping[str, Any]) -> PublishedSeries:
    """A solar forecast as the Energy dashboard's providers give it (energy in Wh per
    period, keyed by the period's start) as mean power in W per step.

    The step is the providers' usual spacing (an hour, or half an hour); a key off that
    grid (Forecast.Solar keys sunrise and sunset to the minute) counts towards the step it
    falls in, and a step without a key (the night) is 0 W.
    """
    points = sorted(
        (_time(key, f"forecast period {key!r}"), _number(value, f"forecast period {key!r}"))
        for key, value in wh_by_period.items()
    )
    if not points:
        raise SourceDataError("the solar forecast is empty")
    if any(wh < 0 for _, wh in points):
        raise SourceDataError("the solar forecast has a negative energy")
    step = _usual_step([start for start, _ in points])
    first = _floor(points[0][0], step)
    count = (points[-1][0] - first) // step + 1
    energy = [0.0] * count
    for start, wh in points:
        energy[(start - first) // step] += wh
    hours = step / timedelta(hours=1)
    return PublishedSeries(first, step, tuple(wh / hours for wh in energy), "W")


def sum_series(parts: Sequence[PublishedSeries]) -> PublishedSeries:
    """Several forecasts (one per array or provider) added where they all have values."""
    if not parts:
        raise SourceDataError("no forecast to add up")
    step = min(part.step for part in parts)
    start = max(part.start for part in parts)
    end = min(part.end for part in parts)
    if end <= start:
        raise SourceDataError("the forecasts do not cover a common period")
    count = (end - start) // step
    total = [0.0] * count
    for part in parts:
        if part.step % step:
            raise SourceDataError(f"forecast steps {part.step} and {step} do not nest")
        for index in range(count):
            total[index] += part.values[(start - part.start + index * step) // part.step]
    return PublishedSeries(start, step, tuple(total), parts[0].unit)


def even(
    intervals: Sequence[tuple[datetime, datetime | None, float]], unit: str, what: str
) -> PublishedSeries:
    """Intervals ``(start, end or None, value)`` on one even step, the shortest interval's.
    An interval without an end lasts until the next one starts (the last one, one step).
    Longer intervals are spread over their steps; a gap or an overlap is an error, since a
    planner must not guess a price."""
    ordered = sorted(intervals, key=lambda interval: interval[0])
    starts = [start for start, _, _ in ordered]
    for earlier, later in pairwise(starts):
        if earlier == later:
            raise SourceDataError(f"{what}: two entries start at {later.isoformat()}")
    spans: list[timedelta | None] = []
    for (start, end, _), following in zip(ordered, [*starts[1:], None], strict=True):
        if end is not None and following is not None and following < end:
            raise SourceDataError(f"{what}: the entry at {start.isoformat()} overlaps the next")
        if end is not None and following is not None and following > end:
            raise SourceDataError(
                f"{what}: nothing from {end.isoformat()} to {following.isoformat()}"
            )
        last = end if end is not None else following
        spans.append(None if last is None else last - start)
    known = [span for span in spans if span is not None]
    step = min(known, default=timedelta(hours=1))
    if step <= timedelta(0):
        raise SourceDataError(f"{what}: an entry ends before it starts")
    values: list[float] = []
    for (start, _, value), span in zip(ordered, spans, strict=True):
        length = step if span is None else span
        if length % step:
            raise SourceDataError(
                f"{what}: the entry at {start.isoformat()} lasts {length}, not a whole number "
                f"of {step} steps"
            )
        values.extend([value] * (length // step))
    return PublishedSeries(starts[0], step, tuple(values), unit)


def _interval(entry: Any, index: int) -> tuple[datetime, datetime | None, float]:
    if not isinstance(entry, Mapping):
        raise SourceDataError(f"price entry {index}: expected a mapping, got {entry!r:.60}")
    start_key = next((key for key in TIME_KEYS if key in entry), None)
    value_key = next((key for key in VALUE_KEYS if key in entry), None)
    if start_key is None or value_key is None:
        raise SourceDataError(
            f"price entry {index}: no start ({', '.join(TIME_KEYS)}) or no value "
            f"({', '.join(VALUE_KEYS)}) in {sorted(map(str, entry))}"
        )
    start = _time(entry[start_key], f"price entry {index}")
    end_key = next((key for key in END_KEYS if key in entry), None)
    end = None if end_key is None else _time(entry[end_key], f"price entry {index}")
    return start, end, _number(entry[value_key], f"price entry {index}")


def _time(value: Any, where: str) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise SourceDataError(f"{where}: {value!r:.40} is not a time") from None
    else:
        raise SourceDataError(f"{where}: {value!r:.40} is not a time")
    if moment.tzinfo is None:
        raise SourceDataError(f"{where}: {moment.isoformat()} has no UTC offset")
    return moment


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise SourceDataError(f"{where}: {value!r:.40} is not a number")
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise SourceDataError(f"{where}: {value!r:.40} is not a number") from None
    if not math.isfinite(number):
        raise SourceDataError(f"{where}: {value!r:.40} is not a finite number")
    return number


def _usual_step(starts: Sequence[datetime]) -> timedelta:
    """The spacing most periods have (an hour when there is one period)."""
    gaps = Counter(later - earlier for earlier, later in pairwise(starts))
    gaps.pop(timedelta(0), None)
    if not gaps:
        return timedelta(hours=1)
    step = max(gaps, key=lambda gap: (gaps[gap], gap))
    if timedelta(days=1) % step:
        raise SourceDataError(f"solar forecast: periods of {step} do not divide a day")
    return step


def _floor(moment: datetime, step: timedelta) -> datetime:
    """``moment`` down to a whole step since the epoch (an hour, half an hour...)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((moment - epoch) // step) * step
