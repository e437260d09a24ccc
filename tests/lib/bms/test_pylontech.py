"""The Pylontech/SMA CAN codec: real captures, signs, lengths, any payload, round trips."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_ems.bms.pylontech import BITS, FRAMES, CanFrameError, decode_frame, encode_frames
from edge_ems.metrics import METRICS
from edge_ems.readings import Quality


def values(arbitration_id: int, data: str) -> dict[str, object]:
    readings = decode_frame(arbitration_id, bytes.fromhex(data), 1.0)
    return {metric: reading.value for metric, reading in readings.items()}


# Captures of real Pylontech US5000 batteries (setfirelabs.com, "Pylontech Battery CAN comms -
# V1.2 vs V1.3"): firmware with 0x359/0x35C, and newer firmware with 6-byte 0x355 and 0x35F.
def test_pylontech_limits() -> None:
    assert values(0x351, "14 02 C0 12 C0 12 C2 01") == {
        "battery_charge_voltage_limit_v": 53.2,
        "battery_charge_current_limit_a": 480.0,
        "battery_discharge_current_limit_a": 480.0,
        "battery_discharge_voltage_limit_v": 45.0,
    }


def test_a_short_limits_frame_leaves_out_the_discharge_voltage() -> None:
    assert "battery_discharge_voltage_limit_v" not in values(0x351, "14 02 C0 12 C0 12")


def test_a_negative_discharge_limit_counts_by_its_size() -> None:
    assert values(0x351, "14 02 C0 12 40 ED C2 01")["battery_discharge_current_limit_a"] == 480.0


def test_pylontech_state_of_charge_and_health_old_and_new() -> None:
    assert values(0x355, "58 00 5E 00") == {"soc_pct": 88, "soh_pct": 94}
    assert values(0x355, "54 00 60 00 00 00") == {"soc_pct": 84, "soh_pct": 96}


def test_pylontech_discharging_current_is_positive_here() -> None:
    # 0xFEF2 = -270: the battery reports -27.0 A, charging counted positive, so it discharges.
    assert values(0x356, "7A 13 F2 FE 6B 01") == {
        "battery_voltage_v": 49.86,
        "battery_current_a": 27.0,
        "battery_temperature_c": 36.3,
        "battery_power_w": 1346.2,
    }


def test_charging_current_is_negative_here() -> None:
    decoded = values(0x356, "7B 13 0E 01 6B 01")  # +27.0 A in the protocol
    assert decoded["battery_current_a"] == -27.0
    assert decoded["battery_power_w"] == pytest.approx(-1346.5)


def test_pylontech_alarms_requests_modules_and_name() -> None:
    assert values(0x359, "00 00 00 00 06 50 4E") == {
        "bms_alarms": 0,
        "bms_warnings": 0,
        "battery_module_count": 6,
    }
    assert values(0x35C, "C0 00") == {"bms_requests": 0xC0}
    assert values(0x35E, "50 59 4C 4F 4E 20 20 20") == {"device_manufacturer": "PYLON"}
    assert values(0x35E, "50 59 54 45 53") == {"device_manufacturer": "PYTES"}
    assert values(0x35F, "4C 49 01 03 3C 02 AA 00") == {"battery_capacity_ah": 572}


def test_alarm_bits_decode_as_the_protocol_numbers_them() -> None:
    # Alarms: over voltage (bit 1), discharge over current (7), charge over current (8),
    # BMS internal (11); warnings: low voltage (2).
    decoded = values(0x359, "82 09 04 00 01 50 4E")

    def named(metric: str) -> set[str]:
        flags = decoded[metric]
        assert isinstance(flags, int)
        return {name for bit, name in BITS[metric].items() if flags >> bit & 1}

    assert named("bms_alarms") == {
        "over_voltage",
        "discharge_over_current",
        "charge_over_current",
        "bms_internal",
    }
    assert named("bms_warnings") == {"low_voltage"}


def test_a_state_of_charge_above_100_is_invalid() -> None:
    soc = decode_frame(0x355, bytes.fromhex("2C 01 64 00"), 1.0)["soc_pct"]
    assert (soc.value, soc.quality) == (300, Quality.INVALID)


@pytest.mark.parametrize(
    ("arbitration_id", "data", "reason"),
    [
        (0x356, "7A 13 F2 FE 6B", "too_short"),
        (0x351, "", "too_short"),
        (0x35E, "", "too_short"),
        (0x355, "00" * 12, "too_long"),
        (0x305, "00" * 8, "unknown_id"),
        (0x35A, "00" * 8, "unknown_id"),
    ],
)
def test_frames_that_cannot_be_decoded_say_why(arbitration_id: int, data: str, reason: str) -> None:
    with pytest.raises(CanFrameError) as caught:
        decode_frame(arbitration_id, bytes.fromhex(data), 1.0)
    assert caught.value.reason == reason
    assert f"0x{arbitration_id:03X}" in str(caught.value)


@given(st.sampled_from(sorted(FRAMES)), st.binary(min_size=8, max_size=8))
def test_any_8_byte_payload_on_a_known_id_decodes(arbitration_id: int, data: bytes) -> None:
    readings = decode_frame(arbitration_id, data, 1.0)
    expected = {field.metric for field in FRAMES[arbitration_id].fields}
    if "battery_voltage_v" in expected:
        expected.add("battery_power_w")
    assert set(readings) == expected
    for reading in readings.values():
        assert reading.metric in METRICS
        assert reading.quality in (Quality.GOOD, Quality.INVALID)
        assert isinstance(reading.value, str) or math.isfinite(reading.value)  # type: ignore[arg-type]


@given(st.integers(0, 0x7FF), st.binary(max_size=64))
def test_any_frame_decodes_or_is_a_clear_error(arbitration_id: int, data: bytes) -> None:
    try:
        readings = decode_frame(arbitration_id, data, 1.0)
    except CanFrameError as err:
        readings, reason = {}, err.reason
    else:
        reason = "decoded"
    if arbitration_id not in FRAMES:
        assert reason == "unknown_id"
    elif len(data) < FRAMES[arbitration_id].min_length:
        assert reason == "too_short"
    elif len(data) > 8:
        assert reason == "too_long"
    else:
        assert reason == "decoded"
        assert readings


@given(
    soc=st.integers(0, 100),
    voltage=st.floats(40, 60).map(lambda v: round(v, 2)),
    current=st.floats(-300, 300).map(lambda a: round(a, 1)),
    temperature=st.floats(-20, 60).map(lambda t: round(t, 1)),
    alarms=st.integers(0, 0xFFFF),
    requests=st.integers(0, 0xFF),
    name=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=8),
)
def test_encoded_frames_decode_to_the_same_values(
    soc: int,
    voltage: float,
    current: float,
    temperature: float,
    alarms: int,
    requests: int,
    name: str,
) -> None:
    sent = {
        "battery_charge_voltage_limit_v": 56.8,
        "battery_charge_current_limit_a": 100.0,
        "battery_discharge_current_limit_a": 100.0,
        "battery_discharge_voltage_limit_v": 46.4,
        "soc_pct": soc,
        "soh_pct": 100,
        "battery_voltage_v": voltage,
        "battery_current_a": current,
        "battery_temperature_c": temperature,
        "bms_alarms": alarms,
        "bms_warnings": 0,
        "battery_module_count": 2,
        "bms_requests": requests,
        "device_manufacturer": name,
        "battery_capacity_ah": 200,
    }
    frames = encode_frames(sent)
    assert {arbitration_id for arbitration_id, _ in frames} == set(FRAMES)
    received = {}
    for arbitration_id, data in frames:
        received.update(values(arbitration_id, data.hex()))
    assert received.pop("battery_power_w") == pytest.approx(voltage * current, abs=0.06)
    assert received == pytest.approx(sent)


def test_a_value_its_field_cannot_hold_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="soc_pct"):
        encode_frames({"soc_pct": 70000, "soh_pct": 100})
    with pytest.raises(ValueError, match="soh_pct"):
        encode_frames({"soc_pct": 50, "soh_pct": "good"})
