"""A live Modbus server for simulators and tests: a mutable register image behind pymodbus.

:class:`UnitImage` holds one unit id's holding and input registers, usually built from a point
map and a ``{metric: value}`` dict through the codec. :class:`ModbusSimServer` serves one or
more unit images over Modbus TCP, RTU over TCP, or RTU on a serial port (a pty from socat, say)
and answers like a device would::

    image = UnitImage.from_point_map(point_map, {"soc_pct": 55})
    async with ModbusSimServer({1: image}, on_write=react) as server:
        host, port = await server.start_tcp()
        ...  # talk to it; image.set("soc_pct", 60) changes what the next read sees

Writes (function 6 and 16) land in the image first, then ``on_write(unit, address, values)``
is called, so a simulator can react to setpoints (or clamp them). Addresses outside the image
and the map's refused ranges answer exception 2. Every request is recorded in
:attr:`ModbusSimServer.requests`.

Faults are injected at run time with :meth:`ModbusSimServer.inject`: answer an exception code
(6, "busy", say), answer late, drop the client connections, answer with a garbled frame, or
refuse reads of more registers than a cap (exception 3, as RS-485 gateways and loggers do), for
chosen unit ids, spaces and addresses, a number of times or until
:meth:`ModbusSimServer.clear_faults`. A unit id the server does not serve gets exception 11
(gateway target device failed to respond), as a gateway answers for a device that is silent.

A pty carries bytes instantly, so with ``line_baudrate`` the server emulates a serial line:
every answer waits for the wire time of the request and the answer plus the 3.5-character
silence that ends a frame, as a device on a real RS-485 line would.
"""

from __future__ import annotations

import asyncio
import enum
import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from ..modbus.dump import dump_registers
from ..pointmap.codec import encode_raw, from_value, orders
from ..pointmap.model import PointMap, RegisterSpace
from ..readings import Value

type WriteCallback = Callable[[int, int, list[int]], None]
"""Called as ``on_write(unit, address, values)`` after a write landed in the image."""

BITS_PER_CHARACTER = 11
"""An RTU character on the wire: start bit, 8 data bits, parity (or a second stop bit), stop."""

_READS = {3: RegisterSpace.HOLDING, 4: RegisterSpace.INPUT}
_WRITES = {6, 16}
_GARBAGE = b"\x5a\xa5\x00\xff\x13\x37"


async def _no_such_unit(*_request: object) -> ExcCodes:
    """A gateway's answer for a unit id nobody behind it answers to."""
    return ExcCodes.GATEWAY_NO_RESPONSE


# Coils, discrete inputs, holding and input registers: pymodbus insists on a block for each.
_NO_REGISTERS = (
    [SimData(0, values=False, datatype=DataType.BITS)],
    [SimData(0, values=False, datatype=DataType.BITS)],
    [SimData(0, count=0x10000, values=0, datatype=DataType.REGISTERS)],
    [SimData(0, count=0x10000, values=0, datatype=DataType.REGISTERS)],
)


class UnitImage:
    """The holding and input registers of one unit id.

    Only addresses inside the served span of a space answer; the span runs from the lowest to
    the highest address given, so unmapped registers between mapped ones read as 0 (a device
    that allows reads to bridge gaps answers them). Refused ranges answer exception 2.
    """

    def __init__(
        self,
        registers: Mapping[RegisterSpace, Mapping[int, int]],
        *,
        refused: Iterable[tuple[int, int]] = (),
        point_map: PointMap | None = None,
    ) -> None:
        self.point_map = point_map
        self.refused = tuple(refused)
        self._registers = {space: dict(values) for space, values in registers.items()}

    @classmethod
    def from_point_map(
        cls,
        point_map: PointMap,
        values: Mapping[str, Value] | None = None,
        *,
        scale_factors: Mapping[int, int] | None = None,
    ) -> Self:
        """An image serving every point of ``point_map``.

        ``values`` sets metrics by engineering value (the rest read as raw 0);
        ``scale_factors`` sets SunSpec-style scale-factor registers by address (default 0).
        """
        registers: dict[RegisterSpace, dict[int, int]] = {}
        for point in point_map.points.values():
            space = registers.setdefault(point.space, {})
            for address in range(point.address, point.end + 1):
                space.setdefault(address, 0)
            if point.scale_factor is not None:
                space.setdefault(point.scale_factor, 0)
        for address, exponent in (scale_factors or {}).items():
            for space in registers.values():
                if address in space:
                    space[address] = exponent & 0xFFFF
        image = cls(registers, refused=point_map.device.refused, point_map=point_map)
        for metric, value in (values or {}).items():
            image.set(metric, value)
        return image

    @classmethod
    def from_dump(cls, dump: Mapping[str, Any]) -> Self:
        """An image serving a device's register dump (``register_dump()``, also after a trip
        through JSON): the registers it answered, redacted ones as redacted (see
        :mod:`edge_ems.modbus.dump`). Raises ``ValueError`` for anything else."""
        return cls(dump_registers(dump))

    def span(self, space: RegisterSpace) -> tuple[int, int] | None:
        """The first and last address served in ``space``, or ``None`` if it has none."""
        values = self._registers.get(space)
        return (min(values), max(values)) if values else None

    def refuses(self, first: int, last: int) -> bool:
        """Whether a request for addresses ``first..last`` touches a refused range."""
        return any(first <= high and last >= low for low, high in self.refused)

    def read(self, space: RegisterSpace, address: int, count: int) -> list[int]:
        """Raw registers; unmapped ones inside the span read as 0."""
        values = self._registers.get(space, {})
        return [values.get(offset, 0) for offset in range(address, address + count)]

    def write(self, space: RegisterSpace, address: int, values: Iterable[int]) -> None:
        """Store raw registers."""
        registers = self._registers.setdefault(space, {})
        for offset, value in enumerate(values):
            registers[address + offset] = value & 0xFFFF

    def set(self, metric: str, value: Value) -> None:
        """Store a metric's engineering value through the codec (its scale factor applies)."""
        point_map = self._require_map()
        point = point_map.points[metric]
        exponent = 0
        if point.scale_factor is not None:
            raw_exponent = self.read(point.space, point.scale_factor, 1)[0]
            exponent = raw_exponent - 0x10000 if raw_exponent & 0x8000 else raw_exponent
        raw = from_value(point, value, exponent)
        if isinstance(raw, float) and point.type.value not in ("f32", "f64"):
            raw = round(raw)
        word_order, byte_order = orders(point, point_map.device)
        self.write(point.space, point.address, encode_raw(point, raw, word_order, byte_order))

    def _require_map(self) -> PointMap:
        if self.point_map is None:
            raise ValueError("this image was not built from a point map")
        return self.point_map


class FaultKind(enum.StrEnum):
    """What an injected fault does to a matching request."""

    EXCEPTION = "exception"
    """Answer with Modbus exception ``code``."""
    DELAY = "delay"
    """Answer after ``delay`` seconds."""
    DROP = "drop"
    """Close every client connection instead of answering (TCP; on a serial line: silence)."""
    GARBAGE = "garbage"
    """Answer with bytes that are no valid frame."""
    CAP = "cap"
    """Answer reads of more than ``limit`` registers with exception ``code`` (3 unless set)."""


@dataclass(slots=True)
class Fault:
    """A fault injected into the requests that match it."""

    kind: FaultKind
    code: int = 0
    delay: float = 0.0
    limit: int = 125
    """Registers a read may ask for before a :attr:`FaultKind.CAP` fault refuses it."""
    unit: int | None = None
    """Only this unit id; ``None`` for all."""
    space: RegisterSpace | None = None
    """Only requests to this space; ``None`` for all (writes address the holding space)."""
    addresses: tuple[int, int] | None = None
    """Only requests touching this inclusive address range; ``None`` for all."""
    times: int | None = None
    """Hit this many requests, then retire; ``None`` until cleared."""
    hits: int = 0

    def matches(self, unit: int, space: RegisterSpace, first: int, last: int) -> bool:
        """Whether a request hits this fault."""
        if self.times is not None and self.hits >= self.times:
            return False
        if self.kind is FaultKind.CAP and last - first + 1 <= self.limit:
            return False
        if self.unit is not None and unit != self.unit:
            return False
        if self.space is not None and space is not self.space:
            return False
        if self.addresses is not None:
            low, high = self.addresses
            return first <= high and last >= low
        return True


@dataclass(frozen=True, slots=True)
class Request:
    """One request the server received."""

    unit: int
    function: int
    address: int
    count: int


@dataclass(slots=True)
class _Traffic:
    """What the server saw, for tests and benchmarks."""

    requests: list[Request] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    garbage_due: int = 0
    silence_due: int = 0


def _wire_bytes(function: int, count: int) -> int:
    """RTU request plus answer bytes of one exchange (address, PDU and CRC)."""
    if function in _READS:
        return 8 + 5 + 2 * count
    if function == 16:
        return 9 + 2 * count + 8
    return 8 + 8


class ModbusSimServer:
    """A pymodbus server over :class:`UnitImage` s, with fault injection.

    Use it as an async context manager (or call :meth:`stop`), and start exactly one
    transport with :meth:`start_tcp` or :meth:`start_serial`.
    """

    def __init__(
        self,
        units: Mapping[int, UnitImage],
        *,
        on_write: WriteCallback | None = None,
        line_baudrate: int | None = None,
    ) -> None:
        if not units:
            raise ValueError("a server needs at least one unit image")
        self.units = dict(units)
        self.on_write = on_write
        self.line_baudrate = line_baudrate
        self.faults: list[Fault] = []
        self._traffic = _Traffic()
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self.address: tuple[str, int] | None = None
        self._handlers: set[asyncio.Task[object]] = set()
        """The bound TCP address once :meth:`start_tcp` returned."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    @property
    def requests(self) -> list[Request]:
        """Every request received, oldest first (exceptions and faults included)."""
        return self._traffic.requests

    @property
    def max_in_flight(self) -> int:
        """The most requests the server was handling at one time."""
        return self._traffic.max_in_flight

    def reset_traffic(self) -> None:
        """Forget the requests recorded so far."""
        self._traffic = _Traffic()

    def inject(self, fault: Fault) -> Fault:
        """Add a fault; returns it so a test can read its ``hits``."""
        self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Remove every fault: the device is healthy again."""
        self.faults.clear()

    async def start_tcp(
        self, host: str = "127.0.0.1", port: int = 0, *, rtu_framing: bool = False
    ) -> tuple[str, int]:
        """Listen on TCP (port 0 picks a free one); returns the bound address.

        With ``rtu_framing`` the server speaks RTU frames over the socket (RTU over TCP, as
        serial-to-Ethernet gateways in transparent mode do).
        """
        server = ModbusTcpServer(
            self._devices(),
            framer=FramerType.RTU if rtu_framing else FramerType.SOCKET,
            address=(host, port),
            trace_pdu=self._trace_pdu,
            trace_packet=self._trace_packet,
        )
        await self._start(server)
        listener = server.transport
        assert isinstance(listener, asyncio.Server)
        host, port = listener.sockets[0].getsockname()[:2]
        self.address = (host, port)
        return self.address

    async def start_serial(self, device: str, *, baudrate: int = 9600) -> None:
        """Serve RTU on a serial device (one end of a socat pty pair, say)."""
        server = ModbusSerialServer(
            self._devices(),
            framer=FramerType.RTU,
            port=device,
            baudrate=baudrate,
            trace_pdu=self._trace_pdu,
            trace_packet=self._trace_packet,
        )
        await self._start(server)

    async def stop(self) -> None:
        """Stop serving and close every connection."""
        handlers, self._handlers = self._handlers, set()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        if self._server is not None:
            server, self._server = self._server, None
            await server.shutdown()  # type: ignore[no-untyped-call]  # unannotated in pymodbus

    async def _start(self, server: ModbusTcpServer | ModbusSerialServer) -> None:
        if self._server is not None:
            raise RuntimeError("the server is already running")
        await server.serve_forever(background=True)
        self._server = server

    def _devices(self) -> list[SimDevice]:
        devices = []
        if 0 not in self.units:
            # pymodbus hands requests for unit ids it does not know to device 0.
            devices.append(SimDevice(id=0, simdata=_NO_REGISTERS, action=_no_such_unit))
        for unit, image in self.units.items():
            registers = [self._block(image, space) for space in RegisterSpace]
            devices.append(
                SimDevice(
                    id=unit,
                    # Coils, discrete inputs, holding and input registers; the handler
                    # refuses bit functions, pymodbus just insists on a block for them.
                    simdata=(
                        [SimData(0, values=False, datatype=DataType.BITS)],
                        [SimData(0, values=False, datatype=DataType.BITS)],
                        [registers[0]],
                        [registers[1]],
                    ),
                    action=functools.partial(self._handle, unit),
                )
            )
        return devices

    @staticmethod
    def _block(image: UnitImage, space: RegisterSpace) -> SimData:
        span = image.span(space)
        if span is None:
            return SimData(0, datatype=DataType.INVALID)
        first, last = span
        # pymodbus only checks the bounds; the values always come from the image.
        return SimData(first, count=last - first + 1, values=0, datatype=DataType.REGISTERS)

    async def _handle(
        self,
        unit: int,
        function: int,
        start: int,
        address: int,
        count: int,
        current: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        traffic = self._traffic
        traffic.in_flight += 1
        traffic.max_in_flight = max(traffic.max_in_flight, traffic.in_flight)
        # pymodbus runs each request in a task of its own; stop() cancels the ones still
        # waiting (a delayed answer, say) so nothing outlives the server.
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            return await self._answer(unit, function, start, address, count, current, values)
        finally:
            traffic.in_flight -= 1
            if task is not None:
                self._handlers.discard(task)

    async def _answer(
        self,
        unit: int,
        function: int,
        start: int,
        address: int,
        count: int,
        current: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        image = self.units[unit]
        if function not in _READS and function not in _WRITES:
            return ExcCodes.ILLEGAL_FUNCTION
        space = _READS.get(function, RegisterSpace.HOLDING)
        last = address + count - 1
        if self.line_baudrate:
            wire = _wire_bytes(function, count) + 3.5
            await asyncio.sleep(wire * BITS_PER_CHARACTER / self.line_baudrate)
        faulted = await self._apply_faults(unit, space, address, last, reading=values is None)
        if faulted is not None:
            return faulted
        if image.refuses(address, last):
            return ExcCodes.ILLEGAL_ADDRESS
        if values is None:
            current[address - start : address - start + count] = image.read(space, address, count)
            return None
        written = [int(value) for value in values]
        image.write(space, address, written)
        if self.on_write is not None:
            self.on_write(unit, address, written)
        return None

    async def _apply_faults(
        self, unit: int, space: RegisterSpace, first: int, last: int, *, reading: bool
    ) -> ExcCodes | None:
        for fault in self.faults:
            if not fault.matches(unit, space, first, last):
                continue
            if fault.kind is FaultKind.CAP and not reading:
                continue
            fault.hits += 1
            match fault.kind:
                case FaultKind.EXCEPTION:
                    return ExcCodes(fault.code)
                case FaultKind.CAP:
                    return ExcCodes(fault.code or ExcCodes.ILLEGAL_VALUE)
                case FaultKind.DELAY:
                    await asyncio.sleep(fault.delay)
                case FaultKind.DROP:
                    self._drop_connections()
                    return ExcCodes.DEVICE_FAILURE
                case FaultKind.GARBAGE:
                    self._traffic.garbage_due += 1
        return None

    def _drop_connections(self) -> None:
        server = self._server
        if isinstance(server, ModbusSerialServer):
            # A serial line cannot be hung up: the device falls silent instead.
            self._traffic.silence_due += 1
            return
        if server is not None:
            for connection in list(server.active_connections.values()):
                connection.close()

    def _trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            self._traffic.requests.append(
                # Function 6 carries its one register without a count.
                Request(pdu.dev_id, pdu.function_code, pdu.address, pdu.count or len(pdu.registers))
            )
        return pdu

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        traffic = self._traffic
        if sending and traffic.silence_due:
            traffic.silence_due -= 1
            return b""
        if sending and traffic.garbage_due:
            traffic.garbage_due -= 1
            return _GARBAGE
        return data
