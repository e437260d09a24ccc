"""The hub as its own process (``python -m edge_ems.hub``) beside Home Assistant's test
harness, for the tests that link a site to it."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from homeassistant.config_entries import ConfigEntry

from edge_ems.planner.site_plan import SitePlan
from tests.lib.bms.support import free_port

API_TOKEN = "ha-e2e-api-token-0123456789"
AGENT_TOKEN = "ha-e2e-agent-token-0123456789"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
PATIENCE = 90.0
"""Seconds for the hub to answer on a loaded two-core machine."""


@dataclass
class HubProcess:
    """One hub's configuration, addresses and processes (it may be started again)."""

    folder: Path
    api: str
    gateway: str
    processes: list[asyncio.subprocess.Process] = field(default_factory=list)

    async def start(self) -> asyncio.subprocess.Process:
        """Start the hub (again); its log goes to ``hub.log`` in its folder."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("EDGE_EMS_")}
        with (self.folder / "hub.log").open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "edge_ems.hub", "--config", str(self.folder / "hub.yaml"),
                stdout=asyncio.subprocess.DEVNULL, stderr=log, env=env,
            )  # fmt: skip
        self.processes.append(process)
        return process

    def options(self) -> dict[str, Any]:
        """A site's options linking it to this hub."""
        return {"hub": self.gateway, "hub_token": AGENT_TOKEN}


@asynccontextmanager
async def hub_process(folder: Path, extra: str = "") -> AsyncIterator[HubProcess]:
    """A hub configured in ``folder`` with Home Assistant's agent, ``extra`` YAML appended;
    every process it started is killed at the end."""
    api_port, grpc_port = free_port(), free_port()
    (folder / "hub.yaml").write_text(
        f"""
api_token: {API_TOKEN}
api_port: {api_port}
grpc_port: {grpc_port}
store_path: {folder / "store.db"}
log_format: text
agents: [{{id: homeassistant, token: {AGENT_TOKEN}}}]
{extra}
"""
    )
    hub = HubProcess(folder, f"http://127.0.0.1:{api_port}", f"127.0.0.1:{grpc_port}")
    try:
        yield hub
    finally:
        for process in hub.processes:
            if process.returncode is None:
                process.kill()
                await process.wait()


async def until[T](probe: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Poll ``probe`` (the state is in another process) until it returns something true."""
    async with asyncio.timeout(PATIENCE):
        while not (found := await probe()):  # noqa: ASYNC110 - state in another process
            await asyncio.sleep(0.2)
    return found


async def get(http: aiohttp.ClientSession, url: str, **params: str) -> Any:
    """An authorised GET that must succeed; ``None`` while the hub is not up."""
    try:
        async with http.get(url, headers=AUTH, params=params) as response:
            assert response.status == 200, await response.text()
            return await response.json()
    except aiohttp.ClientConnectionError:
        return None


EXAMPLES = Path(__file__).parents[2] / "examples" / "planner"
PLANNER = f"""
planner:
  time_zone: Europe/Prague
  replan_after_connect_s: 8  # the site's first readings reach the store by then
  prices:
    source: file
    path: {EXAMPLES / "prices-cz.json"}
    area: CZ
    market_time_zone: Europe/Prague
    replay: true
  tariff: {EXAMPLES / "tariff-flat.yaml"}
  pv_forecast: {{source: none}}
  sites:
    - site_id: home
      batteries: all
      baseline: {{fallback_w: 400}}
"""
"""A planner for the site ``home``, offline: recorded prices replayed onto today."""


async def planned(entry: ConfigEntry, check: Callable[[SitePlan], Any] | None = None) -> SitePlan:
    """The site's plan once the hub has sent one (that ``check`` accepts)."""
    coordinator = entry.runtime_data.plan
    assert coordinator is not None
    try:
        async with asyncio.timeout(PATIENCE):
            while (plan := coordinator.data) is None or (check is not None and not check(plan)):  # noqa: ASYNC110 - the hub sends it
                await asyncio.sleep(0.2)
    except TimeoutError:
        last = coordinator.data
        pytest.fail(f"no such plan; the last: {None if last is None else last.document['inputs']}")
    return plan
