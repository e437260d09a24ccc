"""The hub's gRPC gateway: agents connect here, telemetry goes to the store, setpoints go out.

Each agent holds one ``Connect`` stream. The gateway

- authenticates it from its metadata alone, before any message is read: the
  ``x-edge-ems-agent`` metadata names the agent, ``authorization: Bearer <token>`` must be
  that agent's token (compared in constant time), and the Register that opens the stream
  must name the same agent; an agent ``<id>/<name>`` holds agent ``<id>``'s token, so one
  credential serves the several sites of one Home Assistant. A refused stream is ended
  UNAUTHENTICATED once its client stops sending (its messages discarded undecoded), and
  refusals are logged once a minute per address;
- refuses malformed or oversized messages by ending that one stream, while every other
  agent carries on;
- replaces an agent's older stream when the same agent connects again;
- hands telemetry to the :class:`TelemetrySink` in seq order, dropping batches it already
  accepted (resends after a reconnect), and acknowledges a seq only once the sink reports it
  durable, so the agent keeps and resends anything that was not;
- routes setpoints to the agent that owns the asset (or the site's agent),
  ``asset_id`` winning over ``site_id``, and waits for the agent's ack with its audit records;
- passes every audit record an agent reports (setpoint acks and local actions) to
  ``on_audit``;
- hands a site's planner messages (``PlanRequest``, answered with its ack, and
  ``PlanInputs``) to the hub's planner (:attr:`GatewayServer.planner`), tells it when a
  site's agent connects, and sends the planner's plans to a site's agents;
- pings agents and ends sessions that stay silent too long.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import itertools
import logging
import math
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol, cast

import grpc
from google.protobuf.message import DecodeError

from ..dispatch import AuditRecord, Outcome, Reason
from ..gateway.convert import (
    audit_from_proto,
    batch_from_proto,
    plan_inputs_from_proto,
    plan_request_from_proto,
    plan_update_to_proto,
    registration_from_proto,
    status_from_proto,
    value_to_proto,
)
from ..gateway.errors import (
    GatewayError,
    ProtocolViolationError,
    RoutingError,
    SetpointTimeoutError,
)
from ..gateway.model import (
    PlanInputs,
    PlanRequest,
    PlanUpdate,
    Registration,
    SetpointResult,
    TelemetryBatch,
)
from ..gateway.proto import gateway_pb2 as pb
from ..gateway.tls import ServerTls
from ..gateway.transport import (
    AGENT_ID,
    AUTHORIZATION,
    MAX_MESSAGE_BYTES,
    SERVICE,
    bearer_token,
    server_options,
)
from ..metrics import METRICS
from ..readings import Value
from .claims import ClaimKind, ClaimStore, MemoryClaims, credential_of
from .logs import RefusalLog
from .sessions import InventoryAsset, SessionRecord, SessionRegistry
from .store.errors import StoreError
from .telemetry import TelemetrySink

_LOGGER = logging.getLogger(__name__)

type AuditCallback = Callable[[str, AuditRecord], None]
"""Called with (agent id, record) for every audit record an agent reports."""

_NO_TOKEN = b"\0" * 32  # compared against when the agent is unknown, so timing tells nothing
_UNAUTHENTICATED = (grpc.StatusCode.UNAUTHENTICATED, "unknown agent or wrong token")
REGISTER = "register"
"""The command of the audit record of a refused registration."""

type Metadata = Iterable[tuple[str, str | bytes]]
NO_PLANNER = "this hub has no planner"
PING_SLICE = 100
"""Sessions pinged at once; a sweep of the fleet is spread over the ping interval."""


class PlanHandler(Protocol):
    """What the gateway hands the hub's planner."""

    async def plan_request(self, site_id: str, request: PlanRequest) -> str:
        """A site's request; the error that refuses it, or ""."""

    async def plan_inputs(self, site_id: str, inputs: PlanInputs) -> str:
        """A series a site knows; why it is refused, or ""."""

    def site_connected(self, site_id: str) -> None:
        """A site's agent has (re)connected."""


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """Timing and limits of the gateway."""

    heartbeat_interval: int = 30
    """Seconds between agent heartbeats, told to each agent when it registers."""
    ping_interval: float = 30.0
    """Seconds between the hub's pings (and its liveness checks)."""
    liveness_timeout: float = 120.0
    """A session without any message for this long is ended."""
    register_timeout: float = 15.0
    refusal_quiet: float = 0.1
    """A refused stream ends once its client has sent nothing for this long (or half-closed):
    ending it while the client still writes makes grpcio's asyncio client report its own
    INTERNAL instead of the hub's status (grpc/grpc#36066)."""
    refusal_drain: float = 2.0
    """...and at the latest this many seconds after it opened; what it sent is never decoded."""
    refusal_log_interval: float = 60.0
    """Refusals are logged once per client address and interval, with a count of the rest."""
    refusal_audit_interval: float = 600.0
    """A refused registration is audited once per agent, reason and interval."""
    max_sub_agents: int = 64
    """Sub-agents (``<id>/<name>``) one credential may have connected at once."""
    setpoint_timeout: float = 10.0
    max_message_bytes: int = MAX_MESSAGE_BYTES
    stop_grace: float = 2.0


@dataclass(slots=True)
class GatewayStats:
    """Counters since the gateway started."""

    sessions: int = 0
    batches: int = 0
    points: int = 0
    duplicate_batches: int = 0
    """Resent batches the sink already had, dropped."""
    refused_series: int = 0
    """Series of assets the agent did not register, or of unknown metrics, dropped."""
    refused_streams: int = 0
    """Streams refused for their credentials."""
    refused_registrations: int = 0
    """Registrations refused: a claim on what another credential holds, on an asset the
    inventory places elsewhere, or a sub-agent past its credential's allowance."""


@dataclass(eq=False, slots=True)
class _Session:
    record: SessionRecord
    registration: Registration
    last_seen: float
    outbox: list[pb.HubMessage] = field(default_factory=list)
    """What waits to be written, oldest first. A list and one future to wake the writer,
    not an :class:`asyncio.Queue`: a queue brings four deques and an event, some 3.5 KB
    per agent, 35 MB of a 10,000-agent hub."""
    wake: asyncio.Future[None] | None = None
    """Set while the writer waits for the outbox."""
    pending: dict[str, asyncio.Future[SetpointResult]] = field(default_factory=dict)
    end_status: tuple[grpc.StatusCode, str] | None = None
    """Set once the session is to end: the status its stream ends with."""
    reading: bool = False
    warned: bool = False
    end_recorded: bool = False

    def send(self, message: pb.HubMessage) -> None:
        if self.end_status is None:
            self.outbox.append(message)
            self._wake_writer()

    def close(self, code: grpc.StatusCode, details: str) -> None:
        """End the session once what is already in the outbox is written."""
        if self.end_status is None:
            self.end_status = (code, details)
            self._wake_writer()

    async def next_message(self) -> pb.HubMessage | None:
        """The next message to write; ``None`` once the outbox is empty and the session
        is to end."""
        while not self.outbox:
            if self.end_status is not None:
                return None
            self.wake = asyncio.get_running_loop().create_future()
            try:
                await self.wake
            finally:
                self.wake = None
        return self.outbox.pop(0)

    def _wake_writer(self) -> None:
        if self.wake is not None and not self.wake.done():
            self.wake.set_result(None)


class GatewayServer:
    """The hub's side of the gateway protocol."""

    def __init__(
        self,
        sink: TelemetrySink,
        tokens: Mapping[str, str],
        *,
        inventory: Iterable[InventoryAsset] = (),
        tls: ServerTls | None = None,
        settings: GatewaySettings | None = None,
        on_audit: AuditCallback | None = None,
        claims: ClaimStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sink = sink
        self._claims: ClaimStore = claims if claims is not None else MemoryClaims()
        self.internal_port: int | None = None
        """The plaintext port for trusted agents, when one was asked for (see :meth:`start`)."""
        self._tokens = {agent_id: token.encode() for agent_id, token in tokens.items()}
        self._tls = tls
        self.settings = settings or GatewaySettings()
        self._on_audit = on_audit
        self._clock = clock
        self.registry = SessionRegistry(inventory, clock=clock)
        self._sessions: dict[str, _Session] = {}
        self._accepted: dict[str, int] = {}
        """Per agent, the highest seq handed to the sink (durable or not yet)."""
        self._ingest: dict[str, asyncio.Lock] = {}
        self._server: grpc.aio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._handlers: set[asyncio.Task[object]] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self._nonces = itertools.count(1)
        self._stats = GatewayStats()
        self._refusals = RefusalLog(_LOGGER, "a stream", self.settings.refusal_log_interval)
        self._audited: OrderedDict[tuple[str, str], float] = OrderedDict()
        """Refused registrations recently audited, by agent and reason: when."""
        self.planner: PlanHandler | None = None
        """The hub's planner, when it has one (set once both exist)."""

    # Lifecycle.

    async def start(self, address: str = "127.0.0.1:0", *, internal: str | None = None) -> int:
        """Listen on ``address`` (``host:port``; port 0 picks one); return the port. With TLS,
        ``internal`` is a second address served in plaintext, for agents on a network the
        hub trusts (its port is then :attr:`internal_port`)."""
        self._loop = asyncio.get_running_loop()
        server = grpc.aio.server(
            options=server_options(self.settings.max_message_bytes),
            interceptors=[_Gatekeeper(self)],
        )
        # The stream is served by :meth:`connect` itself, not through a servicer class whose
        # method would wrap it in a second async generator: half a kilobyte per agent.
        handlers = {
            "Connect": grpc.stream_stream_rpc_method_handler(
                self.connect,
                request_deserializer=pb.AgentMessage.FromString,
                response_serializer=pb.HubMessage.SerializeToString,
            )
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        server.add_registered_method_handlers(SERVICE, handlers)
        port = self._listen(server, address, tls=True)
        if internal is not None:
            self.internal_port = self._listen(server, internal, tls=False)
        await server.start()
        self._server = server
        self._unsubscribe = self._sink.subscribe(self._on_durable)
        self._tasks = [self._loop.create_task(self._watch(), name="edge_ems gateway pings")]
        _LOGGER.info("Gateway listening on %s (port %d, %s)", address, port, self._mode())
        if internal is not None:
            _LOGGER.info(
                "Gateway listening on %s (port %d, plaintext, internal)",
                internal,
                self.internal_port,
            )
        return port

    def _listen(self, server: grpc.aio.Server, address: str, *, tls: bool) -> int:
        try:
            if self._tls is None or not tls:
                return server.add_insecure_port(address)
            return server.add_secure_port(address, self._tls.credentials())
        except RuntimeError as err:  # grpc's way of saying the address cannot be bound
            raise GatewayError(f"cannot listen on {address}: {err}") from None

    async def stop(self) -> None:
        """End every session and stop listening."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for session in list(self._sessions.values()):
            session.close(grpc.StatusCode.UNAVAILABLE, "the hub is shutting down")
        if self._handlers:  # let each stream end with its status before the server goes
            await asyncio.wait(set(self._handlers), timeout=self.settings.stop_grace)
        if self._server is not None:
            await self._server.stop(self.settings.stop_grace)
            self._server = None
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def connected_agents(self) -> list[str]:
        """Agents with a session now, sorted."""
        return sorted(self._sessions)

    def stats(self) -> GatewayStats:
        """Counters since start (a copy)."""
        return dataclasses.replace(self._stats)

    # Setpoints.

    async def dispatch(
        self,
        power_w: float = 0.0,
        *,
        issued_by: str,
        asset_id: str | None = None,
        site_id: str | None = None,
        ttl: float | None = None,
        release: bool = False,
        ack_timeout: float | None = None,
        command: str | None = None,
        value: Value = None,
    ) -> SetpointResult:
        """Send a battery power setpoint (or, with ``release``, a return to safe mode; with
        ``command``, that named command of ``asset_id`` at ``value``) to the agent serving
        ``asset_id`` or ``site_id`` and return its answer.

        ``asset_id`` wins over ``site_id``. Raises :class:`RoutingError` when the target is
        unknown or its agent is not connected (or leaves before answering), and
        :class:`SetpointTimeoutError` when no answer comes within ``ack_timeout`` seconds (the
        settings' ``setpoint_timeout`` by default).
        """
        if not math.isfinite(power_w):
            raise GatewayError(f"power {power_w} is not a finite number")
        if command and not asset_id:
            raise GatewayError(f"{command} needs the asset it is for")
        session = self._route(asset_id, site_id)
        command_id = uuid.uuid4().hex
        answer: asyncio.Future[SetpointResult] = asyncio.get_running_loop().create_future()
        session.pending[command_id] = answer
        setpoint = pb.Setpoint(
            command_id=command_id,
            asset_id=asset_id or "",
            site_id=site_id or "",
            power_w=power_w,
            ttl_s=ttl or 0.0,
            issued_by=issued_by,
            release=release,
            command=command or "",
            value=value_to_proto(value) if command else None,
        )
        session.send(pb.HubMessage(setpoint=setpoint))
        limit = self.settings.setpoint_timeout if ack_timeout is None else ack_timeout
        try:
            async with asyncio.timeout(limit):
                return await answer
        except TimeoutError:
            agent_id = session.record.agent_id
            message = f"agent {agent_id} did not acknowledge setpoint {command_id} in {limit} s"
            raise SetpointTimeoutError(message, command_id=command_id) from None
        finally:
            session.pending.pop(command_id, None)

    def remote_site_connected(self, site_id: str) -> None:
        """An agent of ``site_id`` connected to another hub on the shared database: the
        planner hears of it as of one connected here."""
        if self.planner is not None:
            self.planner.site_connected(site_id)

    def serves(self, asset_id: str) -> bool:
        """Whether an agent connected to this hub serves ``asset_id``."""
        return self.registry.owner(asset_id) in self._sessions

    def served_elsewhere(self, asset_id: str) -> bool:
        """Whether only an agent connected to another hub on the shared database does."""
        return not self.serves(asset_id) and self.registry.remote_owner(asset_id) is not None

    def send_plan(self, site_id: str, update: PlanUpdate) -> int:
        """Send a plan to every connected agent of ``site_id``; how many it went to."""
        message = pb.HubMessage(plan=plan_update_to_proto(update))
        sent = 0
        for agent_id in self.registry.site_agents(site_id):
            session = self._sessions.get(agent_id)
            if session is not None:
                session.send(message)
                sent += 1
        return sent

    def _route(self, asset_id: str | None, site_id: str | None) -> _Session:
        if asset_id:
            owner = self.registry.owner(asset_id)
            elsewhere = self.registry.remote_owner(asset_id)
            if elsewhere is not None and (owner is None or owner not in self._sessions):
                raise RoutingError(
                    f"asset {asset_id!r} is served by agent {elsewhere[0]!r} through hub "
                    f"{elsewhere[1]!r}: send the setpoint there",
                    reason="not_connected",
                )
            if owner is None:
                if self.registry.knows_asset(asset_id):
                    raise RoutingError(
                        f"asset {asset_id!r} has no agent serving it", reason="not_connected"
                    )
                raise RoutingError(f"no asset {asset_id!r}", reason="unknown_asset")
            session = self._sessions.get(owner)
            if session is None:
                raise RoutingError(
                    f"asset {asset_id!r} is served by agent {owner!r}, which is not connected",
                    reason="not_connected",
                )
            return session
        if site_id:
            agents = [
                agent for agent in self.registry.site_agents(site_id) if agent in self._sessions
            ]
            if not agents:
                if self.registry.knows_site(site_id):
                    raise RoutingError(
                        f"no agent of site {site_id!r} is connected", reason="not_connected"
                    )
                raise RoutingError(f"no site {site_id!r}", reason="unknown_site")
            gateways = [a for a in agents if self._sessions[a].registration.gateway_id]
            if len(agents) > 1 and len(gateways) != 1:
                raise RoutingError(
                    f"site {site_id!r} is served by agents {', '.join(agents)}: "
                    "dispatch to their assets instead",
                    reason="ambiguous_site",
                )
            return self._sessions[gateways[0] if len(agents) > 1 else agents[0]]
        raise RoutingError("a setpoint needs an asset id or a site id", reason="no_target")

    # The stream.

    async def connect(
        self,
        requests: AsyncIterator[pb.AgentMessage],
        context: grpc.aio.ServicerContext[pb.AgentMessage, pb.HubMessage],
    ) -> AsyncIterator[pb.HubMessage]:
        """Serve one agent's stream (its credentials were checked before it got here).

        Messages are taken with ``context.read()``, not from ``requests``: gRPC's request
        iterator holds the message it last gave out until the next one comes: a batch per
        agent held for nothing, some 130 MB of a 10,000-agent hub's peak."""
        agent_id = self.credential_holder(context.invocation_metadata())
        if agent_id is None:  # only when served without the gatekeeper
            await self._end_refused(context, *_UNAUTHENTICATED)
        registration = await self._registration(agent_id, context)
        refusal = await self._admit_registration(registration, context.peer())
        if refusal is None:
            try:  # another hub on a shared database may have stored more of it meanwhile
                await self._sink.resume(agent_id)
            except StoreError as err:
                _LOGGER.error("Cannot read the durable mark of agent %s: %s", agent_id, err)
                refusal = grpc.StatusCode.UNAVAILABLE, "the hub cannot store telemetry now"
        if refusal is not None:
            await self._end_refused(context, *refusal)
        session = self._open(registration, context.peer())
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        reader = asyncio.get_running_loop().create_task(
            self._read(session, context), name=f"edge_ems gateway read {agent_id}"
        )
        try:
            yield pb.HubMessage(
                register_ack=pb.RegisterAck(
                    session_id=session.record.session_id,
                    durable_seq=self._sink.durable_seq(agent_id),
                    heartbeat_interval_s=self.settings.heartbeat_interval,
                )
            )
            if self.planner is not None:  # its plan follows the ack
                self.planner.site_connected(registration.site_id)
            while (message := await session.next_message()) is not None:
                yield message
        finally:
            await self._finish_reader(session, reader)
            code, reason = session.end_status or (
                grpc.StatusCode.CANCELLED,
                "the stream was cancelled",
            )
            self._close(session, reason)
            self._handlers.discard(handler)
        if code is not grpc.StatusCode.OK:
            await context.abort(code, reason)

    def credential_holder(self, metadata: Metadata | None) -> str | None:
        """The agent id the metadata names, if its bearer token is that agent's (or, for a
        sub-agent ``a/b``, agent ``a``'s); ``None`` otherwise."""
        agent_id = token = ""
        for key, value in metadata or ():
            if key == AGENT_ID and isinstance(value, str):
                agent_id = value
            elif key == AUTHORIZATION and isinstance(value, str):
                token = bearer_token(value) or ""
        expected = self._tokens.get(credential_of(agent_id))
        matches = hmac.compare_digest(expected or _NO_TOKEN, token.encode())
        return agent_id if expected is not None and matches else None

    async def refuse_unauthenticated(
        self,
        requests: AsyncIterator[bytes],
        context: grpc.aio.ServicerContext[bytes, bytes],
    ) -> None:
        """End a stream whose credentials failed; what it sends is discarded undecoded."""
        self._stats.refused_streams += 1
        self._refusals.note(_address(context.peer()), "unknown agent or wrong token")
        await self._end_refused(context, *_UNAUTHENTICATED)

    async def _end_refused(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        code: grpc.StatusCode,
        details: str,
    ) -> NoReturn:
        """End the stream with ``code`` once its client stops sending (see
        :attr:`GatewaySettings.refusal_quiet`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.refusal_drain
        with contextlib.suppress(TimeoutError, StopAsyncIteration, grpc.RpcError, DecodeError):
            while (left := deadline - loop.time()) > 0:
                async with asyncio.timeout(min(self.settings.refusal_quiet, left)):
                    await _receive(context)
        await context.abort(code, details)

    async def _registration(
        self,
        agent_id: str,
        context: grpc.aio.ServicerContext[pb.AgentMessage, pb.HubMessage],
    ) -> Registration:
        invalid = grpc.StatusCode.INVALID_ARGUMENT
        try:
            async with asyncio.timeout(self.settings.register_timeout):
                first: pb.AgentMessage = await _receive(context)
        except DecodeError as err:
            await self._end_refused(context, invalid, f"DecodeError: {err}")
        except TimeoutError:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "no Register in time")
        except StopAsyncIteration:
            await context.abort(invalid, "the stream ended before Register")
        if first.WhichOneof("body") != "register":
            await self._end_refused(context, invalid, "the first message must be Register")
        try:
            registration = registration_from_proto(first.register)
        except ProtocolViolationError as err:
            await self._end_refused(context, invalid, str(err))
        if registration.agent_id != agent_id:
            await self._end_refused(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                f"the token is agent {agent_id!r}'s, not {registration.agent_id!r}'s",
            )
        return registration

    async def _admit_registration(
        self, registration: Registration, peer: str
    ) -> tuple[grpc.StatusCode, str] | None:
        """Refuse a registration that claims what another credential holds, what the
        inventory places elsewhere or gives another agent, or a sub-agent past its
        credential's allowance.

        The inventory decides first: an asset configured at a site is registered there
        only, and by its configured agent if it names one; a site whose configured assets
        name agents is open to those agents only (several credentials may serve one site
        that way). Everything else belongs to the credential that registered it first.
        """
        agent_id = registration.agent_id
        credential = credential_of(agent_id)
        for asset in registration.assets:
            configured = self.registry.configured(asset.asset_id)
            if configured is None:
                continue
            if configured.site_id != registration.site_id:
                reason = (
                    f"asset {asset.asset_id!r} belongs to site {configured.site_id!r} in "
                    "the hub's inventory"
                )
                return self._refused(registration, peer, asset.asset_id, reason, reason)
            if configured.agent_id and configured.agent_id != credential:
                reason = f"asset {asset.asset_id!r} is configured for another agent"
                audit = f"asset {asset.asset_id!r} is configured for agent {configured.agent_id!r}"
                return self._refused(registration, peer, asset.asset_id, reason, audit)
        if agent_id != credential and not self._room_for(agent_id, credential):
            limit = self.settings.max_sub_agents
            reason = f"agent {credential!r} has {limit} sub-agents connected, the most allowed"
            self._refused(registration, peer, None, reason, reason)
            return grpc.StatusCode.RESOURCE_EXHAUSTED, reason
        wanted = [(ClaimKind.ASSET, asset_id) for asset_id in sorted(registration.asset_ids)]
        site_agents = self.registry.configured_site_agents(registration.site_id)
        if not site_agents:
            wanted.insert(0, (ClaimKind.SITE, registration.site_id))
        elif credential not in site_agents:
            reason = f"site {registration.site_id!r} is configured for other agents"
            audit = f"site {registration.site_id!r} is configured for {', '.join(site_agents)}"
            return self._refused(registration, peer, None, reason, audit)
        try:
            held = await self._claims.claim(wanted, credential, self._clock())
        except StoreError as err:
            _LOGGER.error("Cannot check the claims of agent %s: %s", agent_id, err)
            return grpc.StatusCode.UNAVAILABLE, "the hub cannot check registrations now"
        for (kind, claim_id), holder in held.items():
            if holder != credential:
                reason = f"{kind} {claim_id!r} is held by another credential"
                audit = f"{kind} {claim_id!r} is held by agent {holder!r}'s credential"
                device = claim_id if kind is ClaimKind.ASSET else None
                return self._refused(registration, peer, device, reason, audit)
        return None

    def _room_for(self, agent_id: str, credential: str) -> bool:
        """Whether sub-agent ``agent_id`` may register: fewer than ``max_sub_agents`` others
        of its credential are connected. The registry keeps at most that many of them,
        forgetting the one disconnected longest to make room."""
        if agent_id in self.registry.agent_ids():
            return True
        others = [
            known
            for known in self.registry.agent_ids()
            if known != credential and credential_of(known) == credential
        ]
        if len(others) < self.settings.max_sub_agents:
            return True
        idle = [known for known in others if known not in self._sessions]
        if not idle:
            return False
        self.registry.forget(min(idle, key=lambda known: self.registry.last_seen(known) or 0.0))
        return True

    def _refused(
        self, registration: Registration, peer: str, device_id: str | None, reason: str, audit: str
    ) -> tuple[grpc.StatusCode, str]:
        """Count, log (rate-limited) and audit (once in a while) a refused registration."""
        agent_id = registration.agent_id
        self._stats.refused_registrations += 1
        self._refusals.note(_address(peer), f"agent {agent_id!r}: {audit}")
        now = time.monotonic()
        key = (agent_id, audit)
        if now - self._audited.pop(key, -math.inf) >= self.settings.refusal_audit_interval:
            self._audit(
                agent_id,
                AuditRecord(
                    site_id=registration.site_id,
                    device_id=device_id,
                    command=REGISTER,
                    requested=agent_id,
                    applied=None,
                    outcome=Outcome.REFUSED,
                    reason=Reason.NOT_ALLOWED,
                    message=f"registration refused: {audit}",
                    requested_by=agent_id,
                    source="gateway",
                    timestamp=self._clock(),
                ),
            )
            self._audited[key] = now
        else:
            self._audited[key] = self._audited.get(key, now)
        while len(self._audited) > 1024:
            self._audited.popitem(last=False)
        return grpc.StatusCode.PERMISSION_DENIED, reason

    def _open(self, registration: Registration, peer: str) -> _Session:
        agent_id = registration.agent_id
        previous = self._sessions.pop(agent_id, None)
        if previous is not None:
            _LOGGER.warning(
                "Agent %s connected again from %s: ending its older stream", agent_id, peer
            )
            previous.close(grpc.StatusCode.ABORTED, f"replaced by a newer stream from {peer}")
            self._end(previous, "replaced by a newer stream")
        session_id = uuid.uuid4().hex
        record = self.registry.open(registration, session_id, peer)
        session = _Session(record, registration, asyncio.get_running_loop().time())
        self._sessions[agent_id] = session
        self._accepted[agent_id] = max(
            self._accepted.get(agent_id, 0), self._sink.durable_seq(agent_id)
        )
        self._stats.sessions += 1
        _LOGGER.info(
            "Agent %s (site %s, %d assets) connected from %s",
            agent_id,
            registration.site_id,
            len(registration.assets),
            peer,
        )
        return session

    def _close(self, session: _Session, reason: str) -> None:
        agent_id = session.record.agent_id
        if self._sessions.get(agent_id) is session:
            del self._sessions[agent_id]
            _LOGGER.info("Agent %s disconnected: %s", agent_id, reason)
        self._end(session, reason)

    def _end(self, session: _Session, reason: str) -> None:
        """Record the end once and fail the setpoints still waiting for this session."""
        if session.end_recorded:
            return
        session.end_recorded = True
        self.registry.close(session.record, reason)
        for command_id, answer in session.pending.items():
            if not answer.done():
                answer.set_exception(
                    RoutingError(
                        f"agent {session.record.agent_id} went away before acknowledging "
                        f"setpoint {command_id} (it may have been executed)",
                        reason="disconnected",
                    )
                )
        session.pending.clear()

    async def _finish_reader(self, session: _Session, reader: asyncio.Task[None]) -> None:
        # A reader waiting for the next message is cancelled; one handing a batch to the
        # sink is let finish it, so the sink never sees a batch cut off halfway.
        if session.reading:
            reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader

    async def _read(
        self,
        session: _Session,
        context: grpc.aio.ServicerContext[pb.AgentMessage, pb.HubMessage],
    ) -> None:
        agent_id = session.record.agent_id
        loop = asyncio.get_running_loop()
        try:
            while session.end_status is None:
                session.reading = True
                try:
                    message: pb.AgentMessage = await _receive(context)
                except StopAsyncIteration:
                    session.close(grpc.StatusCode.OK, "the agent ended its stream")
                    return
                finally:
                    session.reading = False
                session.last_seen = loop.time()
                await self._handle(session, message)
                del message  # a batch is big: it must not be held while the next is awaited
        except (ProtocolViolationError, DecodeError) as err:
            detail = f"{type(err).__name__}: {err}"
            _LOGGER.warning("Agent %s broke the protocol: %s", agent_id, detail)
            session.close(grpc.StatusCode.INVALID_ARGUMENT, detail)

    async def _handle(self, session: _Session, message: pb.AgentMessage) -> None:
        agent_id = session.record.agent_id
        kind = message.WhichOneof("body")
        if kind == "telemetry":
            self.registry.seen(agent_id)
            await self._telemetry(session, message.telemetry)
        elif kind == "heartbeat":
            beat = message.heartbeat
            self.registry.seen(
                agent_id,
                buffered_batches=beat.buffered_batches,
                dropped=beat.dropped_points,
                devices=[status_from_proto(status) for status in beat.devices],
            )
        elif kind == "setpoint_ack":
            self._setpoint_ack(session, message.setpoint_ack)
        elif kind == "audit":
            self._audit(agent_id, audit_from_proto(message.audit))
        elif kind == "plan_request":
            await self._plan_request(session, plan_request_from_proto(message.plan_request))
        elif kind == "plan_inputs":
            inputs = plan_inputs_from_proto(message.plan_inputs)
            if self.planner is not None:
                await self.planner.plan_inputs(session.registration.site_id, inputs)
        elif kind == "register":
            raise ProtocolViolationError("Register is only the first message of a stream")
        else:
            raise ProtocolViolationError("an empty message")

    async def _telemetry(self, session: _Session, telemetry: pb.Telemetry) -> None:
        agent_id = session.record.agent_id
        lock = self._ingest.get(agent_id)
        if lock is None:
            lock = self._ingest[agent_id] = asyncio.Lock()
        if telemetry.seq == 0:  # not a resend of anything: refused before the duplicate check
            raise ProtocolViolationError("telemetry seq starts at 1")
        async with lock:  # an agent's replaced stream may still be handing over its last batch
            if telemetry.seq <= self._accepted.get(agent_id, 0):
                self._stats.duplicate_batches += 1
                return
            batch = batch_from_proto(
                telemetry, agent_id=agent_id, site_id=session.registration.site_id
            )
            batch = self._admit(session, batch)
            try:
                await self._sink.accept(batch)
            except Exception:
                # Whatever the store's trouble, the agent keeps the batch and resends it.
                _LOGGER.exception("The store failed on batch %d of %s", batch.seq, agent_id)
                session.close(grpc.StatusCode.UNAVAILABLE, "the hub cannot store telemetry now")
                return
            self._accepted[agent_id] = telemetry.seq
        self._stats.batches += 1
        self._stats.points += batch.points

    def _admit(self, session: _Session, batch: TelemetryBatch) -> TelemetryBatch:
        """Keep the series of the agent's own assets in known metrics; count the rest."""
        assets = session.registration.asset_ids
        if all(s.asset_id in assets and s.metric in METRICS for s in batch.series) and all(
            t.asset_id in assets and t.metric in METRICS for t in batch.texts
        ):
            return batch
        series = [s for s in batch.series if s.asset_id in assets and s.metric in METRICS]
        texts = [t for t in batch.texts if t.asset_id in assets and t.metric in METRICS]
        refused = len(batch.series) + len(batch.texts) - len(series) - len(texts)
        self._stats.refused_series += refused
        if not session.warned:
            session.warned = True
            _LOGGER.warning(
                "Agent %s sent samples of assets it did not register or of unknown metrics; "
                "dropping them (%d in batch %d)",
                session.record.agent_id,
                refused,
                batch.seq,
            )
        return TelemetryBatch(batch.agent_id, batch.site_id, batch.seq, series, texts)

    async def _plan_request(self, session: _Session, request: PlanRequest) -> None:
        error = NO_PLANNER
        if self.planner is not None:
            error = await self.planner.plan_request(session.registration.site_id, request)
        ack = pb.PlanRequestAck(request_id=request.request_id, error=error)
        session.send(pb.HubMessage(plan_request_ack=ack))

    def _setpoint_ack(self, session: _Session, ack: pb.SetpointAck) -> None:
        agent_id = session.record.agent_id
        records = tuple(audit_from_proto(record) for record in ack.records)
        for record in records:
            self._audit(agent_id, record)
        answer = session.pending.get(ack.command_id)
        if answer is None or answer.done():
            _LOGGER.debug("Agent %s acknowledged setpoint %s late", agent_id, ack.command_id)
            return
        answer.set_result(SetpointResult(ack.command_id, agent_id, records, ack.error or None))

    def _audit(self, agent_id: str, record: AuditRecord) -> None:
        if self._on_audit is not None:
            self._on_audit(agent_id, record)

    # Durability and liveness.

    def _on_durable(self, agent_id: str, seq: int) -> None:
        """The sink's callback; it may come from a store's worker thread."""
        loop = self._loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._acknowledge(agent_id, seq)
        else:
            loop.call_soon_threadsafe(self._acknowledge, agent_id, seq)

    def _acknowledge(self, agent_id: str, seq: int) -> None:
        session = self._sessions.get(agent_id)
        if session is not None:
            session.send(pb.HubMessage(telemetry_ack=pb.TelemetryAck(durable_seq=seq)))

    async def _watch(self) -> None:
        # Each sweep is spread over the interval a slice of sessions at a time: a fleet's
        # pings at once would hold the event loop, and every ack behind them, for a burst.
        loop = asyncio.get_running_loop()
        while True:
            sessions = list(self._sessions.values())
            slices = [sessions[n : n + PING_SLICE] for n in range(0, len(sessions), PING_SLICE)]
            pause = self.settings.ping_interval / max(1, len(slices))
            if not slices:
                await asyncio.sleep(pause)
            for part in slices:
                await asyncio.sleep(pause)
                now = loop.time()
                for session in part:
                    if session.end_status is None:
                        self._check_alive(session, now)

    def _check_alive(self, session: _Session, now: float) -> None:
        silent = now - session.last_seen
        if silent > self.settings.liveness_timeout:
            _LOGGER.warning(
                "Agent %s silent for %.1f s: ending its session", session.record.agent_id, silent
            )
            session.close(grpc.StatusCode.UNAVAILABLE, f"no message for {silent:.1f} s")
        else:
            ping = pb.Ping(nonce=next(self._nonces), sent_at_ms=round(self._clock() * 1000))
            session.send(pb.HubMessage(ping=ping))

    def _mode(self) -> str:
        if self._tls is None:
            return "plaintext"
        return "mutual TLS" if self._tls.client_ca is not None else "TLS"


class _Gatekeeper(grpc.aio.ServerInterceptor):
    """Checks a stream's credentials from its metadata, before any message is read: a
    stream that fails goes to a handler that refuses it without decoding what it sends."""

    def __init__(self, gateway: GatewayServer) -> None:
        self._gateway = gateway
        # No deserializer: what a refused stream sends stays bytes, never decoded.
        self._refusal: grpc.RpcMethodHandler[bytes, bytes] = grpc.stream_stream_rpc_method_handler(
            gateway.refuse_unauthenticated
        )

    async def intercept_service[Request, Response](
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Request, Response] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Request, Response] | None:
        if self._gateway.credential_holder(handler_call_details.invocation_metadata) is None:
            return cast("grpc.RpcMethodHandler[Request, Response]", self._refusal)
        return await continuation(handler_call_details)


async def _receive(context: grpc.aio.ServicerContext[Any, Any]) -> Any:
    """The stream's next message; :class:`StopAsyncIteration` once the client ends it."""
    message = await context.read()
    if message is grpc.aio.EOF:
        raise StopAsyncIteration
    return message


def _address(peer: str) -> str:
    """A gRPC peer (``ipv4:host:port``) without its port: every stream has its own."""
    return peer.rpartition(":")[0] or peer
