"""A live hub API on loopback: a SQLite minute store, the gRPC gateway, the REST API, and
agents with simulated batteries (the gateway tests' fixtures) connecting to it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge_ems.hub.api import ApiServer, ApiSettings, AuditTrail, HubServices, create_app
from edge_ems.hub.gateway import GatewayServer, GatewaySettings
from edge_ems.hub.sessions import InventoryAsset
from edge_ems.hub.store import MinuteStore, open_store
from edge_ems.pointmap import load_catalog

from ..gateway.conftest import TOKEN as AGENT_TOKEN
from ..gateway.conftest import (  # noqa: F401 - fixtures used by the tests here
    batteries,
    buffer_dir,
    proxy_factory,
    site_factory,
)

API_TOKEN = "api-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
INVENTORY = (
    InventoryAsset("bess-1", "farm", name="Barn battery", site_name="The farm", type="battery"),
    InventoryAsset("spare", "depot", name="Spare battery", site_name="Depot", type="battery"),
)


@dataclass
class LiveHub:
    """A running hub's parts and an HTTP session to its API."""

    store: MinuteStore
    gateway: GatewayServer
    audit: AuditTrail
    api: ApiServer
    http: aiohttp.ClientSession
    grpc_port: int
    api_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    async def get(self, path: str, *, auth: bool = True, **params: Any) -> aiohttp.ClientResponse:
        headers = AUTH if auth else {}
        async with self.http.get(self.url + path, headers=headers, params=params) as response:
            await response.read()
            return response

    async def json(self, path: str, **params: Any) -> Any:
        response = await self.get(path, **params)
        assert response.status == 200, await response.text()
        return await response.json()

    async def post(self, path: str, body: Any, **kwargs: Any) -> aiohttp.ClientResponse:
        headers = kwargs.pop("headers", AUTH)
        url = self.url + path
        async with self.http.post(url, json=body, headers=headers, **kwargs) as response:
            await response.read()
            return response


HubMaker = Callable[..., Awaitable[LiveHub]]


@pytest.fixture
async def hub_maker(tmp_path: Path) -> AsyncIterator[HubMaker]:
    started: list[LiveHub] = []

    async def make(
        *,
        rate_limit: float = 1000.0,
        rate_burst: int = 1000,
        max_body_bytes: int = 4096,
        setpoint_timeout: float = 10.0,
        trust_ingress: bool = False,
        max_points: int = 200_000,
        max_sub_agents: int = 64,
        heartbeat_interval: int = 30,
    ) -> LiveHub:
        store = open_store(tmp_path / f"store-{len(started)}.db")
        await store.open()
        audit = AuditTrail(store.backend)
        audit.start()
        gateway = GatewayServer(
            store,
            {f"agent-{i}": AGENT_TOKEN for i in range(1, 4)},
            inventory=INVENTORY,
            settings=GatewaySettings(
                setpoint_timeout=setpoint_timeout,
                max_sub_agents=max_sub_agents,
                heartbeat_interval=heartbeat_interval,
            ),
            on_audit=audit.report,
            claims=store.backend,
        )
        grpc_port = await gateway.start("127.0.0.1:0")
        services = HubServices(
            gateway, store, audit, grpc_port, registermaps=list(load_catalog().values())
        )
        settings = ApiSettings(
            API_TOKEN,
            trust_ingress=trust_ingress,
            rate_limit=rate_limit,
            rate_burst=rate_burst,
            max_body_bytes=max_body_bytes,
            max_points=max_points,
        )
        api = ApiServer(create_app(services, settings))
        api_port = await api.start("127.0.0.1", 0)
        hub = LiveHub(store, gateway, audit, api, aiohttp.ClientSession(), grpc_port, api_port)
        started.append(hub)
        return hub

    yield make
    for hub in started:
        await hub.http.close()
        await hub.api.stop()
        await hub.gateway.stop()
        await hub.audit.stop()
        await hub.store.close()


@pytest.fixture
async def live(hub_maker: HubMaker) -> LiveHub:
    return await hub_maker()


def now_ms() -> int:
    return round(time.time() * 1000)
