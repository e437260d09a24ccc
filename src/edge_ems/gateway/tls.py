"""TLS and mutual TLS for the gateway link, from PEM files or bytes.

Reading the files is blocking: build these before the event loop runs, or in an executor.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from ..exceptions import ConfigError


def _read(path: str | Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read the {what} {path}: {err.strerror or err}") from err


@dataclass(frozen=True, slots=True)
class ServerTls:
    """The hub's certificate; with ``client_ca`` every agent must present a certificate it
    signed (mutual TLS)."""

    certificate_chain: bytes
    private_key: bytes
    client_ca: bytes | None = None

    @classmethod
    def from_files(
        cls, certificate: str | Path, key: str | Path, client_ca: str | Path | None = None
    ) -> ServerTls:
        """Load PEM files."""
        return cls(
            _read(certificate, "server certificate"),
            _read(key, "server key"),
            None if client_ca is None else _read(client_ca, "client CA"),
        )

    def credentials(self) -> grpc.ServerCredentials:
        """gRPC server credentials."""
        return grpc.ssl_server_credentials(
            [(self.private_key, self.certificate_chain)],
            root_certificates=self.client_ca,
            require_client_auth=self.client_ca is not None,
        )


@dataclass(frozen=True, slots=True)
class ClientTls:
    """How an agent checks the hub (``ca``; the system's roots when ``None``) and, for
    mutual TLS, the agent's own certificate and key."""

    ca: bytes | None = None
    certificate_chain: bytes | None = None
    private_key: bytes | None = None

    def __post_init__(self) -> None:
        if (self.certificate_chain is None) != (self.private_key is None):
            raise ConfigError("a client certificate needs its key, and a key its certificate")

    @classmethod
    def from_files(
        cls,
        ca: str | Path | None = None,
        certificate: str | Path | None = None,
        key: str | Path | None = None,
    ) -> ClientTls:
        """Load PEM files."""
        return cls(
            None if ca is None else _read(ca, "hub CA"),
            None if certificate is None else _read(certificate, "client certificate"),
            None if key is None else _read(key, "client key"),
        )

    def credentials(self) -> grpc.ChannelCredentials:
        """gRPC channel credentials."""
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca,
            private_key=self.private_key,
            certificate_chain=self.certificate_chain,
        )
