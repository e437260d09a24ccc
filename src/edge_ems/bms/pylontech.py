"""The Pylontech/SMA-compatible battery CAN protocol: frames to readings and back.

Most low-voltage home batteries speak this protocol to their inverter: standard 11-bit frames
at 500 kbit/s, sent by the battery about once a second, little-endian throughout.

Sources, which agree on every field used here:

- Pylontech, "PYLON BMS Protocol - CAN" (2016-11-03): ids 0x351, 0x355, 0x356, 0x359, 0x35C,
  0x35E and the bits of 0x359 and 0x35C.
- OpenDTU-OnBattery, ``src/battery/pylontech/Provider.cpp``: a receiver of the same frames
  (scales, signed fields, the bits it reads).
- ArminJo/JK-BMSToPylontechCAN, ``Pylontech_CAN.h``: a sender of the same frames, frame
  lengths, and 0x35F (SMA Sunny Island) with the capacity in Ah at bytes 4-5, after the SMA
  CAN protocol mapping and REC's 9R SMA manual.
- setfirelabs.com, "Pylontech Battery CAN comms - V1.2 vs V1.3": captures of real US5000s.

Signs: the protocol counts battery current positive while charging (OpenDTU names it the
charge current; diyBMS and JK senders send their shunt's charging-positive current); Edge EMS
counts discharging as positive, so the current is negated. The discharge current limit is a
magnitude, but senders disagree on its sign (JK's sender documents -5000..0), so its absolute
value is taken.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from ..exceptions import DeviceProtocolError
from ..readings import Quality, Reading, Readings, Value

TEXT = "text"
"""Field format of an ASCII text filling the rest of the frame."""

type FrameProblem = Literal["unknown_id", "too_short", "too_long"]


class CanFrameError(DeviceProtocolError):
    """A frame that cannot be decoded; ``reason`` says why."""

    def __init__(self, message: str, *, reason: FrameProblem) -> None:
        super().__init__(message)
        self.reason: FrameProblem = reason


@dataclass(frozen=True, slots=True)
class Field:
    """One value in a frame."""

    metric: str
    offset: int
    format: str
    """A :mod:`struct` format (``<H`` unsigned 16-bit, ``<h`` signed, ``B`` a byte) or TEXT."""
    scale: float = 1.0
    magnitude: bool = False
    """Only the size counts; the sign senders put on it does not."""
    valid_range: tuple[float, float] | None = None

    @property
    def end(self) -> int:
        """First byte after the field (for TEXT, the frame's end)."""
        return 8 if self.format == TEXT else self.offset + struct.calcsize(self.format)


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame id: what it carries, and what a sender puts in the bytes it does not map."""

    name: str
    min_length: int
    """Shorter frames are rejected; fields beyond it are read when the frame holds them."""
    fields: tuple[Field, ...]
    template: bytes
    """The frame as a sender builds it, before the fields are filled in."""


FRAMES: Mapping[int, Frame] = MappingProxyType(
    {
        0x351: Frame(
            "limits", 6,
            (
                Field("battery_charge_voltage_limit_v", 0, "<H", 0.1),
                Field("battery_charge_current_limit_a", 2, "<h", 0.1),
                Field("battery_discharge_current_limit_a", 4, "<h", 0.1, magnitude=True),
                Field("battery_discharge_voltage_limit_v", 6, "<H", 0.1),
            ),
            bytes(8),
        ),
        0x355: Frame(
            "state of charge and health", 4,
            (
                Field("soc_pct", 0, "<H", valid_range=(0, 100)),
                Field("soh_pct", 2, "<H", valid_range=(0, 100)),
            ),
            bytes(4),
        ),
        0x356: Frame(
            "voltage, current, temperature", 6,
            (
                Field("battery_voltage_v", 0, "<h", 0.01),
                Field("battery_current_a", 2, "<h", -0.1),  # the protocol counts charging +
                Field("battery_temperature_c", 4, "<h", 0.1),
            ),
            bytes(6),
        ),
        0x359: Frame(
            "protection alarms and warnings", 5,
            (
                Field("bms_alarms", 0, "<H"),
                Field("bms_warnings", 2, "<H"),
                Field("battery_module_count", 4, "B"),
            ),
            bytes(5) + b"PN",
        ),
        0x35C: Frame(
            "charge and discharge requests", 1, (Field("bms_requests", 0, "B"),), bytes(2)
        ),
        0x35E: Frame("manufacturer", 1, (Field("device_manufacturer", 0, TEXT),), b" " * 8),
        0x35F: Frame(
            "battery information (SMA)", 6, (Field("battery_capacity_ah", 4, "<H"),), bytes(8)
        ),
    }
)  # fmt: skip
"""Every frame id this protocol decodes."""

# Bit names of the flag metrics, bit 0 the least significant; 0x359's second byte is bits 8-15.
BITS: Mapping[str, Mapping[int, str]] = MappingProxyType(
    {
        "bms_alarms": MappingProxyType(
            {
                1: "over_voltage", 2: "under_voltage", 3: "over_temperature",
                4: "under_temperature", 7: "discharge_over_current", 8: "charge_over_current",
                11: "bms_internal",
            }
        ),
        "bms_warnings": MappingProxyType(
            {
                1: "high_voltage", 2: "low_voltage", 3: "high_temperature", 4: "low_temperature",
                7: "discharge_high_current", 8: "charge_high_current", 11: "bms_internal",
            }
        ),
        "bms_requests": MappingProxyType(
            {
                3: "full_charge", 4: "force_charge_2", 5: "force_charge_1",
                6: "discharge_enable", 7: "charge_enable",
            }
        ),
    }
)  # fmt: skip


def decode_frame(arbitration_id: int, data: bytes, timestamp: float) -> Readings:
    """The readings one frame carries; raise :class:`CanFrameError` if it cannot be decoded."""
    frame = FRAMES.get(arbitration_id)
    if frame is None:
        raise CanFrameError(
            f"CAN id 0x{arbitration_id:03X} is not a BMS frame", reason="unknown_id"
        )
    if len(data) < frame.min_length:
        raise CanFrameError(
            f"CAN 0x{arbitration_id:03X} ({frame.name}): {len(data)} bytes, "
            f"at least {frame.min_length} expected",
            reason="too_short",
        )
    if len(data) > 8:
        raise CanFrameError(
            f"CAN 0x{arbitration_id:03X} ({frame.name}): {len(data)} bytes, at most 8 expected",
            reason="too_long",
        )
    readings: Readings = {}
    for field in frame.fields:
        if field.format == TEXT or field.end <= len(data):
            value, quality = _field_value(field, data)
            readings[field.metric] = Reading(field.metric, value, timestamp, quality)
    _derive_power(readings, timestamp)
    return readings


def encode_frames(values: Mapping[str, Value]) -> list[tuple[int, bytes]]:
    """The frames a battery sends for ``values`` (by metric); frames lacking a value are left out.

    Raises ``ValueError`` for a value its field cannot hold.
    """
    frames = []
    for arbitration_id, frame in FRAMES.items():
        if not all(field.metric in values for field in frame.fields):
            continue
        data = bytearray(frame.template)
        for field in frame.fields:
            _pack(field, values[field.metric], data)
        frames.append((arbitration_id, bytes(data)))
    return frames


def _field_value(field: Field, data: bytes) -> tuple[Value, Quality]:
    if field.format == TEXT:
        text = data[field.offset :].split(b"\x00", 1)[0].decode("ascii", "replace").strip()
        return text, Quality.GOOD
    (raw,) = struct.unpack_from(field.format, data, field.offset)
    if field.magnitude:
        raw = abs(raw)
    value: float | int = raw if field.scale == 1 else round(raw * field.scale, _decimals(field))
    value += 0  # turns -0.0 into 0.0
    if field.valid_range is not None and not field.valid_range[0] <= value <= field.valid_range[1]:
        return value, Quality.INVALID
    return value, Quality.GOOD


def _pack(field: Field, value: Value, data: bytearray) -> None:
    if field.format == TEXT:
        text = str(value).encode("ascii", "replace")[: len(data) - field.offset]
        data[field.offset : field.offset + len(text)] = text
        return
    if value is None or isinstance(value, str):
        raise ValueError(f"{field.metric}: {value!r} is not a number")
    raw = round(float(abs(value) if field.magnitude else value) / field.scale)
    try:
        struct.pack_into(field.format, data, field.offset, raw)
    except struct.error as err:
        raise ValueError(f"{field.metric}: {value!r} does not fit its field: {err}") from None


def _decimals(field: Field) -> int:
    return max(0, -math.floor(math.log10(abs(field.scale)) + 1e-9))


def _derive_power(readings: Readings, timestamp: float) -> None:
    """Battery power from the voltage and current of the same frame."""
    voltage, current = readings.get("battery_voltage_v"), readings.get("battery_current_a")
    if voltage is None or current is None:
        return
    assert isinstance(voltage.value, int | float)
    assert isinstance(current.value, int | float)
    power = round(voltage.value * current.value, 1) + 0.0
    readings["battery_power_w"] = Reading("battery_power_w", power, timestamp)
