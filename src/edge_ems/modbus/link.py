"""One physical Modbus link: a shared modbus-connection connection, paced and made resilient.

Every unit id behind a gateway talks through the same :class:`ModbusLink`, which keeps one
request in flight at a time, retries failed exchanges with jittered backoff, recycles the
connection after a timeout or a garbled answer (a late answer must not be taken for the next
request's), reconnects after a drop and turns modbus-connection's errors into
:mod:`edge_ems.exceptions` that name the device, unit and addresses.

A link that cannot connect is down (the devices' polls report that, once each); meanwhile
pymodbus's own lines about it ("Failed to connect", about 22 a minute) are dropped by a filter
the link puts on pymodbus's loggers, for its own requests only (:mod:`edge_ems.quiet`).
While down, connection attempts back off, never longer than
:attr:`LinkSettings.reconnect_ceiling` (the caller's poll interval), so a device that answers
again is read within one poll; requests in between fail at once without touching the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from modbus_connection import (
    ClientClosedError,
    ModbusConnectionError,
    ModbusError,
    ModbusProtocolError,
    ModbusTimeoutError,
    ModbusUnit,
)
from modbus_connection.pymodbus import ModbusConnection
from pymodbus.client.base import ModbusBaseClient

from ..exceptions import (
    DeviceBusyError,
    DeviceConnectionError,
    DeviceError,
    DeviceProtocolError,
    DeviceTimeoutError,
)
from ..pointmap.model import RegisterSpace
from ..quiet import QuietLogs
from ..resilience import Backoff
from .endpoints import Endpoint, frame_gap
from .errors import translate

_LOGGER = logging.getLogger(__name__)

PYMODBUS_LOGGERS = ("pymodbus",)
"""Where pymodbus logs (its ``Log`` class writes to ``pymodbus.logging``)."""


@dataclass(frozen=True, slots=True)
class LinkSettings:
    """How patiently a link talks to the devices behind it."""

    timeout: float = 3.0
    """Seconds to wait for an answer (and for the connection to open)."""
    retries: int = 2
    """Further attempts after a failed exchange that retrying can help."""
    backoff_base: float = 0.25
    """First retry waits up to this long; each further one up to twice as long."""
    backoff_cap: float = 5.0
    """No retry waits longer than this."""
    message_spacing: float | None = None
    """Silence between requests; ``None`` means 3.5 characters on a serial line, else none."""
    connect_delay: float = 0.0
    """Pause after the connection opens, for devices that need it."""
    retry_timeouts: bool = True
    """Whether silence is worth another attempt; a scan, which takes silence for absence,
    says no."""
    reconnect_ceiling: float | None = None
    """While the link is down, the longest wait between connection attempts (the caller's
    poll interval, so a device that answers again is read within one poll); requests in
    between fail at once. ``None``: every request tries to connect."""


class _HeldBackError(ModbusConnectionError):
    """A request held back while a down link waits for its next connection attempt."""


class _TracedConnection(ModbusConnection):
    """modbus-connection's pymodbus connection, handing every received packet to a hook.

    A garbled answer and silence both end in a timeout; the bytes that arrived tell them apart.
    """

    def __init__(
        self, endpoint: Endpoint, settings: LinkSettings, on_packet: Callable[[bytes], None]
    ):
        spacing = settings.message_spacing
        super().__init__(
            endpoint.params(),
            timeout=settings.timeout,
            message_spacing=frame_gap(endpoint) if spacing is None else spacing,
            connect_delay=settings.connect_delay or None,
        )
        self._on_packet = on_packet

    async def _create_client(self) -> ModbusBaseClient:
        client = await super()._create_client()
        # pymodbus calls this hook with every packet it sends and receives.
        client.ctx.trace_packet = self._trace_packet
        return client

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            self._on_packet(data)
        return data


def _retriable(error: DeviceError, settings: LinkSettings) -> bool:
    """Whether trying again can help; a device's exception answer will not change."""
    if isinstance(error, DeviceTimeoutError):
        return settings.retry_timeouts
    return isinstance(error, DeviceConnectionError | DeviceProtocolError | DeviceBusyError)


class ModbusLink:
    """A shared, resilient link to every unit id on one TCP endpoint or serial line."""

    def __init__(
        self,
        endpoint: Endpoint,
        settings: LinkSettings | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.settings = settings or LinkSettings()
        self._rng = rng
        self._connection = _TracedConnection(endpoint, self.settings, self._note_packet)
        self._connection.on_connection_lost(self._note_lost)
        # One request in flight per physical link, whichever unit it is for.
        self._lock = asyncio.Lock()
        self._lost = asyncio.Event()
        self._answer = b""
        self._users = 0
        self._quiet = QuietLogs(PYMODBUS_LOGGERS, _LOGGER)
        self._down_since: float | None = None
        """When the link went down (monotonic); ``None`` while it is up."""
        self._next_attempt = 0.0
        ceiling = self.settings.reconnect_ceiling
        base = self.settings.backoff_base
        self._reconnect = (
            None
            if ceiling is None
            else Backoff(base, ceiling)
            if rng is None
            else Backoff(base, ceiling, rng=rng)
        )

    @property
    def name(self) -> str:
        """The endpoint's label."""
        return self.endpoint.label

    @property
    def connected(self) -> bool:
        """Whether the connection is open now."""
        return self._connection.connected

    @property
    def down(self) -> bool:
        """Whether the last attempt to connect failed (and none has succeeded since)."""
        return self._down_since is not None

    async def connect(self) -> None:
        """Open the connection (requests open it on demand too)."""
        try:
            await self._open()
        except ModbusError as err:
            raise translate(err, self.name) from err

    async def read(
        self, device: str, unit: int, space: RegisterSpace, address: int, count: int
    ) -> list[int]:
        """Read ``count`` registers from ``space`` (function 3 or 4) of ``unit``."""
        where = f"{device} (unit {unit}) reading {space} {address}-{address + count - 1}"
        handle = self._connection.for_unit(unit)
        reader = (
            handle.read_holding_registers
            if space is RegisterSpace.HOLDING
            else handle.read_input_registers
        )
        registers = await self._exchange(where, lambda: reader(address, count))
        if len(registers) != count:
            raise DeviceProtocolError(f"{where}: answer holds {len(registers)} registers")
        return registers

    async def write(
        self, device: str, unit: int, address: int, values: list[int], *, single: bool
    ) -> None:
        """Write holding registers with function 6 (``single``, one register) or 16."""
        where = f"{device} (unit {unit}) writing holding {address}-{address + len(values) - 1}"
        handle: ModbusUnit = self._connection.for_unit(unit)
        if single:
            if len(values) != 1:
                raise ValueError("function 6 writes exactly one register")
            await self._exchange(where, lambda: handle.write_register(address, values[0]))
        else:
            await self._exchange(where, lambda: handle.write_registers(address, values))

    def attach(self) -> None:
        """Count a device that uses the link."""
        self._users += 1

    async def detach(self) -> None:
        """Release a device's use; the connection drops when no device uses it."""
        self._users = max(0, self._users - 1)
        if not self._users:
            await self.disconnect()

    async def disconnect(self) -> None:
        """Drop the connection; the next request opens a new one."""
        with contextlib.suppress(ModbusError):
            await self._connection.disconnect()

    async def close(self) -> None:
        """Close the link for good."""
        with contextlib.suppress(ModbusError):
            await self._connection.close()
        self._quiet.mute(on=False)

    async def _exchange[T](self, where: str, call: Callable[[], Awaitable[T]]) -> T:
        base, cap = self.settings.backoff_base, self.settings.backoff_cap
        backoff = Backoff(base, cap) if self._rng is None else Backoff(base, cap, rng=self._rng)
        attempt = 0
        while True:
            attempt += 1
            async with self._lock:
                try:
                    with self._quiet.context():
                        await self._open()
                        return await self._attempt(call)
                except ModbusError as err:
                    failure, answer = err, self._answer
                    if isinstance(failure, ModbusTimeoutError | ModbusProtocolError):
                        # A late or garbled answer could be read as the next request's.
                        await self.disconnect()
            delay = backoff.delay()
            error = translate(failure, where, answer=answer, retry_after=delay)
            final = isinstance(failure, ClientClosedError | _HeldBackError)
            if final or not _retriable(error, self.settings) or attempt > self.settings.retries:
                raise error from failure
            _LOGGER.debug("%s; attempt %d failed, retrying in %.2f s", error, attempt, delay)
            await asyncio.sleep(delay)

    async def _open(self) -> None:
        """Connect unless connected; while the link is down, only once the backoff allows.

        Raises modbus-connection's error, so callers translate it as any other."""
        if self._connection.connected:
            return
        now = time.monotonic()
        if self._down_since is not None and now < self._next_attempt:
            raise _HeldBackError(
                f"link down for {now - self._down_since:.0f} s; "
                f"next attempt in {self._next_attempt - now:.1f} s"
            )
        self._quiet.mute(on=True)  # the link reports how connecting went itself
        try:
            with self._quiet.context():
                await self._connection.connect()
        except ModbusError as err:
            self._went_down(err)
            raise
        self._came_back()

    def _went_down(self, error: ModbusError) -> None:
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
            # Debug only: the device's poll reports the outage, once (a coordinator, the
            # agent's poll loop); a link may carry several devices.
            _LOGGER.debug("%s is down: %s", self.name, error)
        if self._reconnect is not None:
            self._next_attempt = now + self._reconnect.delay()

    def _came_back(self) -> None:
        if self._down_since is not None:
            _LOGGER.debug("%s is back after %.0f s", self.name, time.monotonic() - self._down_since)
            self._down_since = None
            if self._reconnect is not None:
                self._reconnect.reset()
        self._quiet.mute(on=False)

    async def _attempt[T](self, call: Callable[[], Awaitable[T]]) -> T:
        """One request, cut short when the connection drops under it."""
        self._answer = b""
        self._lost.clear()
        request: asyncio.Future[T] = asyncio.ensure_future(call())
        lost = asyncio.create_task(self._lost.wait())
        try:
            done, _ = await asyncio.wait((request, lost), return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not request.done():
                request.cancel()
                await asyncio.wait((request,))
                if not request.cancelled():
                    request.exception()  # observed: the drop is what gets reported
        if request in done:
            return request.result()
        raise ModbusConnectionError("connection lost while waiting for the answer")

    def _note_packet(self, data: bytes) -> None:
        self._answer = data

    def _note_lost(self) -> None:
        self._lost.set()
