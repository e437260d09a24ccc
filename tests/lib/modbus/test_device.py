"""ModbusDevice against a live server: identity, planned reads, decoding and the write path."""

from __future__ import annotations

import pytest

from edge_ems.device import Device
from edge_ems.exceptions import (
    DeviceExceptionError,
    IdentificationError,
    ReadBackMismatchError,
    WriteRefusedError,
)
from edge_ems.modbus import ModbusDevice, ModbusLink
from edge_ems.pointmap import PointMap, PollGroup, RegisterSpace, load_catalog
from edge_ems.readings import Quality
from edge_ems.sim.modbus_server import Fault, FaultKind, ModbusSimServer, Request

from .conftest import VALUES

READ, READ_INPUT, WRITE_SINGLE, WRITE_MULTIPLE = 3, 4, 6, 16


def reads(server: ModbusSimServer) -> list[Request]:
    return [r for r in server.requests if r.function in (READ, READ_INPUT)]


async def test_is_a_device(device: ModbusDevice) -> None:
    assert isinstance(device, Device)


async def test_safe_mode_and_revert_timer_come_from_the_map(link: ModbusLink) -> None:
    deye = ModbusDevice(link, load_catalog()["deye_sun_sg_hybrid"], name="deye")
    try:
        assert dict(deye.safe_mode) == {
            "work_mode": 2,
            "energy_management_mode": 1,
            "tou_enabled": 0,
        }
        assert deye.revert_timer is None
    finally:
        await deye.close()


async def test_a_battery_map_without_a_safe_mode_is_handed_back_by_a_zero_setpoint(
    link: ModbusLink, hybrid_map: PointMap
) -> None:
    device = ModbusDevice(link, hybrid_map, name="hybrid")
    try:
        assert dict(device.safe_mode) == {"battery_power_setpoint_w": 0}
    finally:
        await device.close()


async def test_connect_reads_identity(device: ModbusDevice, server: ModbusSimServer) -> None:
    identity = await device.connect()
    assert (identity.manufacturer, identity.model, identity.serial) == ("Test", "T1-8K", "SN0042")
    assert device.identity == identity
    assert reads(server) == [Request(1, READ, 0, 9)]
    assert device.health.connected


async def test_identity_mismatch_is_refused(device: ModbusDevice, server: ModbusSimServer) -> None:
    server.units[1].set("device_model", "X9-10K")
    with pytest.raises(IdentificationError, match="device_model is 'X9-10K'"):
        await device.connect()


async def test_read_decodes_every_polled_point(
    device: ModbusDevice, server: ModbusSimServer
) -> None:
    readings = await device.read()
    expected = {k: v for k, v in VALUES.items() if not k.startswith("device_")}
    assert {metric: reading.value for metric, reading in readings.items()} == expected
    assert all(reading.quality is Quality.GOOD for reading in readings.values())
    # 20-24 (scale factor at 22 included), 40-42, 70-76 bridging 71 (max_gap 2), input 10-12.
    assert reads(server) == [
        Request(1, READ, 20, 5),
        Request(1, READ, 40, 3),
        Request(1, READ, 70, 7),
        Request(1, READ_INPUT, 10, 3),
    ]


async def test_read_by_group_and_plan_reuse(device: ModbusDevice, server: ModbusSimServer) -> None:
    for _ in range(2):
        readings = await device.read(groups=[PollGroup.FAST])
    assert set(readings) == {
        "ac_power_w", "ac_voltage_l1_v", "grid_power_w", "soc_pct", "battery_power_w",
    }  # fmt: skip
    assert reads(server) == [Request(1, READ, 20, 5), Request(1, READ_INPUT, 10, 3)] * 2


async def test_scale_factor_follows_the_device(
    device: ModbusDevice, server: ModbusSimServer
) -> None:
    server.units[1].write(RegisterSpace.HOLDING, 22, [0])  # raw -12345 now means watts
    assert (await device.read())["ac_power_w"].value == -12345
    server.units[1].write(RegisterSpace.HOLDING, 22, [0x8000])  # SunSpec: not implemented
    reading = (await device.read())["ac_power_w"]
    assert (reading.value, reading.quality) == (None, Quality.INVALID)


async def test_a_failing_block_keeps_the_others(
    device: ModbusDevice, server: ModbusSimServer
) -> None:
    server.inject(Fault(FaultKind.EXCEPTION, code=4, addresses=(40, 40)))
    readings = await device.read()
    assert "pv_energy_wh" not in readings
    assert "inverter_state" not in readings
    assert readings["soc_pct"].value == 55
    assert readings["grid_power_w"].value == -800
    [(block, error)] = device.failed_blocks.items()
    assert (block.address, block.count) == (40, 3)
    assert isinstance(error, DeviceExceptionError)
    assert error.code == 4
    assert "reading holding 40-42: exception 4 (server device failure)" in str(error)
    assert device.health.error_streak == 0


async def test_a_point_refused_on_its_own_is_left_out_of_later_reads(
    device: ModbusDevice, server: ModbusSimServer
) -> None:
    server.inject(Fault(FaultKind.EXCEPTION, code=2, addresses=(40, 40)))
    readings = await device.read()
    # The block 40-42 is halved: pv_energy_wh (40-41) is refused alone, inverter_state is read.
    assert "pv_energy_wh" not in readings
    assert readings["inverter_state"].value == "running"
    assert device.failed_blocks == {}
    assert device.reader.unreadable == {RegisterSpace.HOLDING: ((40, 41),)}
    assert device.learned == {}  # no read was refused for its size
    server.reset_traffic()
    readings = await device.read()
    assert "pv_energy_wh" not in readings
    assert Request(1, READ, 42, 1) in reads(server)
    assert all(request.address != 40 for request in server.requests)


async def test_every_block_failing_raises(device: ModbusDevice, server: ModbusSimServer) -> None:
    server.inject(Fault(FaultKind.EXCEPTION, code=4))
    with pytest.raises(DeviceExceptionError) as caught:
        await device.read()
    assert caught.value.code == 4
    assert device.health.error_streak == 1


async def test_commands_come_from_the_map(device: ModbusDevice) -> None:
    commands = device.commands
    assert set(commands) == {
        "battery_power_setpoint_w", "grid_export_limit_w", "active_power_limit_pct",
        "work_mode", "soc_min_pct",
    }  # fmt: skip
    setpoint = commands["battery_power_setpoint_w"]
    assert (setpoint.minimum, setpoint.maximum, setpoint.allow_write) == (-5000, 5000, True)
    assert not commands["active_power_limit_pct"].allow_write
    assert dict(commands["work_mode"].options or {}) == {0: "self_use", 1: "feed_in", 2: "backup"}


@pytest.mark.parametrize(
    ("metric", "value", "reason"),
    [
        ("no_such_metric", 1, "unknown_command"),
        ("soc_pct", 50, "not_writable"),
        ("grid_power_w", 0, "not_writable"),
        ("active_power_limit_pct", 50, "not_allowed"),
        ("battery_power_setpoint_w", 5001, "out_of_range"),
        ("battery_power_setpoint_w", -5000.5, "out_of_range"),
        ("soc_min_pct", 101, "out_of_range"),
        ("soc_min_pct", "ten", "invalid_value"),
        ("soc_min_pct", None, "invalid_value"),
        ("soc_min_pct", float("nan"), "invalid_value"),
        ("work_mode", "turbo", "invalid_value"),
        ("work_mode", 7, "invalid_value"),
    ],
)
async def test_write_refusals_never_reach_the_device(
    device: ModbusDevice, server: ModbusSimServer, metric: str, value: object, reason: str
) -> None:
    with pytest.raises(WriteRefusedError) as caught:
        await device.write(metric, value)  # type: ignore[arg-type]
    assert caught.value.reason == reason
    assert server.requests == []


async def test_write_uses_the_function_the_map_names(
    device: ModbusDevice, server: ModbusSimServer
) -> None:
    result = await device.write("battery_power_setpoint_w", -2500)
    assert (result.written, result.read_back) == (-2500, -2500)
    assert server.requests == [Request(1, WRITE_SINGLE, 70, 1), Request(1, READ, 70, 1)]
    assert server.units[1].read(RegisterSpace.HOLDING, 70, 1) == [(-2500) & 0xFFFF]

    server.reset_traffic()
    await device.write("soc_min_pct", 20)  # one register, but the device writes with fc16
    await device.write("grid_export_limit_w", 7000)  # two registers
    assert [r for r in server.requests if r.function != READ] == [
        Request(1, WRITE_MULTIPLE, 76, 1),
        Request(1, WRITE_MULTIPLE, 72, 2),
    ]
    readings = await device.read()
    assert (readings["soc_min_pct"].value, readings["grid_export_limit_w"].value) == (20, 7000)


async def test_write_enum_by_label_or_code(device: ModbusDevice, server: ModbusSimServer) -> None:
    assert (await device.write("work_mode", "backup")).read_back == "backup"
    assert (await device.write("work_mode", 1)).read_back == "feed_in"
    assert server.units[1].read(RegisterSpace.HOLDING, 75, 1) == [1]


async def test_read_back_mismatch(
    link: ModbusLink, hybrid_map: PointMap, server: ModbusSimServer
) -> None:
    def clamp(unit: int, address: int, values: list[int]) -> None:
        if address == 76 and values[0] > 30:  # the device caps the minimum SOC at 30 %
            server.units[unit].write(RegisterSpace.HOLDING, 76, [30])

    server.on_write = clamp
    device = ModbusDevice(link, hybrid_map, name="hybrid")
    with pytest.raises(ReadBackMismatchError) as caught:
        await device.write("soc_min_pct", 40)
    assert (caught.value.expected, caught.value.actual) == (40, 30)
    assert (await device.write("soc_min_pct", 25)).read_back == 25


async def test_on_write_sees_every_write(device: ModbusDevice, server: ModbusSimServer) -> None:
    seen: list[tuple[int, int, list[int]]] = []
    server.on_write = lambda unit, address, values: seen.append((unit, address, values))
    await device.write("grid_export_limit_w", 70000 // 10)
    assert seen == [(1, 72, [0, 7000])]
