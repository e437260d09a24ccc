"""End to end over real sockets: ``python -m edge_ems.hub`` with a config file, fed by
``edge-ems agent`` with a simulated BESS site, queried and commanded through the REST API.

The hub flushes the store on SIGTERM, so a restart shows every minute the agent sent.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge_ems import __version__
from tests.lib.bms.support import free_port

from .gateway.conftest import WAIT

pytestmark = pytest.mark.slow

API_TOKEN = "process-api-token-0123456789"
AGENT_TOKEN = "process-agent-token-0123456789"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}

SITE = """
site: {id: farm, name: The farm}
poll_interval: 0.2
agent: {id: farm-gw, flush_interval: 0.2}
control: {enable_control: true, dry_run: false, lease_ttl: 600}
devices:
  - {id: bess-1, name: Barn battery, kind: sim_bess, capacity_wh: 10000}
  - {id: bess-2, kind: sim_bess, capacity_wh: 30000}
"""

Launch = Callable[..., Awaitable[asyncio.subprocess.Process]]


@pytest.fixture
async def launch(tmp_path: Path) -> AsyncIterator[Launch]:
    processes: list[asyncio.subprocess.Process] = []

    async def start(
        *args: str, log: str, env: dict[str, str] | None = None
    ) -> asyncio.subprocess.Process:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_EMS_")}
        env = clean | (env or {})
        with (tmp_path / log).open("ab") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable, *args, stdout=asyncio.subprocess.DEVNULL, stderr=stderr, env=env
            )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def stop(process: asyncio.subprocess.Process) -> int:
    process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(WAIT):
        return await process.wait()


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll ``check`` (another process changes what it sees) until it holds."""
    async with asyncio.timeout(WAIT):
        while not await check():  # noqa: ASYNC110 - the state is in other processes
            await asyncio.sleep(0.1)


class Api:
    def __init__(self, http: aiohttp.ClientSession, port: int) -> None:
        self.http = http
        self.url = f"http://127.0.0.1:{port}"

    async def get(self, path: str, **params: Any) -> Any:
        async with self.http.get(self.url + path, headers=AUTH, params=params) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def up(self) -> None:
        async with asyncio.timeout(WAIT):
            while True:
                try:
                    async with self.http.get(self.url + "/health") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)


async def test_hub_process_stores_telemetry_dispatches_and_audits(
    launch: Launch, tmp_path: Path
) -> None:
    api_port, grpc_port = free_port(), free_port()
    config = tmp_path / "hub.yaml"
    config.write_text(
        f"""
api_token: {API_TOKEN}
api_port: {api_port}
grpc_port: {grpc_port}
store_path: {tmp_path / "store.db"}
agents: [{{id: farm-gw, token: {AGENT_TOKEN}}}]
assets:
  - {{asset_id: bess-1, site_id: farm, name: Barn battery, site_name: The farm}}
"""
    )
    site = tmp_path / "site.yaml"
    site.write_text(SITE)
    hub = await launch("-m", "edge_ems.hub", "--config", str(config), log="hub.log")
    async with aiohttp.ClientSession() as http:
        api = Api(http, api_port)
        await api.up()
        agent = await launch(
            "-m", "edge_ems.cli", "agent", "--site", str(site),
            "--hub", f"127.0.0.1:{grpc_port}", "--token", AGENT_TOKEN,
            "--buffer-dir", str(tmp_path / "buffer"),
            log="agent.log",
        )  # fmt: skip
        try:
            rows: list[dict[str, Any]] = []

            async def connected() -> bool:
                rows[:] = (await api.get("/agents"))["agents"]
                return [row["connected"] for row in rows] == [True, True]

            await until(connected)
            assert {row["peer"] for row in rows} == {rows[0]["peer"]}

            async def soc_reported() -> bool:
                return "soc_pct" in (await api.get("/telemetry/bess-2"))["values"]

            await until(soc_reported)

            async with http.post(
                api.url + "/dispatch",
                json={"asset_id": "bess-2", "power_w": 4000, "ttl_s": 120, "requested_by": "e2e"},
                headers=AUTH,
            ) as response:
                assert response.status == 200, await response.text()
                answer = await response.json()
            [record] = answer["records"]
            assert (record["outcome"], record["applied"], record["read_back"]) == (
                "applied",
                4000,
                4000,
            )
            audit = (await api.get("/audit", device_id="bess-2"))["records"]
            assert [r["id"] for r in audit] == [record["id"]]

            async def discharging() -> bool:
                power = (await api.get("/telemetry/bess-2"))["values"]["battery_power_w"]
                return bool(power["value"] == 4000)

            await until(discharging)  # the simulated BESS now delivers 4 kW
        finally:
            hub_code = await stop(hub)
        assert hub_code == 0, (tmp_path / "hub.log").read_text()
        lines = [json.loads(line) for line in (tmp_path / "hub.log").read_text().splitlines()]
        assert any(line["msg"].startswith("Hub ready") for line in lines)
        store_line = next(line for line in lines if line["msg"].startswith("Store: "))
        assert store_line["msg"] == (
            f"Store: SQLite in WAL mode at {tmp_path / 'store.db'}; "
            f"ingest journal in {tmp_path / 'store.db.journal'}"
        )
        assert lines[-1]["msg"] == "Hub stopped"
        # Everything journaled is in the database now: no segment is kept.
        assert not list((tmp_path / "store.db.journal").glob("segment-*"))

        # The stop flushed the open minutes: a new hub on the same store serves them.
        hub = await launch("-m", "edge_ems.hub", "--config", str(config), log="hub2.log")
        await api.up()
        since = str(round(time.time() * 1000) - 3_600_000)
        measured = await api.get(
            "/measurements", asset="bess-2", metric="battery_power_w", **{"from": since}
        )
        [series] = measured["series"]

        async def reconnected() -> bool:
            rows[:] = (await api.get("/agents"))["agents"]
            return [(row["connected"], len(row["sessions"])) for row in rows] == [(True, 2)] * 2

        await until(reconnected)  # the earlier session is in the store, ended by the stop
        newer, older = rows[1]["sessions"]
        assert (newer["ended"], older["end_reason"]) == (None, "the hub is shutting down")
        assert series["site_id"] == "farm"
        assert max(point[3] for point in series["points"]) == 4000  # the max column
        assert sum(point[5] for point in series["points"]) > 0
        audit = (await api.get("/audit", device_id="bess-2"))["records"]
        assert [r["id"] for r in audit] == [record["id"]]
        assert await stop(agent) == 0  # it returns its batteries to safe mode, audited

        async def released() -> bool:
            records = (await api.get("/audit", outcome="released"))["records"]
            return [r["device_id"] for r in records] == ["bess-2"]  # the one it leased

        await until(released)
        assert await stop(hub) == 0


async def test_bad_configuration_and_taken_ports_end_with_a_clear_message(
    launch: Launch, tmp_path: Path
) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text("api_token: short\n")
    process = await launch("-m", "edge_ems.hub", "--config", str(config), log="bad.log")
    async with asyncio.timeout(WAIT):
        assert await process.wait() == 2
    message = (tmp_path / "bad.log").read_text()
    assert "api_token: a token needs at least 16 characters" in message
    assert "Traceback" not in message

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config.write_text(
            f"api_token: {API_TOKEN}\napi_port: {port}\ngrpc_port: {free_port()}\n"
            f"store_path: {tmp_path / 'store.db'}\nlog_format: text\n"
        )
        process = await launch("-m", "edge_ems.hub", "--config", str(config), log="taken.log")
        async with asyncio.timeout(WAIT):
            assert await process.wait() == 1
    message = (tmp_path / "taken.log").read_text()
    assert f"cannot listen on 127.0.0.1:{port}" in message
    assert "Traceback" not in message


async def test_the_app_shows_a_configuration_error_in_health_and_stays_up(
    launch: Launch, tmp_path: Path
) -> None:
    """The uplink's URL carries a password and a token is set too: refused at start, with a
    clear reason in /health (the password nowhere), and the process keeps answering, so the
    Supervisor's watchdog does not restart the app over and over."""
    api_port = free_port()
    options = tmp_path / "options.json"
    options.write_text(
        json.dumps(
            {
                "agents": [],
                "assets": [],
                "uplink_url": "https://hub:s3cret-pass@uplink.example/ingest",
                "uplink_token": "uplink-token-0123456789",
                "log_level": "info",
            }
        )
    )
    env = {"EDGE_EMS_API_TOKEN": API_TOKEN, "EDGE_EMS_API_PORT": str(api_port),
           "EDGE_EMS_GRPC_PORT": str(free_port()), "EDGE_EMS_STORE_PATH": str(tmp_path / "s.db"),
           "EDGE_EMS_TLS_SELF_SIGNED_DIR": str(tmp_path / "tls"),
           "EDGE_EMS_TLS_CERTIFICATE_COPY": str(tmp_path / "gateway.crt")}  # fmt: skip
    process = await launch(
        "-m", "edge_ems.hub", "--app", "--config", str(options), log="app.log", env=env
    )
    url = f"http://127.0.0.1:{api_port}"
    async with aiohttp.ClientSession() as http:
        await Api(http, api_port).up()
        async with http.get(url + "/health") as response:
            assert (response.status, await response.json()) == (
                200,
                {"status": "error", "version": __version__},
            )
        async with http.get(url + "/health", headers=AUTH) as response:
            health = await response.json()
        async with http.get(url + "/assets", headers=AUTH) as response:
            assert response.status == 503
            assert (await response.json())["error"]["code"] == "hub_not_running"
    assert health["problems"] == ["configuration"]
    assert "uplink_url" in health["error"]
    assert "uplink_token" in health["error"]
    assert process.returncode is None  # still up
    assert await stop(process) == 0
    log = (tmp_path / "app.log").read_text()
    assert "The hub cannot run" in log
    for text in (log, json.dumps(health)):
        assert "s3cret-pass" not in text

    # Without --app, the same configuration ends the process with a clear message.
    process = await launch("-m", "edge_ems.hub", "--config", str(options), log="cli.log", env=env)
    async with asyncio.timeout(WAIT):
        assert await process.wait() == 2
    assert "uplink_token" in (tmp_path / "cli.log").read_text()
