"""OTE-CR, the Czech market operator: day-ahead results from its public chart data.

``GET {base}/en/short-term-markets/electricity/day-ahead-market/@@chart-data?report_date=
YYYY-MM-DD`` answers JSON: ``data.dataLine`` is a list of series, each ``{"title": ...,
"point": [{"x": "1", "y": 95.2}, ...]}``. From delivery day 1 October 2025 the prices are
``15min price (EUR/MWh)`` (``x`` 1 .. 92/96/100, the quarter-hours from local midnight);
before it, ``Price (EUR/MWh)`` per hour (``x`` 1 .. 23/24/25). A day not yet published
answers without a price series.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import numpy as np
from yarl import URL

from ..errors import SourceDataError
from ..prices import DayAheadPrices, hourly_to_quarters, quarter_hours
from .http import fetch

BASE_URL = URL("https://www.ote-cr.cz")
PATH = "/en/short-term-markets/electricity/day-ahead-market/@@chart-data"
ZONE = ZoneInfo("Europe/Prague")
QUARTER_TITLE = "15min price (EUR/MWh)"
HOUR_TITLE = "Price (EUR/MWh)"


class OteClient:
    """Day-ahead prices of the Czech bidding zone from OTE-CR."""

    def __init__(self, session: aiohttp.ClientSession, *, base_url: URL | str = BASE_URL) -> None:
        self._session = session
        self._base = URL(str(base_url))

    @property
    def name(self) -> str:
        """For messages."""
        return "OTE-CR day-ahead (CZ)"

    @property
    def zone(self) -> ZoneInfo:
        """Prague: OTE's delivery days are Prague days."""
        return ZONE

    async def day_ahead(self, day: date) -> DayAheadPrices:
        """The prices of delivery day ``day``."""
        _, body = await fetch(
            self._session,
            self._base.with_path(PATH),
            params={"report_date": day.isoformat()},
            headers={"Accept": "application/json"},
            name=self.name,
        )
        return parse(body, day)


def parse(body: bytes, day: date) -> DayAheadPrices:
    """A chart-data answer for delivery day ``day``."""
    where = f"OTE-CR {day.isoformat()}"
    try:
        data = json.loads(body)
        lines = data["data"]["dataLine"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise SourceDataError(f"{where}: not OTE chart data ({type(err).__name__})") from None
    series = {line.get("title"): line.get("point") for line in lines if isinstance(line, dict)}
    if QUARTER_TITLE in series:
        values = _positions(series[QUARTER_TITLE], quarter_hours(day, ZONE), where)
        return DayAheadPrices("OTE-CR", "CZ", "EUR", ZONE, day, values, 15)
    if HOUR_TITLE in series:
        hours = quarter_hours(day, ZONE) // 4
        values = hourly_to_quarters(_positions(series[HOUR_TITLE], hours, where))
        return DayAheadPrices("OTE-CR", "CZ", "EUR", ZONE, day, values, 60)
    raise SourceDataError(f"{where}: no prices published (yet)")


def _positions(points: Any, expected: int, where: str) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Values by position 1 .. ``expected``; every position once, each a number."""
    if not isinstance(points, list):
        raise SourceDataError(f"{where}: the price series is not a list")
    values = np.full(expected, np.nan)
    for point in points:
        try:
            position = int(point["x"])
            value = float(point["y"])
        except (KeyError, TypeError, ValueError):
            raise SourceDataError(f"{where}: a point is not {{x, y}}: {point!r}") from None
        if not 1 <= position <= expected:
            raise SourceDataError(f"{where}: position {position} outside 1..{expected}")
        values[position - 1] = value
    missing = np.flatnonzero(np.isnan(values))
    if missing.size:
        shown = ", ".join(str(p + 1) for p in missing[:6])
        raise SourceDataError(
            f"{where}: {missing.size} of {expected} intervals missing (positions {shown})"
        )
    return values
