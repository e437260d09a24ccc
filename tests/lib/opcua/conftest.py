"""Fixtures for the OPC UA tests: certificates made here, and the simulated BESS server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from edge_ems.sim.opcua_server import APPLICATION_URI, OpcUaBessSimulator

from ..bms.support import allow_loopback_sockets, free_port
from .pki import CLIENT_URI, KeyPair, make_key_pair


@pytest.fixture(scope="session")
def server_keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    folder = tmp_path_factory.mktemp("server-pki")
    return make_key_pair(folder, "server", APPLICATION_URI, ExtendedKeyUsageOID.SERVER_AUTH)


@pytest.fixture(scope="session")
def client_keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    folder = tmp_path_factory.mktemp("client-pki")
    return make_key_pair(folder, "client", CLIENT_URI, ExtendedKeyUsageOID.CLIENT_AUTH)


@pytest.fixture(autouse=True)
def _loopback_sockets() -> None:
    allow_loopback_sockets()


@pytest.fixture(scope="session")
def address_space(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the simulators keep OPC UA's standard address space, built once per session."""
    return tmp_path_factory.mktemp("opcua") / "address-space"


@pytest.fixture
def simulator(address_space: Path) -> Callable[..., OpcUaBessSimulator]:
    """Make a simulated BESS on a free port; options go to :class:`OpcUaBessSimulator`."""

    def make(**options: Any) -> OpcUaBessSimulator:
        return OpcUaBessSimulator(
            port=free_port(), interval=0.1, address_space_cache=address_space, **options
        )

    return make


@pytest.fixture
async def bess(
    simulator: Callable[..., OpcUaBessSimulator],
) -> AsyncIterator[OpcUaBessSimulator]:
    """The simulated BESS, plain (no security, anonymous), running."""
    async with simulator() as running:
        yield running
