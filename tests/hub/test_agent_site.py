"""``edge-ems agent --site`` with one device of every kind, end to end over real sockets.

The simulated site serves a Deye and an SDM630 behind a Modbus gateway, the SDM630 again as
RTU over TCP, a SunSpec hybrid, an OPC UA BESS, an MQTT BMS on mosquitto, a CAN BMS on
python-can's multicast bus (so another process hears it), an EV charger, a heat pump and a
Victron battery inverter in ESS mode 3 (a point-map battery). ``edge-ems sim --write-site``
names them all in a site file; the agent runs it in a process of its own and streams to the
hub (``python -m edge_ems.hub``); ``/dispatch`` reaches the point-map battery through the
agent's guarded Dispatcher and the simulated inverter follows.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from edge_ems.sim.config import SiteConfig
from edge_ems.sim.site import SimulatedSite
from tests.lib.bms.support import free_port

pytestmark = pytest.mark.slow

API_TOKEN = "agent-site-api-token-0123456789"
AGENT_TOKEN = "agent-site-agent-token-0123456789"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
PATIENCE = 90.0
"""Seconds for the agent to read every device and the hub to hear it, on two busy cores."""
KINDS = {
    "deye": "modbus", "meter": "modbus", "sunspec": "sunspec", "bess": "opcua",
    "mqtt-bms": "mqtt_bms", "can-bms": "can_bms", "ev-charger": "modbus",
    "heat-pump": "modbus", "battery-inverter": "modbus",
}  # fmt: skip
REPORTS = {
    "deye": "soc_pct", "meter": "grid_power_w", "sunspec": "ac_power_w", "bess": "soc_pct",
    "mqtt-bms": "soc_pct", "can-bms": "soc_pct", "ev-charger": "ev_state",
    "heat-pump": "outdoor_temperature_c", "battery-inverter": "soc_pct",
}  # fmt: skip
"""One metric each device reports, to see it arrive at the hub."""


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[SimulatedSite]:
    config = dataclasses.replace(SiteConfig(tick=0.5), can_interface="udp_multicast")
    async with SimulatedSite(config, opcua_cache=tmp_path / "address-space") as running:
        yield running


async def until(check: Callable[[], Awaitable[Any]]) -> Any:
    """Poll ``check`` (the state is in other processes) until it returns something true."""
    async with asyncio.timeout(PATIENCE):
        while not (found := await check()):  # noqa: ASYNC110 - state in other processes
            await asyncio.sleep(0.2)
    return found


async def test_every_kind_of_device_streams_and_a_point_map_battery_obeys(
    site: SimulatedSite, tmp_path: Path
) -> None:
    api_port, grpc_port = free_port(), free_port()
    (tmp_path / "hub.yaml").write_text(
        yaml.safe_dump(
            {
                "api_token": API_TOKEN, "api_port": api_port, "grpc_port": grpc_port,
                "store_path": str(tmp_path / "store.db"), "log_format": "text",
                "agents": [{"id": "farm-gw", "token": AGENT_TOKEN}],
            }
        )
    )  # fmt: skip
    data = site.site_file(site_id="farm")
    data.update(
        poll_interval=0.5,
        control={"enable_control": True, "dry_run": False, "lease_ttl": 120},
        agent={"id": "farm-gw", "flush_interval": 0.5, "buffer_dir": str(tmp_path / "buffer")},
        hub={"address": f"127.0.0.1:{grpc_port}", "token_file": str(tmp_path / "token")},
    )
    assert {device["id"]: device["kind"] for device in data["devices"]} == KINDS
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "token").write_text(AGENT_TOKEN + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_EMS_")}
    processes = []
    for name, args in (
        ("hub", ("-m", "edge_ems.hub", "--config", str(tmp_path / "hub.yaml"))),
        ("agent", ("-m", "edge_ems.cli", "agent", "--site", str(tmp_path / "site.yaml"))),
    ):
        with (tmp_path / f"{name}.log").open("ab") as log:
            processes.append(
                await asyncio.create_subprocess_exec(
                    sys.executable, *args, stdout=asyncio.subprocess.DEVNULL, stderr=log, env=env
                )
            )
    hub, agent = processes
    try:
        async with aiohttp.ClientSession(headers=AUTH) as http:
            url = f"http://127.0.0.1:{api_port}"

            async def get(path: str) -> Any:
                try:
                    async with http.get(url + path) as response:
                        return await response.json() if response.status == 200 else None
                except aiohttp.ClientConnectionError:
                    return None

            missing = dict(REPORTS)

            async def every_device_reports() -> bool:
                for device_id, metric in list(missing.items()):
                    telemetry = await get(f"/telemetry/{device_id}")
                    if telemetry is not None and metric in telemetry["values"]:
                        del missing[device_id]
                return not missing

            try:
                await until(every_device_reports)
            except TimeoutError:
                pytest.fail(f"the hub never heard of {missing}")
            assets = {a["asset_id"]: a for a in (await get("/assets"))["assets"]}
            assert set(assets) == set(KINDS)
            batteries = {a for a, row in assets.items() if row["type"] == "battery"}
            assert batteries == {"sunspec", "bess", "battery-inverter"}

            body = {"asset_id": "battery-inverter", "power_w": -2500, "ttl_s": 120,
                    "requested_by": "e2e"}  # fmt: skip
            async with http.post(url + "/dispatch", json=body) as response:
                assert response.status == 200, await response.text()
                [record] = (await response.json())["records"]
            assert (record["outcome"], record["applied"], record["read_back"]) == (
                "applied", -2500, -2500,
            )  # fmt: skip
            inverter = site.plant.battery_inverter
            assert inverter is not None

            async def charging() -> bool:
                return bool(inverter.setpoint_w == -2500 and inverter.battery.power_w < 0)

            await until(charging)
            audit = await get("/audit?device_id=battery-inverter")
            assert record["id"] in [kept["id"] for kept in audit["records"]]
    finally:
        agent.send_signal(signal.SIGTERM)
        async with asyncio.timeout(PATIENCE):
            assert await agent.wait() == 0, (tmp_path / "agent.log").read_text()[-3000:]
        hub.send_signal(signal.SIGTERM)
        async with asyncio.timeout(PATIENCE):
            await hub.wait()
    # The agent handed the battery back when it stopped: the simulated inverter idles.
    assert inverter.setpoint_w == 0
    log = (tmp_path / "agent.log").read_text()
    assert "Traceback" not in log
