"""Certificates for the OPC UA tests, made on the spot: self-signed, as OPC UA wants them."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from asyncua.crypto import cert_gen
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

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
