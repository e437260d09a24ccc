"""The hub's planner in a hub process (``python -m edge_ems.hub``) with ``edge-ems agent
--site`` on the simulated site in a process of its own: the plan reaches the simulated
battery inverter through the agent's guarded Dispatcher and it follows; an override wins;
the hub killed, the leases lapse and the inverter is back in its safe mode. And two hubs on
one PostgreSQL: one leads and plans the site whose agent is connected to the other, which
stands by, refuses to plan, carries out the leader's plan for that agent, and takes over
when the leader is killed."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import yaml

from edge_ems.sim.config import BatteryInverterConfig, SiteConfig
from edge_ems.sim.site import SimulatedSite
from tests.lib.bms.support import free_port

from ..store.postgres import fresh_database
from .conftest import price_document, write_json

pytestmark = pytest.mark.slow

API_TOKEN = "planner-process-api-token-0123"
AGENT_TOKEN = "planner-process-agent-token-0123"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
PATIENCE = 90.0
PRAGUE = ZoneInfo("Europe/Prague")
LEASE_S = 6


@pytest.fixture
async def site() -> AsyncIterator[SimulatedSite]:
    """The Deye (PV and house), its grid meter and the Victron battery inverter."""
    config = SiteConfig(
        tick=0.5, sunspec=None, bess=None, mqtt_bms=None, can_bms=False, ev_charger=None,
        heat_pump=None, battery_inverter=BatteryInverterConfig(soc_pct=40.0),
    )  # fmt: skip
    async with SimulatedSite(dataclasses.replace(config)) as running:
        yield running


async def until(check: Callable[[], Awaitable[Any]], within: float = PATIENCE) -> Any:
    """Poll ``check`` (the state is in other processes) until it returns something true."""
    async with asyncio.timeout(within):
        while not (found := await check()):  # noqa: ASYNC110 - state in other processes
            await asyncio.sleep(0.2)
    return found


class Hub:
    """A hub process and its REST API."""

    def __init__(self, tmp: Path, name: str, planner: dict[str, Any], **options: Any) -> None:
        self.api_port, self.grpc_port = free_port(), free_port()
        self.log = tmp / f"{name}.log"
        self.config = tmp / f"{name}.yaml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "api_token": API_TOKEN, "api_port": self.api_port,
                    "grpc_port": self.grpc_port, "store_path": str(tmp / f"{name}.db"),
                    "log_format": "text", "hub_id": name,
                    "agents": [{"id": "sim", "token": AGENT_TOKEN}],
                    "planner": planner, **options,
                }
            )
        )  # fmt: skip
        self.process: asyncio.subprocess.Process | None = None
        self.url = f"http://127.0.0.1:{self.api_port}"

    async def start(self, env: dict[str, str]) -> None:
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "edge_ems.hub", "--config", str(self.config),
                stdout=asyncio.subprocess.DEVNULL, stderr=log, env=env,
            )  # fmt: skip

    async def call(
        self, http: aiohttp.ClientSession, method: str, path: str, body: Any = None, **params: str
    ) -> tuple[int, Any]:
        try:
            async with http.request(
                method, self.url + path, json=body, params=params, headers=AUTH
            ) as response:
                return response.status, await response.json()
        except aiohttp.ClientConnectionError:
            return 0, None

    async def get(self, http: aiohttp.ClientSession, path: str, **params: str) -> Any:
        status, body = await self.call(http, "GET", path, **params)
        return body if status == 200 else None

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(PATIENCE):
                await self.process.wait()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()


def planner_section(tmp: Path) -> dict[str, Any]:
    """Prices that pay for energy for the rest of this hour (charge now: at most four steps,
    less than the battery takes, so every one of them), cheap the next, dear later."""
    now = datetime.now(UTC).astimezone(PRAGUE)
    hours = [120.0] * 24
    hours[now.hour], hours[(now.hour + 1) % 24] = -40.0, 20.0
    prices = write_json(tmp / "prices.json", price_document({now.date(): hours}))
    return {
        "time_zone": "Europe/Prague",
        "prices": {"source": "file", "path": str(prices), "area": "CZ",
                   "market_time_zone": "Europe/Prague", "replay": True},
        "dispatch": {"resend_s": 2, "lease_s": LEASE_S},
        "replan_after_connect_s": 3,
        "leader": {"heartbeat_s": 1, "fence_s": 4, "server_timeout_s": 8},
        "sites": [{
            "site_id": "sim",
            "batteries": [{"asset_id": "battery-inverter", "soc_max": 0.95}],
            "measure": {"grid": [{"asset_id": "meter", "metric": "grid_power_w"}],
                        "pv": [{"asset_id": "deye", "metric": "pv_power_w"}],
                        "load": [{"asset_id": "deye", "metric": "load_power_w"}]},
        }],
    }  # fmt: skip


def agent_site(site: SimulatedSite, tmp: Path, hubs: list[Hub]) -> Path:
    data = site.site_file(site_id="sim")
    data.update(
        poll_interval=0.5,
        control={"enable_control": True, "dry_run": False, "lease_ttl": 60},
        agent={"id": "sim", "flush_interval": 0.5, "buffer_dir": str(tmp / "buffer")},
        hub={"address": ",".join(f"127.0.0.1:{hub.grpc_port}" for hub in hubs),
             "token_file": str(tmp / "token")},
    )  # fmt: skip
    (tmp / "token").write_text(AGENT_TOKEN + "\n")
    path = tmp / "site.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@contextlib.asynccontextmanager
async def agent_process(site_file: Path, tmp: Path, env: dict[str, str]) -> AsyncIterator[None]:
    with (tmp / "agent.log").open("ab") as log:
        agent = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "edge_ems.cli", "agent", "--site", str(site_file),
            stdout=asyncio.subprocess.DEVNULL, stderr=log, env=env,
        )  # fmt: skip
    try:
        yield
    finally:
        agent.send_signal(signal.SIGTERM)
        async with asyncio.timeout(PATIENCE):
            assert await agent.wait() == 0, (tmp / "agent.log").read_text()[-3000:]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("EDGE_EMS_")}


async def test_the_simulated_battery_follows_the_plan_and_falls_back_to_safe_mode(
    site: SimulatedSite, tmp_path: Path
) -> None:
    hub = Hub(tmp_path, "hub", planner_section(tmp_path))
    env = clean_env()
    await hub.start(env)
    inverter = site.plant.battery_inverter
    assert inverter is not None
    try:
        async with (
            aiohttp.ClientSession() as http,
            agent_process(agent_site(site, tmp_path, [hub]), tmp_path, env),
        ):

            async def soc_known() -> bool:
                telemetry = await hub.get(http, "/telemetry/battery-inverter")
                return telemetry is not None and "soc_pct" in telemetry["values"]

            await until(soc_known)
            status, body = await hub.call(http, "POST", "/plan/run", {"site_id": "sim"})
            assert status == 200, body
            [result] = body["results"]
            assert result["error"] is None, result
            document = await hub.get(http, "/plan", site_id="sim")
            planned = document["plan"]["batteries"][0]
            assert planned["id"] == "battery-inverter"
            assert planned["charge_w"][0] > 1000  # energy pays now: charge

            async def charging() -> bool:
                return bool(inverter.setpoint_w < -1000 and inverter.battery.power_w < 0)

            await until(charging)
            # An override wins at once: discharge 1500 W.
            status, body = await hub.call(
                http, "POST", "/overrides",
                {"site_id": "sim", "asset_id": "battery-inverter", "value": 1500,
                 "duration_s": 600, "requested_by": "test"},
            )  # fmt: skip
            assert status == 201, body

            async def discharging() -> bool:
                return bool(inverter.setpoint_w == 1500 and inverter.battery.power_w > 0)

            await until(discharging)
            audit = await hub.get(http, "/audit", device_id="battery-inverter")
            mine = [r for r in audit["records"] if r["requested_by"] == "planner"]
            assert mine
            assert {r["source"] for r in mine} == {"hub"}
            # The hub dies without a word: the leases lapse, the inverter goes safe.
            hub.kill()
            killed = time.monotonic()

            async def safe() -> bool:
                return inverter.setpoint_w == 0

            await until(safe, within=LEASE_S + 30)
            assert time.monotonic() - killed < LEASE_S + 30
    finally:
        await hub.stop()
    assert "Traceback" not in (tmp_path / "agent.log").read_text()


async def test_two_hubs_on_one_database_serve_a_site_on_either_and_hand_over(
    site: SimulatedSite, tmp_path: Path, postgres_url: str
) -> None:
    database = fresh_database(postgres_url, "planner_hand_over")
    section = planner_section(tmp_path)
    first = Hub(tmp_path, "hub-a", section, database_url=database)
    second = Hub(tmp_path, "hub-b", section, database_url=database)
    env = clean_env()
    inverter = site.plant.battery_inverter
    assert inverter is not None
    await first.start(env)
    try:
        async with aiohttp.ClientSession() as http:

            async def leads(hub: Hub) -> bool:
                health = await hub.get(http, "/health")
                return bool(health and health["planner"] and health["planner"]["leader"])

            await until(lambda: leads(first))
            await second.start(env)

            async def standing_by() -> Any:
                health = await second.get(http, "/health")
                return health and health["planner"]["leader_hub"]

            assert (await until(standing_by)).startswith("hub-a ")
            # The site's agent dials the standby.
            async with agent_process(agent_site(site, tmp_path, [second, first]), tmp_path, env):

                async def planned_by(hub: Hub, after: int = 0) -> Any:
                    document = await hub.get(http, "/plan", site_id="sim")
                    if document is None or document["version"] <= after:
                        return None
                    if not document["plan"]["batteries"]:
                        return None  # before the site's first readings
                    return document

                leader_plan = await until(lambda: planned_by(first))

                async def charging() -> bool:
                    return bool(inverter.setpoint_w < -1000)

                await until(charging)  # the standby carries out the leader's plan
                status, body = await second.call(http, "POST", "/plan/run", {})
                assert (status, body["error"]["code"]) == (409, "standby")
                # The standby serves the leader's plan from the shared tables.
                served = await second.get(http, "/plan", site_id="sim")
                assert served["version"] >= leader_plan["version"]

                first.kill()
                killed = time.monotonic()
                await until(lambda: leads(second), within=30)
                took = time.monotonic() - killed
                assert took < 30
                taken = await until(
                    lambda: planned_by(second, after=leader_plan["version"]), within=60
                )
                assert taken["version"] > leader_plan["version"]
                await until(charging, within=60)
    finally:
        for hub in (second, first):
            with contextlib.suppress(ProcessLookupError):
                await hub.stop()
    assert "Traceback" not in (tmp_path / "hub-b.log").read_text()
