"""One site: its devices, their polling, one guarded Dispatcher, the audit and the hub.

Home Assistant and ``edge-ems agent`` both run a :class:`Site`; the planner carries out its
plan on one. What is the same wherever a site runs lives here: building every kind of device
from its description, reading it (connecting first when needed), telling dispatch what each
device holds, streaming readings to the hub, keeping what devices learned about themselves,
and handing every audit record to each sink (Home Assistant's log, the hub, a log file).

Who decides *when* a device is read differs: ``start(poll=True)`` runs the site's own loop,
one reader per device on its interval (the agent); Home Assistant's coordinators call
:meth:`Site.poll` on theirs instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..agent import Agent, AgentConfig, TelemetryBuffer
from ..device import AssetType, Device, DeviceIdentity
from ..dispatch import AuditRecord, AuditSink, Dispatcher
from ..exceptions import DeviceConnectionError, DeviceError, IdentificationError
from ..gateway.errors import GatewayError
from ..gateway.model import AssetInfo, DeviceStatus, PlanInputs, PlanRequest, PlanUpdate
from ..metrics import BATTERY_POWER
from ..modbus import LinkRegistry
from ..opcua.mirror import OpcUaTelemetryWriter
from ..readings import Readings
from .description import DeviceSpec, SiteDescription
from .factory import (
    FACTORIES,
    BuildContext,
    Catalog,
    DeviceFactory,
    build_device,
    build_mirror,
    link_settings,
)
from .follow import Deviation, deviations
from .learned import Learned, LearnedStore

_LOGGER = logging.getLogger(__name__)

type Spawn = Callable[[Coroutine[Any, Any, None], str], asyncio.Task[None]]
"""Starts a background task; a host that tracks its tasks (Home Assistant) passes its own."""

_IDENTITY_FIELDS = ("manufacturer", "model", "serial", "firmware", "hardware")
LEARNED_SAVE_DELAY = 2.0
"""Seconds to gather what devices learn before writing it down."""


@dataclass(eq=False)
class SiteDevice:
    """One device of a running site, with what the site knows about it."""

    spec: DeviceSpec
    device: Device
    readings: Readings = field(default_factory=dict)
    """The last good read."""
    reported: frozenset[str] = frozenset()
    """Metrics the device reported a value for, on this run or an earlier one."""
    remembered_identity: DeviceIdentity | None = None
    """Who the device said it was on an earlier run."""
    needs_connect: bool = True
    answering: bool | None = None
    """Whether the last poll succeeded; ``None`` before the first."""
    last_error: DeviceError | None = None
    polls: int = 0
    failed_polls: int = 0
    last_poll: float | None = None
    """When the last poll ended (seconds since the epoch)."""
    last_success: float | None = None
    mirror: OpcUaTelemetryWriter | None = None
    registered_commands: tuple[str, ...] = ()
    """The allowed commands the hub last heard of."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def device_id(self) -> str:
        """The device's id within the site."""
        return self.spec.device_id

    @property
    def name(self) -> str:
        """The device's name."""
        return self.spec.name

    @property
    def identity(self) -> DeviceIdentity | None:
        """Who the device says it is, or said it was on an earlier run while it is away."""
        return self.device.identity or self.remembered_identity

    @property
    def metrics(self) -> frozenset[str]:
        """What the device reports: what it reported so far (now or before), else what it
        declares; with its allowed commands."""
        reported = self.reported or self.device.declared_metrics
        allowed = {name for name, command in self.device.commands.items() if command.allow_write}
        return reported | allowed


class Site:
    """A running site. Build it from a description, ``start()`` it, ``stop()`` it."""

    def __init__(
        self,
        description: SiteDescription,
        catalog: Catalog,
        *,
        factories: Mapping[str, DeviceFactory] = FACTORIES,
        learned_store: LearnedStore | None = None,
        audit_sinks: Sequence[AuditSink] = (),
        buffer: TelemetryBuffer | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        spawn: Spawn | None = None,
    ) -> None:
        self.description = description
        self._catalog = catalog
        self._factories = factories
        self._learned_store = learned_store
        self._learned: Learned = {}
        self._saving: asyncio.Task[None] | None = None
        self._sinks: list[AuditSink] = list(audit_sinks)
        self._buffer = buffer
        self._clock = clock
        self._spawn = spawn
        self.links = LinkRegistry()
        """The site's Modbus links: devices behind one gateway share its connection."""
        self.dispatcher = Dispatcher(
            description.site_id, description.policy, self._audit, clock=clock, monotonic=monotonic
        )
        self.devices: dict[str, SiteDevice] = {}
        self._link_settings = link_settings(description)
        self.agent: Agent | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._hub_listeners: list[Callable[[], None]] = []
        self._plan_listeners: list[Callable[[PlanUpdate], None]] = []

    @property
    def site_id(self) -> str:
        """The site's id."""
        return self.description.site_id

    # Lifecycle.

    async def start(self, *, poll: bool = True) -> None:
        """Build every device, link to the hub, and (with ``poll``) start reading.

        Devices are not connected here: each connects on its first poll, so a device that
        is away at start keeps none of the others waiting. Raises :class:`ConfigError`
        when a device cannot be built; nothing is left running then.
        """
        if self._learned_store is not None:
            self._learned = await self._learned_store.load()
        try:
            for spec in self.description.devices:
                self._add(spec)
        except BaseException:
            await self._close_devices()
            raise
        if self.description.hub is not None:
            await self._start_agent()
        if poll:
            for device_id in self.devices:
                self._start_task(self._poll_loop(device_id), f"edge_ems poll {device_id}")

    async def stop(self, *, release: bool = True) -> None:
        """Stop reading, return leased devices to safe mode, unlink and disconnect.

        Releasing first lets the hub hear of the safe-mode return too.
        """
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.dispatcher.close(release=release)
        agent, self.agent = self.agent, None
        if agent is not None:
            await agent.stop()
        await self._close_devices()
        if self._saving is not None:
            self._saving.cancel()  # saves what waits, at once
            with contextlib.suppress(asyncio.CancelledError):
                await self._saving

    # Reading.

    async def poll(self, device_id: str) -> Readings:
        """Read one device once, connecting it first when needed, and pass the readings on
        (dispatch, the hub, what the device learned). Raises the device's error."""
        member = self.devices[device_id]
        async with member.lock:
            device = member.device
            try:
                if member.needs_connect:
                    await device.connect()
                    member.needs_connect = False
                readings = await device.read()
            except DeviceError as err:
                # A lost link or a device that no longer matches is identified again.
                if isinstance(err, DeviceConnectionError | IdentificationError):
                    member.needs_connect = True
                member.answering, member.last_error = False, err
                member.failed_polls += 1
                raise
            finally:
                member.polls += 1
                member.last_poll = self._clock()
            member.answering, member.last_error = True, None
            member.last_success = member.last_poll
            member.readings = readings
            await self._passed_on(member, readings)
        return readings

    async def _passed_on(self, member: SiteDevice, readings: Readings) -> None:
        self.dispatcher.observe(member.device_id, readings)
        if self.agent is not None:
            self.agent.publish({member.device_id: readings})
            if member.registered_commands != _allowed(member.device):
                # What the device takes is known once it answered (a SunSpec chain, say).
                await self.agent.update_assets(self.asset_infos())
        if member.mirror is not None:
            await member.mirror.write(readings)
        member.reported |= {name for name, reading in readings.items() if reading.value is not None}
        await self._remember(member)

    async def _poll_loop(self, device_id: str) -> None:
        """Read one device on its interval; one log line when it stops answering, one when
        it answers again."""
        member = self.devices[device_id]
        interval = self.description.interval(member.spec)
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            was = member.answering
            try:
                await self.poll(device_id)
            except DeviceError as err:
                if was is not False:
                    _LOGGER.warning("%s does not answer: %s", member.name, err)
            except Exception:
                # A bug must not end the device's polling for good: say so, keep going.
                member.answering = False
                _LOGGER.exception("Reading %s failed", member.name)
            else:
                if was is False:
                    _LOGGER.info("%s answers again", member.name)
            await asyncio.sleep(max(0.0, interval - (loop.time() - started)))

    # Audit.

    def deviations(self) -> list[Deviation]:
        """Leased commands the devices' latest reads show at another value than leased."""
        return deviations(
            self.dispatcher.all_leases(),
            {device_id: member.readings for device_id, member in self.devices.items()},
        )

    def add_audit_sink(self, sink: AuditSink) -> Callable[[], None]:
        """Hand every audit record to ``sink`` too; returns a function that stops it."""
        self._sinks.append(sink)
        return lambda: self._sinks.remove(sink)

    def _audit(self, record: AuditRecord) -> None:
        """The dispatcher's one sink: every record to every sink, each on its own."""
        for sink in list(self._sinks):
            try:
                sink(record)
            except Exception:
                # One broken sink must not keep the record from the others.
                _LOGGER.exception("Audit sink %r failed", sink)
        if self.agent is not None:
            self.agent.report_audit(record)

    # The hub.

    def asset_infos(self) -> list[AssetInfo]:
        """The site's devices as the hub's assets: what each is, and a battery the site may
        drive (its limits known, its power a command) as a ``battery`` with its limits."""
        assets = []
        for device_id, member in sorted(self.devices.items()):
            commands = member.registered_commands = _allowed(member.device)
            limits = member.spec.limits
            battery = limits is not None and BATTERY_POWER in commands
            assets.append(
                AssetInfo(
                    asset_id=device_id,
                    name=member.name,
                    type=str(AssetType.BATTERY if battery else member.device.asset_type),
                    capacity_wh=limits.capacity_wh if limits else 0.0,
                    max_charge_w=limits.max_charge_w if limits else 0.0,
                    max_discharge_w=limits.max_discharge_w if limits else 0.0,
                    commands=commands,
                )
            )
        return assets

    def device_statuses(self) -> list[DeviceStatus]:
        """How polling each device goes, for the hub (sent with the agent's heartbeats)."""
        return [
            DeviceStatus(
                asset_id=device_id,
                answering=member.answering,
                last_poll_ms=_ms(member.last_poll),
                last_success_ms=_ms(member.last_success),
                last_error=None if member.last_error is None else str(member.last_error),
                polls=member.polls,
                failed_polls=member.failed_polls,
                requests=(
                    member.device.reader.requests
                    if isinstance(member.device, CountsRequests)
                    else None
                ),
                breaker=str(member.device.health.breaker),
            )
            for device_id, member in sorted(self.devices.items())
        ]

    # The hub's planner.

    @property
    def plan(self) -> PlanUpdate | None:
        """The site's latest plan from the hub's planner, if it sent one."""
        return None if self.agent is None else self.agent.plan

    def on_plan(self, listener: Callable[[PlanUpdate], None]) -> Callable[[], None]:
        """Call ``listener`` with every new plan the hub's planner sends."""
        self._plan_listeners.append(listener)
        return lambda: self._plan_listeners.remove(listener)

    async def ask_planner(self, request: PlanRequest) -> None:
        """Ask the hub's planner to plan again, hold an asset or let it go; raises
        :class:`GatewayError` when the site has no hub, the link is down, or the planner
        refuses."""
        if self.agent is None:
            raise GatewayError(f"site {self.site_id} is linked to no hub, which plans")
        await self.agent.request_plan(request)

    def give_planner(self, inputs: PlanInputs) -> None:
        """Hand the hub's planner a series this site knows better (Home Assistant's prices,
        its solar forecast); nothing happens without a hub."""
        if self.agent is not None:
            self.agent.send_plan_inputs(inputs)

    def _plan_changed(self, update: PlanUpdate) -> None:
        for listener in list(self._plan_listeners):
            listener(update)

    def on_hub_change(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` when the link to the hub comes up or goes down."""
        self._hub_listeners.append(listener)
        return lambda: self._hub_listeners.remove(listener)

    async def _start_agent(self) -> None:
        hub = self.description.hub
        assert hub is not None
        config = AgentConfig(
            agent_id=hub.agent_id,
            site_id=self.site_id,
            token=hub.token,
            hubs=hub.hubs,
            site_name=self.description.name,
            gateway_id=self.description.gateway_id or hub.agent_id,
            tls=hub.tls,
            flush_interval=self.description.flush_interval,
            reconnect_cap=hub.reconnect_cap,
            max_batch_points=hub.max_batch_points,
        )
        buffer = self._buffer or TelemetryBuffer(self.description.buffer_dir)
        agent = Agent(
            config,
            self.dispatcher,
            self.asset_infos(),
            buffer=buffer,
            clock=self._clock,
            on_change=self._hub_changed,
            on_plan=self._plan_changed,
            device_status=self.device_statuses,
        )
        await agent.start()
        self.agent = agent

    def _hub_changed(self) -> None:
        for listener in list(self._hub_listeners):
            listener()

    # Devices.

    def _add(self, spec: DeviceSpec) -> None:
        learned = self._learned.get(spec.device_id, {})
        context = BuildContext(
            catalog=self._catalog,
            links=self.links,
            poll_interval=self.description.interval(spec),
            learned=learned.get("device") or {},
            clock=self._clock,
            link_settings=self._link_settings,
        )
        device = build_device(spec, context, self._factories)
        member = SiteDevice(
            spec,
            device,
            reported=frozenset(learned.get("metrics") or ()),
            remembered_identity=_identity(learned.get("identity")),
            mirror=build_mirror(spec, context),
        )
        self.devices[spec.device_id] = member
        self.dispatcher.add_device(spec.device_id, device, spec.limits)

    async def _close_devices(self) -> None:
        members, self.devices = list(self.devices.values()), {}
        for member in members:
            self.dispatcher.remove_device(member.device_id)
            with contextlib.suppress(DeviceError):
                await member.device.close()
            if member.mirror is not None:
                await member.mirror.close()
        await self.links.close()

    async def _remember(self, member: SiteDevice) -> None:
        """Keep what the device learned, when it changed; saved a moment later, together with
        whatever other devices learn meanwhile (the first polls of a start learn most)."""
        identity = member.device.identity
        entry: dict[str, Any] = {
            "identity": None if identity is None else _identity_dict(identity),
            "metrics": sorted(member.reported),
            "device": dict(member.device.learned),
        }
        if self._learned.get(member.device_id) == entry:
            return
        self._learned[member.device_id] = entry
        if self._learned_store is not None and self._saving is None:
            self._saving = asyncio.get_running_loop().create_task(
                self._save_learned(), name=f"edge_ems {self.site_id} learned"
            )

    async def _save_learned(self) -> None:
        assert self._learned_store is not None
        try:
            await asyncio.sleep(LEARNED_SAVE_DELAY)
        finally:
            self._saving = None
            try:
                await self._learned_store.save(self._learned)
            except OSError as err:
                _LOGGER.warning(
                    "Site %s: could not keep what devices learned: %s", self.site_id, err
                )

    def learned(self, device_id: str) -> Mapping[str, Any]:
        """What the site keeps about one device from run to run."""
        return self._learned.get(device_id, {})

    def _start_task(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        if self._spawn is not None:
            task = self._spawn(coroutine, name)
        else:
            task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.append(task)


class _Requests(Protocol):
    requests: int


@runtime_checkable
class CountsRequests(Protocol):
    """A device that counts the protocol requests it sends (Modbus and SunSpec: their
    block reader's)."""

    @property
    def reader(self) -> _Requests:
        """What sends the requests."""


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


def _allowed(device: Device) -> tuple[str, ...]:
    """The commands a device may be sent, in a stable order."""
    return tuple(sorted(name for name, cmd in device.commands.items() if cmd.allow_write))


def _identity_dict(identity: DeviceIdentity) -> dict[str, str | None]:
    return {name: getattr(identity, name) for name in _IDENTITY_FIELDS}


def _identity(data: Any) -> DeviceIdentity | None:
    """An identity kept by an earlier run, if it is one."""
    if not isinstance(data, dict):
        return None
    fields = {name: value for name in _IDENTITY_FIELDS if isinstance(value := data.get(name), str)}
    if "manufacturer" not in fields or "model" not in fields:
        return None
    return DeviceIdentity(**fields)
