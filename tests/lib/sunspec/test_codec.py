"""Point decoding: types, unimplemented sentinels, scale factors; and garbage never breaks it."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_ems.exceptions import DeviceProtocolError
from edge_ems.readings import Quality
from edge_ems.sunspec import SUPPORTED_MODELS, decode_model, model_definition, model_layout
from edge_ems.sunspec.codec import decode_raw, encode_raw, raw_range, scaled, unscaled
from edge_ems.sunspec.layout import count_points
from edge_ems.sunspec.mapping import READINGS
from edge_ems.sunspec.models import TYPE_SIZES, ModelDef, PointDef
from edge_ems.sunspec.readout import bind, convert

INTEGER_TYPES = sorted(set(TYPE_SIZES) - {"float32", "float64", "pad"})


def point(kind: str, size: int | None = None, **extra: object) -> PointDef:
    return PointDef("P", kind, size or TYPE_SIZES[kind], 0, **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("int16", [0x8000]), ("uint16", [0xFFFF]), ("count", [0xFFFF]), ("acc16", [0]),
        ("enum16", [0xFFFF]), ("bitfield16", [0xFFFF]), ("sunssf", [0x8000]),
        ("int32", [0x8000, 0]), ("uint32", [0xFFFF, 0xFFFF]), ("acc32", [0, 0]),
        ("enum32", [0xFFFF, 0xFFFF]), ("bitfield32", [0xFFFF, 0xFFFF]),
        ("int64", [0x8000, 0, 0, 0]), ("uint64", [0xFFFF] * 4), ("acc64", [0] * 4),
        ("float32", [0x7FC0, 0]), ("float64", [0x7FF8, 0, 0, 0]),
    ],
)  # fmt: skip
def test_unimplemented_sentinels_read_as_none(kind: str, words: list[int]) -> None:
    assert decode_raw(point(kind), words) is None
    assert encode_raw(point(kind), None) == words


def test_strings() -> None:
    text = point("string", 4)
    assert decode_raw(text, [0, 0, 0, 0]) is None
    assert decode_raw(text, [0x534D, 0x4100, 0x4142, 0x4344]) == "SMA"  # stops at NUL
    assert decode_raw(text, [0x5345, 0x2020, 0x2020, 0x2020]) == "SE"
    assert decode_raw(text, encode_raw(text, "SB3.6")) == "SB3.6"
    with pytest.raises(ValueError, match="do not fit"):
        encode_raw(text, "much too long")


def test_floats_keep_the_digits_they_carry() -> None:
    # 0x3F333333 is float32 0.699999988: the 0.7 the device meant.
    assert decode_raw(point("float32"), [0x3F33, 0x3333]) == 0.7
    assert decode_raw(point("float32"), [0x7F80, 0]) == math.inf


def test_signed_values() -> None:
    assert decode_raw(point("int16"), [0xD8F0]) == -10000
    assert decode_raw(point("sunssf"), [0xFFFE]) == -2
    assert decode_raw(point("int32"), [0xFFFF, 0xFFFE]) == -2


def test_scaling_has_no_binary_noise() -> None:
    assert scaled(-9987, -2) == -99.87
    assert scaled(368, 1) == 3680
    assert scaled(3, -1) == 0.3
    assert unscaled(0.29, -2) == 29
    assert unscaled(185_000, 1) == 18_500


@given(st.sampled_from(INTEGER_TYPES), st.data())
def test_integers_round_trip(kind: str, data: st.DataObject) -> None:
    subject = point(kind)
    low, high = raw_range(subject)
    raw = data.draw(st.integers(low, high))
    words = encode_raw(subject, raw)
    assert len(words) == subject.size
    assert decode_raw(subject, words) == raw


@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_float32_round_trips_to_its_digits(value: float) -> None:
    decoded = decode_raw(point("float32"), encode_raw(point("float32"), value))
    assert decoded == float(f"{struct.unpack('>f', struct.pack('>f', value))[0]:.7g}")


def _model(model_id: int, length: int, sf: int, raw: int) -> dict[int, int]:
    """Registers of ``model_id`` at 0 with every register ``raw`` and every sunssf ``sf``."""
    layout = model_layout(model_definition(model_id), 0, length)
    registers = dict.fromkeys(range(length + 2), raw)
    for name, address in layout.root.points.items():
        found = layout.model.group.point(name)
        if found is not None and found.type == "sunssf":
            registers[address] = sf & 0xFFFF
    return registers


@pytest.mark.parametrize("sf", [0x8000 - 0x10000, 11, -11])
def test_an_unusable_scale_factor_invalidates_its_points(sf: int) -> None:
    layout = model_layout(model_definition(103), 0, 50)
    values = decode_model(layout, _model(103, 50, sf, 100))
    assert values.values["W"] is None
    assert "W" in values.invalid
    binding = bind([layout], READINGS)["ac_power_w"]
    assert convert(binding, values) == (None, Quality.INVALID)


models: st.SearchStrategy[ModelDef] = st.sampled_from(sorted(SUPPORTED_MODELS)).map(
    model_definition
)


@settings(max_examples=200, deadline=None)
@given(models, st.integers(0, 400), st.data())
def test_any_register_content_decodes_or_raises_our_error(
    model: ModelDef, length: int, data: st.DataObject
) -> None:
    counts = {name: data.draw(st.integers(0, 0xFFFF)) for name in count_points(model)}
    try:
        layout = model_layout(model, 100, length, counts)
    except DeviceProtocolError:
        return
    words = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=length + 2, max_size=length + 2))
    refused = data.draw(st.sets(st.integers(100, 100 + length + 1), max_size=8))
    registers = {100 + i: word for i, word in enumerate(words) if 100 + i not in refused}
    values = decode_model(layout, registers)
    for binding in bind([layout], READINGS).values():
        value, quality = convert(binding, values)
        assert quality in Quality
        assert value is None or isinstance(value, int | float | str | bool)
