"""The planner's REST routes on a live hub API (store, gateway, planner, API on loopback, an
agent with simulated batteries): plans, runs, overrides, prices, forecasts, the audit, the
refusals of hostile bodies, and schemathesis over the planner's part of the document."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from edge_ems.hub.api import ApiServer, ApiSettings, AuditTrail, HubServices, create_app
from edge_ems.hub.gateway import GatewayServer
from edge_ems.hub.planning.config import parse_planner_config
from edge_ems.hub.planning.parts import PlannerParts, open_planner
from edge_ems.hub.store import MinuteStore, open_store

from ..api.conftest import API_TOKEN, AUTH
from ..api.test_schemathesis import _command as schemathesis
from ..gateway.conftest import TOKEN, SiteFactory, eventually
from .conftest import SITE, price_document, write_json

PRAGUE = ZoneInfo("Europe/Prague")
CONFIG = Path(__file__).with_name("schemathesis.toml")


@dataclass
class Live:
    store: MinuteStore
    gateway: GatewayServer
    planner: PlannerParts | None
    api: ApiServer
    audit: AuditTrail
    http: aiohttp.ClientSession
    port: int
    grpc_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def call(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        async with self.http.request(
            method, self.url + path, json=body, params=params, headers=AUTH
        ) as response:
            return response.status, await response.json()


async def start(tmp_path: Path, *, planner: bool = True) -> Live:
    now = datetime.now(UTC).astimezone(PRAGUE)
    hours = [80.0] * 24
    hours[now.hour] = -40.0
    prices = write_json(tmp_path / "prices.json", price_document({now.date(): hours}))
    store = open_store(tmp_path / "store.db")
    await store.open()
    audit = AuditTrail(store.backend)
    audit.start()
    gateway = GatewayServer(store, {"agent-1": TOKEN}, on_audit=audit.report)
    grpc_port = await gateway.start("127.0.0.1:0")
    parts = None
    if planner:
        section = {
            "time_zone": "Europe/Prague",
            "prices": {"source": "file", "path": str(prices), "area": "CZ",
                       "market_time_zone": "Europe/Prague", "replay": True},
            "sites": [{"site_id": SITE, "measure": {
                "grid": [{"asset_id": "meter", "metric": "grid_power_w"}]}}],
        }  # fmt: skip
        parts = await open_planner(
            parse_planner_config(section), database=tmp_path / "store.db", instance="hub-a",
            store=store, gateway=gateway, audit=audit.add,
        )  # fmt: skip
    services = HubServices(
        gateway, store, audit, grpc_port, planner=None if parts is None else parts.service
    )
    api = ApiServer(create_app(services, ApiSettings(API_TOKEN, rate_limit=1e4, rate_burst=10**4)))
    port = await api.start("127.0.0.1", 0)
    return Live(store, gateway, parts, api, audit, aiohttp.ClientSession(), port, grpc_port)


async def stop(live: Live) -> None:
    await live.http.close()
    await live.api.stop()
    if live.planner is not None:
        await live.planner.close()
    await live.gateway.stop()
    await live.audit.stop()
    await live.store.close()


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    running = await start(tmp_path)
    yield running
    await stop(running)


async def test_plans_runs_and_views(live: Live, site_factory: SiteFactory) -> None:
    status, body = await live.call("GET", "/plan")
    assert (status, body["error"]["code"]) == (404, "no_plan")
    assert "no plan for site 'farm': the first plan is not made yet" in body["error"]["message"]
    site = await site_factory(f"127.0.0.1:{live.grpc_port}", agent_id="agent-1", site_id=SITE)
    status, body = await live.call("POST", "/plan/run", {"reason": "a test"})
    assert status == 200, body
    [result] = body["results"]
    assert (result["site_id"], result["version"], result["error"]) == (SITE, 1, None)
    status, document = await live.call("GET", "/plan", site_id=SITE)
    assert status == 200
    assert (document["schema"], document["version"]) == ("edge-ems-site-plan/1", 1)
    assert document["inputs"]["reason"] == "a test"
    await eventually(lambda: site.agent.plan is not None)
    status, prices = await live.call("GET", "/prices")
    assert status == 200
    assert prices["spot"]["source"].startswith("price file")
    assert prices["plan"]["import"] == document["prices"]["import"]
    status, forecasts = await live.call("GET", "/forecasts")
    assert (status, forecasts["pv"], forecasts["plan"]["load_w"][0]) == (200, None, 500.0)
    status, audit = await live.call("GET", "/plan/audit")
    assert (status, audit["steps"], audit["days"]) == (200, [], [])
    status, health = await live.call("GET", "/health")
    assert health["planner"]["leader"] is True
    assert health["planner"]["sites"][SITE]["version"] == 1


async def test_overrides_through_the_api(live: Live, site_factory: SiteFactory) -> None:
    await site_factory(f"127.0.0.1:{live.grpc_port}", agent_id="agent-1", site_id=SITE)
    body = {"asset_id": "bess-1", "value": -1500, "duration_s": 900, "requested_by": "ann"}
    status, created = await live.call("POST", "/overrides", body)
    assert status == 201, created
    assert (created["asset_id"], created["command"], created["value"]) == (
        "bess-1", "battery_power_setpoint_w", -1500,
    )  # fmt: skip
    status, listed = await live.call("GET", "/overrides", site_id=SITE)
    assert [o["id"] for o in listed["overrides"]] == [created["id"]]
    status, removed = await live.call("DELETE", "/overrides", id=created["id"])
    assert (status, [o["id"] for o in removed["removed"]]) == (200, [created["id"]])
    status, listed = await live.call("GET", "/overrides")
    assert listed["overrides"] == []


@pytest.mark.parametrize(
    ("method", "path", "body", "params", "status", "message"),
    [
        ("POST", "/overrides", [1, 2], {}, 400, "the body must be a JSON object"),
        ("POST", "/overrides", {"asset_id": "bess-1", "value": 1, "colour": 1}, {}, 400,
         "unknown field 'colour'"),
        ("POST", "/overrides", {"value": 1, "duration_s": 60}, {}, 400, "asset_id: required"),
        ("POST", "/overrides", {"asset_id": "bess-1", "duration_s": 60}, {}, 400,
         "value: required"),
        ("POST", "/overrides", {"asset_id": "bess-1", "value": 1}, {}, 400,
         "give end or duration_s"),
        ("POST", "/overrides", {"asset_id": "bess-1", "value": 1, "duration_s": 1e9}, {}, 400,
         "duration_s: more than 0"),
        ("POST", "/overrides", {"asset_id": "bess-1", "value": {"a": 1}, "duration_s": 60}, {},
         400, "value: a number"),
        ("POST", "/overrides", {"asset_id": "bess-1", "value": 1, "end": "yesterday"}, {}, 400,
         "end: expected ISO 8601"),
        ("POST", "/overrides", {"asset_id": "bess-1", "value": 1,
                                "end": "2001-01-01T00:00:00Z"}, {}, 400,
         "it ends at or before it starts"),
        ("POST", "/overrides", {"asset_id": "toaster", "value": 1, "duration_s": 60}, {}, 400,
         "site 'farm' has no such asset"),
        ("POST", "/overrides", {"site_id": "depot", "asset_id": "x", "value": 1,
                                "duration_s": 60}, {}, 404, "site 'depot' is not planned"),
        ("DELETE", "/overrides", None, {}, 400, "give id, or site_id"),
        ("GET", "/plan", None, {"site": SITE}, 400, "unknown parameter 'site'"),
        ("GET", "/plan/audit", None, {"from": "2026-01-02", "to": "2026-01-01"}, 400,
         "from must be before to"),
        ("GET", "/plan/audit", None, {"from": "2020-01-01", "to": "2026-01-01"}, 400,
         "at most 31 days"),
        ("POST", "/plan/run", {"site_id": 7}, {}, 400, "site_id: a string"),
        ("POST", "/plan/run", {"site_id": None}, {}, 400, "site_id: a string"),
        ("POST", "/overrides", {"asset_id": "bess-1", "value": 1, "duration_s": None}, {}, 400,
         "duration_s: a number"),
    ],
)  # fmt: skip
async def test_hostile_requests_get_clear_refusals(
    live: Live,
    site_factory: SiteFactory,
    method: str,
    path: str,
    body: Any,
    params: dict[str, str],
    status: int,
    message: str,
) -> None:
    await site_factory(f"127.0.0.1:{live.grpc_port}", agent_id="agent-1", site_id=SITE)
    answered, found = await live.call(method, path, body, **params)
    assert answered == status, found
    assert message in found["error"]["message"]


async def test_without_a_planner_the_routes_say_so(tmp_path: Path) -> None:
    live = await start(tmp_path, planner=False)
    try:
        for method, path in (("GET", "/plan"), ("POST", "/plan/run"), ("GET", "/overrides")):
            status, body = await live.call(method, path)
            assert (status, body["error"]["code"]) == (404, "planner_off")
        status, health = await live.call("GET", "/health")
        assert health["planner"] is None
    finally:
        await stop(live)


@pytest.mark.slow
async def test_schemathesis_with_every_check_over_the_planner_routes(
    live: Live, site_factory: SiteFactory, tmp_path: Path
) -> None:
    await site_factory(f"127.0.0.1:{live.grpc_port}", agent_id="agent-1", site_id=SITE)
    await live.call("POST", "/plan/run")
    report = tmp_path / "report.json"
    process = await asyncio.create_subprocess_exec(
        schemathesis(), "--config-file", str(CONFIG), "run", f"{live.url}/openapi.json",
        "--checks", "all", "--max-examples", "30", "--seed", "1",
        "--include-path-regex", "^/(plan|prices|forecasts|overrides)",
        "--header", f"Authorization: Bearer {API_TOKEN}", "--request-timeout", "30",
        "--workers", "1", "--no-color", "--report", "json", "--report-json-path", str(report),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path,
    )  # fmt: skip
    async with asyncio.timeout(180):
        output, _ = await process.communicate()
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    result: dict[str, Any] = json.loads(report.read_text())
    assert (result["failures"], result["errors"]) == ([], []), text
    assert result["operations"]["tested"] >= 8, text
