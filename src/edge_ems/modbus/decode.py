"""Turn the registers a poll read into point values, SunSpec-style scale factors included."""

from __future__ import annotations

from collections.abc import Mapping

from ..pointmap.codec import decode_raw, orders, to_value
from ..pointmap.model import DeviceInfo, Point, RegisterSpace
from ..readings import Quality, Value

type RegisterWindow = Mapping[tuple[RegisterSpace, int], int]
"""Raw registers read in one poll, by space and address."""

SCALE_FACTOR_NOT_IMPLEMENTED = 0x8000
"""SunSpec's value for a scale factor the device does not implement."""


def scale_exponent(raw: int) -> int | None:
    """A scale-factor register as a signed power of ten; ``None`` if not implemented."""
    if raw == SCALE_FACTOR_NOT_IMPLEMENTED:
        return None
    return raw - 0x10000 if raw & 0x8000 else raw


def decode_point(
    point: Point, device: DeviceInfo, registers: RegisterWindow
) -> tuple[Value, Quality] | None:
    """The point's value and quality, or ``None`` if a register it needs was not read."""
    words = [
        registers.get((point.space, address)) for address in range(point.address, point.end + 1)
    ]
    if any(word is None for word in words):
        return None
    exponent = 0
    if point.scale_factor is not None:
        raw_exponent = registers.get((point.space, point.scale_factor))
        if raw_exponent is None:
            return None
        found = scale_exponent(raw_exponent)
        if found is None:
            return None, Quality.INVALID
        exponent = found
    word_order, byte_order = orders(point, device)
    raw = decode_raw(point, [word for word in words if word is not None], word_order, byte_order)
    return to_value(point, raw, exponent)
