"""Turn registers into values and back, for every point type and word/byte order."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from ..readings import Quality, Value
from .model import FLOAT_TYPES, SIGNED_TYPES, Order, Point, PointType, VersionFormat

if TYPE_CHECKING:
    from .model import DeviceInfo

type Raw = int | float | str


def _byteorder(order: Order) -> Literal["big", "little"]:
    return "big" if order is Order.BIG else "little"


def _ordered_bytes(registers: Sequence[int], word_order: Order, byte_order: Order) -> bytes:
    words = registers if word_order is Order.BIG else list(reversed(registers))
    byteorder = _byteorder(byte_order)
    return b"".join(word.to_bytes(2, byteorder) for word in words)


def _to_registers(data: bytes, word_order: Order, byte_order: Order) -> list[int]:
    byteorder = _byteorder(byte_order)
    words = [int.from_bytes(data[i : i + 2], byteorder) for i in range(0, len(data), 2)]
    return words if word_order is Order.BIG else list(reversed(words))


def orders(point: Point, device: DeviceInfo) -> tuple[Order, Order]:
    """The word and byte order that apply to ``point`` on ``device``."""
    return (point.word_order or device.word_order, point.byte_order or device.byte_order)


def decode_raw(point: Point, registers: Sequence[int], word_order: Order, byte_order: Order) -> Raw:
    """Decode a point's registers into its raw (unscaled) value."""
    if len(registers) != point.registers:
        raise ValueError(
            f"{point.metric}: expected {point.registers} registers, got {len(registers)}"
        )
    if point.type is PointType.STRING:
        # Strings are byte sequences in register order; only the byte order within a word applies.
        data = _ordered_bytes(registers, Order.BIG, byte_order)
        return data.split(b"\x00", 1)[0].decode("latin-1").strip(" ")
    data = _ordered_bytes(registers, word_order, byte_order)
    if point.type is PointType.F32:
        return float(struct.unpack(">f", data)[0])
    if point.type is PointType.F64:
        return float(struct.unpack(">d", data)[0])
    return int.from_bytes(data, "big", signed=point.type in SIGNED_TYPES)


def encode_raw(point: Point, raw: Raw, word_order: Order, byte_order: Order) -> list[int]:
    """Encode a raw value into the point's registers; raise ``ValueError`` if it cannot fit."""
    size = point.registers * 2
    if point.type is PointType.STRING:
        data = str(raw).encode("latin-1")
        if len(data) > size:
            raise ValueError(f"{point.metric}: {len(data)} bytes do not fit in {size}")
        return _to_registers(data.ljust(size, b"\x00"), Order.BIG, byte_order)
    if point.type in FLOAT_TYPES:
        fmt = ">f" if point.type is PointType.F32 else ">d"
        try:
            data = struct.pack(fmt, float(raw))
        except OverflowError as err:
            raise ValueError(f"{point.metric}: {raw} does not fit {point.type}") from err
    else:
        if not isinstance(raw, int) or isinstance(raw, bool):
            raise ValueError(f"{point.metric}: {point.type} needs an integer, got {raw!r}")
        try:
            data = raw.to_bytes(size, "big", signed=point.type in SIGNED_TYPES)
        except OverflowError as err:
            raise ValueError(f"{point.metric}: {raw} does not fit {point.type}") from err
    return _to_registers(data, word_order, byte_order)


def _multiplier(point: Point, scale_exponent: int) -> float:
    return point.scale * 10.0**scale_exponent


def _decimals(multiplier: float) -> int:
    """Decimal places a scaled value can carry: 0.1 gives 1, 0.001 gives 3, 10 gives 0."""
    if multiplier == 0:
        return 0
    return max(0, -math.floor(math.log10(abs(multiplier)) + 1e-9))


_VERSION_BITS = {VersionFormat.HEX_DIGITS: 4, VersionFormat.BYTES: 8}
"""Bits of one part of a version."""


def version_text(point: Point, raw: int) -> str:
    """An integer as the version it spells (the point's :attr:`~Point.version` format)."""
    assert point.version is not None
    bits = _VERSION_BITS[point.version]
    parts = point.registers * 16 // bits
    mask = (1 << bits) - 1
    return ".".join(str(raw >> (bits * (parts - 1 - i)) & mask) for i in range(parts))


def version_raw(point: Point, text: str) -> int:
    """The integer that spells ``text`` in the point's version format; ``ValueError`` if none."""
    assert point.version is not None
    bits = _VERSION_BITS[point.version]
    parts = text.split(".")
    if len(parts) != point.registers * 16 // bits or not all(part.isdigit() for part in parts):
        raise ValueError(f"{point.metric}: {text!r} is not a {point.version} version")
    raw = 0
    for part in parts:
        if int(part) >> bits:
            raise ValueError(f"{point.metric}: {part} does not fit {bits} bits of {text!r}")
        raw = raw << bits | int(part)
    return raw


def to_value(point: Point, raw: Raw, scale_exponent: int = 0) -> tuple[Value, Quality]:
    """Turn a raw value into the point's engineering value and its quality."""
    if point.unimplemented is not None and raw == point.unimplemented:
        return None, Quality.GOOD
    if isinstance(raw, str):
        return raw, Quality.GOOD
    if point.version is not None and isinstance(raw, int):
        return version_text(point, raw), Quality.GOOD
    if point.type is PointType.ENUM:
        assert isinstance(raw, int)
        label = (point.options or {}).get(raw)
        return (label, Quality.GOOD) if label is not None else (None, Quality.INVALID)
    if point.type is PointType.BITFIELD:
        return raw, Quality.GOOD
    if isinstance(raw, float) and not math.isfinite(raw):
        return None, Quality.INVALID
    multiplier = _multiplier(point, scale_exponent)
    value: float | int = raw * multiplier + point.offset
    if multiplier == int(multiplier) and float(point.offset).is_integer() and isinstance(raw, int):
        value = int(value)
    else:
        value = round(value, _decimals(multiplier) + (2 if point.type in FLOAT_TYPES else 0))
    if point.valid_range is not None and not point.valid_range[0] <= value <= point.valid_range[1]:
        return value, Quality.INVALID
    return value, Quality.GOOD


def from_value(point: Point, value: Value, scale_exponent: int = 0) -> Raw:
    """Turn an engineering value into the raw value to write; raise ``ValueError`` if impossible."""
    if value is None:
        raise ValueError(f"{point.metric}: no value to write")
    if point.type is PointType.STRING:
        return str(value)
    if point.version is not None and isinstance(value, str):
        return version_raw(point, value)
    if point.version is not None and isinstance(value, int) and not isinstance(value, bool):
        return value  # the raw number, as a simulator may set it
    if point.type is PointType.ENUM and isinstance(value, str):
        for code, label in (point.options or {}).items():
            if label == value:
                return code
        raise ValueError(
            f"{point.metric}: {value!r} is not one of {sorted((point.options or {}).values())}"
        )
    if isinstance(value, str):
        raise ValueError(f"{point.metric}: {value!r} is not a number")
    gap = point.write.not_between if point.write is not None else None
    if gap is not None and gap[0] < float(value) < gap[1]:
        raise ValueError(
            f"{point.metric}: {value!r} lies between {gap[0]:g} and {gap[1]:g}; "
            f"write {gap[0]:g} or from {gap[1]:g} up"
        )
    multiplier = _multiplier(point, scale_exponent)
    if multiplier == 0:
        raise ValueError(f"{point.metric}: scale is zero")
    raw = (float(value) - point.offset) / multiplier
    if point.type in FLOAT_TYPES:
        return raw
    if not math.isfinite(raw):
        raise ValueError(f"{point.metric}: {value!r} is not finite")
    return round(raw)
