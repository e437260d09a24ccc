"""The gateway's own certificate, for a hub that has none from a CA (the app by default).

The hub makes a self-signed certificate once and keeps it (and its key, readable by the hub
alone) in a directory; agents trust exactly that certificate (``edge-ems agent --tls-ca
gateway.crt``), or check its SHA-256 fingerprint, which the hub logs and shows in
``/health``. It names ``localhost``, ``homeassistant``, ``homeassistant.local``, the
loopback addresses and whatever else agents dial (``tls_names``); when that list changes,
or the certificate nears its end, a new one is made (and its new fingerprint logged).
Reading and writing files is blocking: call these from a thread or before the loop runs.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..exceptions import ConfigError
from ..gateway.tls import ServerTls

CERTIFICATE = "gateway.crt"
KEY = "gateway.key"
USUAL_NAMES = ("localhost", "homeassistant", "homeassistant.local", "127.0.0.1", "::1")
VALID_DAYS = 3650
RENEW_DAYS = 30


@dataclass(frozen=True, slots=True)
class GatewayCertificate:
    """The certificate the gateway serves, as ``/health`` shows it."""

    tls: ServerTls
    fingerprint: str
    """SHA-256 of the certificate (DER), as colon-separated hex pairs."""
    self_signed: bool
    names: tuple[str, ...]
    not_after: str
    """ISO 8601, UTC."""


def fingerprint(certificate_pem: bytes) -> str:
    """The SHA-256 fingerprint of a PEM certificate, ``AB:CD:...``."""
    certificate = x509.load_pem_x509_certificate(certificate_pem)
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def describe(tls: ServerTls, *, self_signed: bool = False) -> GatewayCertificate:
    """What ``/health`` and the log say about a certificate the gateway serves."""
    try:
        certificate = x509.load_pem_x509_certificates(tls.certificate_chain)[0]
    except ValueError as err:
        raise ConfigError(f"the gateway's certificate is not PEM: {err}") from None
    return GatewayCertificate(
        tls=tls,
        fingerprint=certificate.fingerprint(hashes.SHA256()).hex(":").upper(),
        self_signed=self_signed,
        names=_names(certificate),
        not_after=certificate.not_valid_after_utc.isoformat(),
    )


def self_signed(
    directory: str | Path,
    names: Iterable[str] = (),
    *,
    client_ca: bytes | None = None,
    now: dt.datetime | None = None,
) -> GatewayCertificate:
    """The certificate kept in ``directory``, made (again) when missing, for other names,
    or due to end within :data:`RENEW_DAYS`."""
    folder = Path(directory)
    wanted = tuple(dict.fromkeys(_normal(name) for name in [*USUAL_NAMES, *names]))
    moment = now or dt.datetime.now(dt.UTC)
    try:
        kept = _load(folder, client_ca)
        if kept is not None and _fits(kept, wanted, moment):
            return kept
        return _make(folder, wanted, moment, client_ca)
    except OSError as err:
        raise ConfigError(f"cannot keep the gateway's certificate in {folder}: {err}") from None


def _load(folder: Path, client_ca: bytes | None) -> GatewayCertificate | None:
    certificate, key = folder / CERTIFICATE, folder / KEY
    if not certificate.exists() or not key.exists():
        return None
    try:
        return describe(
            ServerTls(certificate.read_bytes(), key.read_bytes(), client_ca), self_signed=True
        )
    except ConfigError:
        return None  # damaged: make a new one


def _fits(kept: GatewayCertificate, names: tuple[str, ...], now: dt.datetime) -> bool:
    ends = dt.datetime.fromisoformat(kept.not_after)
    return set(kept.names) == set(names) and ends - now > dt.timedelta(days=RENEW_DAYS)


def _make(
    folder: Path, names: tuple[str, ...], now: dt.datetime, client_ca: bytes | None
) -> GatewayCertificate:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Edge EMS hub gateway")])
    alternative: list[x509.GeneralName] = []
    for name in names:
        try:
            alternative.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternative.append(x509.DNSName(name))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        # Its own trust anchor: agents put this very certificate where a CA would go.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alternative), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write(folder / KEY, key_pem, 0o600)
    certificate_pem = certificate.public_bytes(serialization.Encoding.PEM)
    _write(folder / CERTIFICATE, certificate_pem, 0o644)
    return describe(ServerTls(certificate_pem, key_pem, client_ca), self_signed=True)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` whole or not at all, with ``mode`` from the start."""
    temporary = path.with_name(path.name + ".new")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(path)


def _normal(name: str) -> str:
    """A name as the certificate gives it back (addresses in their short form)."""
    text = name.strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text.lower()


def _names(certificate: x509.Certificate) -> tuple[str, ...]:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    names = extension.value
    return tuple(
        [str(name) for name in names.get_values_for_type(x509.DNSName)]
        + [str(address) for address in names.get_values_for_type(x509.IPAddress)]
    )
