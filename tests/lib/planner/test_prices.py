"""Day-ahead prices from OTE-CR, ENTSO-E and Nord Pool, on recorded answers from a local
server: 15-minute and hourly days, DST days, gaps, negative prices, errors."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from yarl import URL

from edge_ems.planner.errors import (
    PlanInputError,
    SourceAuthError,
    SourceConnectionError,
    SourceDataError,
    SourceRateLimitError,
)
from edge_ems.planner.prices import (
    DayAheadPrices,
    FetchTimes,
    PriceFeed,
    PriceFile,
    prices_for,
    quarter_hours,
)
from edge_ems.planner.problem import Horizon
from edge_ems.planner.sources.entsoe import EntsoeClient
from edge_ems.planner.sources.nordpool import NordPoolClient
from edge_ems.planner.sources.ote import OteClient

from .conftest import Services, recorded

PRAGUE = ZoneInfo("Europe/Prague")
CZ = "10YCZ-CEPS-----N"
TOKEN = "good-token"

type Served = tuple[Services, URL]


async def ote_route(request: web.Request) -> web.StreamResponse:
    day = request.query.get("report_date", "")
    answers = {
        "2025-10-01": "ote_2025-10-01.json",
        "2025-10-26": "ote_2025-10-26.json",
        "2025-03-30": "ote_2025-03-30.json",
        "2025-10-02": "ote_2025-10-02_gap.json",
        "2025-10-03": "ote_2025-10-03_unpublished.json",
    }
    if day == "2025-10-04":
        return web.Response(status=503, text="<html>Service Unavailable</html>")
    if day == "2025-10-05":
        return web.Response(text="<html><body>Maintenance</body></html>", content_type="text/html")
    if day == "2025-10-06":
        await asyncio.sleep(5)
    return recorded(answers[day]) if day in answers else web.Response(status=404)


def test_quarter_hours_follow_dst() -> None:
    assert quarter_hours(date(2025, 10, 26), PRAGUE) == 100
    assert quarter_hours(date(2026, 3, 29), PRAGUE) == 92
    assert quarter_hours(date(2025, 10, 1), PRAGUE) == 96


async def test_ote_quarter_hours_with_negative_prices(
    services: Served, session: aiohttp.ClientSession
) -> None:
    fake, base = services
    fake.routes["/en/"] = ote_route
    prices = await OteClient(session, base_url=base).day_ahead(date(2025, 10, 1))
    assert prices.prices_mwh.size == 96
    assert prices.resolution_minutes == 15
    assert prices.prices_mwh.min() < 0
    assert prices.start == datetime(2025, 10, 1, tzinfo=PRAGUE)
    assert prices.per_kwh[0] == pytest.approx(prices.prices_mwh[0] / 1000)
    assert fake.calls[0].query["report_date"] == "2025-10-01"


async def test_ote_a_25_hour_day_and_a_23_hour_hourly_day(
    services: Served, session: aiohttp.ClientSession
) -> None:
    fake, base = services
    fake.routes["/en/"] = ote_route
    client = OteClient(session, base_url=base)
    autumn = await client.day_ahead(date(2025, 10, 26))
    assert autumn.prices_mwh.size == 100
    times = autumn.times()
    assert times[8].isoformat() == "2025-10-26T02:00:00+02:00"
    assert times[12].isoformat() == "2025-10-26T02:00:00+01:00"
    spring = await client.day_ahead(date(2025, 3, 30))
    assert spring.resolution_minutes == 60
    assert spring.prices_mwh.size == 92
    assert np.all(spring.prices_mwh[:4] == spring.prices_mwh[0])


@pytest.mark.parametrize(
    ("day", "error", "message"),
    [
        (date(2025, 10, 2), SourceDataError, "3 of 96 intervals missing (positions 40, 41, 42)"),
        (date(2025, 10, 3), SourceDataError, "no prices published (yet)"),
        (date(2025, 10, 4), SourceConnectionError, "answered 503"),
        (date(2025, 10, 5), SourceDataError, "not OTE chart data"),
        (date(2025, 10, 7), SourceDataError, "refused the request (404)"),
    ],
)
async def test_ote_failures_say_what_went_wrong(
    services: Served,
    session: aiohttp.ClientSession,
    day: date,
    error: type[Exception],
    message: str,
) -> None:
    fake, base = services
    fake.routes["/en/"] = ote_route
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        await OteClient(session, base_url=base).day_ahead(day)


async def test_a_server_that_does_not_answer_times_out(
    services: Served, session: aiohttp.ClientSession
) -> None:
    from edge_ems.planner.sources import http

    fake, base = services
    fake.routes["/en/"] = ote_route
    with pytest.raises(SourceConnectionError, match=r"did not answer within 0\.2 s"):
        await http.fetch(
            session,
            base.with_path("/en/x"),
            params={"report_date": "2025-10-06"},
            timeout_s=0.2,
            name="OTE",
        )


async def test_a_service_that_is_gone_is_a_connection_error(session: aiohttp.ClientSession) -> None:
    from ..bms.support import free_port

    client = OteClient(session, base_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(SourceConnectionError, match="cannot be reached"):
        await client.day_ahead(date(2025, 10, 1))


async def entsoe_route(request: web.Request) -> web.StreamResponse:
    if request.query.get("securityToken") != TOKEN:
        return web.Response(status=401, text="<html><body>Unauthorized</body></html>")
    if request.query.get("documentType") != "A44" or request.query.get("in_Domain") != CZ:
        return web.Response(status=400, text="bad request")
    answers = {
        "202509302200": "entsoe_cz_2025-10-01.xml",
        "202603282300": "entsoe_cz_2026-03-29.xml",
        "202501142300": "entsoe_cz_2025-01-15_hourly.xml",
        "202510012200": "entsoe_wrong_area.xml",
        "202510022200": "entsoe_no_data.xml",
    }
    start = request.query.get("periodStart", "")
    if start == "202510032200":
        return web.Response(status=429, headers={"Retry-After": "60"})
    if start == "202510042200":
        return web.Response(
            body=b"<Publication_MarketDocument><unclosed>", content_type="application/xml"
        )
    return recorded(answers[start]) if start in answers else web.Response(status=404)


async def test_entsoe_fills_the_points_a03_leaves_out(
    services: Served, session: aiohttp.ClientSession
) -> None:
    fake, base = services
    fake.routes["/api"] = entsoe_route
    client = EntsoeClient(session, TOKEN, CZ, PRAGUE, base_url=base)
    prices = await client.day_ahead(date(2025, 10, 1))
    assert prices.prices_mwh.size == 96
    assert prices.prices_mwh[10] == prices.prices_mwh[9] == prices.prices_mwh[12]
    assert prices.prices_mwh.min() < 0
    query = fake.calls[0].query
    assert (query["periodStart"], query["periodEnd"]) == ("202509302200", "202510012200")
    assert query["out_Domain"] == CZ
    assert client.name == f"ENTSO-E day-ahead ({CZ})"


async def test_entsoe_spring_day_and_hourly_day(
    services: Served, session: aiohttp.ClientSession
) -> None:
    fake, base = services
    fake.routes["/api"] = entsoe_route
    client = EntsoeClient(session, TOKEN, CZ, PRAGUE, base_url=base)
    spring = await client.day_ahead(date(2026, 3, 29))
    assert spring.prices_mwh.size == 92
    hourly = await client.day_ahead(date(2025, 1, 15))
    assert hourly.resolution_minutes == 60
    assert np.all(hourly.prices_mwh.reshape(24, 4) == hourly.prices_mwh[::4, None])


@pytest.mark.parametrize(
    ("token", "day", "error", "message"),
    [
        ("wrong", date(2025, 10, 1), SourceAuthError, "check the API token"),
        (TOKEN, date(2025, 10, 2), SourceDataError, "prices for 10YSK-SEPS-----K, not"),
        (TOKEN, date(2025, 10, 3), SourceDataError, "No matching data found"),
        (TOKEN, date(2025, 10, 4), SourceRateLimitError, "less often"),
        (TOKEN, date(2025, 10, 5), SourceDataError, "not XML"),
    ],
)
async def test_entsoe_failures_say_what_went_wrong(
    services: Served,
    session: aiohttp.ClientSession,
    token: str,
    day: date,
    error: type[Exception],
    message: str,
) -> None:
    fake, base = services
    fake.routes["/api"] = entsoe_route
    with pytest.raises(error, match=message) as caught:
        await EntsoeClient(session, token, CZ, PRAGUE, base_url=base).day_ahead(day)
    assert token not in str(caught.value)
    if isinstance(caught.value, SourceRateLimitError):
        assert caught.value.retry_after == 60.0


def test_entsoe_refuses_entity_declarations() -> None:
    from edge_ems.planner.sources.entsoe import parse

    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    with pytest.raises(SourceDataError, match="document type declaration is refused"):
        parse(bomb, date(2025, 10, 1), CZ, PRAGUE)


async def nordpool_route(request: web.Request) -> web.StreamResponse:
    day = request.query.get("date", "")
    if request.query.get("deliveryArea") != "SE3" or request.query.get("market") != "DayAhead":
        return web.Response(status=400, text='{"message": "bad area"}')
    if day == "2025-10-27":
        return web.Response(status=204)
    if day == "2025-10-28":
        body = json.loads(
            (
                Path(__file__).with_name("data") / "recorded" / "nordpool_se3_2025-10-26.json"
            ).read_text()
        )
        body["currency"] = "SEK"
        return web.json_response(body)
    answers = {
        "2025-10-26": "nordpool_se3_2025-10-26.json",
        "2025-01-15": "nordpool_se3_2025-01-15.json",
    }
    return recorded(answers[day]) if day in answers else web.Response(status=404)


async def test_nordpool_autumn_day_and_hourly_day(
    services: Served, session: aiohttp.ClientSession
) -> None:
    fake, base = services
    fake.routes["/api/DayAheadPrices"] = nordpool_route
    client = NordPoolClient(session, "SE3", base_url=base)
    autumn = await client.day_ahead(date(2025, 10, 26))
    assert autumn.prices_mwh.size == 100
    assert autumn.prices_mwh.min() < 0
    hourly = await client.day_ahead(date(2025, 1, 15))
    assert hourly.resolution_minutes == 60
    with pytest.raises(SourceDataError, match=r"no prices for 2025-10-27 \(yet\)"):
        await client.day_ahead(date(2025, 10, 27))
    with pytest.raises(SourceDataError, match="prices in SEK, not EUR"):
        await client.day_ahead(date(2025, 10, 28))
    with pytest.raises(SourceDataError, match="refused the request"):
        await NordPoolClient(session, "XX1", base_url=base).day_ahead(date(2025, 10, 26))


def test_nordpool_gaps_and_bad_entries() -> None:
    from edge_ems.planner.sources.nordpool import parse

    path = Path(__file__).with_name("data") / "recorded" / "nordpool_se3_2025-10-26.json"
    data = json.loads(path.read_text())
    del data["multiAreaEntries"][40:43]
    with pytest.raises(SourceDataError, match="3 of 100 quarter-hours missing, from 09:00"):
        parse(json.dumps(data).encode(), date(2025, 10, 26), "SE3", "EUR")
    with pytest.raises(SourceDataError, match="not a Nord Pool price answer"):
        parse(b"[1, 2]", date(2025, 10, 26), "SE3", "EUR")


class Flaky:
    """A price source that fails when told to."""

    name = "flaky"
    zone = PRAGUE

    def __init__(self) -> None:
        self.fail = False

    async def day_ahead(self, day: date) -> DayAheadPrices:
        if self.fail:
            raise SourceConnectionError("flaky is down")
        return DayAheadPrices(
            "test", "CZ", "EUR", PRAGUE, day, np.full(quarter_hours(day, PRAGUE), 100.0)
        )


async def test_a_failed_fetch_keeps_the_last_good_prices() -> None:
    source = Flaky()
    feed = PriceFeed(source)
    assert await feed.refresh(date(2025, 10, 1))
    assert await feed.refresh(date(2025, 10, 2))
    source.fail = True
    assert not await feed.refresh(date(2025, 10, 2))
    assert isinstance(feed.last_error, SourceConnectionError)
    assert set(feed.days) == {date(2025, 10, 1), date(2025, 10, 2)}
    assert feed.known_until == datetime(2025, 10, 3, tzinfo=PRAGUE)
    horizon = Horizon(datetime(2025, 10, 1, 12, tzinfo=PRAGUE), 30, 48)
    assert feed.series(horizon) == pytest.approx([0.1] * 48)
    feed.forget_before(date(2025, 10, 2))
    with pytest.raises(PlanInputError, match="no day-ahead price known for step 0"):
        feed.series(horizon)


def test_prices_on_plan_steps_average_their_quarter_hours() -> None:
    day = date(2025, 10, 26)
    values = np.arange(100, dtype=float)
    prices = DayAheadPrices("test", "CZ", "EUR", PRAGUE, day, values)
    horizon = Horizon(datetime(2025, 10, 26, tzinfo=PRAGUE), 60, 25)
    series = prices_for(horizon, [prices])
    assert series[0] == pytest.approx(1.5 / 1000)
    assert series[-1] == pytest.approx(97.5 / 1000)
    with pytest.raises(SourceDataError, match="96 quarter-hours, but the day has 100"):
        DayAheadPrices("test", "CZ", "EUR", PRAGUE, day, np.zeros(96))


def test_fetch_times_are_wall_clock_in_the_market_zone() -> None:
    times = FetchTimes.parse(["13:30", "14:00", "00:05"], "Europe/Prague")
    now = datetime(2025, 10, 25, 12, 0, tzinfo=UTC)  # 14:00 in Prague (CEST)
    first = times.next_after(now)
    assert first.isoformat() == "2025-10-26T00:05:00+02:00"
    after = times.next_after(first)
    assert after.isoformat() == "2025-10-26T13:30:00+01:00"
    assert after.astimezone(UTC) - first.astimezone(UTC) == timedelta(hours=14, minutes=25)
    spring = FetchTimes.parse(["02:30"], "Europe/Prague")
    assert spring.next_after(datetime(2026, 3, 29, 0, 0, tzinfo=UTC)).isoformat() == (
        "2026-03-29T03:30:00+02:00"
    )
    with pytest.raises(PlanInputError, match="'25:00' is not HH:MM"):
        FetchTimes.parse(["25:00"], "Europe/Prague")
    with pytest.raises(PlanInputError, match="unknown time zone"):
        FetchTimes.parse(["13:00"], "Mars/Olympus")


def price_file(tmp_path: Path, **changes: object) -> Path:
    document: dict[str, object] = {
        "schema": "edge-ems-prices/1",
        "market": "OTE-CR",
        "area": "CZ",
        "time_zone": "Europe/Prague",
        "currency": "EUR",
        "resolution_minutes": 60,
        "days": [{"day": "2025-10-26", "prices_mwh": [90.0] * 25}],
    }
    document.update(changes)
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(document))
    return path


async def test_a_price_file_for_this_zone(tmp_path: Path) -> None:
    prices = await PriceFile(price_file(tmp_path), "CZ", PRAGUE).day_ahead(date(2025, 10, 26))
    assert prices.prices_mwh.size == 100
    with pytest.raises(SourceDataError, match="no prices for 2025-10-27"):
        await PriceFile(price_file(tmp_path), "CZ", PRAGUE).day_ahead(date(2025, 10, 27))


def test_a_price_file_in_the_wrong_zone_is_refused(tmp_path: Path) -> None:
    path = price_file(tmp_path, area="SE3", time_zone="Europe/Stockholm")
    with pytest.raises(
        PlanInputError,
        match="prices for SE3 in Europe/Stockholm, but this site's market is CZ in Europe/Prague",
    ):
        PriceFile(path, "CZ", PRAGUE).load()
    short = price_file(tmp_path, days=[{"day": "2025-10-26", "prices_mwh": [90.0] * 24}])
    with pytest.raises(PlanInputError, match="96 quarter-hours, but the day has 100"):
        PriceFile(short, "CZ", PRAGUE).load()
    bad = price_file(tmp_path, resolution_minutes=30)
    with pytest.raises(PlanInputError, match="resolution_minutes"):
        PriceFile(bad, "CZ", PRAGUE).load()
