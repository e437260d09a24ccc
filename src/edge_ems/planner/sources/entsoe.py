"""ENTSO-E Transparency Platform: day-ahead prices [12.1.D] with a user's security token.

``GET {base}/api?securityToken=...&documentType=A44&in_Domain=EIC&out_Domain=EIC&
periodStart=yyyyMMddHHmm&periodEnd=yyyyMMddHHmm`` (UTC) answers a
``Publication_MarketDocument`` (XML): ``TimeSeries`` of ``Period`` with a ``timeInterval``,
a ``resolution`` (``PT15M`` or ``PT60M``) and ``Point`` ``position``/``price.amount``. With
``curveType`` A03 a point equal to the one before is left out, so a gap in the positions
repeats the last price; with A01 every point is there. No data answers an
``Acknowledgement_MarketDocument`` with its ``Reason``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import numpy as np
from yarl import URL

from ..errors import SourceDataError
from ..prices import QUARTER, DayAheadPrices, day_start, quarter_hours
from .http import fetch

BASE_URL = URL("https://web-api.tp.entsoe.eu")
RESOLUTIONS = {"PT15M": timedelta(minutes=15), "PT60M": timedelta(hours=1)}


class EntsoeClient:
    """Day-ahead prices of one bidding zone (its EIC code) from ENTSO-E."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        token: str,
        area: str,
        zone: ZoneInfo,
        *,
        base_url: URL | str = BASE_URL,
    ) -> None:
        self._session = session
        self._token = token
        self._area = area
        self._zone = zone
        self._base = URL(str(base_url))

    @property
    def name(self) -> str:
        """For messages (never the token)."""
        return f"ENTSO-E day-ahead ({self._area})"

    @property
    def zone(self) -> ZoneInfo:
        """The bidding zone's time zone, which the delivery day is counted in."""
        return self._zone

    async def day_ahead(self, day: date) -> DayAheadPrices:
        """The prices of delivery day ``day``."""
        start = day_start(day, self._zone).astimezone(UTC)
        end = day_start(day + timedelta(days=1), self._zone).astimezone(UTC)
        _, body = await fetch(
            self._session,
            self._base.with_path("/api"),
            params={
                "securityToken": self._token,
                "documentType": "A44",
                "in_Domain": self._area,
                "out_Domain": self._area,
                "periodStart": start.strftime("%Y%m%d%H%M"),
                "periodEnd": end.strftime("%Y%m%d%H%M"),
            },
            name=self.name,
        )
        return parse(body, day, self._area, self._zone)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(element: ET.Element, name: str) -> ET.Element | None:
    for child in element:
        if _local(child.tag) == name:
            return child
    return None


def _text(element: ET.Element, path: str, where: str) -> str:
    node: ET.Element | None = element
    for part in path.split("/"):
        node = _child(node, part) if node is not None else None
    if node is None or node.text is None:
        raise SourceDataError(f"{where}: {path} missing")
    return node.text.strip()


def _time(value: str, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SourceDataError(f"{where}: {value!r} is not a time") from None
    return moment.astimezone(UTC)


def parse(body: bytes, day: date, area: str, zone: ZoneInfo) -> DayAheadPrices:
    """An A44 answer for delivery day ``day`` of bidding zone ``area``."""
    where = f"ENTSO-E {area} {day.isoformat()}"
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise SourceDataError(f"{where}: XML with a document type declaration is refused")
    try:
        root = ET.fromstring(body)  # noqa: S314 (no DTD, so no entities; size capped by fetch)
    except ET.ParseError as err:
        raise SourceDataError(f"{where}: not XML: {err}") from None
    kind = _local(root.tag)
    if kind == "Acknowledgement_MarketDocument":
        reason = _child(root, "Reason")
        text = _text(reason, "text", where) if reason is not None else "no reason given"
        raise SourceDataError(f"{where}: no prices: {text}")
    if kind != "Publication_MarketDocument":
        raise SourceDataError(f"{where}: {kind} is not a price document")
    first = day_start(day, zone).astimezone(UTC)
    count = quarter_hours(day, zone)
    values = np.full(count, np.nan)
    coarsest = 15
    for series in (c for c in root if _local(c.tag) == "TimeSeries"):
        domain = _text(series, "in_Domain.mRID", where)
        if domain != area:
            raise SourceDataError(f"{where}: prices for {domain}, not {area}")
        curve = _child(series, "curveType")
        repeats = curve is None or (curve.text or "").strip() == "A03"
        for period in (c for c in series if _local(c.tag) == "Period"):
            coarsest = max(coarsest, _period(period, first, values, repeats, where))
    missing = np.flatnonzero(np.isnan(values))
    if missing.size:
        when = (first + int(missing[0]) * QUARTER).astimezone(zone).strftime("%H:%M")
        raise SourceDataError(
            f"{where}: {missing.size} of {count} quarter-hours missing, from {when}"
        )
    return DayAheadPrices("ENTSO-E", area, "EUR", zone, day, values, coarsest)


def _period(
    period: ET.Element,
    first: datetime,
    values: np.ndarray[Any, np.dtype[np.float64]],
    repeats: bool,
    where: str,
) -> int:
    """Write one period's prices into ``values`` (quarter-hours from ``first``); its
    resolution in minutes."""
    start = _time(_text(period, "timeInterval/start", where), where)
    end = _time(_text(period, "timeInterval/end", where), where)
    resolution = _text(period, "resolution", where)
    if resolution not in RESOLUTIONS:
        raise SourceDataError(f"{where}: resolution {resolution} is not PT15M or PT60M")
    size = RESOLUTIONS[resolution]
    slots = int((end - start) / size)
    prices: dict[int, float] = {}
    for point in (c for c in period if _local(c.tag) == "Point"):
        try:
            position = int(_text(point, "position", where))
            prices[position] = float(_text(point, "price.amount", where))
        except ValueError:
            raise SourceDataError(f"{where}: a point's position or price is not a number") from None
    if not prices:
        return int(size / QUARTER) * 15
    last: float | None = None
    per = int(size / QUARTER)
    for position in range(1, slots + 1):
        price = prices.get(position)
        if price is None and repeats:
            price = last
        last = price
        if price is None:
            continue
        offset = int((start + (position - 1) * size - first) / QUARTER)
        for quarter in range(offset, offset + per):
            if 0 <= quarter < values.size:
                values[quarter] = price
    return per * 15
