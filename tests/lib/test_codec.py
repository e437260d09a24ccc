"""Every point type and word/byte order round-trips through encode and decode."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_ems.pointmap.codec import decode_raw, encode_raw, from_value, to_value
from edge_ems.pointmap.model import Order, Point, PointType, RegisterSpace, VersionFormat
from edge_ems.readings import Quality

ORDERS = st.sampled_from(list(Order))
INT_RANGES = {
    PointType.U16: (0, 2**16 - 1),
    PointType.I16: (-(2**15), 2**15 - 1),
    PointType.U32: (0, 2**32 - 1),
    PointType.I32: (-(2**31), 2**31 - 1),
    PointType.U64: (0, 2**64 - 1),
    PointType.I64: (-(2**63), 2**63 - 1),
}
REGISTERS = {
    PointType.U16: 1, PointType.I16: 1, PointType.U32: 2, PointType.I32: 2,
    PointType.U64: 4, PointType.I64: 4, PointType.F32: 2, PointType.F64: 4,
}  # fmt: skip


def point(kind: PointType, registers: int | None = None, **extra: object) -> Point:
    return Point(
        metric="ac_power_w",
        address=0,
        type=kind,
        registers=registers or REGISTERS[kind],
        space=RegisterSpace.HOLDING,
        **extra,  # type: ignore[arg-type]
    )


@st.composite
def int_cases(draw: st.DrawFn) -> tuple[Point, int]:
    kind = draw(st.sampled_from(sorted(INT_RANGES)))
    low, high = INT_RANGES[kind]
    return point(kind), draw(st.integers(low, high))


@given(int_cases(), ORDERS, ORDERS)
def test_integers_round_trip(case: tuple[Point, int], word: Order, byte: Order) -> None:
    subject, raw = case
    registers = encode_raw(subject, raw, word, byte)
    assert len(registers) == subject.registers
    assert all(0 <= register <= 0xFFFF for register in registers)
    assert decode_raw(subject, registers, word, byte) == raw


@given(st.floats(width=32, allow_nan=False), ORDERS, ORDERS)
def test_f32_round_trips(raw: float, word: Order, byte: Order) -> None:
    subject = point(PointType.F32)
    assert decode_raw(subject, encode_raw(subject, raw, word, byte), word, byte) == raw


@given(st.floats(allow_nan=False), ORDERS, ORDERS)
def test_f64_round_trips(raw: float, word: Order, byte: Order) -> None:
    subject = point(PointType.F64)
    assert decode_raw(subject, encode_raw(subject, raw, word, byte), word, byte) == raw


@given(st.text(st.characters(min_codepoint=0x21, max_codepoint=0xFF), max_size=16), ORDERS, ORDERS)
def test_strings_round_trip(text: str, word: Order, byte: Order) -> None:
    subject = point(PointType.STRING, registers=8)
    assert decode_raw(subject, encode_raw(subject, text, word, byte), word, byte) == text


@given(st.integers(0, 2**32 - 1), ORDERS, ORDERS)
def test_bitfields_round_trip(raw: int, word: Order, byte: Order) -> None:
    subject = point(PointType.BITFIELD, registers=2, bits={0: "a", 31: "b"})
    assert decode_raw(subject, encode_raw(subject, raw, word, byte), word, byte) == raw


def test_word_and_byte_order_are_applied() -> None:
    subject = point(PointType.U32)
    assert encode_raw(subject, 0x11223344, Order.BIG, Order.BIG) == [0x1122, 0x3344]
    assert encode_raw(subject, 0x11223344, Order.LITTLE, Order.BIG) == [0x3344, 0x1122]
    assert encode_raw(subject, 0x11223344, Order.BIG, Order.LITTLE) == [0x2211, 0x4433]
    assert encode_raw(subject, 0x11223344, Order.LITTLE, Order.LITTLE) == [0x4433, 0x2211]


def test_encode_refuses_values_that_do_not_fit() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        encode_raw(point(PointType.U16), 70000, Order.BIG, Order.BIG)
    with pytest.raises(ValueError, match="does not fit"):
        encode_raw(point(PointType.I16), -40000, Order.BIG, Order.BIG)
    with pytest.raises(ValueError, match="needs an integer"):
        encode_raw(point(PointType.U16), 1.5, Order.BIG, Order.BIG)
    with pytest.raises(ValueError, match="do not fit"):
        encode_raw(point(PointType.STRING, registers=1), "abc", Order.BIG, Order.BIG)


def test_decode_refuses_wrong_register_count() -> None:
    with pytest.raises(ValueError, match="expected 2 registers"):
        decode_raw(point(PointType.U32), [1], Order.BIG, Order.BIG)


@given(
    st.integers(-(2**15), 2**15 - 1), st.sampled_from([1.0, 0.1, 0.01, 10.0]), st.integers(-3, 3)
)
def test_scaled_values_round_trip(raw: int, scale: float, exponent: int) -> None:
    subject = point(PointType.I16, scale=scale, offset=-100.0)
    value, quality = to_value(subject, raw, exponent)
    assert quality is Quality.GOOD
    assert from_value(subject, value, exponent) == raw


def test_scale_offset_and_sentinels() -> None:
    temperature = point(PointType.U16, scale=0.1, offset=-100.0)
    assert to_value(temperature, 1250) == (25.0, Quality.GOOD)
    sunspec = point(PointType.I16, unimplemented=0x8000)
    assert to_value(sunspec, 0x8000) == (None, Quality.GOOD)
    assert to_value(point(PointType.U16), 42, 2) == (4200, Quality.GOOD)
    assert to_value(point(PointType.U16), 42, -1) == (4.2, Quality.GOOD)
    bounded = point(PointType.U16, valid_range=(0.0, 100.0))
    assert to_value(bounded, 101) == (101, Quality.INVALID)
    assert to_value(point(PointType.F32), math.nan) == (None, Quality.INVALID)


def test_enums_use_their_labels() -> None:
    mode = point(PointType.ENUM, registers=1, options={0: "selling_first", 1: "zero_export"})
    assert to_value(mode, 1) == ("zero_export", Quality.GOOD)
    assert to_value(mode, 9) == (None, Quality.INVALID)
    assert from_value(mode, "selling_first") == 0
    with pytest.raises(ValueError, match="is not one of"):
        from_value(mode, "party")


@given(
    st.sampled_from([PointType.U16, PointType.U32, PointType.U64]),
    st.sampled_from(list(VersionFormat)),
    st.data(),
)
def test_versions_round_trip(kind: PointType, version: VersionFormat, data: st.DataObject) -> None:
    subject = point(kind, version=version)
    raw = data.draw(st.integers(*INT_RANGES[kind]))
    text, quality = to_value(subject, raw)
    assert isinstance(text, str)
    assert quality is Quality.GOOD
    assert from_value(subject, text) == raw
    assert from_value(subject, raw) == raw  # a simulator may set the raw number too


@pytest.mark.parametrize(
    ("version", "raw", "text"),
    [(VersionFormat.HEX_DIGITS, 0x1106, "1.1.0.6"), (VersionFormat.HEX_DIGITS, 0x0105, "0.1.0.5"),
     (VersionFormat.BYTES, 0x0105, "1.5"), (VersionFormat.BYTES, 0x0A14, "10.20")],
)  # fmt: skip
def test_versions_read_as_the_device_spells_them(
    version: VersionFormat, raw: int, text: str
) -> None:
    assert to_value(point(PointType.U16, version=version), raw) == (text, Quality.GOOD)


@pytest.mark.parametrize("text", ["1.1.0", "1.1.0.16", "a.b.c.d", "1..0.6", "-1.0.0.0"])
def test_a_version_that_cannot_be_written_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="ac_power_w"):
        from_value(point(PointType.U16, version=VersionFormat.HEX_DIGITS), text)
