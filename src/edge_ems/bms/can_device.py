"""A battery management system on a CAN bus speaking the Pylontech/SMA-compatible protocol.

The device listens through python-can's :class:`can.Notifier` and
:class:`can.AsyncBufferedReader`: a bus with a file descriptor (socketcan) is watched by the
event loop itself, any other bus by the notifier's reader thread, so nothing blocks the loop.
Frames of the wrong length and frames of other ids are counted, never fatal.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import can

from ..device import DeviceIdentity, Health
from ..exceptions import DeviceConnectionError
from ..readings import Readings
from ..resilience import CircuitBreaker
from .pylontech import FRAMES, CanFrameError, decode_frame
from .reporting import ReportingDevice

_LOGGER = logging.getLogger(__name__)

INVERTER_HEARTBEAT_ID = 0x305
"""An inverter sends this every second; some batteries fall silent without it."""
MODEL = "Pylontech-compatible CAN BMS"


_FRAME_METRICS = frozenset(field.metric for frame in FRAMES.values() for field in frame.fields)


class CanBmsDevice(ReportingDevice):
    """Reads a Pylontech/SMA-compatible battery from a CAN bus.

    ``interface``, ``channel`` and ``bus_options`` go to :class:`can.Bus` (``socketcan`` and
    ``can0`` on a Raspberry Pi with a CAN HAT). Alone on the bus with the battery, set
    ``send_heartbeat`` so the device sends the inverter's heartbeat the battery waits for;
    beside an inverter, leave it off.
    """

    def __init__(
        self,
        name: str,
        *,
        interface: str = "socketcan",
        channel: str = "can0",
        bus_options: Mapping[str, Any] | None = None,
        max_age: float = 10.0,
        send_heartbeat: bool = False,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(name, max_age=max_age, breaker=breaker, clock=clock)
        self._bus_config = {"interface": interface, "channel": channel, **(bus_options or {})}
        self._send_heartbeat = send_heartbeat
        self._bus: can.BusABC | None = None
        self._notifier: can.Notifier | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def identity(self) -> DeviceIdentity | None:
        """The manufacturer the battery names (frame 0x35E) once heard; ``None`` unconnected."""
        if self._bus is None:
            return None
        manufacturer = self._latest.snapshot().get("device_manufacturer")
        name = manufacturer.value if manufacturer is not None else None
        return DeviceIdentity(manufacturer=str(name or "unknown"), model=MODEL)

    @property
    def declared_metrics(self) -> frozenset[str]:
        """Every metric the protocol's frames carry, reported once the battery sends them."""
        return _FRAME_METRICS

    @property
    def health(self) -> Health:
        """Connected while the bus is open and the battery was heard within ``max_age``."""
        health = self._health.snapshot()
        heard = self._bus is not None and self._latest.fresh()
        return dataclasses.replace(health, connected=heard)

    async def connect(self) -> DeviceIdentity:
        """Open the bus and start listening."""
        if self._bus is None:
            try:
                bus = await asyncio.to_thread(can.Bus, **self._bus_config)
            except (can.CanError, OSError, ValueError) as err:
                self._health.record_failure(err)
                raise DeviceConnectionError(f"{self._name}: cannot open CAN bus: {err}") from err
            reader = can.AsyncBufferedReader()
            self._notifier = can.Notifier(
                bus, [reader], timeout=0.2, loop=asyncio.get_running_loop()
            )
            self._bus = bus
            self._tasks = [asyncio.create_task(self._listen(reader))]
            if self._send_heartbeat:
                self._tasks.append(asyncio.create_task(self._heartbeat(bus)))
        identity = self.identity
        assert identity is not None
        return identity

    async def read(self) -> Readings:
        """The newest value of every metric, stale where older than ``max_age``.

        Raises :class:`DeviceConnectionError` when the bus failed (the device must be closed
        and connected again).
        """
        if self._notifier is not None and self._notifier.exception is not None:
            error = self._notifier.exception
            self._health.record_failure(error)
            raise DeviceConnectionError(f"{self._name}: CAN bus failed: {error}")
        return self._latest.snapshot()

    async def close(self) -> None:
        """Stop listening and release the bus; :meth:`connect` may open it again."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        notifier, self._notifier = self._notifier, None
        bus, self._bus = self._bus, None
        if notifier is not None:
            if _has_fileno(notifier.bus):
                notifier.stop()  # removes its loop readers, which must happen on the loop
            else:
                await asyncio.to_thread(notifier.stop)  # joins the reader thread
        if bus is not None:
            await asyncio.to_thread(bus.shutdown)

    async def _listen(self, reader: can.AsyncBufferedReader) -> None:
        async for message in reader:
            self._receive(message)

    def _receive(self, message: can.Message) -> None:
        if message.is_error_frame or message.is_remote_frame or message.is_extended_id:
            self.stats.ignored += 1
            return
        try:
            readings = decode_frame(message.arbitration_id, bytes(message.data), self._clock())
        except CanFrameError as err:
            if err.reason == "unknown_id":
                self.stats.ignored += 1
                return
            self._reject(err)
            return
        self._accept(readings)

    async def _heartbeat(self, bus: can.BusABC) -> None:
        heartbeat = can.Message(
            arbitration_id=INVERTER_HEARTBEAT_ID, data=bytes(8), is_extended_id=False
        )
        while True:
            try:
                await asyncio.to_thread(bus.send, heartbeat, 1.0)
            except can.CanError as err:
                self._health.record_failure(err)
                _LOGGER.debug("%s: heartbeat not sent: %s", self._name, err)
            await asyncio.sleep(1.0)


def _has_fileno(bus: can.BusABC | tuple[can.BusABC, ...]) -> bool:
    buses = bus if isinstance(bus, tuple) else (bus,)
    try:
        return all(each.fileno() >= 0 for each in buses)
    except NotImplementedError:
        return False
