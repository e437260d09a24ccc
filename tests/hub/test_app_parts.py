"""The hub's wiring in one process: Parquet and the uplink switched on by configuration,
their state in ``/health`` and ``/metrics``, and a clean stop."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import aiohttp
from aiohttp import web

from edge_ems.hub.app import Hub
from edge_ems.hub.config import parse_config

TOKEN = "parts-api-token-0123456789"


async def test_parquet_and_uplink_run_when_configured(tmp_path: Path) -> None:
    async def collect(request: web.Request) -> web.Response:
        json.loads(gzip.decompress(await request.read()))
        return web.Response(status=202)

    endpoint = web.Application()
    endpoint.router.add_post("/ingest", collect)
    runner = web.AppRunner(endpoint)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    uplink_port = runner.addresses[0][1]
    config = parse_config(
        {
            "api_token": TOKEN,
            "api_port": 0,
            "grpc_port": 0,
            "store_path": str(tmp_path / "store.db"),
            "parquet_dir": str(tmp_path / "parquet"),
            "uplink_url": f"http://127.0.0.1:{uplink_port}/ingest",
            "hub_id": "test-hub",
        }
    )
    hub = Hub(config)
    await hub.start()
    try:
        url = f"http://127.0.0.1:{hub.api_port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/health") as response:
                health = await response.json()
            assert health["parquet"]["root"] == str(tmp_path / "parquet")
            assert health["uplink"]["url"].endswith("/ingest")
            assert health["status"] == "ok"
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with http.get(url + "/metrics", headers=headers) as response:
                metrics = await response.text()
            assert "edge_ems_parquet_enabled 1.0" in metrics
            assert "edge_ems_uplink_sent_batches_total" in metrics
            assert "edge_ems_uplink_queued_batches" in metrics
    finally:
        await hub.stop()
        await runner.cleanup()
    assert (hub.store, hub.gateway, hub.api) == (None, None, None)
