"""Fixtures for the OPC UA tests: certificates made here, and the simulated BESS server."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from asyncua.crypto import cert_gen
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from edge_ems.sim.opcua_server import APPLICATION_URI, OpcUaBessSimulator

from ..bms.support import allow_loopback_sockets, free_port

CLIENT_URI = "urn:edge-ems:test:client"


@dataclass(frozen=True)
class KeyPair:
    certificate: Path
    private_key: Path


def make_key_pair(folder: Path, name: str, uri: str, usage: x509.ObjectIdentifier) -> KeyPair:
    """A self-signed application instance certificate (DER) and its key (PEM)."""
    key = cert_gen.generate_private_key()
    host = socket.gethostname()
    certificate = cert_gen.generate_self_signed_app_certificate(
        key, uri, {}, [x509.UniformResourceIdentifier(uri), x509.DNSName(host)], [usage]
    )
    pair = KeyPair(folder / f"{name}.der", folder / f"{name}.pem")
    pair.certificate.write_bytes(certificate.public_bytes(Encoding.DER))
    pair.private_key.write_bytes(cert_gen.dump_private_key_as_pem(key))
    return pair


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
