"""The hub's planner fetching from its sources, answered from recorded responses by a local
server (the planner library's recordings): OTE's day-ahead prices, Open-Meteo's and
Forecast.Solar's PV forecasts; a day not published yet, a server error and an error answer
keep the last good data."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from yarl import URL

from edge_ems.gateway.model import PlanInputs
from edge_ems.hub.planning.config import parse_planner_config

from ...lib.planner.conftest import Services, recorded
from .conftest import BATTERY, PRAGUE, SITE, Clock, PlannerMaker, minutes

type Served = tuple[Services, URL]

OTE_DAY = datetime(2025, 10, 1, 10, 1, tzinfo=PRAGUE)
PV_DAY = datetime(2026, 6, 16, 9, 1, tzinfo=PRAGUE)


def section(base: URL, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "time_zone": "Europe/Prague",
        "prices": {"source": "ote", "base_url": str(base)},
        "pv_forecast": {
            "source": "open_meteo", "base_url": str(base), "latitude": 50.08,
            "longitude": 14.42, "planes": [{"tilt_deg": 35, "azimuth_deg": 0, "kwp": 5}],
        },
        "sites": [{"site_id": SITE}],
    }  # fmt: skip
    data.update(changes)
    return data


async def test_ote_prices_today_and_tomorrow_not_yet(
    services: Served, make_planner: PlannerMaker, tmp_path: Path
) -> None:
    fake, base = services
    down = {"now": False}

    async def ote(request: web.Request) -> web.StreamResponse:
        if down["now"]:
            return web.Response(status=503, text="maintenance")
        if request.query["report_date"] == "2025-10-01":
            return recorded("ote_2025-10-01.json")
        return recorded("ote_2025-10-03_unpublished.json")

    fake.routes["/en/"] = ote
    planner = await make_planner(config=parse_planner_config(section(base)), clock=Clock(OTE_DAY))
    service = planner.service
    assert await service.refresh_prices(OTE_DAY)
    assert [call.query["report_date"] for call in fake.calls] == ["2025-10-01", "2025-10-02"]
    assert "no prices published (yet)" in service.status(SITE)["price_error"]
    await planner.store.feed({(BATTERY, "soc_pct"): minutes(OTE_DAY - timedelta(minutes=5),
                                                           OTE_DAY, 50.0)})  # fmt: skip
    result = await service.replan(SITE, "prices")
    assert result.error is None, result.error
    plan = service.sites[SITE].plan
    assert plan is not None
    # Until the end of the delivery day: tomorrow is not published yet.
    assert plan.horizon.end == datetime(2025, 10, 2, tzinfo=PRAGUE)
    assert plan.import_price.min() < 0  # the recorded day has negative prices
    # OTE down at the retry: the prices held stay.
    down["now"] = True
    assert not await service.refresh_prices(OTE_DAY + timedelta(hours=4))
    assert "answered 503" in service.status(SITE)["price_error"]
    assert (await service.replan(SITE, "again")).error is None


async def test_pv_forecasts_from_open_meteo_and_forecast_solar(
    services: Served, make_planner: PlannerMaker
) -> None:
    fake, base = services
    broken = {"now": False}

    async def open_meteo(request: web.Request) -> web.StreamResponse:
        if broken["now"]:
            return recorded("open_meteo_error.json", status=400)
        return recorded("open_meteo_2026-06-16.json")

    fake.routes["/v1/forecast"] = open_meteo
    planner = await make_planner(config=parse_planner_config(section(base)), clock=Clock(PV_DAY))
    service = planner.service
    assert await service.refresh_forecast(SITE, PV_DAY)
    start = round(PV_DAY.replace(minute=0).timestamp() * 1000)
    spot = PlanInputs("spot_price", start, 3600, (0.1,) * 24, "EUR/kWh", "sensor.price")
    assert await service.plan_inputs(SITE, spot) == ""
    result = await service.replan(SITE, "forecast")
    assert result.error is None, result.error
    plan = service.sites[SITE].plan
    assert plan is not None
    assert 1000 < plan.pv_w[12] < 5000  # 12:00 on a 5 kWp south array in June
    assert service.sites[SITE].document["inputs"]["sources"]["pv_forecast"] == "Open-Meteo"  # type: ignore[index]
    broken["now"] = True
    assert not await service.refresh_forecast(SITE, PV_DAY + timedelta(hours=2))
    assert "Open-Meteo" in (service.status(SITE)["pv_error"] or "")
    assert service.sites[SITE].pv is not None  # the last good one stays

    async def forecast_solar(request: web.Request) -> web.StreamResponse:
        return recorded("forecast_solar_2026-06-16.json")

    fake.routes["/"] = forecast_solar
    other = section(base)
    other["pv_forecast"]["source"] = "forecast_solar"
    solar = await make_planner(config=parse_planner_config(other), clock=Clock(PV_DAY))
    assert await solar.service.refresh_forecast(SITE, PV_DAY)
    forecast = solar.service.sites[SITE].pv
    assert forecast is not None
    assert forecast.source == "Forecast.Solar"
    assert forecast.power_w.max() == pytest.approx(4161.0)
