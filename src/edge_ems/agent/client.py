"""The agent: a site's one outbound link to the hub.

One agent serves every asset of its site over one stream (gateway mode). It registers the
site's assets, sends telemetry in numbered batches and keeps each batch until the hub says it
is durable, heartbeats, executes setpoints through the site's :class:`Dispatcher` and answers
each with the audit records it caused. It dials one of several hub addresses, moving to the
next when one fails, and reconnects with jittered exponential backoff; while it is
disconnected telemetry goes to its disk buffer, and after reconnecting it resends everything
past the hub's durable mark.

The same class serves Home Assistant (the integration's agent) and ``edge-ems agent``:
it does no blocking I/O on the event loop, and :meth:`Agent.publish` is a cheap,
synchronous call for the loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from .. import __version__
from ..dispatch import AuditRecord, Dispatcher
from ..exceptions import ConfigError, EdgeEmsError
from ..gateway.convert import (
    audit_to_proto,
    batch_to_proto,
    plan_inputs_to_proto,
    plan_request_to_proto,
    plan_update_from_proto,
    registration_to_proto,
    status_to_proto,
    value_from_proto,
)
from ..gateway.errors import AuthenticationError, GatewayError, ProtocolViolationError
from ..gateway.model import (
    AssetInfo,
    DeviceStatus,
    PlanInputs,
    PlanRequest,
    PlanUpdate,
    Registration,
    TelemetryBatch,
)
from ..gateway.proto import gateway_pb2 as pb
from ..gateway.proto.gateway_pb2_grpc import GatewayStub
from ..gateway.tls import ClientTls
from ..gateway.transport import PROTOCOL_VERSION, auth_metadata, client_options
from ..readings import Readings
from ..resilience import Backoff
from .buffer import BufferStats, TelemetryBuffer
from .samples import SampleColumns

_LOGGER = logging.getLogger(__name__)

HUB_SOURCE = "hub"
"""The ``source`` of audit records caused by the hub's setpoints (they travel in the ack)."""

_REFUSED = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
PLAN_ANSWER_TIMEOUT = 30.0
"""Seconds the hub's planner has to answer a request."""


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """Who the agent is and how it talks to the hub."""

    agent_id: str
    site_id: str
    token: str
    hubs: tuple[str, ...]
    """``host:port`` of each hub, tried in order."""
    site_name: str = ""
    gateway_id: str = ""
    tls: ClientTls | None = None
    flush_interval: float = 5.0
    """Seconds between telemetry batches."""
    max_batch_points: int = 10_000
    """A batch is cut early once this many samples are waiting."""
    heartbeat_interval: float = 30.0
    """Used until the hub's RegisterAck says otherwise."""
    register_timeout: float = 15.0
    spill_interval: float = 5.0
    """While disconnected, telemetry goes to disk this often."""
    reconnect_base: float = 0.5
    reconnect_cap: float = 30.0
    """Reconnects wait a random time up to ``base * 2**attempt``, at most ``cap`` seconds."""
    command_cache: int = 256
    """Recent setpoint answers kept, so a repeated command id is answered, not re-executed."""
    audit_backlog: int = 1000
    """Local audit records held while disconnected; past it the oldest are dropped."""


@dataclass(frozen=True, slots=True)
class AgentStats:
    """The agent's link and buffer, for diagnostics."""

    connected: bool
    hub: str | None
    session_id: str | None
    durable_seq: int
    sessions: int
    buffer: BufferStats
    dropped_audits: int


class Agent:
    """A site's agent. ``start()`` it, ``publish()`` readings, ``stop()`` it."""

    def __init__(
        self,
        config: AgentConfig,
        dispatcher: Dispatcher,
        assets: Sequence[AssetInfo],
        *,
        buffer: TelemetryBuffer | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        on_change: Callable[[], None] | None = None,
        on_plan: Callable[[PlanUpdate], None] | None = None,
        device_status: Callable[[], Sequence[DeviceStatus]] | None = None,
    ) -> None:
        if not config.hubs:
            raise ConfigError("an agent needs at least one hub address")
        self.config = config
        self._dispatcher = dispatcher
        self._registration = Registration(
            agent_id=config.agent_id,
            site_id=config.site_id,
            site_name=config.site_name,
            gateway_id=config.gateway_id,
            assets=tuple(assets),
            software=f"edge-ems {__version__}",
            protocol_version=PROTOCOL_VERSION,
        )
        self._buffer = buffer if buffer is not None else TelemetryBuffer()
        self._clock = clock
        self._backoff = Backoff(config.reconnect_base, config.reconnect_cap)
        if rng is not None:
            self._backoff.rng = rng
        self._on_change = on_change
        self._on_plan = on_plan
        self._device_status = device_status
        self._plan: PlanUpdate | None = None
        self._plan_requests: dict[str, asyncio.Future[str]] = {}
        self._inputs: dict[str, PlanInputs] = {}
        self._columns = SampleColumns()
        self._outbox: deque[pb.AgentMessage] = deque()
        self._audits_waiting = 0
        self._dropped_audits = 0
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._stopping = asyncio.Event()
        self._flush_now = asyncio.Event()
        self._commands: OrderedDict[str, asyncio.Future[pb.SetpointAck]] = OrderedDict()
        self._executing: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._connected = asyncio.Event()
        self._hub: str | None = None
        self._reregister = asyncio.Event()
        self.down_since: float | None = None
        """When the agent last found the hub out of reach (its clock); ``None`` while
        registered, and before the first attempt."""
        self.last_error: str | None = None
        """Why the last attempt to reach the hub ended."""
        self._session_id: str | None = None
        self._durable_seq = 0
        self._sessions = 0
        self._last_spill = 0.0

    # The public side.

    @property
    def connected(self) -> bool:
        """Registered with a hub right now."""
        return self._connected.is_set()

    @property
    def registration(self) -> Registration:
        """What the agent registers."""
        return self._registration

    async def update_assets(self, assets: Sequence[AssetInfo]) -> None:
        """Register ``assets`` from now on (a device that answered for the first time shows
        what it can be commanded to do); a live session registers again at once."""
        assets = tuple(assets)
        if assets == self._registration.assets:
            return
        self._registration = dataclasses.replace(self._registration, assets=assets)
        # The hub takes a registration only when a stream opens: end this one, open another.
        self._reregister.set()

    def stats(self) -> AgentStats:
        """The link and the buffer now."""
        return AgentStats(
            connected=self.connected,
            hub=self._hub,
            session_id=self._session_id,
            durable_seq=self._durable_seq,
            sessions=self._sessions,
            buffer=self._buffer.stats(),
            dropped_audits=self._dropped_audits,
        )

    async def start(self) -> None:
        """Open the buffer and start connecting; returns at once."""
        if self._tasks:
            return
        self._stopping.clear()
        await self._buffer.open()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._run(), name=f"edge_ems agent {self.config.agent_id}"),
            loop.create_task(
                self._flush_loop(), name=f"edge_ems agent flush {self.config.agent_id}"
            ),
        ]

    async def stop(self, grace: float = 2.0) -> None:
        """Close the link and put unacknowledged telemetry on disk.

        Audit records and acks still queued (the site's last releases, say) get up to
        ``grace`` seconds to reach the hub first.
        """
        self._stopping.set()
        self._wake.set()
        if self.connected and self._tasks:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await asyncio.shield(self._tasks[0])
        tasks, self._tasks = self._tasks + list(self._executing), []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.flush()
        await self._buffer.close()

    async def wait_connected(self) -> None:
        """Return once registered with a hub."""
        await self._connected.wait()

    async def backlog_below(self, batches: int) -> None:
        """Return once fewer than ``batches`` batches wait to be sent: flow control for
        publishers that could outrun the link (replays of recorded data, benchmarks)."""
        while self._buffer.unsent >= batches:
            self._progress.clear()
            await self._progress.wait()

    def publish(self, readings_by_asset: Mapping[str, Readings]) -> None:
        """Queue one read of each asset for the next telemetry batch."""
        for asset_id, readings in readings_by_asset.items():
            self._columns.add_readings(asset_id, readings)
        self._check_batch_size()

    def publish_series(
        self, asset_id: str, metric: str, timestamps_ms: Sequence[int], values: Sequence[float]
    ) -> None:
        """Queue many samples of one metric at once (recorded or replayed data)."""
        self._columns.add_series(asset_id, metric, timestamps_ms, values)
        self._check_batch_size()

    @property
    def plan(self) -> PlanUpdate | None:
        """The site's latest plan from the hub's planner, if it sent one."""
        return self._plan

    async def request_plan(self, request: PlanRequest) -> None:
        """Ask the hub's planner (replan, override, clear an override) and wait for its
        answer, at most :data:`PLAN_ANSWER_TIMEOUT`; :class:`GatewayError` says why it was
        not taken."""
        if not self.connected:
            raise GatewayError("not linked to the hub: the planner cannot be asked")
        answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._plan_requests[request.request_id] = answer
        self._send(pb.AgentMessage(plan_request=plan_request_to_proto(request)))
        try:
            async with asyncio.timeout(PLAN_ANSWER_TIMEOUT):
                error = await answer
        except TimeoutError:
            raise GatewayError("the hub's planner did not answer in time") from None
        finally:
            self._plan_requests.pop(request.request_id, None)
        if error:
            raise GatewayError(error)

    def send_plan_inputs(self, inputs: PlanInputs) -> None:
        """Give the hub's planner a series for this site (sent once the link is up)."""
        self._inputs[inputs.kind] = inputs  # only the newest of a kind matters
        if self.connected:
            self._send(pb.AgentMessage(plan_inputs=plan_inputs_to_proto(inputs)))

    def _take_plan(self, message: pb.PlanUpdate) -> None:
        try:
            update = plan_update_from_proto(message)
        except ProtocolViolationError as err:
            _LOGGER.warning(
                "Agent %s: a plan from the hub was refused: %s", self.config.agent_id, err
            )
            return
        if self._plan is not None and update.version < self._plan.version:
            return  # an older plan overtaken on the way
        self._plan = update
        if self._on_plan is not None:
            self._on_plan(update)

    def report_audit(self, record: AuditRecord) -> None:
        """Send an audit record of something done at the site (a Home Assistant action, a
        lease lapsing). Give this as, or call it from, the site dispatcher's audit sink;
        records of the hub's own setpoints travel in their acks and are skipped here."""
        if record.source == HUB_SOURCE:
            return
        if self._audits_waiting >= self.config.audit_backlog:
            self._drop_oldest_audit()
        self._audits_waiting += 1
        self._send(pb.AgentMessage(audit=audit_to_proto(record)))

    async def flush(self) -> None:
        """Cut a telemetry batch from everything published so far."""
        series, texts, points = self._columns.take()
        if not points:
            return
        batch = TelemetryBatch(self.config.agent_id, self.config.site_id, 0, series, texts)
        await self._buffer.add(batch_to_proto(batch), points)
        self._wake.set()

    # Sessions.

    async def _run(self) -> None:
        hubs, index = self.config.hubs, 0
        backoff = self._backoff
        while True:
            address = hubs[index % len(hubs)]
            registered = False
            problem: str | None = None
            try:
                registered = await self._session(address)
            except AuthenticationError as err:
                problem = f"hub {address} refused agent {self.config.agent_id}: {err}"
            except (GatewayError, grpc.aio.AioRpcError, TimeoutError) as err:
                problem = f"link to hub {address} ended: {_describe(err)}"
            except asyncio.InvalidStateError:
                problem = f"link to hub {address} ended while sending"
            except Exception:
                # Whatever went wrong, the agent must not stop trying: log it and reconnect.
                _LOGGER.exception("Unexpected failure of the link to hub %s", address)
                problem = f"link to hub {address} failed unexpectedly"
            finally:
                self._set_disconnected()
            if self._stopping.is_set():
                return
            if problem is not None:
                self._note_problem(problem, registered=registered)
            if registered:
                backoff.reset()  # the same hub first: it was fine until now
            else:
                index += 1
            await asyncio.sleep(backoff.delay())

    def _note_problem(self, problem: str, *, registered: bool) -> None:
        """Say once that the hub cannot be reached (and once it is again, on registering);
        the attempts in between are debug."""
        self.last_error = problem
        if registered or self.down_since is None:
            self.down_since = self._clock()
            _LOGGER.warning("Agent %s: %s; trying again", self.config.agent_id, problem)
        else:
            _LOGGER.debug("Agent %s: %s", self.config.agent_id, problem)

    async def _session(self, address: str) -> bool:
        """One stream to one hub; returns (or raises) when it ends. True once registered."""
        options = client_options()
        tls = self.config.tls
        channel = (
            grpc.aio.insecure_channel(address, options=options)
            if tls is None
            else grpc.aio.secure_channel(address, tls.credentials(), options=options)
        )
        self._reregister.clear()
        registered = False
        try:
            call = GatewayStub(channel).Connect(
                metadata=auth_metadata(self.config.agent_id, self.config.token)
            )
            await call.write(pb.AgentMessage(register=registration_to_proto(self._registration)))
            try:
                async with asyncio.timeout(self.config.register_timeout):
                    first = await call.read()
            except grpc.aio.AioRpcError as err:
                if err.code() in _REFUSED:
                    raise AuthenticationError(err.details() or err.code().name) from None
                raise
            if not isinstance(first, pb.HubMessage) or first.WhichOneof("body") != "register_ack":
                raise ProtocolViolationError("the hub did not answer the registration")
            ack = first.register_ack
            await self._buffer.rewind(ack.durable_seq)
            self._durable_seq = ack.durable_seq
            heartbeat = float(ack.heartbeat_interval_s) or self.config.heartbeat_interval
            self._set_connected(address, ack.session_id)
            registered = True
            _LOGGER.info(
                "Agent %s registered with hub %s (session %s, durable seq %d)",
                self.config.agent_id,
                address,
                ack.session_id,
                ack.durable_seq,
            )
            await _first_to_end(
                self._receive(call), self._transmit(call), self._beat(heartbeat), self._renew()
            )
        finally:
            await channel.close(grace=None)
        return registered

    async def _receive(self, call: _Call) -> None:
        while True:
            message = await call.read()
            if not isinstance(message, pb.HubMessage):
                return  # the hub ended the stream
            kind = message.WhichOneof("body")
            if kind == "telemetry_ack":
                self._durable_seq = max(self._durable_seq, message.telemetry_ack.durable_seq)
                await self._buffer.acknowledge(message.telemetry_ack.durable_seq)
            elif kind == "setpoint":
                task = asyncio.get_running_loop().create_task(self._execute(message.setpoint))
                self._executing.add(task)
                task.add_done_callback(self._executing.discard)
            elif kind == "ping":
                self._send(pb.AgentMessage(heartbeat=self._heartbeat(message.ping.nonce)))
            elif kind == "plan":
                self._take_plan(message.plan)
            elif kind == "plan_request_ack":
                ack = message.plan_request_ack
                waiting = self._plan_requests.pop(ack.request_id, None)
                if waiting is not None and not waiting.done():
                    waiting.set_result(ack.error)
            else:
                _LOGGER.debug("Ignoring hub message %s", kind)

    async def _transmit(self, call: _Call) -> None:
        """The one writer of the stream: control messages first, then telemetry."""
        while True:
            while self._outbox:
                message = self._outbox[0]
                await call.write(message)  # taken off the outbox only once written
                self._outbox.popleft()
                if message.WhichOneof("body") == "audit":
                    self._audits_waiting -= 1
            if self._stopping.is_set():
                # Half-close: the hub reads everything sent so far, then ends the stream,
                # which ends this session through _receive.
                await call.done_writing()
                await asyncio.Event().wait()
            telemetry = await self._buffer.next_unsent()
            if telemetry is not None:
                await call.write(pb.AgentMessage(telemetry=telemetry))
                self._progress.set()
                continue
            self._wake.clear()
            if not self._outbox and not self._buffer.has_unsent() and not self._stopping.is_set():
                await self._wake.wait()

    async def _renew(self) -> None:
        """End the session once the assets changed, so the next one registers them."""
        await self._reregister.wait()
        _LOGGER.info("Agent %s registers again: its assets changed", self.config.agent_id)

    async def _beat(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self._send(pb.AgentMessage(heartbeat=self._heartbeat(0)))

    def _heartbeat(self, nonce: int) -> pb.Heartbeat:
        return pb.Heartbeat(
            sent_at_ms=round(self._clock() * 1000),
            ping_nonce=nonce,
            buffered_batches=self._buffer.pending,
            dropped_points=self._buffer.dropped_points,
            devices=[status_to_proto(s) for s in self._device_status()]
            if self._device_status is not None
            else [],
        )

    # Setpoints.

    async def _execute(self, setpoint: pb.Setpoint) -> None:
        answer = self._commands.get(setpoint.command_id)
        if answer is None:
            answer = asyncio.get_running_loop().create_future()
            self._commands[setpoint.command_id] = answer
            while len(self._commands) > self.config.command_cache:
                self._commands.popitem(last=False)
            try:
                answer.set_result(await self._apply(setpoint))
            finally:
                if not answer.done():  # cancelled: a repeat may run it after all
                    answer.cancel()
                    self._commands.pop(setpoint.command_id, None)
        else:
            _LOGGER.info("Setpoint %s seen before: answering again", setpoint.command_id)
        self._send(pb.AgentMessage(setpoint_ack=await asyncio.shield(answer)))

    async def _apply(self, setpoint: pb.Setpoint) -> pb.SetpointAck:
        asset_id = setpoint.asset_id or None
        site_id = setpoint.site_id or None
        issued_by = setpoint.issued_by or HUB_SOURCE
        try:
            ttl = setpoint.ttl_s if setpoint.ttl_s > 0 else None
            if setpoint.release:
                if asset_id is None and site_id not in (None, self._dispatcher.site_id):
                    raise GatewayError(f"site {site_id!r} is not {self._dispatcher.site_id!r}")
                records = await self._dispatcher.release(
                    requested_by=issued_by, source=HUB_SOURCE, asset_id=asset_id
                )
            elif setpoint.command:
                if asset_id is None:
                    raise GatewayError(f"{setpoint.command} needs the asset it is for")
                records = [
                    await self._dispatcher.write(
                        asset_id,
                        setpoint.command,
                        value_from_proto(setpoint.value),
                        requested_by=issued_by,
                        source=HUB_SOURCE,
                        ttl=ttl,
                    )
                ]
            else:
                records = await self._dispatcher.dispatch(
                    setpoint.power_w,
                    requested_by=issued_by,
                    source=HUB_SOURCE,
                    asset_id=asset_id,
                    site_id=site_id,
                    ttl=ttl,
                )
        except EdgeEmsError as err:
            return pb.SetpointAck(command_id=setpoint.command_id, error=str(err))
        return pb.SetpointAck(
            command_id=setpoint.command_id, records=[audit_to_proto(r) for r in records]
        )

    # Telemetry cadence.

    async def _flush_loop(self) -> None:
        monotonic = asyncio.get_running_loop().time
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.flush_interval):
                    await self._flush_now.wait()
            self._flush_now.clear()
            await self.flush()
            if not self.connected and monotonic() - self._last_spill >= self.config.spill_interval:
                self._last_spill = monotonic()
                await self._buffer.spill()

    def _check_batch_size(self) -> None:
        if self._columns.points >= self.config.max_batch_points:
            self._flush_now.set()

    # Bookkeeping.

    def _send(self, message: pb.AgentMessage) -> None:
        self._outbox.append(message)
        self._wake.set()

    def _drop_oldest_audit(self) -> None:
        for index, message in enumerate(self._outbox):
            if message.WhichOneof("body") == "audit":
                del self._outbox[index]
                self._audits_waiting -= 1
                self._dropped_audits += 1
                return

    def _set_connected(self, address: str, session_id: str) -> None:
        self._hub, self._session_id = address, session_id
        self.down_since = self.last_error = None
        for inputs in self._inputs.values():  # a hub that restarted knows none of them
            self._send(pb.AgentMessage(plan_inputs=plan_inputs_to_proto(inputs)))
        self._sessions += 1
        self._connected.set()
        self._wake.set()
        if self._on_change is not None:
            self._on_change()

    def _set_disconnected(self) -> None:
        was_connected = self.connected
        self._connected.clear()
        self._progress.set()  # nothing more will be sent on this session
        self._session_id = None
        # Heartbeats and pings belong to the session that ended.
        self._outbox = deque(m for m in self._outbox if m.WhichOneof("body") != "heartbeat")
        if was_connected and self._on_change is not None:
            self._on_change()


type _Call = grpc.aio.StreamStreamCall[pb.AgentMessage, pb.HubMessage]


async def _first_to_end(*coroutines: Coroutine[Any, Any, None]) -> None:
    """Run the session's loops until one ends; cancel the others; re-raise its error."""
    tasks = [asyncio.ensure_future(coroutine) for coroutine in coroutines]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        task.result()


def _describe(err: BaseException) -> str:
    if isinstance(err, grpc.aio.AioRpcError):
        return f"{err.code().name}: {err.details()}"
    return str(err) or type(err).__name__


__all__ = ["HUB_SOURCE", "Agent", "AgentConfig", "AgentStats"]
