"""The gateway's TLS in the hub: a certificate of its own (made once, kept, shown by its
fingerprint), a configured one, and the internal plaintext port beside it."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge_ems.gateway import ClientTls
from edge_ems.hub.app import Hub
from edge_ems.hub.config import parse_config
from edge_ems.hub.tls import CERTIFICATE, KEY, fingerprint, self_signed

from .gateway.conftest import SiteFactory, buffer_dir, site_factory

__all__ = ["buffer_dir", "site_factory"]  # the fixtures, imported for the tests below

TOKEN = "tls-api-token-0123456789"
AGENT_TOKEN = "tls-agent-token-0123456789"


def test_the_certificate_is_made_once_and_made_again_for_other_names(tmp_path: Path) -> None:
    first = self_signed(tmp_path, ["hub.example"])
    assert first.self_signed
    assert {"localhost", "127.0.0.1", "homeassistant.local", "hub.example"} <= set(first.names)
    assert (tmp_path / KEY).stat().st_mode & 0o077 == 0  # the hub's alone
    assert first.fingerprint == fingerprint((tmp_path / CERTIFICATE).read_bytes())
    assert self_signed(tmp_path, [" HUB.example "]).fingerprint == first.fingerprint
    other = self_signed(tmp_path, ["hub.example", "fd00:0::0001"])
    assert other.fingerprint != first.fingerprint
    assert "fd00::1" in other.names
    assert self_signed(tmp_path, ["hub.example", "fd00::1"]).fingerprint == other.fingerprint
    late = dt.datetime.now(dt.UTC) + dt.timedelta(days=3650 - 10)  # ten days before it ends
    renewed = self_signed(tmp_path, ["hub.example", "fd00::1"], now=late)
    assert renewed.fingerprint != other.fingerprint


@pytest.fixture
async def tls_hub(tmp_path: Path) -> AsyncIterator[Hub]:
    config = parse_config(
        {
            "api_token": TOKEN,
            "api_port": 0,
            "grpc_port": 0,
            "grpc_internal_port": 0,
            "store_path": str(tmp_path / "store.db"),
            "tls_self_signed_dir": str(tmp_path / "tls"),
            "tls_certificate_copy": str(tmp_path / "share" / "gateway.crt"),
            "agents": [{"id": f"agent-{n}", "token": AGENT_TOKEN} for n in (1, 2, 3)],
        }
    )
    hub = Hub(config)
    await hub.start()
    yield hub
    await hub.stop()


async def test_agents_trust_the_hub_s_own_certificate_and_ha_uses_the_internal_port(
    tls_hub: Hub, site_factory: SiteFactory, tmp_path: Path
) -> None:
    assert tls_hub.gateway is not None
    copy = (tmp_path / "share" / "gateway.crt").read_bytes()
    trusted = ClientTls(copy)
    remote = f"127.0.0.1:{tls_hub.grpc_port}"
    await site_factory(remote, agent_id="agent-1", token=AGENT_TOKEN, tls=trusted)
    await site_factory(f"localhost:{tls_hub.grpc_port}", agent_id="agent-2/x", token=AGENT_TOKEN,
                       site_id="lab", devices={}, tls=trusted)  # fmt: skip
    internal = f"127.0.0.1:{tls_hub.gateway.internal_port}"
    await site_factory(internal, agent_id="agent-3", token=AGENT_TOKEN, site_id="barn", devices={})
    plaintext = await site_factory(
        remote, agent_id="agent-3/plain", token=AGENT_TOKEN, site_id="x", devices={}, connect=False
    )
    await asyncio.sleep(1.0)  # it tries, and retries, in plaintext against TLS
    assert sorted(tls_hub.gateway.connected_agents()) == ["agent-1", "agent-2/x", "agent-3"]
    assert plaintext.agent.stats().sessions == 0
    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = f"http://127.0.0.1:{tls_hub.api_port}/health"
    async with aiohttp.ClientSession(headers=headers) as http, http.get(url) as response:
        health: dict[str, Any] = await response.json()
    gateway = health["gateway"]
    assert gateway["internal_port"] == tls_hub.gateway.internal_port
    assert gateway["tls"]["self_signed"] is True
    assert gateway["tls"]["fingerprint_sha256"] == fingerprint(copy)
