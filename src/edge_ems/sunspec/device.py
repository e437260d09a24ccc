"""A SunSpec device over a Modbus unit: the library's Device contract."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..device import Command, DeviceIdentity, Health, HealthTracker, WriteResult
from ..exceptions import (
    DeviceConnectionError,
    DeviceProtocolError,
    IdentificationError,
    ReadBackMismatchError,
    WriteRefusedError,
)
from ..readings import Quality, Reading, Readings, Value
from ..resilience import CircuitBreaker
from .codec import GroupValues, decode_model, encode_raw, read_raw
from .controls import Assignment, Target, assignments, bind_controls, command, current, written
from .discovery import COMMON_MODEL, Chain, FoundModel, discover, identity_of
from .layout import ModelLayout, count_points, model_layout
from .mapping import READ_POINTS, REVERT_TIMER, STORAGE_CONTROL, STORAGE_SETPOINT
from .models import ModelDef, supported_definitions
from .readout import Binding, bind, convert, label_models
from .transport import MAX_READ, MAX_WRITE, BlockReader, Span, write_holding

if TYPE_CHECKING:
    from .transport import Registers


_END_MARKER = 2
"""Registers after the last model: the end marker's ID (0xFFFF) and length (0)."""


@dataclass(slots=True)
class _Connected:
    """What connecting found out, and the latest decoded values."""

    chain: Chain
    common: ModelLayout
    polled: tuple[ModelLayout, ...]
    """Models holding a mapped metric or a command, read on every :meth:`read`."""
    identity: DeviceIdentity
    readings: dict[str, Binding]
    controls: dict[str, tuple[Target, ...]]
    values: dict[int, GroupValues]
    """The latest decoded values by model address, updated by reads and writes."""


def _spans(layouts: Sequence[ModelLayout]) -> list[Span]:
    return [span for layout in layouts for span in layout.root.spans()]


def _checked(layout: ModelLayout, registers: Mapping[int, int]) -> GroupValues:
    """The decoded model, once its header shows the map is still the one discovered."""
    values = decode_model(layout, registers)
    header = (values.values.get("ID"), values.values.get("L"))
    if header != (layout.model.id, layout.length):
        raise DeviceProtocolError(
            f"SunSpec model {layout.model.id} at {layout.address} now reads as "
            f"{header}: the register map changed, connect again"
        )
    return values


def _chunks(plan: Sequence[Assignment]) -> list[tuple[int, list[int]]]:
    """Contiguous assignments, in plan order, as few writes as possible."""
    chunks: list[tuple[int, list[int]]] = []
    for item in plan:
        words = encode_raw(item.target.point, item.raw)
        if chunks:
            address, previous = chunks[-1]
            if address + len(previous) == item.target.address and (
                len(previous) + len(words) <= MAX_WRITE
            ):
                previous.extend(words)
                continue
        chunks.append((item.target.address, list(words)))
    return chunks


_SAFE_MODE: tuple[tuple[str, Value], ...] = (
    # First: lifting the storage window hands the battery back to the inverter's own
    # control, where zeroing the setpoint would pin it idle.
    (STORAGE_CONTROL, False),
    ("active_power_limit_enabled", 0),
    ("control_enabled", 0),
)
"""What a lapsed lease writes, in order."""


class SunSpecDevice:
    """A SunSpec inverter, meter or battery, over a ``modbus_connection.ModbusUnit`` or a
    :class:`~edge_ems.sunspec.transport.LinkUnit` on a shared ``edge_ems.modbus`` link.

    ``connect`` finds the SunSpec map (at ``base_address``, or at 40000, 0 and 50000),
    walks its chain and identifies the device from its common model; ``device_index``
    picks one device of a chain that holds several (an inverter and its meters, each
    after a common model of its own). ``read`` returns every mapped metric; ``write`` is
    the only way anything is written, and only to allowlisted control points.

    The unit's link belongs to whoever handed the unit out; :meth:`close` forgets what
    connecting found and leaves the link alone.
    """

    def __init__(
        self,
        unit: Registers,
        *,
        name: str = "sunspec",
        base_address: int | None = None,
        device_index: int = 0,
        meter_import_positive: bool = True,
        breaker: CircuitBreaker | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._unit = unit
        self._name = name
        self._base = base_address
        self._index = device_index
        self._meter_sign = 1 if meter_import_positive else -1
        self._clock = wall_clock
        self._tracker = HealthTracker(breaker or CircuitBreaker(name), wall_clock=wall_clock)
        self._reader = BlockReader(unit)
        self._state: _Connected | None = None

    @property
    def name(self) -> str:
        """A short name for logs and errors."""
        return self._name

    @property
    def identity(self) -> DeviceIdentity | None:
        """What :meth:`connect` found, or ``None`` before it."""
        return None if self._state is None else self._state.identity

    @property
    def chain(self) -> Chain | None:
        """The SunSpec chain :meth:`connect` walked."""
        return None if self._state is None else self._state.chain

    @property
    def reader(self) -> BlockReader:
        """The reader planning this device's requests."""
        return self._reader

    @property
    def commands(self) -> Mapping[str, Command]:
        """The writable metrics, with the limits the device's current scale factors give."""
        state = self._state
        if state is None:
            return {}
        found = {
            metric: command(metric, targets, state.values)
            for metric, targets in state.controls.items()
        }
        return {metric: cmd for metric, cmd in found.items() if cmd is not None}

    @property
    def safe_mode(self) -> Mapping[str, Value]:
        """What hands the device back to its own control: no storage window, no limits.

        Only the commands this device offers, in the order they must be written.
        """
        commands = self.commands
        return {metric: value for metric, value in _SAFE_MODE if metric in commands}

    @property
    def revert_timer(self) -> str | None:
        """The metric that sets every revert timer (``*RvrtTms``) the device has.

        The device returns a setpoint to its default when the timer runs out; dispatch
        refreshes it instead of rewriting the setpoint.
        """
        return REVERT_TIMER if REVERT_TIMER in self.commands else None

    @property
    def health(self) -> Health:
        """Connection and error state now."""
        return self._tracker.snapshot()

    @property
    def declared_metrics(self) -> frozenset[str]:
        """The metrics the models found map to; nothing before the chain is known."""
        state = self._state
        return frozenset() if state is None else frozenset(state.readings)

    def state_options(self, metric: str) -> tuple[str, ...] | None:
        """None yet: SunSpec enums are reported by their numbers."""
        return None

    @property
    def learned(self) -> Mapping[str, Any]:
        """Nothing yet: the chain is walked at every connect."""
        return {}

    async def register_dump(self) -> dict[str, Any] | None:
        """The whole chain's registers, from the base to the end marker."""
        chain = self.chain
        if chain is None:
            return None
        end = max(model.end for model in chain.models) + _END_MARKER
        spans = [
            (start, min(start + MAX_READ - 1, end))
            for start in range(chain.base, end + 1, MAX_READ)
        ]
        registers = await self._reader.read(spans)
        return {"base": chain.base, "spaces": {"holding": dict(sorted(registers.items()))}}

    async def connect(self) -> DeviceIdentity:
        """Find the SunSpec map, place its models and identify the device."""
        self._state = await self._tracker.run(self._connect)
        return self._state.identity

    async def read(self) -> Readings:
        """Read every mapped metric once."""
        state = self._connected()
        values = await self._tracker.run(lambda: self._read_values(state.polled))
        state.values.update(values)
        return self._readings(state, values)

    async def write(self, metric: str, value: Value) -> WriteResult:
        """Write one command, then read it back."""
        state = self._connected()
        targets = state.controls.get(metric)
        if targets is None:
            raise self._refusal(state, metric)
        return await self._tracker.run(lambda: self._write(state, metric, targets, value))

    async def close(self) -> None:
        """Forget the device; :meth:`connect` finds it again."""
        self._state = None
        self._tracker.connected = False

    def _connected(self) -> _Connected:
        if self._state is None:
            raise DeviceConnectionError(f"{self._name}: not connected")
        return self._state

    async def _layout(self, definition: ModelDef, found: FoundModel) -> ModelLayout:
        """Place a found model, reading the points that count its repeating groups first."""
        points = [p for name in count_points(definition) if (p := definition.group.point(name))]
        counts: dict[str, int] = {}
        if points:
            registers = await self._reader.read(
                (found.address + p.offset, found.address + p.offset + p.size - 1) for p in points
            )
            for point in points:
                raw = read_raw(point, found.address + point.offset, registers)
                if isinstance(raw, int):
                    counts[point.name] = raw
        return model_layout(definition, found.address, found.length, counts)

    async def _connect(self) -> _Connected:
        self._reader = BlockReader(self._unit)  # a device may serve more after a restart
        chain = await discover(self._unit, self._base)
        devices = chain.devices()
        if self._index >= len(devices):
            raise IdentificationError(
                f"{self._name}: SunSpec chain holds {len(devices)} devices, no device {self._index}"
            )
        found = devices[self._index]
        wanted = {m.id for m in found} | label_models(READ_POINTS)
        definitions = await asyncio.to_thread(supported_definitions, wanted)
        layouts = [
            await self._layout(definitions[model.id], model)
            for model in found
            if model.id in definitions
        ]
        readings = bind(layouts, READ_POINTS)
        controls = bind_controls(layouts)
        used = {b.layout.address for b in readings.values()} | {
            target.layout.address for targets in controls.values() for target in targets
        }
        common = layouts[0]
        assert common.model.id == COMMON_MODEL  # every device of a chain starts with one
        polled = tuple(layout for layout in layouts if layout.address in used)
        values = await self._read_values((common, *polled))
        return _Connected(
            chain=chain,
            common=common,
            polled=polled,
            identity=identity_of(values[common.address]),
            readings=readings,
            controls=controls,
            values=values,
        )

    async def _read_registers(self, layouts: Sequence[ModelLayout]) -> dict[int, int]:
        return await self._reader.read(_spans(layouts))

    async def _read_values(self, layouts: Sequence[ModelLayout]) -> dict[int, GroupValues]:
        registers = await self._read_registers(layouts)
        return {layout.address: _checked(layout, registers) for layout in layouts}

    def _readings(self, state: _Connected, values: Mapping[int, GroupValues]) -> Readings:
        now = self._clock()
        readings: Readings = {}
        for metric, binding in state.readings.items():
            value, quality = convert(
                binding, values[binding.layout.address], meter_sign=self._meter_sign
            )
            readings[metric] = Reading(metric, value, now, quality)
        if STORAGE_SETPOINT in state.controls:
            setpoint = current(STORAGE_SETPOINT, state.controls[STORAGE_SETPOINT], values)
            readings[STORAGE_SETPOINT] = Reading(STORAGE_SETPOINT, setpoint, now)
        identity = state.identity
        for metric, text in (
            ("device_manufacturer", identity.manufacturer),
            ("device_model", identity.model),
            ("device_serial", identity.serial),
            ("device_firmware", identity.firmware),
        ):
            readings[metric] = Reading(metric, text, now, Quality.GOOD)
        return readings

    def _refusal(self, state: _Connected, metric: str) -> WriteRefusedError:
        binding = state.readings.get(metric)
        if binding is None:
            return WriteRefusedError(
                f"{self._name}: {metric} is not a command of this device",
                reason="unknown_command",
            )
        where = f"SunSpec {binding.layout.model.id}.{binding.point.name}"
        if binding.point.writable:
            return WriteRefusedError(
                f"{self._name}: {metric} ({where}) is not on the write allowlist",
                reason="not_allowed",
            )
        return WriteRefusedError(
            f"{self._name}: {metric} ({where}) is read-only", reason="not_writable"
        )

    async def _write(
        self, state: _Connected, metric: str, targets: tuple[Target, ...], value: Value
    ) -> WriteResult:
        layouts = list({target.layout.address: target.layout for target in targets}.values())
        before = await self._read_values(layouts)
        plan = assignments(metric, targets, value, before)
        try:
            chunks = _chunks(plan)
        except ValueError as err:
            raise WriteRefusedError(f"{self._name}: {err}", reason="out_of_range") from err
        for address, words in chunks:
            await write_holding(self._unit, address, words)
        registers = await self._read_registers(layouts)
        after = {layout.address: _checked(layout, registers) for layout in layouts}
        state.values.update(after)
        expected = written(metric, targets, plan, before)
        actual = current(metric, targets, after)
        for address, words in chunks:
            if [registers.get(address + i) for i in range(len(words))] != words:
                raise ReadBackMismatchError(
                    f"{self._name}: {metric} wrote {expected!r}, read back {actual!r}",
                    expected=expected,
                    actual=actual,
                )
        return WriteResult(metric, value, expected, actual, self._clock())
