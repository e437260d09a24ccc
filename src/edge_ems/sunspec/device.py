"""A SunSpec device over a Modbus unit: the library's Device contract."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..device import AssetType, Command, DeviceIdentity, Health, HealthTracker, WriteResult
from ..exceptions import (
    DeviceConnectionError,
    DeviceProtocolError,
    IdentificationError,
    ReadBackMismatchError,
    WriteRefusedError,
)
from ..modbus.dump import redacted_dump
from ..modbus.reader import ReadCap
from ..pointmap.model import RegisterSpace
from ..readings import Quality, Reading, Readings, Value
from ..resilience import CircuitBreaker
from .codec import GroupValues, decode_model, encode_raw, read_raw
from .controls import Assignment, Target, assignments, bind_controls, command, current, written
from .discovery import COMMON_MODEL, MARKER, Chain, FoundModel, discover, identity_of
from .layout import ModelLayout, count_points, model_layout
from .mapping import READ_POINTS, REVERT_TIMER, STORAGE_CONTROL, STORAGE_SETPOINT
from .models import ModelDef, supported_definitions
from .private import private_spans
from .readout import Binding, bind, convert, label_models, state_names
from .transport import MAX_WRITE, BlockReader, Span, write_holding

if TYPE_CHECKING:
    from .transport import Registers

_LOGGER = logging.getLogger(__name__)

IDENTITY_METRICS = ("device_manufacturer", "device_model", "device_serial", "device_firmware")
"""Identity metrics every read reports, from the common model."""


class _MapChangedError(DeviceProtocolError):
    """The register map no longer is the one discovered."""


@dataclass(slots=True)
class _Layout:
    """Where this device's models are, and what they give: known without reading values."""

    chain: Chain
    counts: dict[int, dict[str, int]]
    """Values of the points that count repeating groups, by model address."""
    common: ModelLayout
    polled: tuple[ModelLayout, ...]
    """Models holding a mapped metric or a command, read on every :meth:`read`."""
    readings: dict[str, Binding]
    controls: dict[str, tuple[Target, ...]]

    def atoms(self, *, marker: bool = False) -> list[Span]:
        """The registers of the common and polled models (and the marker before them)."""
        atoms = _spans((self.common, *self.polled))
        return [(self.chain.base, self.chain.base + 1), *atoms] if marker else atoms


@dataclass(slots=True)
class _Connected:
    """What connecting found out, and the latest decoded values."""

    layout: _Layout
    identity: DeviceIdentity
    values: dict[int, GroupValues]
    """The latest decoded values by model address, updated by reads and writes."""


@dataclass(frozen=True, slots=True)
class _Remembered:
    """What an earlier connection learned, restorable without reading: see
    :attr:`SunSpecDevice.learned`."""

    chain: Chain
    counts: dict[int, dict[str, int]]
    identity: DeviceIdentity | None
    metrics: frozenset[str]
    states: Mapping[str, tuple[str, ...]]
    commands: Mapping[str, Command]
    refused: tuple[Span, ...] = ()
    """Registers of this device's models that it refuses to read."""

    def as_json(self) -> dict[str, Any]:
        identity = self.identity
        return {
            "chain": self.chain.as_json(),
            "counts": {str(address): dict(found) for address, found in self.counts.items()},
            "identity": None if identity is None else {
                "manufacturer": identity.manufacturer, "model": identity.model,
                "serial": identity.serial, "firmware": identity.firmware,
            },
            "metrics": sorted(self.metrics),
            "states": {metric: list(names) for metric, names in sorted(self.states.items())},
            "commands": {
                metric: [cmd.minimum, cmd.maximum] for metric, cmd in sorted(self.commands.items())
            },
            "refused": [list(span) for span in self.refused],
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> _Remembered:
        """Raises ``ValueError`` (or ``TypeError``, ``KeyError``) for anything else."""
        identity = data.get("identity")
        return cls(
            chain=Chain.from_json(data["chain"]),
            counts={
                int(address): {str(name): int(value) for name, value in found.items()}
                for address, found in (data.get("counts") or {}).items()
            },
            identity=None if identity is None else DeviceIdentity(
                str(identity["manufacturer"]), str(identity["model"]),
                _text(identity.get("serial")), _text(identity.get("firmware")),
            ),
            metrics=frozenset(str(metric) for metric in data.get("metrics", ())),
            states={
                str(metric): tuple(str(name) for name in names)
                for metric, names in (data.get("states") or {}).items()
            },
            commands={
                str(metric): _restored_command(str(metric), low, high)
                for metric, (low, high) in (data.get("commands") or {}).items()
            },
            refused=tuple((int(first), int(last)) for first, last in data.get("refused", ())),
        )  # fmt: skip


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _restored_command(metric: str, low: object, high: object) -> Command:
    if not isinstance(low, int | float) or not isinstance(high, int | float):
        raise ValueError(f"{metric}: limits {low!r}, {high!r}")
    return Command(metric, minimum=low, maximum=high, allow_write=True, eeprom=False)


def _spans(layouts: Sequence[ModelLayout]) -> list[Span]:
    return [span for layout in layouts for span in layout.root.spans()]


def _checked(layout: ModelLayout, registers: Mapping[int, int]) -> GroupValues:
    """The decoded model, once its header shows the map is still the one discovered."""
    values = decode_model(layout, registers)
    header = (values.values.get("ID"), values.values.get("L"))
    if header != (layout.model.id, layout.length):
        raise _MapChangedError(
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
    walks its chain in large blocks and identifies the device from its common model;
    ``device_index`` picks one device of a chain that holds several (an inverter and its
    meters, each after a common model of its own; 0 is the first, see
    :func:`~edge_ems.sunspec.discovery.chain_devices`). ``read`` returns every mapped metric;
    ``write`` is the only way anything is written, and only to allowlisted control points.

    What connecting learned (the read cap, the chain's layout, the identity, the metrics,
    states and commands it gives) is :attr:`learned`, JSON-ready; passed back as ``learned``
    on the next start, the device knows its metrics, states and commands before it answers,
    and connecting only checks the layout with the first read instead of walking the chain.

    The unit's link belongs to whoever handed the unit out; :meth:`close` forgets the
    connection (not what was learned) and leaves the link alone.
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
        learned: Mapping[str, Any] | None = None,
    ) -> None:
        self._unit = unit
        self._name = name
        self._base = base_address
        self._index = device_index
        self._meter_sign = 1 if meter_import_positive else -1
        self._clock = wall_clock
        self._tracker = HealthTracker(breaker or CircuitBreaker(name), wall_clock=wall_clock)
        self._cap = ReadCap.from_json((learned or {}).get("read_cap"))
        self._reader = BlockReader(unit, cap=self._cap)
        self._state: _Connected | None = None
        self._remembered = self._restore(learned)

    def _restore(self, learned: Mapping[str, Any] | None) -> _Remembered | None:
        if not learned or "chain" not in learned:
            return None
        try:
            remembered = _Remembered.from_json(learned)
        except (KeyError, TypeError, ValueError) as err:
            _LOGGER.warning("%s: ignoring what was learned before (%s)", self._name, err)
            return None
        if self._base is not None and remembered.chain.base != self._base:
            return None
        if self._index >= len(remembered.chain.devices()):
            return None
        return remembered

    @property
    def name(self) -> str:
        """A short name for logs and errors."""
        return self._name

    @property
    def asset_type(self) -> AssetType:
        """What its models make it: an inverter with storage, a meter, else an inverter
        (also while its chain is unknown)."""
        metrics = self.declared_metrics
        if "soc_pct" in metrics:
            return AssetType.HYBRID_INVERTER
        if "grid_power_w" in metrics and "ac_power_w" not in metrics:
            return AssetType.METER
        return AssetType.INVERTER

    @property
    def identity(self) -> DeviceIdentity | None:
        """What :meth:`connect` found, or ``None`` before it."""
        return None if self._state is None else self._state.identity

    @property
    def chain(self) -> Chain | None:
        """The SunSpec chain :meth:`connect` walked (or was given as learned)."""
        if self._state is not None:
            return self._state.layout.chain
        return None if self._remembered is None else self._remembered.chain

    @property
    def reader(self) -> BlockReader:
        """The reader planning this device's requests."""
        return self._reader

    @property
    def learned(self) -> dict[str, Any]:
        """What connecting and reading taught, JSON-ready: the read cap (once a read was
        refused for its size), and once connected the whole chain's layout (base; model ids,
        addresses and lengths), the values that size repeating groups, the identity, the
        metrics, enum states and command limits this device gives, and the registers it
        refuses to read. Empty before."""
        data: dict[str, Any] = {}
        if cap := self._cap.as_json():
            data["read_cap"] = cap
        remembered = self._remembered
        if self._state is not None:
            remembered = self._remember(self._state)
        if remembered is not None:
            data |= remembered.as_json()
        return data

    @property
    def declared_metrics(self) -> frozenset[str]:
        """Every metric :meth:`read` may report; empty until the chain is known (connected
        once, now or before)."""
        if self._state is not None:
            return _metrics(self._state.layout)
        return frozenset() if self._remembered is None else self._remembered.metrics

    def state_options(self, metric: str) -> tuple[str, ...] | None:
        """The states an enum metric reads as (``inverter_state``: ``mppt``, ...), in snake
        case; ``None`` for other metrics or while the chain is unknown."""
        if self._state is not None:
            binding = self._state.layout.readings.get(metric)
            return None if binding is None else state_names(binding)
        return None if self._remembered is None else self._remembered.states.get(metric)

    @property
    def commands(self) -> Mapping[str, Command]:
        """The writable metrics, with the limits the device's current scale factors give;
        while it is not connected, the ones it gave when last connected."""
        state = self._state
        if state is None:
            return {} if self._remembered is None else self._remembered.commands
        found = {
            metric: command(metric, targets, state.values)
            for metric, targets in state.layout.controls.items()
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

    async def connect(self) -> DeviceIdentity:
        """Find the SunSpec map, place its models and identify the device.

        With a layout known from before, the first read of the common and polled models
        checks it (the marker and every model header are in what it reads anyway); only a
        map that changed is walked again.
        """
        self._state = await self._tracker.run(self._connect)
        self._remembered = self._remember(self._state)
        return self._state.identity

    async def read(self) -> Readings:
        """Read every mapped metric once."""
        state = self._connected()
        layout = state.layout
        values = await self._tracker.run(lambda: self._read_values(layout, layout.polled))
        state.values.update(values)
        return self._readings(state, values)

    async def write(self, metric: str, value: Value) -> WriteResult:
        """Write one command, then read it back."""
        state = self._connected()
        targets = state.layout.controls.get(metric)
        if targets is None:
            raise self._refusal(state, metric)
        return await self._tracker.run(lambda: self._write(state, metric, targets, value))

    async def register_dump(self) -> dict[str, Any] | None:
        """The raw registers of the whole chain, from the marker to the end marker, for a
        simulator to serve again (:meth:`UnitImage.from_dump
        <edge_ems.sim.modbus_server.UnitImage.from_dump>`); ``None`` while the chain is
        unknown. Serial numbers, network addresses and credentials are redacted (see
        :mod:`edge_ems.sunspec.private`). Raises :class:`DeviceError` when the device
        cannot be read."""
        chain = self.chain
        if chain is None:
            return None
        private = await asyncio.to_thread(private_spans, chain)
        reader = BlockReader(self._unit, cap=self._cap)
        atoms = [(address, address) for address in range(chain.base, chain.end + 1)]
        registers = await reader.read(atoms)  # diagnostics: no health record
        dump = redacted_dump(
            {(RegisterSpace.HOLDING, address): value for address, value in registers.items()},
            [(RegisterSpace.HOLDING, first, last) for first, last in private],
        )
        return {"base": chain.base, "device_index": self._index, **dump}

    async def close(self) -> None:
        """Forget the connection; :meth:`connect` finds the device again."""
        self._state = None
        self._tracker.connected = False

    def _connected(self) -> _Connected:
        if self._state is None:
            raise DeviceConnectionError(f"{self._name}: not connected")
        return self._state

    async def _connect(self) -> _Connected:
        remembered = self._remembered
        if remembered is not None:
            self._reader = BlockReader(self._unit, cap=self._cap, refused=remembered.refused)
            layout = await self._place(remembered.chain, remembered.counts)
            try:
                everything = (layout.common, *layout.polled)
                values = await self._read_values(layout, everything, marker=True)
            except _MapChangedError as err:
                _LOGGER.info("%s: %s; walking the chain again", self._name, err)
            else:
                return _Connected(layout, identity_of(values[layout.common.address]), values)
        self._reader = BlockReader(self._unit, cap=self._cap)  # may serve more after a restart
        chain = await discover(self._unit, self._base, size=self._cap.limit())
        counts = await self._counts(chain)
        layout = await self._place(chain, counts)
        everything = (layout.common, *layout.polled)
        values = await self._read_values(layout, everything, walked=chain.registers)
        return _Connected(layout, identity_of(values[layout.common.address]), values)

    def _device(self, chain: Chain) -> tuple[FoundModel, ...]:
        devices = chain.devices()
        if self._index >= len(devices):
            raise IdentificationError(
                f"{self._name}: SunSpec chain holds {len(devices)} devices, no device {self._index}"
            )
        return devices[self._index]

    async def _counts(self, chain: Chain) -> dict[int, dict[str, int]]:
        """The values of the points that count repeating groups (705's ``NCrv``), from what
        the walk read, else read now."""
        found = self._device(chain)
        definitions = await asyncio.to_thread(supported_definitions, {m.id for m in found})
        wanted = {
            model.address: [
                point
                for name in count_points(definitions[model.id])
                if (point := definitions[model.id].group.point(name)) is not None
            ]
            for model in found
            if model.id in definitions
        }
        atoms = [
            (address + p.offset, address + p.offset + p.size - 1)
            for address, points in wanted.items()
            for p in points
        ]
        registers = dict(chain.registers)
        missing = [atom for atom in atoms if not _held(atom, registers)]
        if missing:
            registers |= await self._reader.read(missing)
        counts: dict[int, dict[str, int]] = {}
        for address, points in wanted.items():
            for point in points:
                raw = read_raw(point, address + point.offset, registers)
                if isinstance(raw, int):
                    counts.setdefault(address, {})[point.name] = raw
        return counts

    async def _place(self, chain: Chain, counts: Mapping[int, Mapping[str, int]]) -> _Layout:
        """This device's models placed, and the mapping table bound to them."""
        found = self._device(chain)
        wanted = {m.id for m in found} | label_models(READ_POINTS)
        definitions = await asyncio.to_thread(supported_definitions, wanted)
        layouts = [
            _placed(definitions[model.id], model, counts.get(model.address, {}))
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
        kept = {address: dict(found) for address, found in counts.items()}
        return _Layout(chain, kept, common, polled, readings, controls)

    async def _read_values(
        self,
        layout: _Layout,
        layouts: Sequence[ModelLayout],
        *,
        marker: bool = False,
        walked: Mapping[int, int] | None = None,
    ) -> dict[int, GroupValues]:
        """Read and decode ``layouts`` (from the registers a walk just read, if it read them
        all); with ``marker`` check the marker before them too."""
        atoms = _spans(layouts)
        if marker:
            atoms.append((layout.chain.base, layout.chain.base + 1))
        registers = dict(walked or {})
        missing = [atom for atom in atoms if not _held(atom, registers)]
        if missing:
            registers |= await self._reader.read(missing, horizon=layout.atoms(marker=True))
        base = layout.chain.base
        if marker and (registers.get(base), registers.get(base + 1)) != MARKER:
            raise _MapChangedError(f"no SunSpec marker at {base} any more")
        return {model.address: _checked(model, registers) for model in layouts}

    def _remember(self, state: _Connected) -> _Remembered:
        layout = state.layout
        states = {
            metric: names
            for metric, binding in layout.readings.items()
            if (names := state_names(binding)) is not None
        }
        return _Remembered(
            chain=Chain(layout.chain.base, layout.chain.models),
            counts=layout.counts,
            identity=state.identity,
            metrics=_metrics(layout),
            states=MappingProxyType(states),
            commands=MappingProxyType(dict(self.commands)),
            refused=self._reader.refused,
        )

    def _readings(self, state: _Connected, values: Mapping[int, GroupValues]) -> Readings:
        now = self._clock()
        readings: Readings = {}
        for metric, binding in state.layout.readings.items():
            value, quality = convert(
                binding, values[binding.layout.address], meter_sign=self._meter_sign
            )
            readings[metric] = Reading(metric, value, now, quality)
        controls = state.layout.controls
        if STORAGE_SETPOINT in controls:
            setpoint = current(STORAGE_SETPOINT, controls[STORAGE_SETPOINT], values)
            readings[STORAGE_SETPOINT] = Reading(STORAGE_SETPOINT, setpoint, now)
        identity = state.identity
        texts = (identity.manufacturer, identity.model, identity.serial, identity.firmware)
        for metric, text in zip(IDENTITY_METRICS, texts, strict=True):
            readings[metric] = Reading(metric, text, now, Quality.GOOD)
        return readings

    def _refusal(self, state: _Connected, metric: str) -> WriteRefusedError:
        binding = state.layout.readings.get(metric)
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
        before = await self._read_values(state.layout, layouts)
        plan = assignments(metric, targets, value, before)
        try:
            chunks = _chunks(plan)
        except ValueError as err:
            raise WriteRefusedError(f"{self._name}: {err}", reason="out_of_range") from err
        for address, words in chunks:
            await write_holding(self._unit, address, words)
        registers = await self._reader.read(_spans(layouts))
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


def _held(atom: Span, registers: Mapping[int, int]) -> bool:
    return all(address in registers for address in range(atom[0], atom[1] + 1))


def _placed(definition: ModelDef, found: FoundModel, counts: Mapping[str, int]) -> ModelLayout:
    return model_layout(definition, found.address, found.length, counts)


def _metrics(layout: _Layout) -> frozenset[str]:
    """What a read of this layout reports: mapped metrics, the storage setpoint, identity."""
    extra = {STORAGE_SETPOINT} if STORAGE_SETPOINT in layout.controls else set()
    return frozenset({*layout.readings, *extra, *IDENTITY_METRICS})
