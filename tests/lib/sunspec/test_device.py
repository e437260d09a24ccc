"""SunSpecDevice: the Device contract, guarded writes with read-back, revert timers, health."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from modbus_connection import ModbusUnit

from edge_ems.device import Device
from edge_ems.exceptions import (
    CircuitOpenError,
    DeviceConnectionError,
    DeviceExceptionError,
    DeviceProtocolError,
    EdgeEmsError,
    IdentificationError,
    ReadBackMismatchError,
    WriteRefusedError,
)
from edge_ems.metrics import METRICS
from edge_ems.readings import Value
from edge_ems.resilience import BreakerState, CircuitBreaker
from edge_ems.sim.sunspec_image import (
    INVERTER_IDENTITY,
    ImageDevice,
    hybrid_inverter,
    sunspec_image,
)
from edge_ems.sunspec import SUPPORTED_MODELS, SunSpecDevice, model_definition

from .conftest import RegisterServer

BASE = 40000


def address_of(server: RegisterServer, model_id: int, point: str) -> int:
    """Where ``point`` of the first ``model_id`` sits in the served chain."""
    address = BASE + 2
    while server.registers[address] != model_id:
        address += server.registers[address + 1] + 2
    found = model_definition(model_id).group.point(point)
    assert found is not None
    return address + found.offset


async def connected(
    server: RegisterServer, unit: ModbusUnit, registers: dict[int, int], **options: object
) -> SunSpecDevice:
    server.registers = registers
    device = SunSpecDevice(unit, name="inverter", **options)  # type: ignore[arg-type]
    await device.connect()
    server.requests.clear()
    return device


async def test_it_is_a_device(server: RegisterServer, unit: ModbusUnit) -> None:
    device = await connected(server, unit, hybrid_inverter({}))
    assert isinstance(device, Device)
    assert device.identity == INVERTER_IDENTITY
    assert device.health.connected
    assert device.health.last_seen is not None


async def test_commands_carry_the_models_limits(server: RegisterServer, unit: ModbusUnit) -> None:
    device = await connected(server, unit, hybrid_inverter({}, points={(124, "WChaMax"): 6000}))
    limits = {metric: (c.minimum, c.maximum) for metric, c in device.commands.items()}
    assert limits == {
        "active_power_limit_pct": (0, 100),  # a percentage, not all a uint16 holds
        "active_power_limit_enabled": (0, 1),
        "control_revert_timeout_s": (0, 65534),  # uint16 less its sentinel
        "battery_power_setpoint_w": (-6000, 6000),  # +-WChaMax
        "battery_power_control_enabled": (0, 1),  # StorCtl_Mod as one switch
    }
    commands = device.commands
    assert all(command.allow_write and not command.eeprom for command in commands.values())
    assert device.revert_timer == "control_revert_timeout_s"
    # Dispatch hands the device back by lifting the storage window first, then the limit;
    # the setpoint itself is left alone (0 would pin the battery idle).
    assert list(device.safe_mode.items()) == [
        ("battery_power_control_enabled", False),
        ("active_power_limit_enabled", 0),
    ]


async def test_a_write_is_read_back(server: RegisterServer, unit: ModbusUnit) -> None:
    device = await connected(server, unit, hybrid_inverter({}))
    result = await device.write("active_power_limit_pct", 55.555)
    # WMaxLimPct_SF is -2 in this image: the device holds 55.56.
    assert (result.requested, result.written, result.read_back) == (55.555, 55.56, 55.56)
    assert server.registers[address_of(server, 123, "WMaxLimPct")] == 5556
    result = await device.write("active_power_limit_enabled", True)
    assert (result.written, result.read_back) == (True, True)
    assert (await device.read())["active_power_limit_enabled"].value is True


async def test_the_revert_timer_is_every_timer(server: RegisterServer, unit: ModbusUnit) -> None:
    device = await connected(server, unit, hybrid_inverter({}))
    await device.write("control_revert_timeout_s", 900)
    assert server.registers[address_of(server, 123, "WMaxLimPct_RvrtTms")] == 900
    assert server.registers[address_of(server, 124, "InOutWRte_RvrtTms")] == 900


async def test_an_unimplemented_timer_is_left_alone(
    server: RegisterServer, unit: ModbusUnit
) -> None:
    registers = hybrid_inverter({}, points={(123, "WMaxLimPct_RvrtTms"): None})
    device = await connected(server, unit, registers)
    await device.write("control_revert_timeout_s", 30)
    assert server.registers[address_of(server, 123, "WMaxLimPct_RvrtTms")] == 0xFFFF
    assert server.registers[address_of(server, 124, "InOutWRte_RvrtTms")] == 30


@pytest.mark.parametrize(("power", "rate"), [(-2500, -5000), (1250, 2500), (0, 0)])
async def test_the_battery_setpoint_narrows_the_storage_window(
    server: RegisterServer, unit: ModbusUnit, power: float, rate: int
) -> None:
    device = await connected(server, unit, hybrid_inverter({}, points={(124, "WChaMax"): 5000}))
    result = await device.write("battery_power_setpoint_w", power)
    assert (result.written, result.read_back) == (power, power)
    # InOutWRte_SF -2: +-rate hundredths of a percent of WChaMax.
    out_rate = address_of(server, 124, "OutWRte")
    mode = address_of(server, 124, "StorCtl_Mod")
    assert server.registers[out_rate] == rate & 0xFFFF
    assert server.registers[out_rate + 1] == -rate & 0xFFFF  # InWRte follows OutWRte
    assert server.registers[mode] == 0b11
    # Rates in one write, then the mode that puts them in force.
    assert server.writes == [(out_rate, 2), (mode, 1)]
    assert (await device.read())["battery_power_setpoint_w"].value == power


async def test_lifting_the_storage_window_keeps_its_rates(
    server: RegisterServer, unit: ModbusUnit
) -> None:
    device = await connected(server, unit, hybrid_inverter({}, points={(124, "WChaMax"): 5000}))
    mode = address_of(server, 124, "StorCtl_Mod")
    out_rate = address_of(server, 124, "OutWRte")
    await device.write("battery_power_setpoint_w", 1250)
    readings = await device.read()
    assert readings["battery_power_control_enabled"].value is True
    server.requests.clear()
    result = await device.write("battery_power_control_enabled", False)
    assert (result.written, result.read_back) == (False, False)
    assert server.writes == [(mode, 1)]  # the mode alone: the rates stay as written
    assert server.registers[mode] == 0
    assert server.registers[out_rate] == 2500
    readings = await device.read()
    assert readings["battery_power_control_enabled"].value is False
    assert readings["battery_power_setpoint_w"].value is None  # nothing pinned now
    # A new setpoint puts the window in force again.
    await device.write("battery_power_setpoint_w", -500)
    assert server.registers[mode] == 0b11
    assert (await device.read())["battery_power_setpoint_w"].value == -500


@pytest.mark.parametrize(("raw", "on"), [(0, False), (0b01, True), (0b10, True), (0b11, True)])
async def test_the_storage_window_reads_on_while_any_limit_is(
    server: RegisterServer, unit: ModbusUnit, raw: int, on: bool
) -> None:
    device = await connected(server, unit, hybrid_inverter({}, points={(124, "StorCtl_Mod"): raw}))
    assert (await device.read())["battery_power_control_enabled"].value is on
    result = await device.write("battery_power_control_enabled", True)
    assert (result.written, result.read_back) == (True, True)
    assert server.registers[address_of(server, 124, "StorCtl_Mod")] == 0b11


@pytest.mark.parametrize(
    ("metric", "value", "reason"),
    [
        ("no_such_metric", 1, "unknown_command"),
        ("grid_export_limit_w", 1, "unknown_command"),
        ("ac_power_w", 1000, "not_writable"),
        ("soc_min_pct", 20, "not_allowed"),  # 802.SoCRsvMin is RW, but not allowlisted
        ("active_power_limit_pct", 100.5, "out_of_range"),
        ("active_power_limit_pct", -1, "out_of_range"),
        ("active_power_limit_pct", "full", "out_of_range"),
        ("active_power_limit_pct", float("nan"), "out_of_range"),
        ("active_power_limit_enabled", 2, "out_of_range"),
        ("control_revert_timeout_s", 70_000, "out_of_range"),
        ("battery_power_setpoint_w", -5001, "out_of_range"),
        ("battery_power_control_enabled", 3, "out_of_range"),  # a switch, not the raw bits
        ("battery_power_control_enabled", 0.5, "out_of_range"),
    ],
)
async def test_refusals_write_nothing(
    server: RegisterServer, unit: ModbusUnit, metric: str, value: Value, reason: str
) -> None:
    device = await connected(server, unit, hybrid_inverter({}))
    with pytest.raises(WriteRefusedError) as refused:
        await device.write(metric, value)
    assert refused.value.reason == reason
    assert server.writes == []


async def test_a_command_whose_scale_factor_is_unimplemented_is_not_writable(
    server: RegisterServer, unit: ModbusUnit
) -> None:
    registers = hybrid_inverter({})
    device = await connected(server, unit, registers)
    server.registers[address_of(server, 123, "WMaxLimPct_SF")] = 0x8000
    with pytest.raises(WriteRefusedError) as refused:
        await device.write("active_power_limit_pct", 50)
    assert refused.value.reason == "not_writable"
    await device.read()
    assert "active_power_limit_pct" not in device.commands


async def test_a_device_that_ignores_a_write_fails_its_read_back(
    server: RegisterServer, unit: ModbusUnit
) -> None:
    device = await connected(server, unit, hybrid_inverter({}))
    server.ignored_writes.add(address_of(server, 123, "WMaxLimPct"))
    with pytest.raises(ReadBackMismatchError) as mismatch:
        await device.write("active_power_limit_pct", 40)
    assert (mismatch.value.expected, mismatch.value.actual) == (40.0, 100.0)
    assert device.health.error_streak == 1


async def test_der_controls_come_before_the_legacy_ones(
    server: RegisterServer, unit: ModbusUnit
) -> None:
    registers = sunspec_image(
        [
            ImageDevice(
                (1, 701, 123, 704),
                INVERTER_IDENTITY,
                {"ac_power_w": 3000, "ac_energy_out_wh": 1000},
                {
                    (704, "WMaxLimPct"): 100, (704, "WMaxLimPctEna"): 0,
                    (704, "WSet"): 0, (704, "WSetEna"): 0,
                    (704, "WMaxLimPctRvrtTms"): 0, (704, "WSetRvrtTms"): 0,
                },
            )
        ]
    )  # fmt: skip
    device = await connected(server, unit, registers)
    assert (await device.read())["ac_power_w"].value == 3000
    assert (await device.write("active_power_limit_pct", 60)).read_back == 60
    # WMaxLimPct_SF is -2 in this image.
    assert server.registers[address_of(server, 704, "WMaxLimPct")] == 6000
    assert server.registers[address_of(server, 123, "WMaxLimPct")] == 10_000  # untouched
    result = await device.write("active_power_limit_w", 2500)  # 704.WSet, an int32
    assert result.read_back == 2500
    await device.write("control_enabled", True)  # 704.WSetEna
    assert server.registers[address_of(server, 704, "WSetEna")] == 1
    # One lease for every timer: 704's are uint32, 123's uint16 bounds them all.
    assert device.commands["control_revert_timeout_s"].maximum == 65534
    with pytest.raises(WriteRefusedError, match="outside"):
        await device.write("control_revert_timeout_s", 70_000)


async def test_a_changed_map_is_a_protocol_error(server: RegisterServer, unit: ModbusUnit) -> None:
    device = await connected(server, unit, hybrid_inverter({}))
    server.registers[address_of(server, 103, "L")] = 52
    with pytest.raises(DeviceProtocolError, match="register map changed"):
        await device.read()


async def test_reading_before_connecting(server: RegisterServer, unit: ModbusUnit) -> None:
    device = SunSpecDevice(unit)
    assert device.identity is None
    assert device.commands == {}
    with pytest.raises(DeviceConnectionError, match="not connected"):
        await device.read()
    with pytest.raises(DeviceConnectionError, match="not connected"):
        await device.write("active_power_limit_pct", 50)


async def test_close_forgets_the_device(server: RegisterServer, unit: ModbusUnit) -> None:
    device = await connected(server, unit, hybrid_inverter({}))
    await device.close()
    assert device.identity is None
    assert not device.health.connected
    assert (await device.connect()) == INVERTER_IDENTITY


async def test_a_device_index_beyond_the_chain(server: RegisterServer, unit: ModbusUnit) -> None:
    server.registers = hybrid_inverter({}, meter={})
    with pytest.raises(IdentificationError, match="2 devices, no device 2"):
        await SunSpecDevice(unit, device_index=2).connect()


async def test_failures_are_tracked_and_open_the_breaker(
    server: RegisterServer, unit: ModbusUnit
) -> None:
    breaker = CircuitBreaker("inverter", failure_threshold=2, reset_timeout=60)
    device = await connected(server, unit, hybrid_inverter({}), breaker=breaker)
    server.registers = {}  # the device stops serving its map
    for _ in range(2):
        with pytest.raises(DeviceExceptionError):
            await device.read()
    health = device.health
    assert (health.error_streak, health.breaker) == (2, BreakerState.OPEN)
    assert health.last_error is not None
    requests = len(server.requests)
    with pytest.raises(CircuitOpenError):
        await device.read()
    assert len(server.requests) == requests  # held back, nothing sent


chains = st.lists(
    st.tuples(st.sampled_from(sorted(SUPPORTED_MODELS)), st.integers(0, 130)),
    min_size=1,
    max_size=5,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(chains, st.data())
async def test_any_supported_chain_connects_and_reads_or_fails_cleanly(
    server: RegisterServer, unit: ModbusUnit, models: list[tuple[int, int]], data: st.DataObject
) -> None:
    words = [0x5375, 0x6E53, 1, 66, *encode_text("Maker", 16), *encode_text("Model", 16)]
    words += [0] * (68 - len(words) + 2)
    for model_id, length in models:
        body = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=length, max_size=length))
        words += [model_id, length, *body]
    server.registers = dict(enumerate([*words, 0xFFFF, 0], start=BASE))
    device = SunSpecDevice(unit)
    try:
        await device.connect()
        readings = await device.read()
    except EdgeEmsError as err:
        event(type(err).__name__)
        return
    event("read")
    assert readings["device_manufacturer"].value == "Maker"
    for metric, reading in readings.items():
        assert metric in METRICS
        assert reading.value is None or isinstance(reading.value, int | float | str | bool)


def encode_text(text: str, registers: int) -> list[int]:
    data = text.encode().ljust(2 * registers, b"\0")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
