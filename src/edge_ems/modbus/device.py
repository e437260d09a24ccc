"""A Modbus device described by a point map, on a shared link under one unit id."""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ..device import AssetType, Command, DeviceIdentity, Health, HealthTracker, WriteResult
from ..exceptions import (
    DeviceError,
    IdentificationError,
    ReadBackMismatchError,
    WriteRefusedError,
)
from ..metrics import BATTERY_POWER
from ..pointmap.codec import decode_raw, encode_raw, from_value, orders, to_value
from ..pointmap.model import Point, PointMap, PointType, PollGroup, RegisterSpace, WriteFunction
from ..pointmap.plan import Block, limits_of
from ..readings import Reading, Readings, Value
from ..resilience import CircuitBreaker
from .decode import RegisterWindow, decode_point, scale_exponent
from .dump import redacted_dump
from .link import ModbusLink
from .reader import BlockReader, ReadCap, Span

_LOGGER = logging.getLogger(__name__)

POLLED_GROUPS = frozenset({PollGroup.FAST, PollGroup.NORMAL, PollGroup.SLOW})
"""What :meth:`ModbusDevice.read` reads by default: everything but identity."""

_IDENTITY_METRICS = {
    "manufacturer": "device_manufacturer",
    "model": "device_model",
    "serial": "device_serial",
    "firmware": "device_firmware",
    "hardware": "device_hardware",
}


LEARNED_CAP = "read_cap"
"""Key of the learned read cap in :attr:`ModbusDevice.learned`."""


@dataclass(frozen=True, slots=True)
class _ReadPlan:
    """The registers that cover some poll groups, and the points they carry."""

    atoms: Mapping[RegisterSpace, tuple[Span, ...]]
    points: tuple[Point, ...]


def _atoms(points: Collection[Point]) -> dict[RegisterSpace, tuple[Span, ...]]:
    """Each point's registers and its scale factor's, by space: never split across reads."""
    atoms: dict[RegisterSpace, list[Span]] = {}
    for point in points:
        atoms.setdefault(point.space, []).append((point.address, point.end))
        if point.scale_factor is not None:
            atoms[point.space].append((point.scale_factor, point.scale_factor))
    return {space: tuple(spans) for space, spans in atoms.items()}


class ModbusDevice:
    """A device on a :class:`ModbusLink`, read and written only through its point map.

    Implements :class:`edge_ems.device.Device`. Reads follow the map's minimal read plan
    through a :class:`~edge_ems.modbus.reader.BlockReader`: a block the device refuses (a
    gateway that takes fewer registers than the map allows, say) is halved, the device's read
    cap is learned and later plans stay under it; a point refused on its own is left out. What
    was learned is :attr:`learned` (JSON-ready); pass it back as ``learned`` on the next start.
    Writes go through :meth:`write` alone, which enforces the map's access, ``allow_write``
    and limits, picks function 6 or 16 as the map says, and reads the value back.
    """

    def __init__(
        self,
        link: ModbusLink,
        point_map: PointMap,
        *,
        unit_id: int | None = None,
        name: str | None = None,
        breaker: CircuitBreaker | None = None,
        wall_clock: Callable[[], float] = time.time,
        learned: Mapping[str, Any] | None = None,
    ) -> None:
        self.link = link
        self.point_map = point_map
        self.unit_id = point_map.device.default_unit_id if unit_id is None else unit_id
        self._name = name or f"{point_map.device.id} at {link.name} unit {self.unit_id}"
        self._wall_clock = wall_clock
        self._health = HealthTracker(breaker or CircuitBreaker(self._name), wall_clock=wall_clock)
        self._plans: dict[frozenset[PollGroup], _ReadPlan] = {}
        self._identity: DeviceIdentity | None = None
        self._cap = ReadCap.from_json((learned or {}).get(LEARNED_CAP))
        self._everything = _atoms(point_map.readable_points())
        self._reader = self._new_reader()
        link.attach()
        self._attached = True
        self.failed_blocks: Mapping[Block, DeviceError] = MappingProxyType({})
        """Blocks the last read could not get for another exception than a refusal (device
        failure, gateway path unavailable), with why; their points were left out."""
        self._commands = MappingProxyType(
            {
                point.metric: Command(
                    metric=point.metric,
                    minimum=point.write.minimum,
                    maximum=point.write.maximum,
                    options=point.options,
                    allow_write=point.write.allow_write,
                    eeprom=point.write.eeprom,
                    lease=point.write.lease,
                )
                for point in point_map.points.values()
                if point.write is not None
            }
        )

    @property
    def name(self) -> str:
        """A short name for logs and errors."""
        return self._name

    @property
    def asset_type(self) -> AssetType:
        """What the point map says the device is."""
        return self.point_map.device.kind

    @property
    def identity(self) -> DeviceIdentity | None:
        """What :meth:`connect` found, or ``None`` before it."""
        return self._identity

    @property
    def commands(self) -> Mapping[str, Command]:
        """The writable metrics of the map, by name (``allow_write`` says which may be)."""
        return self._commands

    @property
    def declared_metrics(self) -> frozenset[str]:
        """Every metric a poll may report: the map's readable, polled points (identity is
        read once, on connecting)."""
        points = self.point_map.readable_points()
        return frozenset(point.metric for point in points if point.poll in POLLED_GROUPS)

    def state_options(self, metric: str) -> tuple[str, ...] | None:
        """The named states of an enum point, in code order; ``None`` for any other metric."""
        point = self.point_map.points.get(metric)
        if point is None or not point.options or point.poll is PollGroup.ONCE:
            return None
        return tuple(dict.fromkeys(point.options.values()))

    @property
    def learned(self) -> dict[str, Any]:
        """What reads taught about the device, JSON-ready: the read cap once a read was refused
        for its size (empty before)."""
        cap = self._cap.as_json()
        return {LEARNED_CAP: cap} if cap else {}

    @property
    def reader(self) -> BlockReader:
        """The reader planning this device's requests."""
        return self._reader

    @property
    def safe_mode(self) -> Mapping[str, Value]:
        """What the map writes, in order, to hand the device back to its own control; a map
        that names nothing but offers a battery setpoint is handed back by a zero setpoint."""
        if self.point_map.device.safe_mode:
            return self.point_map.device.safe_mode
        return {BATTERY_POWER: 0} if BATTERY_POWER in self._commands else {}

    @property
    def revert_timer(self) -> str | None:
        """The map's watchdog metric, refreshed instead of setpoints, if the device has one."""
        return self.point_map.device.revert_timer

    @property
    def health(self) -> Health:
        """Connection and error state now."""
        return self._health.snapshot()

    async def connect(self) -> DeviceIdentity:
        """Open the link, read the identity points and check the map's ``identify`` patterns.

        Raises :class:`IdentificationError` when the device is not what the map describes.
        """
        if not self._attached:
            self.link.attach()
            self._attached = True
        self._reader = self._new_reader()  # the device may serve more after a restart
        await self._health.run(self.link.connect)
        readings = await self.read(groups=(PollGroup.ONCE,))
        for metric, pattern in self.point_map.device.identify.items():
            reading = readings.get(metric)
            seen = None if reading is None else reading.value
            if seen is None or re.search(pattern, str(seen)) is None:
                raise IdentificationError(
                    f"{self._name}: {metric} is {seen!r}, not matching {pattern!r}; "
                    "is this the right point map and unit id?"
                )
        found = {
            field: str(readings[metric].value)
            for field, metric in _IDENTITY_METRICS.items()
            if metric in readings and readings[metric].value is not None
        }
        device = self.point_map.device
        self._identity = DeviceIdentity(
            manufacturer=found.get("manufacturer", device.maker),
            model=found.get("model", device.model),
            serial=found.get("serial"),
            firmware=found.get("firmware"),
            hardware=found.get("hardware"),
        )
        return self._identity

    async def read(self, groups: Collection[PollGroup] | None = None) -> Readings:
        """Read the points of ``groups`` (default: all but identity) in planned blocks.

        A block the device answers with an exception code is left out (see
        :attr:`failed_blocks`); when every block fails, or the link fails, the error is raised.
        """
        plan = self._plan(POLLED_GROUPS if groups is None else frozenset(groups))
        if not plan.points:
            return {}
        return await self._health.run(lambda: self._read_plan(plan))

    async def register_dump(self) -> dict[str, Any]:
        """The raw registers every readable point covers (identity included), by space and
        address, for a simulator to serve again (:meth:`UnitImage.from_dump
        <edge_ems.sim.modbus_server.UnitImage.from_dump>`). Registers of points the map marks
        ``private`` are redacted (see ``pointmaps/README.md``). Raises :class:`DeviceError`
        when the device cannot be read."""
        result = await self._reader.read(self._everything)  # diagnostics: no health record
        private = [
            (point.space, point.address, point.end)
            for point in self.point_map.points.values()
            if point.private
        ]
        dump = redacted_dump(result.registers, private)
        return {"unit_id": self.unit_id, "map": self.point_map.device.id, **dump}

    async def write(self, metric: str, value: Value) -> WriteResult:
        """Write one command, then read it back.

        Raises :class:`WriteRefusedError` before anything reaches the device when the map does
        not allow the write (``reason`` says why), and :class:`ReadBackMismatchError` when the
        device keeps another value than the one written.
        """
        point = self._writable_point(metric)
        exponent = 0
        if point.scale_factor is not None:
            exponent = await self._health.run(lambda: self._read_scale_factor(point))
        registers = self._encode(point, value, exponent)
        word_order, byte_order = orders(point, self.point_map.device)
        written, _ = to_value(point, decode_raw(point, registers, word_order, byte_order), exponent)
        single = self._single_register_write(point)

        async def exchange() -> Value:
            await self.link.write(self._name, self.unit_id, point.address, registers, single=single)
            return await self._read_point(point, exponent) if point.readable else None

        read_back = await self._health.run(exchange)
        if point.readable and read_back != written:
            raise ReadBackMismatchError(
                f"{self._name}: wrote {metric}={written!r} to holding {point.address}, "
                f"read back {read_back!r}",
                expected=written,
                actual=read_back,
            )
        return WriteResult(metric, value, written, read_back, self._wall_clock())

    async def close(self) -> None:
        """Release the link (it drops when no other device uses it); :meth:`connect` again
        to resume."""
        self._health.connected = False
        if self._attached:
            self._attached = False
            await self.link.detach()

    def _new_reader(self) -> BlockReader:
        async def read(space: RegisterSpace, address: int, count: int) -> list[int]:
            return await self.link.read(self._name, self.unit_id, space, address, count)

        return BlockReader(read, limits_of(self.point_map), cap=self._cap)

    def _plan(self, groups: frozenset[PollGroup]) -> _ReadPlan:
        plan = self._plans.get(groups)
        if plan is None:
            points = tuple(p for p in self.point_map.readable_points() if p.poll in groups)
            plan = self._plans[groups] = _ReadPlan(_atoms(points), points)
        return plan

    async def _read_plan(self, plan: _ReadPlan) -> Readings:
        reader = self._reader
        unreadable = reader.unreadable
        result = await reader.read(plan.atoms, horizon=self._everything)
        if result.failed.keys() != self.failed_blocks.keys():
            for error in result.failed.values():
                _LOGGER.warning("%s; its points are left out", error)
        self.failed_blocks = MappingProxyType(result.failed)
        if reader.unreadable != unreadable:
            _LOGGER.warning(
                "%s refuses to serve %s; left out of later reads",
                self._name,
                ", ".join(self._points_at(reader.unreadable)),
            )
        return self._decode(plan.points, result.registers)

    def _points_at(self, spans: Mapping[RegisterSpace, tuple[Span, ...]]) -> list[str]:
        return [
            point.metric
            for point in self.point_map.readable_points()
            if any(
                first <= point.end and last >= point.address
                for first, last in spans.get(point.space, ())
            )
        ]

    def _decode(self, points: Collection[Point], window: RegisterWindow) -> Readings:
        timestamp = self._wall_clock()
        readings: Readings = {}
        for point in points:
            decoded = decode_point(point, self.point_map.device, window)
            if decoded is not None:
                value, quality = decoded
                readings[point.metric] = Reading(point.metric, value, timestamp, quality)
        return readings

    async def _read_scale_factor(self, point: Point) -> int:
        assert point.scale_factor is not None
        raw = await self.link.read(self._name, self.unit_id, point.space, point.scale_factor, 1)
        exponent = scale_exponent(raw[0])
        if exponent is None:
            raise WriteRefusedError(
                f"{self._name}: {point.metric}: the device does not implement its scale factor",
                reason="invalid_value",
            )
        return exponent

    async def _read_point(self, point: Point, exponent: int) -> Value:
        registers = await self.link.read(
            self._name, self.unit_id, point.space, point.address, point.registers
        )
        word_order, byte_order = orders(point, self.point_map.device)
        value, _ = to_value(point, decode_raw(point, registers, word_order, byte_order), exponent)
        return value

    def _writable_point(self, metric: str) -> Point:
        point = self.point_map.points.get(metric)
        if point is None:
            raise WriteRefusedError(
                f"{self._name}: {metric} is not a point of this device", reason="unknown_command"
            )
        if point.write is None:
            raise WriteRefusedError(f"{self._name}: {metric} is read-only", reason="not_writable")
        if not point.write.allow_write:
            raise WriteRefusedError(
                f"{self._name}: the point map does not allow writing {metric}",
                reason="not_allowed",
            )
        return point

    def _encode(self, point: Point, value: Value, exponent: int) -> list[int]:
        """The registers to write for ``value``, after checking it against the map's limits."""
        assert point.write is not None
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, int | float) and point.type is not PointType.STRING:
            if isinstance(value, float) and not math.isfinite(value):
                raise self._invalid(point, value, "not a finite number")
            low, high = point.write.minimum, point.write.maximum
            if (low is not None and value < low) or (high is not None and value > high):
                raise WriteRefusedError(
                    f"{self._name}: {point.metric}={value!r} is outside [{low}, {high}]",
                    reason="out_of_range",
                )
            if point.type is PointType.ENUM and value not in (point.options or {}):
                raise self._invalid(point, value, f"not one of {sorted(point.options or {})}")
        try:
            raw = from_value(point, value, exponent)
            word_order, byte_order = orders(point, self.point_map.device)
            return encode_raw(point, raw, word_order, byte_order)
        except ValueError as err:
            raise self._invalid(point, value, str(err)) from err

    def _invalid(self, point: Point, value: Value, why: str) -> WriteRefusedError:
        return WriteRefusedError(
            f"{self._name}: cannot write {value!r} to {point.metric}: {why}",
            reason="invalid_value",
        )

    def _single_register_write(self, point: Point) -> bool:
        """Function 6 where the map asks for it and the value fits one register, else 16."""
        assert point.write is not None
        function = point.write.function or self.point_map.device.write_function
        return function is WriteFunction.FC06 and point.registers == 1
