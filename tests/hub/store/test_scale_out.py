"""Scale-out: two hub processes on one TimescaleDB, agents split between them; /assets and
/measurements of either show every site."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge_ems.agent import Agent, AgentConfig, TelemetryBuffer
from edge_ems.dispatch import ControlPolicy, Dispatcher
from edge_ems.gateway import AssetInfo
from tests.lib.bms.support import free_port

from ..test_app_process import API_TOKEN, Api, Launch, launch, stop, until
from .postgres import fresh_database

__all__ = ["launch"]  # the fixture, imported for the test below

pytestmark = pytest.mark.slow

AGENT_TOKEN = "scale-agent-token-0123456789"
MINUTE = 60_000
_databases = itertools.count(1)


class HubProcess:
    def __init__(self, launch: Launch, directory: Path, name: str, url: str) -> None:
        self.launch, self.name = launch, name
        self.api_port, self.grpc_port = free_port(), free_port()
        self.config = directory / f"{name}.yaml"
        self.config.write_text(
            f"api_token: {API_TOKEN}\napi_port: {self.api_port}\ngrpc_port: {self.grpc_port}\n"
            f"instance_name: {name}\nlog_format: text\n"
            f"agents: [{{id: farm-gw, token: {AGENT_TOKEN}}},\n"
            f"         {{id: barn-gw, token: {AGENT_TOKEN}}}]\n"
        )
        self.env = {"DATABASE_URL": url}
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await self.launch(
            "-m", "edge_ems.hub", "--config", str(self.config), log=f"{self.name}.log", env=self.env
        )

    async def stop(self) -> None:
        assert self.process is not None
        assert await stop(self.process) == 0


def agent(name: str, site: str, asset: str, hub: HubProcess, buffer: Path) -> Agent:
    return Agent(
        AgentConfig(
            agent_id=name,
            site_id=site,
            token=AGENT_TOKEN,
            hubs=(f"127.0.0.1:{hub.grpc_port}",),
            gateway_id=name,
            flush_interval=0.2,
            reconnect_base=0.05,
            reconnect_cap=0.5,
        ),
        Dispatcher(site, ControlPolicy(), lambda record: None),
        [AssetInfo(asset, type="meter")],
        buffer=TelemetryBuffer(buffer),
        rng=random.Random(3),
    )


async def test_two_hubs_on_one_database_each_show_every_site(
    launch: Launch, postgres_url: str, tmp_path: Path
) -> None:
    url = fresh_database(postgres_url, f"scale_out_{next(_databases)}")
    east, west = (HubProcess(launch, tmp_path, name, url) for name in ("east", "west"))
    await east.start()
    await west.start()
    farm = agent("farm-gw", "farm", "farm-meter", east, tmp_path / "farm")
    barn = agent("barn-gw", "barn", "barn-meter", west, tmp_path / "barn")
    start = (round(time.time() * 1000) // MINUTE - 5) * MINUTE
    stamps = [start + n * 1000 for n in range(180)]  # three closed minutes, a sample a second
    async with aiohttp.ClientSession() as http:
        apis = [Api(http, east.api_port), Api(http, west.api_port)]
        for api in apis:
            await api.up()
        await farm.start()
        await barn.start()
        try:
            farm.publish_series("farm-meter", "ac_power_w", stamps, [1.0] * 180)
            barn.publish_series("barn-meter", "ac_power_w", stamps, [2.0] * 180)
            await farm.flush()
            await barn.flush()

            async def both_sites_everywhere() -> bool:
                for api in apis:
                    rows = {row["asset_id"]: row for row in (await api.get("/assets"))["assets"]}
                    served = {(a, rows[a]["agent_id"], rows[a]["site_id"], rows[a]["connected"])
                              for a in rows}  # fmt: skip
                    if served != {("farm-meter", "farm-gw", "farm", True),
                                  ("barn-meter", "barn-gw", "barn", True)}:  # fmt: skip
                        return False
                return True

            await until(both_sites_everywhere)  # each hub reads the other's agents back

            # A clean stop writes the open minutes; the hub that kept running learns the
            # other's series from the database.
            await east.stop()
            await east.start()
            await apis[0].up()
            await west.stop()
            await west.start()
            await apis[1].up()

            async def measured(api: Api) -> dict[str, Any]:
                found = await api.get(
                    "/measurements", **{"from": str(start), "to": str(start + 3 * MINUTE)}
                )
                return {s["site_id"]: [p[5] for p in s["points"]] for s in found["series"]}

            async def every_minute_everywhere() -> bool:
                wanted = {"farm": [60, 60, 60], "barn": [60, 60, 60]}
                return [await measured(api) for api in apis] == [wanted, wanted]

            await until(every_minute_everywhere)
        finally:
            await farm.stop()
            await barn.stop()
            await east.stop()
            await west.stop()
    for name in ("east", "west"):
        log = (tmp_path / f"{name}.log").read_text()
        assert f"shared as hub {name}" in log
        assert "Traceback" not in log
