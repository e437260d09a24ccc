"""CanBmsDevice on python-can's virtual bus, against the simulated Pylontech battery."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import can
import pytest

from edge_ems.bms.can_device import INVERTER_HEARTBEAT_ID, CanBmsDevice
from edge_ems.bms.pylontech import FRAMES
from edge_ems.device import Device, Health
from edge_ems.exceptions import DeviceConnectionError, WriteRefusedError
from edge_ems.readings import Quality, Readings
from edge_ems.sim.bms_can import CanBmsSimulator
from edge_ems.sim.bms_mqtt import bms_values

from .support import eventually, fast_clock

ALL_METRICS = {field.metric for frame in FRAMES.values() for field in frame.fields} | {
    "battery_power_w"
}


@pytest.fixture
def channel() -> str:
    """A virtual CAN channel of the test's own."""
    return f"edge-ems-test-{uuid.uuid4().hex}"


@pytest.fixture
async def device(channel: str) -> AsyncIterator[CanBmsDevice]:
    bms = CanBmsDevice("battery", interface="virtual", channel=channel)
    yield bms
    await bms.close()


@pytest.fixture
def wire(channel: str) -> Iterator[can.BusABC]:
    """Another node on the bus, to send odd frames and to listen."""
    bus = can.Bus(interface="virtual", channel=channel)
    yield bus
    bus.shutdown()


def complete(readings: Readings) -> bool:
    return set(readings) == ALL_METRICS


async def health_of(device: CanBmsDevice) -> Health:
    return device.health


async def test_reads_every_metric_the_battery_sends(channel: str, device: CanBmsDevice) -> None:
    assert isinstance(device, Device)
    assert device.identity is None
    assert (dict(device.safe_mode), device.revert_timer) == ({}, None)  # it takes no commands
    async with CanBmsSimulator(channel=channel, interval=0.1) as simulator:
        await device.connect()
        readings = await eventually(device.read, complete)
    expected = bms_values(simulator.battery)  # idle: nothing changes between frames
    for metric, reading in readings.items():
        assert reading.quality is Quality.GOOD, metric
        if metric != "device_manufacturer":
            assert reading.value == pytest.approx(expected[metric], abs=0.51), metric
    assert device.identity is not None
    assert device.identity.manufacturer == "PYLON"
    assert device.health.connected
    assert device.stats.rejected == 0


async def test_charging_reads_as_negative_current_and_power(
    channel: str, device: CanBmsDevice
) -> None:
    async with CanBmsSimulator(channel=channel, interval=0.1) as simulator:
        simulator.battery.command(-3000.0)
        await device.connect()
        readings = await eventually(
            device.read, lambda r: "battery_power_w" in r and r["battery_power_w"].value != 0
        )
    assert readings["battery_current_a"].value == pytest.approx(-3000.0 / 51.2, rel=0.1)
    assert readings["battery_power_w"].value == pytest.approx(-3000.0, rel=0.02)


async def test_state_of_charge_integrates_the_commanded_power(
    channel: str, device: CanBmsDevice
) -> None:
    def soc(readings: Readings) -> float:
        value = readings["soc_pct"].value
        assert isinstance(value, int)
        return value

    async with CanBmsSimulator(channel=channel, interval=0.1, clock=fast_clock(3600.0)) as sim:
        sim.battery.command(4000.0)  # discharge at 4 kW, an hour a second
        await device.connect()
        start = await eventually(device.read, lambda readings: "soc_pct" in readings)
        await eventually(device.read, lambda readings: soc(readings) < soc(start) - 10)


async def test_odd_frames_are_counted_and_do_no_harm(
    channel: str, device: CanBmsDevice, wire: can.BusABC
) -> None:
    async with CanBmsSimulator(channel=channel, interval=0.1):
        await device.connect()
        await eventually(device.read, complete)
        odd = [
            can.Message(arbitration_id=0x356, data=b"\x7a\x13\xf2", is_extended_id=False),
            can.Message(arbitration_id=0x355, data=b"", is_extended_id=False),
            can.Message(arbitration_id=0x35A, data=bytes(8), is_extended_id=False),
            can.Message(arbitration_id=0x356, data=bytes(8), is_extended_id=True),
            can.Message(arbitration_id=0x356, is_remote_frame=True, is_extended_id=False),
            can.Message(arbitration_id=0x305, data=bytes(8), is_extended_id=False),
        ]
        for message in odd:
            await asyncio.to_thread(wire.send, message)
        await eventually(
            device.read, lambda _: device.stats.rejected == 2 and device.stats.ignored >= 4
        )
        assert "0x35" in (device.stats.last_error or "")
        readings = await eventually(device.read, complete)
    assert all(reading.quality is Quality.GOOD for reading in readings.values())
    assert device.health.error_streak == 0


async def test_values_turn_stale_when_the_battery_falls_silent(channel: str) -> None:
    device = CanBmsDevice("battery", interface="virtual", channel=channel, max_age=0.5)
    try:
        async with CanBmsSimulator(channel=channel, interval=0.1):
            await device.connect()
            fresh = await eventually(device.read, complete)
        stale = await eventually(
            device.read, lambda readings: all(r.quality is Quality.STALE for r in readings.values())
        )
        assert {m: r.value for m, r in stale.items()} == {m: r.value for m, r in fresh.items()}
        await eventually(lambda: health_of(device), lambda health: not health.connected)
    finally:
        await device.close()


async def test_sends_the_inverter_heartbeat_when_asked(channel: str, wire: can.BusABC) -> None:
    device = CanBmsDevice("battery", interface="virtual", channel=channel, send_heartbeat=True)
    try:
        await device.connect()
        heard = await asyncio.to_thread(wire.recv, 20.0)
    finally:
        await device.close()
    assert heard is not None
    assert heard.arbitration_id == INVERTER_HEARTBEAT_ID
    assert bytes(heard.data) == bytes(8)


async def test_writes_are_refused(device: CanBmsDevice) -> None:
    await device.connect()
    assert device.commands == {}
    with pytest.raises(WriteRefusedError) as caught:
        await device.write("battery_charge_current_max_a", 50)
    assert caught.value.reason == "unknown_command"


async def test_a_bus_that_cannot_open_is_a_connection_error() -> None:
    device = CanBmsDevice("battery", interface="no-such-interface", channel="x")
    with pytest.raises(DeviceConnectionError, match="cannot open CAN bus"):
        await device.connect()
    assert device.health.error_streak == 1


async def test_close_and_connect_again(channel: str, device: CanBmsDevice) -> None:
    async with CanBmsSimulator(channel=channel, interval=0.1):
        await device.connect()
        await eventually(device.read, complete)
        await device.close()
        assert device.identity is None
        await device.connect()
        assert await eventually(device.read, complete)
