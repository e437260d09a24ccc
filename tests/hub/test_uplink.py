"""The uplink against a real aiohttp receiver on loopback: an endpoint that refuses for a
simulated hour and then flaps (errors, answers lost after the batch was kept); afterwards
every window has arrived once, resends deduplicated by their idempotency key."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ipaddress
import json
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge_ems.exceptions import ConfigError
from edge_ems.hub.store import MinuteStore, StoreSettings, open_store
from edge_ems.hub.uplink import (
    WINDOW_MS,
    Uplink,
    UplinkError,
    UplinkSettings,
    idempotency_key,
)

from .store.conftest import MINUTE, T0, YEAR_S, Clock, batch

TOKEN = "uplink-token"
WAIT = 60.0
FLAPS = ["error", "accept", "lose_answer", "error", "lose_answer", "accept"]


async def eventually(condition: Callable[[], bool], within: float = WAIT) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - the uplink task changes what is polled
            await asyncio.sleep(0.01)


@dataclass
class Receiver:
    """The upstream endpoint: keeps each batch once by its key."""

    mode: str = "refuse"
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    posts: int = 0
    duplicates: int = 0
    url: str = ""
    _flap: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.posts += 1
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.Response(status=401)
        mode = self.mode
        if mode == "flap":
            mode = FLAPS[self._flap % len(FLAPS)]
            self._flap += 1
        if mode in {"refuse", "error"}:
            return web.Response(status=503)
        if mode == "reject":
            return web.Response(status=400)
        assert request.headers["Content-Encoding"] == "gzip"
        body = await request.read()  # aiohttp inflates gzip bodies itself
        if body[:2] == b"\x1f\x8b":
            body = gzip.decompress(body)
        assert int(request.headers["Content-Length"]) < len(body)  # compressed on the wire
        document = json.loads(body)
        key = request.headers["Idempotency-Key"]
        if key in self.batches:
            self.duplicates += 1
        else:
            self.batches[key] = document
        if mode == "lose_answer":  # kept, but the answer never reaches the hub
            assert request.transport is not None
            request.transport.close()
        return web.Response(status=201)


async def serve(receiver: Receiver, ssl_context: ssl.SSLContext | None = None) -> web.AppRunner:
    app = web.Application()
    app.router.add_post("/ingest", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    receiver.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}/ingest"
    return runner


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    runner = await serve(found)
    yield found
    await runner.cleanup()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(tmp_path: Path, clock: Clock) -> AsyncIterator[MinuteStore]:
    settings = StoreSettings(max_future=YEAR_S)  # the feed runs an hour ahead of the clock
    async with open_store(tmp_path / "store.db", settings, clock=clock) as opened:
        yield opened


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


class Feed:
    """An agent's samples, one per 15 s for two series, an hour at a time."""

    def __init__(self, store: MinuteStore, clock: Clock) -> None:
        self.store, self.clock = store, clock
        self.seq = 0
        self.samples = 0
        self.minute = 0

    async def hour(self) -> None:
        for _ in range(60):
            start = T0 + self.minute * MINUTE
            self.seq += 1
            series = {
                ("bess-1", metric): [(start + s * 15_000, float(s)) for s in range(4)]
                for metric in ("ac_power_w", "soc_pct")
            }
            await self.store.accept(batch(self.seq, series))
            self.samples += 8
            self.minute += 1
        self.clock.at(T0 + self.minute * MINUTE + 11_000)
        await self.store.flush()


def settings(url: str, **options: Any) -> UplinkSettings:
    return UplinkSettings(
        url,
        token=TOKEN,
        hub_id="hub-1",
        interval=0.05,
        backoff_base=0.01,
        backoff_cap=0.05,
        **options,
    )


async def test_every_window_arrives_once_after_an_hour_refused_and_a_flapping_endpoint(
    store: MinuteStore, clock: Clock, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    feed = Feed(store, clock)
    await feed.hour()
    uplink = Uplink(store, settings(receiver.url), session, clock=clock)
    task = asyncio.get_running_loop().create_task(uplink.run())
    try:
        await eventually(lambda: uplink.status().failed_attempts >= 5)
        await feed.hour()  # the refused hour goes on: a second hour of windows queues up
        await eventually(lambda: uplink.status().queued_batches == 24)
        assert receiver.batches == {}
        receiver.mode = "flap"
        await eventually(
            lambda: uplink.status().queued_batches == 0 and len(receiver.batches) == 24
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    windows = [T0 + n * WINDOW_MS for n in range(24)]
    assert set(receiver.batches) == {idempotency_key("hub-1", w) for w in windows}
    assert receiver.duplicates >= 1  # answers were lost: resent, and kept once
    stored = sum(
        point[5]
        for document in receiver.batches.values()
        for series in document["series"]
        for point in series["points"]
    )
    assert stored == feed.samples
    first = receiver.batches[idempotency_key("hub-1", T0)]
    assert (first["window_start_ms"], first["window_end_ms"]) == (T0, T0 + WINDOW_MS)
    assert [s["metric"] for s in first["series"]] == ["ac_power_w", "soc_pct"]
    assert first["series"][0]["points"][0] == [T0, 1.5, 0.0, 3.0, 3.0, 4]
    status = uplink.status()
    assert status.sent_batches >= 24
    assert status.next_window_ms == T0 + 24 * WINDOW_MS
    assert status.dropped_batches == 0


async def test_windows_are_queued_once_even_when_the_uplink_restarts(
    store: MinuteStore, clock: Clock, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    await Feed(store, clock).hour()
    assert await Uplink(store, settings(receiver.url), session).enqueue_closed() == 12
    again = Uplink(store, settings(receiver.url), session)
    assert await again.enqueue_closed() == 0
    assert again.status().queued_batches == 12


async def test_late_samples_send_their_window_again_as_a_new_revision(
    store: MinuteStore, clock: Clock, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    feed = Feed(store, clock)
    await feed.hour()
    receiver.mode = "accept"
    uplink = Uplink(store, settings(receiver.url), session)
    await uplink.enqueue_closed()
    assert await uplink.deliver() == 12
    # An agent that was offline sends a sample for minute 6: window 1 was sent already.
    late = batch(feed.seq + 1, {("bess-1", "ac_power_w"): [(T0 + 6 * MINUTE + 1, 100.0)]})
    await store.accept(late)
    await store.flush()
    assert await uplink.enqueue_closed() == 1
    assert await uplink.enqueue_closed() == 0  # once
    assert await uplink.deliver() == 1
    revised = [doc for doc in receiver.batches.values() if doc["revision"] > 0]
    assert [doc["window_start_ms"] for doc in revised] == [T0 + WINDOW_MS]
    [power] = [s for s in revised[0]["series"] if s["metric"] == "ac_power_w"]
    assert sum(point[5] for point in power["points"]) == 5 * 4 + 1
    assert len(receiver.batches) == 13


async def test_the_disk_budget_drops_the_oldest_batches_and_counts_them(
    store: MinuteStore, clock: Clock, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    await Feed(store, clock).hour()
    probe = Uplink(store, settings(receiver.url), session)
    await probe.enqueue_closed()
    size = (await store.backend.outbox_head(1))[0].body
    # Start over with a budget of about three batches.
    for queued in await store.backend.outbox_head(100):
        await store.backend.outbox_remove(queued.key)
    await store.backend.set_mark("uplink_next_window", T0)
    small = Uplink(store, settings(receiver.url, budget_bytes=len(size) * 3 + 10), session)
    await small.enqueue_closed()
    status = small.status()
    assert status.queued_batches == 3
    assert status.dropped_batches == 9
    head = await store.backend.outbox_head(10)
    assert [b.window_start_ms for b in head] == [T0 + n * WINDOW_MS for n in (9, 10, 11)]


async def test_a_batch_refused_for_good_is_dropped_not_retried_forever(
    store: MinuteStore, clock: Clock, receiver: Receiver, session: aiohttp.ClientSession
) -> None:
    await Feed(store, clock).hour()
    receiver.mode = "reject"
    uplink = Uplink(store, settings(receiver.url), session)
    await uplink.enqueue_closed()
    assert await uplink.deliver() == 12
    assert (uplink.status().rejected_batches, uplink.status().queued_batches) == (12, 0)


def write_certificates(directory: Path) -> None:
    """A CA (``ca.pem``) and a server certificate for 127.0.0.1 it signed, with the key
    identifiers Python's strict default verification asks for."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, server_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "uplink test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    (directory / "server.pem").write_bytes(server.public_bytes(pem))
    (directory / "server.key").write_bytes(
        server_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


async def test_tls_is_verified(
    store: MinuteStore, clock: Clock, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    write_certificates(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    receiver = Receiver(mode="accept")
    runner = await serve(receiver, context)
    try:
        await Feed(store, clock).hour()
        untrusting = Uplink(store, settings(receiver.url), session)
        await untrusting.enqueue_closed()
        with pytest.raises(UplinkError, match="certificate"):
            await untrusting.deliver()
        assert receiver.batches == {}
        trusting = Uplink(store, settings(receiver.url, ca_file=str(tmp_path / "ca.pem")), session)
        assert await trusting.deliver() == 12
        assert len(receiver.batches) == 12
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("url", "options"),
    [
        ("ftp://example.com/x", {}),
        ("not a url", {}),
        ("https://example.com/x", {"interval": 0}),
        ("https://example.com/x", {"budget_bytes": -1}),
    ],
)
def test_bad_settings_are_a_config_error(url: str, options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        UplinkSettings(url, **options)
