"""Point maps as typed data: what a device is and where each metric lives in its registers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from ..device import AssetType


class PointType(StrEnum):
    """How a point's registers encode its value."""

    U16 = "u16"
    I16 = "i16"
    U32 = "u32"
    I32 = "i32"
    U64 = "u64"
    I64 = "i64"
    F32 = "f32"
    F64 = "f64"
    STRING = "string"
    BITFIELD = "bitfield"
    ENUM = "enum"


# Registers per type; string, bitfield and enum take theirs from the point.
TYPE_REGISTERS: Mapping[PointType, int] = MappingProxyType(
    {
        PointType.U16: 1,
        PointType.I16: 1,
        PointType.U32: 2,
        PointType.I32: 2,
        PointType.U64: 4,
        PointType.I64: 4,
        PointType.F32: 2,
        PointType.F64: 4,
    }
)
SIGNED_TYPES = frozenset({PointType.I16, PointType.I32, PointType.I64})
FLOAT_TYPES = frozenset({PointType.F32, PointType.F64})


class RegisterSpace(StrEnum):
    """Which Modbus table a point lives in."""

    HOLDING = "holding"  # function code 3, writable with 6 and 16
    INPUT = "input"  # function code 4, read only


class Order(StrEnum):
    """Order of words within a value, or of bytes within a word."""

    BIG = "big"
    LITTLE = "little"


class Access(StrEnum):
    """What may be done with a point."""

    READ = "r"
    READ_WRITE = "rw"
    WRITE = "w"


class WriteFunction(StrEnum):
    """The Modbus function a device wants for writing holding registers."""

    FC06 = "fc06"  # write single register
    FC16 = "fc16"  # write multiple registers


class VersionFormat(StrEnum):
    """How an integer register spells a version (firmware, hardware, protocol)."""

    HEX_DIGITS = "hex_digits"
    """Each hex digit is one part, most significant first: 0x1106 reads as 1.1.0.6."""
    BYTES = "bytes"
    """Each byte is one part, most significant first: 0x0105 reads as 1.5."""


class PollGroup(StrEnum):
    """How often a point is read; upper layers poll each group on its own cadence."""

    FAST = "fast"  # power flows, every few seconds
    NORMAL = "normal"  # most readings, every 10-30 s
    SLOW = "slow"  # energy counters, temperatures, settings, every few minutes
    ONCE = "once"  # identity, read when connecting


@dataclass(frozen=True, slots=True)
class WriteSpec:
    """How a writable point may be written."""

    allow_write: bool
    """Writing must be allowed explicitly, point by point."""
    minimum: float | None = None
    maximum: float | None = None
    eeprom: bool = True
    """Backed by EEPROM or flash, which wears out: write only on change, within a budget.
    Unknown storage counts as EEPROM."""
    function: WriteFunction | None = None
    """Overrides the device's write function for this point."""
    not_between: tuple[float, float] | None = None
    """Values strictly between these two are refused: a charge current is 0 or 6-32 A."""
    lease: bool = False
    """Written only as a lease with a time to live; when it lapses, the device's safe mode."""


@dataclass(frozen=True, slots=True)
class Point:
    """Where one metric lives in a device's registers and how to turn it into a value."""

    metric: str
    address: int
    type: PointType
    registers: int
    """Registers the value spans."""
    space: RegisterSpace
    access: Access = Access.READ
    scale: float = 1.0
    offset: float = 0.0
    """Added after scaling: value = raw * scale * 10**sf + offset."""
    scale_factor: int | None = None
    """Address of a SunSpec-style scale-factor register (signed power of ten)."""
    word_order: Order | None = None
    byte_order: Order | None = None
    unimplemented: int | None = None
    """Raw value that means the device does not implement the point (read as None)."""
    valid_range: tuple[float, float] | None = None
    """Values outside this range are read with quality ``invalid``."""
    options: Mapping[int, str] | None = None
    """Names of an enum's values."""
    bits: Mapping[int, str] | None = None
    """Names of a bitfield's bits, bit 0 the least significant."""
    poll: PollGroup = PollGroup.NORMAL
    write: WriteSpec | None = None
    private: bool = False
    """Carries identity or secrets (a serial number, say): redacted in register dumps."""
    version: VersionFormat | None = None
    """An integer read as a version string in this format."""

    @property
    def writable(self) -> bool:
        """The point can be written (whether that is allowed is :attr:`write`'s to say)."""
        return self.access is not Access.READ

    @property
    def readable(self) -> bool:
        """The point can be read."""
        return self.access is not Access.WRITE

    @property
    def end(self) -> int:
        """Last register address the point spans."""
        return self.address + self.registers - 1


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What a point map says about the device as a whole."""

    id: str
    """Catalog identifier, the point map's file name without extension."""
    maker: str
    model: str
    kind: AssetType
    documentation: str
    """Where the addresses come from (document, version, page)."""
    default_unit_id: int = 1
    space: RegisterSpace = RegisterSpace.HOLDING
    word_order: Order = Order.BIG
    byte_order: Order = Order.BIG
    max_block: int = 125
    """Largest number of registers the device accepts in one read."""
    max_gap: int = 0
    """Unrequested registers a read may bridge; 0 means never read what is not mapped."""
    refused: tuple[tuple[int, int], ...] = ()
    """Inclusive address ranges the device refuses to read."""
    write_function: WriteFunction = WriteFunction.FC16
    safe_mode: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    """Values written, in order, to return the device to its own control when a lease lapses."""
    revert_timer: str | None = None
    """Metric of the device's own revert (watchdog) timer, refreshed instead of setpoints."""
    identify: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Regular expressions identity metrics must match for the map to fit the device."""


@dataclass(frozen=True, slots=True)
class PointMap:
    """A device's point map: its description and its points, keyed by metric."""

    device: DeviceInfo
    points: Mapping[str, Point]
    source: str = "<memory>"

    def readable_points(self) -> list[Point]:
        """Points that can be read, in address order."""
        return sorted(
            (point for point in self.points.values() if point.readable),
            key=lambda point: (point.space, point.address),
        )
