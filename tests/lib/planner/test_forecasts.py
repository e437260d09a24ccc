"""PV forecasts from Open-Meteo and Forecast.Solar on recorded answers from a local server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from yarl import URL

from edge_ems.planner.errors import PlanInputError, SourceDataError, SourceRateLimitError
from edge_ems.planner.problem import Horizon
from edge_ems.planner.sources.pv import ForecastSolarClient, OpenMeteoClient, Plane, PvSite

from .conftest import Services, recorded

type Served = tuple[Services, URL]

SOUTH = PvSite(50.08, 14.42, (Plane(35, 0, 5.0),))
TWO_PLANES = PvSite(50.08, 14.42, (Plane(35, -90, 3.0), Plane(35, 90, 3.0)), inverter_max_w=4000)


async def open_meteo_route(request: web.Request) -> web.StreamResponse:
    if float(request.query["tilt"]) > 90:
        return recorded("open_meteo_error.json", status=400)
    assert request.query["minutely_15"] == "global_tilted_irradiance,temperature_2m"
    assert request.query["timeformat"] == "unixtime"
    return recorded("open_meteo_2026-06-16.json")


async def test_open_meteo_irradiance_becomes_power(
    services: Served, session: aiohttp.ClientSession
) -> None:
    fake, base = services
    fake.routes["/v1/forecast"] = open_meteo_route
    forecast = await OpenMeteoClient(session, SOUTH, base_url=base).forecast()
    # The first value is the mean of the quarter-hour before its time stamp.
    assert forecast.start == datetime(2026, 6, 15, 23, 45, tzinfo=UTC)
    assert forecast.power_w.size == 3 * 96 - 2  # trailing nulls cut
    peak = float(forecast.power_w.max())
    assert 3000 < peak < 5000 * 0.85
    assert float(forecast.power_w.min()) == 0.0
    query = fake.calls[0].query
    assert (query["tilt"], query["azimuth"], query["latitude"]) == ("35", "0", "50.0800")
    horizon = Horizon(datetime(2026, 6, 16, 2, tzinfo=ZoneInfo("Europe/Prague")), 30, 48)
    series = forecast.for_horizon(horizon)
    assert series.shape == (48,)
    assert series[0] == 0.0
    assert series.max() == pytest.approx(forecast.power_w.reshape(-1)[1:].max(), rel=0.05)


async def test_open_meteo_two_planes_add_up_under_the_inverter_limit(
    services: Served, session: aiohttp.ClientSession
) -> None:
    fake, base = services
    fake.routes["/v1/forecast"] = open_meteo_route
    forecast = await OpenMeteoClient(session, TWO_PLANES, base_url=base).forecast()
    assert len(fake.calls) == 2
    assert {c.query["azimuth"] for c in fake.calls} == {"-90", "90"}
    assert float(forecast.power_w.max()) == pytest.approx(4000.0)


async def test_open_meteo_errors_and_gaps(services: Served, session: aiohttp.ClientSession) -> None:
    from edge_ems.planner.sources.pv import parse_open_meteo

    fake, base = services
    fake.routes["/v1/forecast"] = open_meteo_route
    steep = PvSite(50.0, 14.0, (Plane(95, 0, 1.0),))
    with pytest.raises(SourceDataError, match=r"refused the request \(400\).*tilt"):
        await OpenMeteoClient(session, steep, base_url=base).forecast()
    data = json.loads(recorded("open_meteo_2026-06-16.json").body or b"")
    data["minutely_15"]["global_tilted_irradiance"][40] = None
    body = json.dumps(data).encode()
    with pytest.raises(SourceDataError, match="irradiance missing at quarter-hour"):
        parse_open_meteo(body, SOUTH, SOUTH.planes[0])
    with pytest.raises(SourceDataError, match="no 15-minutely irradiance"):
        parse_open_meteo(b'{"hourly": {}}', SOUTH, SOUTH.planes[0])


async def forecast_solar_route(request: web.Request) -> web.StreamResponse:
    assert request.query["time"] == "utc"
    parts = request.path.strip("/").split("/")
    if parts[0] == "badkey":
        return web.json_response(
            {"message": {"type": "error", "text": "Invalid API key"}}, status=401
        )
    if parts[-1] == "9":
        return web.Response(
            body=(recorded("forecast_solar_ratelimit.json").body or b""),
            status=429, content_type="application/json", headers={"Retry-After": "1800"},
        )  # fmt: skip
    return recorded("forecast_solar_2026-06-16.json")


async def test_forecast_solar_periods_become_quarter_hours(
    services: Served, session: aiohttp.ClientSession
) -> None:
    fake, base = services
    fake.routes["/"] = forecast_solar_route
    forecast = await ForecastSolarClient(session, SOUTH, base_url=base).forecast()
    assert fake.calls[0].path == "/estimate/50.0800/14.4200/35/0/5"
    assert forecast.start == datetime(2026, 6, 16, 2, 45, tzinfo=UTC)
    # The energy of every period survives the spreading.
    data = json.loads(recorded("forecast_solar_2026-06-16.json").body or b"")
    total_wh = sum(data["result"]["watt_hours_period"].values())
    assert float(forecast.power_w.sum()) * 0.25 == pytest.approx(total_wh, rel=1e-9)
    assert 3500 < float(forecast.power_w.max()) < 4300
    ten_pm = (datetime(2026, 6, 16, 22, tzinfo=UTC) - forecast.start) // timedelta(minutes=15)
    assert forecast.power_w[ten_pm] == 0.0


async def test_forecast_solar_key_rate_limit_and_bad_answers(
    services: Served, session: aiohttp.ClientSession
) -> None:
    from edge_ems.planner.errors import SourceAuthError
    from edge_ems.planner.sources.pv import parse_forecast_solar

    fake, base = services
    fake.routes["/"] = forecast_solar_route
    with pytest.raises(SourceAuthError, match=r"Forecast\.Solar refused"):
        await ForecastSolarClient(session, SOUTH, api_key="badkey", base_url=base).forecast()
    limited = PvSite(50.08, 14.42, (Plane(35, 0, 9.0),))
    with pytest.raises(SourceRateLimitError) as caught:
        await ForecastSolarClient(session, limited, base_url=base).forecast()
    assert caught.value.retry_after == 1800.0
    with pytest.raises(SourceDataError, match="Rate limit for API calls reached"):
        parse_forecast_solar(recorded("forecast_solar_ratelimit.json").body or b"")
    with pytest.raises(SourceDataError, match="not JSON"):
        parse_forecast_solar(b"<html>")


def test_a_forecast_that_does_not_cover_the_plan_says_so() -> None:
    from edge_ems.planner.forecast import PvForecast

    forecast = PvForecast("test", datetime(2026, 6, 16, tzinfo=UTC), np.ones(96))
    early = Horizon(datetime(2026, 6, 15, 23, tzinfo=UTC), 15, 4)
    with pytest.raises(PlanInputError, match="does not cover"):
        forecast.for_horizon(early)
    long = Horizon(datetime(2026, 6, 16, tzinfo=UTC), 60, 25)
    with pytest.raises(PlanInputError, match=r"ends at 2026-06-17T00:00:00\+00:00"):
        forecast.for_horizon(long)


async def test_an_api_key_never_reaches_a_message(session: aiohttp.ClientSession) -> None:
    from edge_ems.planner.errors import SourceConnectionError

    from ..bms.support import free_port

    gone = f"http://127.0.0.1:{free_port()}"
    client = ForecastSolarClient(session, SOUTH, api_key="s3cr3t-key", base_url=gone)
    with pytest.raises(SourceConnectionError) as caught:
        await client.forecast()
    assert "s3cr3t-key" not in str(caught.value)
    assert "/***/estimate/" in str(caught.value)
