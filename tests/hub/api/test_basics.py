"""Health, auth, rate limits, inventory and exports of a live hub API."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest

from edge_ems import __version__
from edge_ems.gateway.model import DeviceStatus

from ..gateway.conftest import SiteFactory, eventually
from .conftest import API_TOKEN, HubMaker, LiveHub


async def test_health_without_a_token_is_its_status_and_version_only(live: LiveHub) -> None:
    response = await live.get("/health", auth=False)
    assert response.status == 200
    assert await response.json() == {"status": "ok", "version": __version__}


async def test_health_with_the_token_reports_every_part(live: LiveHub) -> None:
    response = await live.get("/health")
    assert response.status == 200
    health = await response.json()
    assert health["status"] == "ok"
    assert health["store"]["backend"] == "sqlite"
    assert health["gateway"]["port"] == live.grpc_port
    assert health["gateway"]["connected_agents"] == 0
    assert health["parquet"] is None
    assert health["uplink"] is None


async def test_every_route_but_health_and_the_dashboard_refuses_without_the_right_token(
    live: LiveHub,
) -> None:
    document = await live.json("/openapi.json")
    public = {
        path
        for path, operations in document["paths"].items()
        if all({} in operation.get("security", []) for operation in operations.values())
    }
    assert public == {"/health", "/", "/dashboard.js", "/dashboard.css"}
    for path, operations in document["paths"].items():
        url = live.url + path.replace("{asset_id}", "bess-1")
        for method in operations:
            for headers in (
                {},
                {"Authorization": "Bearer wrong-token"},
                {"Authorization": f"Basic {API_TOKEN}"},
                {"Authorization": f"Bearer {API_TOKEN}x"},
            ):
                async with live.http.request(method, url, headers=headers, json={}) as response:
                    if path in public:
                        assert response.status == 200
                        continue
                    assert response.status == 401, (method, path, headers)
                    assert response.headers["WWW-Authenticate"].startswith("Bearer")
                    body = await response.json()
                    assert body["error"]["code"] == "unauthorized"


async def test_ingress_header_from_another_address_is_not_trusted(hub_maker: HubMaker) -> None:
    hub = await hub_maker(trust_ingress=True)
    response = await hub.get("/assets", auth=False)
    assert response.status == 401
    async with hub.http.get(
        hub.url + "/assets", headers={"X-Ingress-Path": "/api/hassio_ingress/abc"}
    ) as forged:
        assert forged.status == 401  # loopback is not the Supervisor's proxy


async def test_rate_limit_answers_429_with_retry_after(hub_maker: HubMaker) -> None:
    hub = await hub_maker(rate_limit=0.01, rate_burst=3)  # a token back every 100 s
    statuses = [(await hub.get("/assets")).status for _ in range(3)]
    assert statuses == [200, 200, 200]
    limited = await hub.get("/assets")
    assert limited.status == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 100
    assert (await limited.json())["error"]["code"] == "rate_limited"
    # Unauthenticated guessing is limited as well.
    assert (await hub.get("/assets", auth=False)).status == 429


async def test_health_answers_while_unauthenticated_requests_are_limited(
    hub_maker: HubMaker,
) -> None:
    hub = await hub_maker(rate_limit=0.01, rate_burst=20)
    guesses = [(await hub.get("/assets", auth=False)).status for _ in range(200)]
    assert (guesses.count(401), guesses.count(429)) == (20, 180)
    checks = [(await hub.get("/health", auth=False)).status for _ in range(20)]
    assert checks == [200] * 20  # monitoring has an allowance of its own


async def test_assets_and_agents_show_configured_and_connected_assets(
    live: LiveHub, site_factory: SiteFactory
) -> None:
    await site_factory(live.address, agent_id="agent-1", site_id="farm")
    assets = {row["asset_id"]: row for row in (await live.json("/assets"))["assets"]}
    assert set(assets) == {"bess-1", "bess-2", "spare"}
    assert assets["bess-1"]["name"] == "Barn battery"  # the configured name wins
    assert (assets["bess-1"]["configured"], assets["bess-1"]["connected"]) == (True, True)
    assert (assets["spare"]["connected"], assets["spare"]["agent_id"]) == (False, None)
    agents = {row["asset_id"]: row for row in (await live.json("/agents"))["agents"]}
    assert agents["bess-1"]["peer"] == agents["bess-2"]["peer"]  # gateway mode: one stream
    assert agents["bess-1"]["site_name"] == "The farm"
    [session] = agents["bess-1"]["sessions"]
    assert (session["agent_id"], session["ended"]) == ("agent-1", None)
    assert (agents["spare"]["sessions"], agents["spare"]["peer"]) == ([], None)


async def test_telemetry_devices_and_snapshot_show_the_newest_values(
    live: LiveHub, site_factory: SiteFactory
) -> None:
    site = await site_factory(live.address, agent_id="agent-1", site_id="farm")
    readings = {asset: await bess.read() for asset, bess in site.batteries.items()}
    site.agent.publish(readings)
    await site.agent.flush()
    await eventually(lambda: live.store.status().waiting_batches > 0)
    telemetry = await live.json("/telemetry/bess-2")
    assert (telemetry["site_id"], telemetry["connected"]) == ("farm", True)
    soc = telemetry["values"]["soc_pct"]
    assert soc["value"] == readings["bess-2"]["soc_pct"].value
    assert soc["unit"] == "%"
    missing = await live.get("/telemetry/nothing-here")
    assert missing.status == 404
    devices = {row["asset_id"]: row for row in (await live.json("/devices"))["devices"]}
    assert "soc_pct" in devices["bess-1"]["metrics"]
    assert (devices["spare"]["metrics"], devices["spare"]["last_sample_ms"]) == ([], None)
    snapshot = await live.json("/export/snapshot")
    by_asset = {row["asset_id"]: row for row in snapshot["assets"]}
    assert by_asset["bess-2"]["values"]["soc_pct"]["value"] == soc["value"]


async def test_registermaps_export_the_point_map_catalog(live: LiveHub) -> None:
    maps = (await live.json("/export/registermaps"))["maps"]
    assert len(maps) >= 3
    for point_map in maps:
        assert point_map["points"], point_map["id"]
    assert any(p["allow_write"] for m in maps for p in m["points"])


async def test_metrics_use_prometheus_text_and_count_requests(live: LiveHub) -> None:
    await live.get("/assets")
    response = await live.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    assert 'edge_ems_api_requests_total{method="GET",route="/assets",status="200"} 1.0' in text
    assert "edge_ems_gateway_connected_agents 0.0" in text
    assert "edge_ems_store_flushes_total" in text


async def test_unknown_routes_and_methods_answer_json(live: LiveHub) -> None:
    response = await live.get("/nothing")
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    async with live.http.delete(live.url + "/assets", headers=headers) as answer:
        assert answer.status == 405


async def test_many_clients_at_once(live: LiveHub) -> None:
    async def one() -> int:
        return (await live.get("/health", auth=False)).status

    assert set(await asyncio.gather(*(one() for _ in range(50)))) == {200}


class _Peer:
    """The transport's peer address, the only thing ingress trust looks at."""

    def __init__(self, host: str) -> None:
        self.host = host

    def get_extra_info(self, name: str, default: object = None) -> object:
        return (self.host, 40000) if name == "peername" else default


async def test_ingress_is_trusted_only_from_the_supervisor_proxy() -> None:
    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request

    from edge_ems.hub.api.auth import INGRESS_PROXY, auth_middleware
    from edge_ems.hub.api.errors import ApiError

    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="served")

    ingress = {"X-Ingress-Path": "/api/hassio_ingress/abc"}
    trusting = auth_middleware(API_TOKEN, trust_ingress=True)
    strict = auth_middleware(API_TOKEN, trust_ingress=False)
    cases = [
        (trusting, INGRESS_PROXY, ingress, True),
        (trusting, INGRESS_PROXY, {}, False),  # the proxy's address alone is not enough
        (trusting, "172.30.32.3", ingress, False),
        (strict, INGRESS_PROXY, ingress, False),
    ]
    for middleware, host, headers, served in cases:
        request = make_mocked_request("GET", "/assets", headers=headers, transport=_Peer(host))
        if served:
            response = await middleware(request, handler)
            assert response.text == "served"
            continue
        with pytest.raises(ApiError) as refused:
            await middleware(request, handler)
        assert refused.value.status == 401


async def test_the_dashboard_is_served_to_anyone_with_relative_urls_and_no_token(
    live: LiveHub,
) -> None:
    page = await live.get("/", auth=False)
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    html = await page.text()
    assert '<script type="module" src="dashboard.js">' in html
    assert '<link rel="stylesheet" href="dashboard.css">' in html
    assert API_TOKEN not in html
    script = await live.get("/dashboard.js", auth=False)
    assert script.headers["Content-Type"].startswith("text/javascript")
    text = await script.text()
    # Relative URLs, so Home Assistant's ingress prefix stays in front of them.
    for path in ('"devices"', '"export/snapshot"', '"measurements"', '"audit"', '"agents"'):
        assert path in text
    assert not re.search(r"""\bget\(["']/""", text)
    assert API_TOKEN not in text
    style = await live.get("/dashboard.css", auth=False)
    assert style.headers["Content-Type"].startswith("text/css")
    # A browser revalidates by the digest: the same file is not sent again.
    async with live.http.get(
        live.url + "/dashboard.js", headers={"If-None-Match": script.headers["ETag"]}
    ) as again:
        assert again.status == 304
        assert await again.read() == b""


async def _raw(live: LiveHub, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", live.api_port)
    writer.write(request)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    return answer


async def test_requests_the_server_cannot_parse_get_400_and_one_log_line(
    live: LiveHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = "Bearer " + "s3cret" * 2000
    malformed = [
        b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
        b"GET /assets HTTP/1.1\r\nHost: x\r\nAuthorization: " + token.encode() + b"\r\n\r\n",
    ]
    for request in malformed:
        head, _, _ = (await _raw(live, request)).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 400 Bad Request")
        assert b"Content-Type: text/plain" in head  # as the OpenAPI document says
    assert not [r for r in caplog.records if r.exc_info]
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert lines == [
        "Refused a malformed HTTP request from 127.0.0.1: Got more than 8190 bytes when reading"
    ]
    assert "s3cret" not in caplog.text
    document = await live.json("/openapi.json")
    assert "text/plain" in document["info"]["description"]


async def test_the_openapi_document_states_what_the_routes_refuse(live: LiveHub) -> None:
    document = await live.json("/openapi.json")
    parameters = {
        (path, parameter["name"]): parameter["schema"]
        for path in ("/audit", "/measurements")
        for parameter in document["paths"][path]["get"]["parameters"]
    }
    for key in [("/audit", "since"), ("/audit", "until"), ("/measurements", "from")]:
        assert all(choice["minLength"] == 1 for choice in parameters[key]["anyOf"]), key
    dispatch = document["components"]["schemas"]["DispatchRequest"]
    power = next(rule for rule in dispatch["allOf"] if "anyOf" in rule and len(rule["anyOf"]) == 3)
    assert [choice["required"] for choice in power["anyOf"]] == [["power_w"], ["mw"], ["release"]]


async def test_devices_show_how_polling_goes_as_the_agent_reports_it(
    hub_maker: HubMaker, site_factory: SiteFactory
) -> None:
    hub = await hub_maker(heartbeat_interval=1)
    statuses = [
        DeviceStatus("bess-1", answering=True, last_poll_ms=1_000, polls=5, requests=12),
        DeviceStatus("bess-2", answering=False, last_error="timed out", polls=5, failed_polls=2),
    ]
    await site_factory(hub.address, agent_id="agent-1", device_status=lambda: statuses)
    rows: dict[str, dict[str, object]] = {}

    async def reported() -> bool:
        answer = await hub.json("/devices")
        rows.update({row["asset_id"]: row for row in answer["devices"]})
        return rows.get("bess-2", {}).get("status") is not None

    async with asyncio.timeout(10):
        while not await reported():  # noqa: ASYNC110 - the hub's state, over HTTP
            await asyncio.sleep(0.1)
    first = rows["bess-1"]["status"]
    assert isinstance(first, dict)
    assert (first["answering"], first["polls"], first["requests"]) == (True, 5, 12)
    second = rows["bess-2"]["status"]
    assert isinstance(second, dict)
    assert (second["answering"], second["last_error"], second["failed_polls"]) == (
        False, "timed out", 2,
    )  # fmt: skip
    assert second["requests"] is None
    assert rows["spare"]["status"] is None  # configured, no agent serves it
