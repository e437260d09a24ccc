"""What both ends of the gateway link agree on: channel options, message sizes, metadata.

Keepalive is tuned for agents behind NATs and mobile routers, which forget idle TCP flows
after a few minutes: agents send an HTTP/2 ping every 30 s of silence (and a heartbeat
message every ``heartbeat_interval``), and the hub permits pings every 20 s instead of gRPC's
default of one per 5 minutes, which would answer them with GOAWAY ``too_many_pings``.
"""

from __future__ import annotations

from collections.abc import Sequence

type ChannelOptions = Sequence[tuple[str, int | str]]

PROTOCOL_VERSION = 1
SERVICE = "edge_ems.gateway.v1.Gateway"
SERVICE_METHOD = f"/{SERVICE}/Connect"

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""Largest message either side accepts; an agent splits telemetry into batches far below it."""
HUB_STREAM_WINDOW_BYTES = 4096
"""What an agent may send before the hub's gRPC asks for more (its HTTP/2 stream window).

gRPC sizes a connection's next read buffer by what its reads brought: once one brings more
than about 6.5 KB (an agent's batch of a few hundred samples does), it reads that connection
into 64 KB blocks, each freed only once all of it is read. That is 640 MB at 10,000 agents.
4 KB at a time keeps every read under that, and the blocks at 8 KB. The price: a message
larger than the window waits a round trip per 4 KB: on a 60 ms link, 68 KB/s per agent, some
4,500 samples a second."""

PENDING_STREAM_S = 300
"""How long a new stream may wait for the hub to take it before gRPC cancels it."""
MAX_PENDING_STREAMS = 20_000
"""New streams that may wait for the hub at once: a fleet's worth."""

AGENT_PING_INTERVAL_S = 30
HUB_MIN_PING_INTERVAL_S = 20
"""The hub accepts agent pings this often: below the agents' interval, with room for jitter."""
PING_TIMEOUT_S = 20

AUTHORIZATION = "authorization"
AGENT_ID = "x-edge-ems-agent"
"""Metadata naming the agent the bearer token belongs to."""


def server_options(max_message_bytes: int = MAX_MESSAGE_BYTES) -> ChannelOptions:
    """The hub's gRPC server options."""
    return (
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", PING_TIMEOUT_S * 1000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", HUB_MIN_PING_INTERVAL_S * 1000),
        ("grpc.http2.max_ping_strikes", 0),
        # The stream window stays where it is set: gRPC's bandwidth probe would widen it.
        ("grpc.http2.lookahead_bytes", HUB_STREAM_WINDOW_BYTES),
        ("grpc.http2.bdp_probe", 0),
        # A port given explicitly must not be shared with another process.
        ("grpc.so_reuseport", 0),
        # A fleet reconnecting at once (after the hub restarts) lines up thousands of new
        # streams while the event loop is busy with the rest: gRPC cancels a stream that
        # waited 30 s for the application, or any past 1000 waiting (3000 for certain).
        ("grpc.server_max_unrequested_time_in_server", PENDING_STREAM_S),
        ("grpc.server.max_pending_requests", MAX_PENDING_STREAMS),
        ("grpc.server.max_pending_requests_hard_limit", 2 * MAX_PENDING_STREAMS),
    )


def client_options(
    max_message_bytes: int = MAX_MESSAGE_BYTES, *, ping_interval_s: int = AGENT_PING_INTERVAL_S
) -> ChannelOptions:
    """An agent's channel options."""
    return (
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", ping_interval_s * 1000),
        ("grpc.keepalive_timeout_ms", PING_TIMEOUT_S * 1000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        # The agent reconnects on its own schedule (with failover), not gRPC's.
        ("grpc.enable_retries", 0),
        # A connection of its own: agents in one process (sites of one Home Assistant, a
        # fleet) would otherwise share one, and one's registration waits behind the others'
        # telemetry.
        ("grpc.use_local_subchannel_pool", 1),
    )


def auth_metadata(agent_id: str, token: str) -> tuple[tuple[str, str], ...]:
    """The metadata an agent opens its stream with."""
    return ((AUTHORIZATION, f"Bearer {token}"), (AGENT_ID, agent_id))


def bearer_token(value: str) -> str | None:
    """The token of an ``authorization`` value, or ``None`` if it is not a bearer token."""
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def parse_addresses(text: str) -> tuple[str, ...]:
    """``host:port`` addresses from a comma-separated list, each checked; ``ValueError`` names
    the first that is not one."""
    addresses = tuple(part.strip() for part in text.split(",") if part.strip())
    for address in addresses:
        parse_address(address)
    return addresses


def parse_address(address: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` for IPv6); raise ``ValueError`` when malformed."""
    host, sep, port = address.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r} is not host:port")
    return host.removeprefix("[").removesuffix("]"), int(port)
