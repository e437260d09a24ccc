"""A simulated Pylontech-compatible battery on a CAN bus.

Every ``interval`` seconds it advances its :class:`~edge_ems.sim.physics.Battery` and sends
the frames a Pylontech battery sends (0x351, 0x355, 0x356, 0x359, 0x35C, 0x35E, 0x35F). By
default it uses python-can's in-process virtual bus, so a
:class:`~edge_ems.bms.can_device.CanBmsDevice` on the same channel hears it::

    async with CanBmsSimulator(channel="sim") as sim:
        device = CanBmsDevice("battery", interface="virtual", channel="sim")
        ...
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import can

from ..bms.pylontech import encode_frames
from .bms_mqtt import bms_values
from .physics import Battery

_LOGGER = logging.getLogger(__name__)


class CanBmsSimulator:
    """Sends a simulated battery's frames on a CAN bus."""

    def __init__(
        self,
        *,
        interface: str = "virtual",
        channel: str = "edge-ems-bms",
        bus_options: Mapping[str, Any] | None = None,
        battery: Battery | None = None,
        interval: float = 1.0,
        manufacturer: str = "PYLON",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.battery = battery or Battery()
        self.frames_sent = 0
        self._bus_config = {"interface": interface, "channel": channel, **(bus_options or {})}
        self._interval = interval
        self._manufacturer = manufacturer
        self._clock = clock
        self._bus: can.BusABC | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the bus and start sending."""
        if self._bus is None:
            self._bus = await asyncio.to_thread(can.Bus, **self._bus_config)
            self._task = asyncio.create_task(self._run(self._bus), name="edge-ems sim can bms")

    async def stop(self) -> None:
        """Stop sending and release the bus."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        bus, self._bus = self._bus, None
        if bus is not None:
            await asyncio.to_thread(bus.shutdown)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def frames(self) -> list[can.Message]:
        """The frames the battery sends in its current state."""
        values = bms_values(self.battery) | {"device_manufacturer": self._manufacturer}
        return [
            can.Message(arbitration_id=arbitration_id, data=data, is_extended_id=False)
            for arbitration_id, data in encode_frames(values)
        ]

    async def _run(self, bus: can.BusABC) -> None:
        while True:
            self.battery.advance(self._clock())
            self.frames_sent += await asyncio.to_thread(_send, bus, self.frames())
            await asyncio.sleep(self._interval)


def _send(bus: can.BusABC, messages: Sequence[can.Message]) -> int:
    """Send one cycle's frames (in a worker thread: a real bus may block while busy)."""
    sent = 0
    for message in messages:
        try:
            bus.send(message, timeout=1.0)
        except can.CanError as err:
            _LOGGER.debug("simulated CAN BMS: 0x%03X not sent: %s", message.arbitration_id, err)
        else:
            sent += 1
    return sent
