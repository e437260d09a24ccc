"""The hub's wiring in one process: Parquet and the uplink switched on by configuration,
their state in ``/health`` and ``/metrics``, failures that show there, no secrets anywhere,
and a clean stop."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from edge_ems.exceptions import ConfigError
from edge_ems.hub.app import Hub
from edge_ems.hub.config import parse_config
from edge_ems.hub.logs import setup_logging

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
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            async with http.get(url + "/health") as response:
                health = await response.json()
            assert health["parquet"]["root"] == str(tmp_path / "parquet")
            assert health["uplink"]["url"].endswith("/ingest")
            assert health["status"] == "ok"
            assert {name: task["running"] for name, task in health["tasks"].items()} == {
                "parquet": True,
                "uplink": True,
            }
            async with http.get(url + "/metrics") as response:
                metrics = await response.text()
            assert "edge_ems_parquet_enabled 1.0" in metrics
            assert "edge_ems_uplink_sent_batches_total" in metrics
            assert "edge_ems_uplink_queued_batches" in metrics
    finally:
        await hub.stop()
        await runner.cleanup()
    assert (hub.store, hub.gateway, hub.api) == (None, None, None)


async def test_the_uplink_url_s_userinfo_shows_nowhere(tmp_path: Path) -> None:
    received: list[str] = []

    async def collect(request: web.Request) -> web.Response:
        received.append(request.headers.get("Authorization", ""))
        return web.Response(status=503)  # a failure, so errors are reported too

    endpoint = web.Application()
    endpoint.router.add_post("/ingest", collect)
    runner = web.AppRunner(endpoint)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    secret = "pa55word-in-url"
    config = parse_config(
        {
            "api_token": TOKEN,
            "api_port": 0,
            "grpc_port": 0,
            "store_path": str(tmp_path / "store.db"),
            "uplink_url": f"http://hub:{secret}@127.0.0.1:{runner.addresses[0][1]}/ingest",
        }
    )
    log = io.StringIO()
    setup_logging("debug", stream=log)
    hub = Hub(config)
    try:
        await hub.start()
        url = f"http://127.0.0.1:{hub.api_port}"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession() as http:
            shown = []
            for path, auth in (("/health", False), ("/health", True), ("/metrics", True)):
                async with http.get(url + path, headers=headers if auth else {}) as response:
                    shown.append(await response.text())
        health = json.loads(shown[1])
        assert health["uplink"]["url"] == f"http://127.0.0.1:{runner.addresses[0][1]}/ingest"
    finally:
        await hub.stop()
        await runner.cleanup()
        setup_logging("warning", json_format=False)
    for text in [*shown, log.getvalue(), repr(config)]:
        assert secret not in text
        assert "hub:" not in text


def test_userinfo_and_a_token_together_are_refused_at_start() -> None:
    with pytest.raises(ConfigError, match=r"uplink_url.*uplink_token"):
        parse_config(
            {
                "api_token": TOKEN,
                "uplink_url": "https://user:pass@example.com/ingest",
                "uplink_token": "t" * 20,
            }
        )


async def test_a_failing_background_task_shows_in_health_and_metrics_and_restarts(
    tmp_path: Path,
) -> None:
    config = parse_config(
        {"api_token": TOKEN, "api_port": 0, "grpc_port": 0, "store_path": str(tmp_path / "s.db")}
    )
    hub = Hub(config, restart_backoff=(0.05, 0.2))
    await hub.start()
    runs: list[float] = []

    async def probe() -> None:
        runs.append(time.monotonic())
        raise RuntimeError("the probe broke at https://user:secret@example.com/x")

    hub.tasks.spawn("probe", probe)  # as the hub spawns the Parquet export and the uplink
    try:
        url = f"http://127.0.0.1:{hub.api_port}"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            async with asyncio.timeout(30):
                while len(runs) < 3:  # noqa: ASYNC110 - the hub's task runs meanwhile
                    await asyncio.sleep(0.01)
            async with http.get(url + "/health") as response:
                health: dict[str, Any] = await response.json()
            async with http.get(url + "/metrics") as response:
                metrics = await response.text()
    finally:
        await hub.stop()
    assert (health["status"], health["problems"]) == ("degraded", ["probe"])
    probe_task = health["tasks"]["probe"]
    assert probe_task["failing"] is True
    assert probe_task["failures"] >= 2
    assert probe_task["last_error"] == "RuntimeError: the probe broke at https://example.com/x"
    assert f'edge_ems_task_failures_total{{task="probe"}} {probe_task["failures"]}' in metrics
    assert 'edge_ems_task_failing{task="probe"} 1.0' in metrics


async def test_a_random_hub_id_is_made_on_first_start_and_kept_in_the_store(
    tmp_path: Path,
) -> None:
    async def hub_id(store: str, **options: str) -> str | None:
        config = parse_config(
            {"api_token": TOKEN, "api_port": 0, "grpc_port": 0, "store_path": store, **options}
        )
        hub = Hub(config)
        await hub.start()
        await hub.stop()
        return hub.hub_id

    first = await hub_id(str(tmp_path / "a.db"))
    assert first is not None
    assert first.startswith("hub-")
    assert len(first) == len("hub-") + 16
    assert await hub_id(str(tmp_path / "a.db")) == first  # kept across restarts
    assert await hub_id(str(tmp_path / "b.db")) not in (None, first)  # another hub, another id
    assert await hub_id(str(tmp_path / "a.db"), hub_id="farm-hub") == "farm-hub"
