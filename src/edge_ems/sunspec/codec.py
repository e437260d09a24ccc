"""SunSpec point values to and from registers: types, sentinels and scale factors.

SunSpec is big-endian throughout. Every type has a value meaning "not implemented"
(int16 0x8000, uint16 0xFFFF, acc 0, float NaN, string all NUL, ...); such points read as
``None``. A scaled point is ``raw * 10**sf`` where ``sf`` is the value of its ``sunssf``
point; a scale factor that is itself unimplemented or outside the spec's -10..10 makes the
point unusable: ``None``, listed as invalid.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from ..readings import Value
from .layout import GroupLayout, ModelLayout
from .models import PointDef

type Raw = int | float | str

UNIMPLEMENTED: Mapping[str, int] = MappingProxyType(
    {
        "int16": 0x8000, "sunssf": 0x8000, "uint16": 0xFFFF, "count": 0xFFFF,
        "enum16": 0xFFFF, "bitfield16": 0xFFFF, "acc16": 0,
        "int32": 0x8000_0000, "uint32": 0xFFFF_FFFF, "enum32": 0xFFFF_FFFF,
        "bitfield32": 0xFFFF_FFFF, "acc32": 0,
        "int64": 0x8000_0000_0000_0000, "uint64": 0xFFFF_FFFF_FFFF_FFFF, "acc64": 0,
        "pad": 0,
    }
)  # fmt: skip
"""Unsigned register content that means "not implemented", per type."""

SIGNED = frozenset({"int16", "int32", "int64", "sunssf"})
FLOATS: Mapping[str, str] = MappingProxyType({"float32": ">f", "float64": ">d"})
SF_RANGE = (-10, 10)
"""Scale factors the SunSpec specification allows."""
_FLOAT_DIGITS: Mapping[str, int] = MappingProxyType({"float32": 7, "float64": 15})
"""Significant digits a float carries; decoded floats are rounded to them, so a float32
written as 0.7 reads as 0.7 and not 0.699999988."""


def _bytes(words: Sequence[int]) -> bytes:
    return b"".join(word.to_bytes(2, "big") for word in words)


def _words(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def decode_raw(point: PointDef, words: Sequence[int]) -> Raw | None:
    """The raw value of ``point`` in ``words``, or ``None`` when it is not implemented."""
    data = _bytes(words)
    if point.type == "string":
        return data.split(b"\x00", 1)[0].decode("latin-1").strip() or None
    if point.type in FLOATS:
        value = float(struct.unpack(FLOATS[point.type], data)[0])
        if math.isnan(value):
            return None
        return float(f"{value:.{_FLOAT_DIGITS[point.type]}g}")
    unsigned = int.from_bytes(data, "big")
    if unsigned == UNIMPLEMENTED[point.type]:
        return None
    if point.type in SIGNED:
        return int.from_bytes(data, "big", signed=True)
    return unsigned


def raw_range(point: PointDef) -> tuple[int, int]:
    """The implemented raw values of an integer point, its sentinel excluded."""
    bits = 16 * point.size
    if point.type in SIGNED:
        return -(2 ** (bits - 1)) + 1, 2 ** (bits - 1) - 1
    if UNIMPLEMENTED[point.type] == 0:
        return 1, 2**bits - 1
    return 0, 2**bits - 2


def encode_raw(point: PointDef, raw: Raw | None) -> list[int]:
    """The registers of ``point`` holding ``raw`` (``None``: not implemented).

    Raises ``ValueError`` when ``raw`` does not fit the point.
    """
    size = 2 * point.size
    if raw is None:
        if point.type == "string":
            return [0] * point.size
        if point.type in FLOATS:
            return _words(struct.pack(FLOATS[point.type], math.nan))
        return _words(UNIMPLEMENTED[point.type].to_bytes(size, "big"))
    if point.type == "string":
        data = str(raw).encode("latin-1")
        if len(data) > size:
            raise ValueError(f"{point.name}: {len(data)} bytes do not fit in {size}")
        return _words(data.ljust(size, b"\x00"))
    if point.type in FLOATS:
        return _words(struct.pack(FLOATS[point.type], float(raw)))
    if not isinstance(raw, int) or isinstance(raw, bool):
        raise ValueError(f"{point.name}: {point.type} needs an integer, got {raw!r}")
    low, high = raw_range(point)
    if not low <= raw <= high:
        raise ValueError(f"{point.name}: {raw} is outside {point.type}'s {low}..{high}")
    return _words(raw.to_bytes(size, "big", signed=point.type in SIGNED))


def scaled(raw: int | float, exponent: int) -> int | float:
    """``raw * 10**exponent`` without binary noise: -9987 at -2 is -99.87."""
    if isinstance(raw, int) and exponent >= 0:
        return raw * int(math.pow(10, exponent))
    if isinstance(raw, int):
        return round(raw / math.pow(10, -exponent), -exponent)
    return raw * math.pow(10, exponent)


def unscaled(value: float, exponent: int) -> int:
    """The integer register value that stands for ``value`` at ``exponent``."""
    return round(value * math.pow(10, -exponent))


@dataclass(frozen=True, slots=True)
class GroupValues:
    """The decoded points of one group instance."""

    values: Mapping[str, Value]
    """Every point but pads; ``None`` when not implemented, not readable or unusable."""
    invalid: frozenset[str]
    """Points read with an unusable scale factor or a non-finite float."""
    groups: Mapping[str, tuple[GroupValues, ...]]


def read_raw(point: PointDef, address: int, registers: Mapping[int, int]) -> Raw | None:
    """The raw value of ``point`` at ``address``; ``None`` when not implemented or when
    a register of it is missing from ``registers``."""
    words = [registers[address + i] for i in range(point.size) if address + i in registers]
    return decode_raw(point, words) if len(words) == point.size else None


def _exponent(name: str, scope: Sequence[GroupLayout], registers: Mapping[int, int]) -> int | None:
    """The value of scale-factor point ``name``, looked up from the innermost group out."""
    for layout in reversed(scope):
        point = layout.group.point(name)
        if point is None:
            continue
        address = layout.points.get(point.name)
        raw = None if address is None else read_raw(point, address, registers)
        return raw if isinstance(raw, int) and SF_RANGE[0] <= raw <= SF_RANGE[1] else None
    return None


def _decode_group(
    layout: GroupLayout, scope: tuple[GroupLayout, ...], registers: Mapping[int, int]
) -> GroupValues:
    scope = (*scope, layout)
    values: dict[str, Value] = {}
    invalid: set[str] = set()
    for point in layout.group.points:
        if point.type == "pad":
            continue
        address = layout.points.get(point.name)
        raw = None if address is None else read_raw(point, address, registers)
        if raw is None or isinstance(raw, str):
            values[point.name] = raw
        elif isinstance(raw, float) and not math.isfinite(raw):
            values[point.name] = None
            invalid.add(point.name)
        elif point.sf is None:
            values[point.name] = raw
        else:
            exponent = (
                point.sf if isinstance(point.sf, int) else _exponent(point.sf, scope, registers)
            )
            values[point.name] = None if exponent is None else scaled(raw, exponent)
            if exponent is None:
                invalid.add(point.name)
    groups = {
        name: tuple(_decode_group(instance, scope, registers) for instance in instances)
        for name, instances in layout.groups.items()
    }
    return GroupValues(MappingProxyType(values), frozenset(invalid), MappingProxyType(groups))


def decode_model(layout: ModelLayout, registers: Mapping[int, int]) -> GroupValues:
    """Decode every point of a placed model from ``registers`` (address to value).

    Points whose registers are missing from ``registers`` (not read, or refused by the
    device) decode as ``None``. Never raises for any register content.
    """
    return _decode_group(layout.root, (), registers)
