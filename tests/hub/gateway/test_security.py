"""What the gateway refuses, and that refusing one stream leaves the others alone: tokens,
malformed and oversized messages, protocol order, TLS and mutual TLS, a second stream of
the same agent, silent agents."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator

import grpc
import pytest

from edge_ems.exceptions import ConfigError
from edge_ems.gateway import ClientTls, GatewayError, ServerTls
from edge_ems.gateway.proto import gateway_pb2 as pb
from edge_ems.gateway.transport import (
    AGENT_PING_INTERVAL_S,
    HUB_MIN_PING_INTERVAL_S,
    HUB_STREAM_WINDOW_BYTES,
    SERVICE_METHOD,
    auth_metadata,
    client_options,
    server_options,
)
from edge_ems.hub.gateway import GatewayServer, GatewaySettings
from edge_ems.hub.logs import RefusalLog
from edge_ems.hub.sessions import InventoryAsset
from edge_ems.readings import Reading

from .certs import Authority
from .conftest import TOKEN, Hub, HubFactory, MemorySink, SiteFactory, eventually


class RawAgent:
    """A hand-driven client of the gateway: sends whatever bytes a test wants."""

    def __init__(self, address: str, agent_id: str = "agent-5", token: str = TOKEN) -> None:
        self.channel = grpc.aio.insecure_channel(address, options=client_options())
        connect = self.channel.stream_stream(
            SERVICE_METHOD,
            request_serializer=lambda raw: raw,
            response_deserializer=pb.HubMessage.FromString,
        )
        self.call = connect(metadata=auth_metadata(agent_id, token))

    async def send(self, message: pb.AgentMessage | bytes) -> None:
        await self.call.write(
            message if isinstance(message, bytes) else message.SerializeToString()
        )

    async def register(
        self, agent_id: str = "agent-5", assets: tuple[str, ...] = ("a",), site_id: str = "lab"
    ) -> pb.HubMessage:
        register = pb.Register(
            agent_id=agent_id, site_id=site_id, assets=[pb.Asset(asset_id=a) for a in assets]
        )
        await self.send(pb.AgentMessage(register=register))
        return await self.read()

    async def offer(self, message: pb.AgentMessage) -> None:
        """Send, where the hub may already have ended the stream (``status`` tells why)."""
        with contextlib.suppress(grpc.aio.AioRpcError):
            await self.send(message)

    async def read(self) -> pb.HubMessage:
        message = await self.call.read()
        assert isinstance(message, pb.HubMessage)
        return message

    async def status(self) -> tuple[grpc.StatusCode, str]:
        """Read until the hub ends the stream; its status."""
        try:
            while isinstance(await self.call.read(), pb.HubMessage):
                pass
        except grpc.aio.AioRpcError as err:
            return err.code(), err.details() or ""
        return await self.call.code(), await self.call.details()

    async def close(self) -> None:
        await self.channel.close(None)


@pytest.fixture
async def raw(hub: Hub) -> AsyncIterator[list[RawAgent]]:
    clients: list[RawAgent] = []
    yield clients
    for client in clients:
        await client.close()


def reading(second: int) -> dict[str, dict[str, Reading]]:
    return {"bess-1": {"soc_pct": Reading("soc_pct", 50.0, 1_700_000_000 + second)}}


async def assert_carries_on(hub: Hub, site_factory: SiteFactory) -> None:
    """A well-behaved agent still connects and gets its telemetry through."""
    site = await site_factory(hub.address, agent_id="agent-2", flush_interval=3600)
    site.agent.publish(reading(1))
    await site.agent.flush()
    await eventually(lambda: site.agent.stats().durable_seq == 1)


@pytest.mark.parametrize(
    ("agent_id", "token"), [("agent-1", "wrong"), ("stranger", TOKEN), ("", TOKEN), ("agent-1", "")]
)
async def test_bad_credentials_are_refused(
    hub: Hub, raw: list[RawAgent], site_factory: SiteFactory, agent_id: str, token: str
) -> None:
    client = RawAgent(hub.address, agent_id, token)
    raw.append(client)
    await client.offer(pb.AgentMessage(register=pb.Register(agent_id=agent_id, site_id="lab")))
    code, details = await client.status()
    assert code is grpc.StatusCode.UNAUTHENTICATED
    assert "wrong token" in details
    await assert_carries_on(hub, site_factory)
    assert hub.server.connected_agents() == ["agent-2"]


async def test_an_agent_with_a_wrong_token_never_connects(
    hub: Hub, site_factory: SiteFactory
) -> None:
    refused = await site_factory(hub.address, agent_id="agent-1", token="wrong", connect=False)
    await assert_carries_on(hub, site_factory)
    assert not refused.agent.connected
    assert refused.agent.stats().sessions == 0


async def test_a_sub_agent_shows_its_owners_token(hub: Hub, site_factory: SiteFactory) -> None:
    """One Home Assistant, several sites: each site's agent is ``<agent>/<site>``."""
    site = await site_factory(hub.address, agent_id="agent-1/home", flush_interval=3600)
    site.agent.publish(reading(1))
    await site.agent.flush()
    await eventually(lambda: site.agent.stats().durable_seq == 1)
    assert hub.server.connected_agents() == ["agent-1/home"]


@pytest.mark.parametrize("agent_id", ["agent-1/", "/agent-1", "stranger/home"])
async def test_a_sub_agent_needs_a_named_owner(
    hub: Hub, raw: list[RawAgent], agent_id: str
) -> None:
    client = RawAgent(hub.address, agent_id)
    raw.append(client)
    await client.offer(pb.AgentMessage(register=pb.Register(agent_id=agent_id, site_id="lab")))
    code, _ = await client.status()
    assert code is grpc.StatusCode.UNAUTHENTICATED


async def test_a_token_cannot_register_another_agent(hub: Hub, raw: list[RawAgent]) -> None:
    client = RawAgent(hub.address, "agent-1")
    raw.append(client)
    await client.offer(pb.AgentMessage(register=pb.Register(agent_id="agent-2", site_id="lab")))
    code, details = await client.status()
    assert code is grpc.StatusCode.PERMISSION_DENIED
    assert "agent-1" in details


@pytest.mark.parametrize(
    ("first", "second", "detail"),
    [
        (b"\xff\xff\xff\xff", None, "DecodeError"),
        (pb.AgentMessage(heartbeat=pb.Heartbeat()), None, "must be Register"),
        (pb.AgentMessage(register=pb.Register(agent_id="agent-5")), None, "site id"),
        (
            None,
            pb.AgentMessage(register=pb.Register(agent_id="agent-5", site_id="x")),
            "only the first",
        ),
        (None, pb.AgentMessage(), "empty message"),
        (None, b"\x12\x05\x08", "DecodeError"),
        (
            None,
            pb.AgentMessage(
                telemetry=pb.Telemetry(
                    seq=1, series=[pb.Series(asset_id="a", metric="soc_pct", values=[1.0])]
                )
            ),
            "1 values",
        ),
        (
            None,
            pb.AgentMessage(audit=pb.AuditRecord(id="x", site_id="lab", outcome="boom")),
            "boom",
        ),
    ],
)
async def test_malformed_messages_end_only_their_stream(
    hub: Hub,
    raw: list[RawAgent],
    site_factory: SiteFactory,
    first: pb.AgentMessage | bytes | None,
    second: pb.AgentMessage | bytes | None,
    detail: str,
) -> None:
    client = RawAgent(hub.address)
    raw.append(client)
    if first is None:
        assert (await client.register()).WhichOneof("body") == "register_ack"
        assert second is not None
        await client.send(second)
    else:
        await client.send(first)
    code, details = await client.status()
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert detail in details
    await assert_carries_on(hub, site_factory)


async def test_oversized_messages_are_refused(
    hub_factory: HubFactory, site_factory: SiteFactory
) -> None:
    hub = await hub_factory(settings=GatewaySettings(max_message_bytes=64 * 1024))
    client = RawAgent(hub.address)
    try:
        await client.register()
        samples = 20_000
        big = pb.Telemetry(
            seq=1,
            series=[
                pb.Series(
                    asset_id="a",
                    metric="soc_pct",
                    timestamps_ms=range(samples),
                    values=[1.0] * samples,
                )
            ],
        )
        await client.send(pb.AgentMessage(telemetry=big))
        code, _ = await client.status()
        assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert hub.sink.batches == []
        await assert_carries_on(hub, site_factory)
    finally:
        await client.close()


async def test_a_batch_hundreds_of_stream_windows_long_arrives_whole(
    hub: Hub, raw: list[RawAgent]
) -> None:
    # The hub's stream window is small (HUB_STREAM_WINDOW_BYTES): a large message is sent
    # a window at a time, each let through as the hub reads it.
    client = RawAgent(hub.address)
    raw.append(client)
    await client.register()
    samples = 100_000
    series = pb.Series(
        asset_id="a",
        metric="soc_pct",
        timestamps_ms=range(1_700_000_000_000, 1_700_000_000_000 + samples),
        values=[50.0 + n % 7 for n in range(samples)],
    )
    message = pb.AgentMessage(telemetry=pb.Telemetry(seq=1, series=[series]))
    assert message.ByteSize() > 300 * HUB_STREAM_WINDOW_BYTES
    async with asyncio.timeout(30):
        await client.send(message)
    await eventually(lambda: len(hub.sink.samples("agent-5")) == samples)


async def test_samples_of_foreign_assets_and_unknown_metrics_are_dropped(
    hub: Hub, raw: list[RawAgent]
) -> None:
    client = RawAgent(hub.address)
    raw.append(client)
    await client.register(assets=("mine",))
    telemetry = pb.Telemetry(
        seq=1,
        series=[
            pb.Series(asset_id="mine", metric="soc_pct", timestamps_ms=[1], values=[50.0]),
            pb.Series(asset_id="yours", metric="soc_pct", timestamps_ms=[1], values=[50.0]),
            pb.Series(asset_id="mine", metric="made_up_w", timestamps_ms=[1], values=[50.0]),
        ],
        texts=[pb.TextSample(asset_id="yours", metric="battery_state", value="idle")],
    )
    await client.send(pb.AgentMessage(telemetry=telemetry))
    ack = await client.read()
    assert ack.telemetry_ack.durable_seq == 1
    assert hub.sink.samples("agent-5") == [("mine", "soc_pct", 1, 50.0)]
    assert hub.server.stats().refused_series == 3


async def test_a_second_stream_of_an_agent_replaces_the_first(
    hub: Hub, raw: list[RawAgent], site_factory: SiteFactory
) -> None:
    old = RawAgent(hub.address, "agent-1")
    raw.append(old)
    await old.register("agent-1", assets=("bess-1", "bess-2"))
    site = await site_factory(hub.address, agent_id="agent-1")
    code, details = await old.status()
    assert code is grpc.StatusCode.ABORTED
    assert "replaced" in details
    assert hub.server.connected_agents() == ["agent-1"]
    result = await hub.server.dispatch(100, asset_id="bess-1", issued_by="t")
    assert result.records[0].applied == 100
    sessions = hub.server.registry.agents()[0].sessions
    assert [s.end_reason for s in sessions] == [None, "replaced by a newer stream"]
    assert site.agent.connected


async def test_silent_agents_are_ended(hub_factory: HubFactory) -> None:
    hub = await hub_factory(settings=GatewaySettings(ping_interval=0.05, liveness_timeout=0.3))
    client = RawAgent(hub.address)
    try:
        await client.register()
        # The raw agent reads pings but never answers: the hub gives up on it.
        code, details = await client.status()
        assert code is grpc.StatusCode.UNAVAILABLE
        assert "no message for" in details
        assert hub.server.connected_agents() == []
    finally:
        await client.close()


async def test_answering_pings_keeps_a_session(
    hub_factory: HubFactory, site_factory: SiteFactory
) -> None:
    hub = await hub_factory(settings=GatewaySettings(ping_interval=0.05, liveness_timeout=0.3))
    site = await site_factory(hub.address, flush_interval=3600)
    await eventually(lambda: hub.server.registry.agents()[0].last_seen is not None)
    for _ in range(3):
        first = hub.server.registry.agents()[0].last_seen
        await eventually(lambda: hub.server.registry.agents()[0].last_seen != first)  # noqa: B023
    assert site.agent.stats().sessions == 1
    assert hub.server.connected_agents() == ["agent-1"]


async def test_a_ping_sweep_is_spread_over_the_interval(
    hub_factory: HubFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fleet's pings at once would hold the event loop, and every ack, for a burst.
    monkeypatch.setattr("edge_ems.hub.gateway.PING_SLICE", 1)
    hub = await hub_factory(settings=GatewaySettings(ping_interval=0.9, liveness_timeout=30))
    clients = {f"agent-{n}": RawAgent(hub.address, f"agent-{n}") for n in (1, 2, 3)}
    loop = asyncio.get_running_loop()

    async def first_ping(client: RawAgent) -> float:
        while not (await client.read()).HasField("ping"):
            pass
        return loop.time()

    try:
        # All three register while the first sweep finds nobody; the next one pings them a
        # third of the interval apart.
        for agent_id, client in clients.items():
            await client.register(agent_id, assets=(f"{agent_id}-a",), site_id=agent_id)
        times = await asyncio.gather(*(first_ping(client) for client in clients.values()))
    finally:
        for client in clients.values():
            await client.close()
    assert max(times) - min(times) >= 0.4


def test_keepalive_lets_agents_ping_through_nats() -> None:
    hub = dict(server_options())
    agent = dict(client_options())
    assert 30_000 <= agent["grpc.keepalive_time_ms"] <= 60_000
    assert agent["grpc.keepalive_permit_without_calls"] == 1
    assert agent["grpc.http2.max_pings_without_data"] == 0
    # The hub must accept pings at the agents' rate, or it answers GOAWAY too_many_pings.
    assert hub["grpc.http2.min_ping_interval_without_data_ms"] < agent["grpc.keepalive_time_ms"]
    assert HUB_MIN_PING_INTERVAL_S < AGENT_PING_INTERVAL_S
    assert hub["grpc.keepalive_permit_without_calls"] == 1
    assert hub["grpc.max_receive_message_length"] == agent["grpc.max_send_message_length"]
    # A fleet reconnecting at once is let wait for the hub, not cancelled by gRPC.
    assert hub["grpc.server_max_unrequested_time_in_server"] >= 120
    assert hub["grpc.server.max_pending_requests"] >= 10_000


@pytest.fixture(scope="module")
def authority() -> Authority:
    return Authority()


@pytest.mark.parametrize("mutual", [False, True])
async def test_tls_and_mutual_tls(
    hub_factory: HubFactory, site_factory: SiteFactory, authority: Authority, mutual: bool
) -> None:
    server = authority.issue("hub", server=True)
    tls = ServerTls(server.certificate, server.key, authority.pem if mutual else None)
    hub = await hub_factory(tls=tls)
    client = authority.issue("agent-1", server=False)
    trusted = ClientTls(
        authority.pem,
        client.certificate if mutual else None,
        client.key if mutual else None,
    )
    site = await site_factory(hub.address, tls=trusted, flush_interval=3600)
    site.agent.publish(reading(1))
    await site.agent.flush()
    await eventually(lambda: site.agent.stats().durable_seq == 1)

    plaintext = await site_factory(hub.address, agent_id="agent-2", connect=False)
    strangers = [plaintext]
    if mutual:
        no_certificate = ClientTls(authority.pem)
        strangers.append(
            await site_factory(hub.address, agent_id="agent-3", tls=no_certificate, connect=False)
        )
    other = Authority("Someone else")
    forged = other.issue("agent-4", server=False)
    strangers.append(
        await site_factory(
            hub.address,
            agent_id="agent-4",
            tls=ClientTls(other.pem, forged.certificate, forged.key),
            connect=False,
        )
    )
    await site.agent.flush()
    site.agent.publish(reading(2))
    await site.agent.flush()
    await eventually(lambda: site.agent.stats().durable_seq == 2)
    assert all(not s.agent.connected and s.agent.stats().sessions == 0 for s in strangers)
    assert hub.server.connected_agents() == ["agent-1"]


def test_client_tls_needs_certificate_and_key_together() -> None:
    with pytest.raises(ConfigError):
        ClientTls(b"ca", b"cert", None)


async def test_a_taken_address_is_reported(hub: Hub) -> None:
    with pytest.raises(GatewayError, match="cannot listen"):
        await GatewayServer(MemorySink(), {}).start(hub.address)


async def test_seq_zero_is_invalid_not_a_duplicate(hub: Hub, raw: list[RawAgent]) -> None:
    client = RawAgent(hub.address)
    raw.append(client)
    await client.register(assets=("a",))
    series = pb.Series(asset_id="a", metric="soc_pct", timestamps_ms=[1], values=[50.0])
    await client.send(pb.AgentMessage(telemetry=pb.Telemetry(seq=0, series=[series])))
    async with asyncio.timeout(10):
        code, details = await client.status()
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert "seq starts at 1" in details
    assert hub.server.stats().duplicate_batches == 0


async def test_a_flood_of_bad_streams_is_refused_unauthenticated_and_logged_sparingly(
    hub: Hub, site_factory: SiteFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Each stream writes as fast as it can (Register, then telemetry) while it is refused:
    every one must end UNAUTHENTICATED, never INTERNAL, and the log must not flood."""
    caplog.set_level(logging.WARNING, logger="edge_ems.hub.gateway")
    register = pb.AgentMessage(register=pb.Register(agent_id="agent-1", site_id="lab"))
    telemetry = [
        pb.AgentMessage(
            telemetry=pb.Telemetry(
                seq=seq,
                series=[
                    pb.Series(
                        asset_id="a", metric="soc_pct", timestamps_ms=range(200), values=[1.0] * 200
                    )
                ],
            )
        ).SerializeToString()
        for seq in range(1, 20)
    ]
    channels = [grpc.aio.insecure_channel(hub.address, options=client_options()) for _ in range(10)]

    async def refused(stream: int) -> tuple[grpc.StatusCode, str]:
        connect = channels[stream % len(channels)].stream_stream(
            SERVICE_METHOD,
            request_serializer=lambda raw: raw,
            response_deserializer=pb.HubMessage.FromString,
        )
        call = connect(metadata=auth_metadata("agent-1", f"wrong-token-{stream}"))
        for message in [register.SerializeToString(), *telemetry]:
            try:
                await call.write(message)
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                break
        try:
            while isinstance(await call.read(), pb.HubMessage):
                pass
        except grpc.aio.AioRpcError as err:
            return err.code(), err.details() or ""
        return await call.code(), await call.details()

    try:
        async with asyncio.timeout(120):
            ended = await asyncio.gather(*(refused(stream) for stream in range(500)))
    finally:
        for channel in channels:
            await channel.close(None)
    assert collections.Counter(code for code, _ in ended) == {grpc.StatusCode.UNAUTHENTICATED: 500}
    assert {details for _, details in ended} == {"unknown agent or wrong token"}
    refusals = [r for r in caplog.records if r.getMessage().startswith("Refused")]
    assert 1 <= len(refusals) <= 2  # one peer: one line, and a count in the next
    await assert_carries_on(hub, site_factory)


def test_refusals_are_logged_once_per_address_and_interval_with_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="edge_ems.hub.gateway")
    now = [0.0]
    log = RefusalLog(
        logging.getLogger("edge_ems.hub.gateway"), "a stream", max_addresses=2, clock=lambda: now[0]
    )
    for _ in range(100):
        log.note("ipv4:10.0.0.1", "wrong token")
    log.note("ipv6:[::1]", "wrong token")
    now[0] = 61.0
    log.note("ipv4:10.0.0.1", "wrong token")
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        "Refused a stream from ipv4:10.0.0.1: wrong token",
        "Refused a stream from ipv6:[::1]: wrong token",
        "Refused a stream from ipv4:10.0.0.1: wrong token (and 99 more since the last such line)",
    ]


@pytest.mark.parametrize(
    ("agent_id", "site", "asset", "refused"),
    [
        ("agent-1", "far", "bess-9", "asset 'bess-9' is configured for another agent"),
        ("agent-1/x", "far", "mine", "site 'far' is configured for other agents"),
        ("agent-2/x", "far", "mine", None),
        (
            "agent-2",
            "near",
            "bess-9",
            "asset 'bess-9' belongs to site 'far' in the hub's inventory",
        ),
    ],
)
async def test_the_inventory_binds_assets_and_sites_to_agents(
    hub_factory: HubFactory, agent_id: str, site: str, asset: str, refused: str | None
) -> None:
    hub = await hub_factory(inventory=[InventoryAsset("bess-9", "far", agent_id="agent-2")])
    client = RawAgent(hub.address, agent_id)
    try:
        register = pb.Register(agent_id=agent_id, site_id=site, assets=[pb.Asset(asset_id=asset)])
        await client.offer(pb.AgentMessage(register=register))
        if refused is None:
            assert (await client.read()).WhichOneof("body") == "register_ack"
            return
        code, details = await client.status()
        assert (code, details) == (grpc.StatusCode.PERMISSION_DENIED, refused)
        [(_, record)] = hub.audits
        assert (record.command, record.outcome, record.requested_by) == (
            "register",
            "refused",
            agent_id,
        )
    finally:
        await client.close()
