"""A hub with real agents on the simulated site, as the dashboard's browser tests use it:
``python -m edge_ems.hub`` planning the first site offline (the repository's
``examples/planner``: recorded prices and PV forecast replayed onto today) and two
``edge-ems agent`` processes, one for the simulated site (the demo's devices, control on)
and one for a second site with a simulated battery and control off, which the hub does not
plan; and an ingress-like proxy in front of the hub, as Home Assistant's
Supervisor puts one (a path prefix, the token added by the proxy, ``X-Ingress-Path``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from edge_ems.sim.config import SiteConfig
from edge_ems.sim.site import SimulatedSite, free_port

API_TOKEN = "dashboard-api-token-0123456789"
AGENT_TOKEN = "dashboard-agent-token-0123456789"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
SITE = SiteConfig(can_bms=False, mqtt_bms=None, tick=0.5)
"""The demo's devices (scripts/hass_demo): no CAN or MQTT battery, which would be the same
battery the inverters report a second time."""
SITE_ID = "farm"
SECOND_SITE = "depot"
INGRESS_PREFIX = "/api/hassio_ingress/t0k3n"
PATIENCE = 90.0
"""Seconds for the agents to read every device and the hub to hear them, on two busy cores."""
EXAMPLES = Path(__file__).parents[2] / "examples" / "planner"


def planner_section() -> dict[str, Any]:
    """The repository's examples/planner/planner.yaml, planning the first site (the example
    names the simulated site ``sim``), the files it names found in the examples' folder."""
    section: dict[str, Any] = yaml.safe_load((EXAMPLES / "planner.yaml").read_text())
    for source in (section["prices"], section["pv_forecast"]):
        source["path"] = str(EXAMPLES / source["path"])
    section["tariff"] = str(EXAMPLES / section["tariff"])
    (site,) = section["sites"]
    site["site_id"] = SITE_ID
    return section


@dataclass
class LiveHub:
    """The running hub: its URL, the ingress-like proxy's, and the simulated site."""

    url: str
    ingress_url: str
    site: SimulatedSite
    folder: Path

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")


async def until(check: Callable[[], Awaitable[Any]], patience: float = PATIENCE) -> Any:
    """Poll ``check`` (the state is in other processes) until it returns something true."""
    async with asyncio.timeout(patience):
        while not (found := await check()):  # noqa: ASYNC110 - state in other processes
            await asyncio.sleep(0.3)
    return found


def _agent_file(folder: Path, name: str, data: dict[str, Any], grpc_port: int) -> Path:
    data.update(
        poll_interval=1,
        agent={"id": name, "flush_interval": 1, "buffer_dir": str(folder / f"buffer-{name}")},
        hub={"address": f"127.0.0.1:{grpc_port}", "token_file": str(folder / "token")},
    )
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def ingress_proxy(hub_url: str, prefix: str) -> web.Application:
    """What the Supervisor does for an app's web UI: the page under a path prefix, each
    request passed on with the prefix taken off, ``X-Ingress-Path`` added and the person
    already authenticated (here the proxy adds the hub's token: the hub trusts only the
    Supervisor's own address, which a test cannot send from)."""

    async def forward(request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        headers = {
            "X-Ingress-Path": prefix,
            **AUTH,
            **{k: v for k, v in request.headers.items() if k in ("Content-Type", "Accept")},
        }
        session: aiohttp.ClientSession = request.app[SESSION]
        async with session.request(
            request.method,
            f"{hub_url}/{tail}",
            params=request.query,
            data=await request.read() or None,
            headers=headers,
        ) as answer:
            body = await answer.read()
            kept = ("Content-Type", "Content-Security-Policy", "ETag", "Cache-Control")
            return web.Response(
                status=answer.status,
                body=body,
                headers={k: v for k, v in answer.headers.items() if k in kept},
            )

    app = web.Application()
    app.router.add_route("*", prefix + "/{tail:.*}", forward)

    async def session(app: web.Application) -> AsyncIterator[None]:
        app[SESSION] = aiohttp.ClientSession()
        yield
        await app[SESSION].close()

    app.cleanup_ctx.append(session)
    return app


SESSION = web.AppKey("session", aiohttp.ClientSession)


@contextlib.asynccontextmanager
async def live_hub(folder: Path) -> AsyncIterator[LiveHub]:
    """The hub, both agents and the proxy, until the caller leaves."""
    api_port, grpc_port = free_port(), free_port()
    (folder / "hub.yaml").write_text(
        yaml.safe_dump(
            {
                "api_token": API_TOKEN, "api_port": api_port, "grpc_port": grpc_port,
                "store_path": str(folder / "store.db"), "log_format": "text",
                "agents": [{"id": "farm-gw", "token": AGENT_TOKEN},
                           {"id": "depot-gw", "token": AGENT_TOKEN}],
                "planner": planner_section(),
            }
        )
    )  # fmt: skip
    (folder / "token").write_text(AGENT_TOKEN + "\n")
    async with SimulatedSite(SITE, opcua_cache=folder / "address-space") as site:
        farm = site.site_file(site_id=SITE_ID)
        farm["site"]["name"] = "The farm"
        farm["control"] = {"enable_control": True, "dry_run": False, "lease_ttl": 120}
        depot = {
            "site": {"id": SECOND_SITE, "name": "The depot"},
            "devices": [
                {"id": "depot-bess", "name": "Depot battery", "kind": "sim_bess",
                 "battery": {"max_charge_w": 5000, "max_discharge_w": 5000,
                             "capacity_wh": 10000}},
            ],
            "control": {"enable_control": False},
        }  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_EMS_")}
        commands = {
            "hub": ("-m", "edge_ems.hub", "--config", str(folder / "hub.yaml")),
            "farm-gw": ("-m", "edge_ems.cli", "agent", "--site",
                        str(_agent_file(folder, "farm-gw", farm, grpc_port))),
            "depot-gw": ("-m", "edge_ems.cli", "agent", "--site",
                         str(_agent_file(folder, "depot-gw", depot, grpc_port))),
        }  # fmt: skip
        processes: dict[str, asyncio.subprocess.Process] = {}
        runner: web.AppRunner | None = None
        try:
            for name, args in commands.items():
                with (folder / f"{name}.log").open("ab") as log:
                    processes[name] = await asyncio.create_subprocess_exec(
                        sys.executable, *args, stdout=asyncio.subprocess.DEVNULL, stderr=log,
                        env=env,
                    )  # fmt: skip
            url = f"http://127.0.0.1:{api_port}"
            runner = web.AppRunner(ingress_proxy(url, INGRESS_PREFIX))
            await runner.setup()
            proxy_port = free_port()
            await web.TCPSite(runner, "127.0.0.1", proxy_port).start()
            hub = LiveHub(url, f"http://127.0.0.1:{proxy_port}{INGRESS_PREFIX}/", site, folder)
            await _every_device_reports(url)
            yield hub
        finally:
            if runner is not None:
                await runner.cleanup()
            for name in ("farm-gw", "depot-gw", "hub"):
                process = processes.get(name)
                if process is None or process.returncode is not None:
                    continue
                process.send_signal(signal.SIGTERM)
                try:
                    async with asyncio.timeout(30):
                        await process.wait()
                except TimeoutError:
                    process.kill()
                    await process.wait()


async def _every_device_reports(url: str) -> None:
    """Until the hub has a value from every device of both sites."""
    async with aiohttp.ClientSession(headers=AUTH) as http:

        async def reporting() -> bool:
            try:
                async with http.get(url + "/devices") as response:
                    if response.status != 200:
                        return False
                    devices = (await response.json())["devices"]
            except aiohttp.ClientConnectionError:
                return False
            return len(devices) >= 8 and all(d["last_sample_ms"] for d in devices)

        await until(reporting)
