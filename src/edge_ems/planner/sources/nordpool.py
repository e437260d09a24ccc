"""Nord Pool: day-ahead prices from its public data portal API.

``GET {base}/api/DayAheadPrices?date=YYYY-MM-DD&market=DayAhead&deliveryArea=SE3&currency=EUR``
answers JSON with ``deliveryDateCET``, ``deliveryAreas``, ``currency`` and
``multiAreaEntries``: ``{"deliveryStart": "...Z", "deliveryEnd": "...Z", "entryPerArea":
{"SE3": 35.9}}`` per quarter-hour (per hour before October 2025), prices per MWh. A day not
yet published answers 204 with no body. The delivery day is the CET day.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import numpy as np
from yarl import URL

from ..errors import SourceDataError
from ..prices import QUARTER, DayAheadPrices, day_start, quarter_hours
from .http import fetch

BASE_URL = URL("https://dataportal-api.nordpoolgroup.com")
ZONE = ZoneInfo("Europe/Oslo")
"""Nord Pool's delivery days are CET days (Oslo keeps CET/CEST)."""


class NordPoolClient:
    """Day-ahead prices of one Nord Pool delivery area (``SE3``, ``NO1``, ``DK1``, ...)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        area: str,
        *,
        currency: str = "EUR",
        base_url: URL | str = BASE_URL,
    ) -> None:
        self._session = session
        self._area = area
        self._currency = currency
        self._base = URL(str(base_url))

    @property
    def name(self) -> str:
        """For messages."""
        return f"Nord Pool day-ahead ({self._area})"

    @property
    def zone(self) -> ZoneInfo:
        """CET: the delivery day and fetch times."""
        return ZONE

    async def day_ahead(self, day: date) -> DayAheadPrices:
        """The prices of delivery day ``day``."""
        status, body = await fetch(
            self._session,
            self._base.with_path("/api/DayAheadPrices"),
            params={
                "date": day.isoformat(),
                "market": "DayAhead",
                "deliveryArea": self._area,
                "currency": self._currency,
            },
            headers={"Accept": "application/json"},
            name=self.name,
        )
        if status == 204 or not body.strip():
            raise SourceDataError(f"{self.name}: no prices for {day.isoformat()} (yet)")
        return parse(body, day, self._area, self._currency)


def _time(value: Any, where: str) -> datetime:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        raise SourceDataError(f"{where}: {value!r} is not a time") from None


def parse(body: bytes, day: date, area: str, currency: str) -> DayAheadPrices:
    """A ``DayAheadPrices`` answer for delivery day ``day`` of ``area``."""
    where = f"Nord Pool {area} {day.isoformat()}"
    try:
        data = json.loads(body)
        entries = data["multiAreaEntries"]
        answered_currency = data.get("currency", currency)
        areas = data.get("deliveryAreas", [area])
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
        raise SourceDataError(f"{where}: not a Nord Pool price answer") from None
    if area not in areas:
        raise SourceDataError(f"{where}: prices for {', '.join(map(str, areas))}, not {area}")
    if answered_currency != currency:
        raise SourceDataError(f"{where}: prices in {answered_currency}, not {currency}")
    first = day_start(day, ZONE).astimezone(UTC)
    count = quarter_hours(day, ZONE)
    values = np.full(count, np.nan)
    coarsest = 15
    for entry in entries if isinstance(entries, list) else []:
        try:
            start = _time(entry["deliveryStart"], where)
            end = _time(entry["deliveryEnd"], where)
            price = float(entry["entryPerArea"][area])
        except (KeyError, TypeError, ValueError):
            raise SourceDataError(f"{where}: an entry without a price for {area}") from None
        first_quarter = int((start - first) / QUARTER)
        quarters = int((end - start) / QUARTER)
        if quarters < 1 or not 0 <= first_quarter <= count - quarters:
            raise SourceDataError(f"{where}: entry {start.isoformat()} is outside the day")
        coarsest = max(coarsest, quarters * 15)
        values[first_quarter : first_quarter + quarters] = price
    missing = np.flatnonzero(np.isnan(values))
    if missing.size:
        when = (first + int(missing[0]) * QUARTER).astimezone(ZONE).strftime("%H:%M")
        raise SourceDataError(
            f"{where}: {missing.size} of {count} quarter-hours missing, from {when}"
        )
    return DayAheadPrices("Nord Pool", area, currency, ZONE, day, values, coarsest)
