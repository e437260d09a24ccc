"""MqttBmsDevice against a real mosquitto broker and the simulated bridges."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Mapping

import aiomqtt
import pytest

from edge_ems.bms.decoder import TopicMapDecoder
from edge_ems.bms.mqtt_device import MqttBmsDevice
from edge_ems.bms.topicmap import load_catalog
from edge_ems.device import Device, Health
from edge_ems.exceptions import DeviceConnectionError, WriteRefusedError
from edge_ems.readings import Quality, Readings
from edge_ems.resilience import Backoff
from edge_ems.sim.bms_mqtt import MqttBmsSimulator, bms_values

from .support import Mosquitto, eventually, fast_clock, free_port

CATALOG = load_catalog()
_ids = itertools.count()


def own_variables(map_id: str) -> dict[str, str]:
    """Topic variables no other test uses, so tests can share one broker."""
    unique = f"t{next(_ids)}"
    return {
        "esphome_jk_bms": {"topic_prefix": unique, "name": "jk-bms"},
        "venus_os_battery": {"portal_id": unique, "instance": "512"},
        "batmon_ha": {"alias": unique},
    }[map_id]


def quick_backoff() -> Backoff:
    return Backoff(base=0.05, cap=0.5)


@pytest.fixture
async def venus(mosquitto: Mosquitto) -> AsyncIterator[tuple[MqttBmsSimulator, MqttBmsDevice]]:
    """A simulated Venus OS battery and a device reading it; both closed afterwards."""
    variables = own_variables("venus_os_battery")
    topic_map = CATALOG["venus_os_battery"]
    simulator = MqttBmsSimulator(
        topic_map, host=mosquitto.host, port=mosquitto.port, variables=variables, interval=0.1
    )
    device = MqttBmsDevice(
        "venus",
        TopicMapDecoder(topic_map, variables),
        host=mosquitto.host,
        port=mosquitto.port,
        backoff=quick_backoff(),
    )
    async with simulator:
        try:
            yield simulator, device
        finally:
            await device.close()


def complete(points: Mapping[str, object]) -> Callable[[Readings], bool]:
    """Every metric of ``points`` has arrived."""
    return lambda readings: set(readings) == set(points)


async def health_of(device: MqttBmsDevice) -> Health:
    return device.health


@pytest.mark.parametrize("map_id", sorted(CATALOG))
async def test_reads_every_metric_the_bridge_publishes(mosquitto: Mosquitto, map_id: str) -> None:
    variables = own_variables(map_id)
    topic_map = CATALOG[map_id]
    device = MqttBmsDevice(
        map_id,
        TopicMapDecoder(topic_map, variables),
        host=mosquitto.host,
        port=mosquitto.port,
    )
    assert isinstance(device, Device)
    assert (dict(device.safe_mode), device.revert_timer) == ({}, None)  # it takes no commands
    async with MqttBmsSimulator(
        topic_map, host=mosquitto.host, port=mosquitto.port, variables=variables, interval=0.1
    ) as simulator:
        try:
            identity = await device.connect()
            readings = await eventually(device.read, complete(topic_map.points))
        finally:
            await device.close()
    assert identity.manufacturer == topic_map.bridge.maker
    expected = bms_values(simulator.battery)  # idle: nothing changes between publishes
    for metric, reading in readings.items():
        assert reading.quality is Quality.GOOD, metric
        assert reading.value == pytest.approx(expected[metric]), metric
    assert device.stats.accepted > 0
    assert device.stats.rejected == 0


async def test_venus_keepalive_is_sent_on_connect(
    mosquitto: Mosquitto, venus: tuple[MqttBmsSimulator, MqttBmsDevice]
) -> None:
    _, device = venus
    keepalive = device.decoder.keepalive()
    assert keepalive is not None
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as watcher:
        await watcher.subscribe(keepalive.topic)
        await device.connect()
        async with asyncio.timeout(20):
            message = await anext(aiter(watcher.messages))
    assert message.payload == b""  # the first keepalive asks for every value


async def test_values_turn_stale_when_the_bridge_falls_silent(mosquitto: Mosquitto) -> None:
    variables = own_variables("batmon_ha")
    topic_map = CATALOG["batmon_ha"]
    device = MqttBmsDevice(
        "batmon",
        TopicMapDecoder(topic_map, variables),
        host=mosquitto.host,
        port=mosquitto.port,
        max_age=1.0,
    )
    try:
        await device.connect()
        async with MqttBmsSimulator(
            topic_map, host=mosquitto.host, port=mosquitto.port, variables=variables, interval=0.1
        ):
            fresh = await eventually(device.read, complete(topic_map.points))
        assert all(reading.quality is Quality.GOOD for reading in fresh.values())
        stale = await eventually(
            device.read,
            lambda readings: all(r.quality is Quality.STALE for r in readings.values()),
        )
        assert {metric: r.value for metric, r in stale.items()} == {
            metric: r.value for metric, r in fresh.items()
        }  # the last values seen, kept
        assert device.health.connected  # the broker is still there
    finally:
        await device.close()


async def test_garbage_payloads_are_counted_and_do_no_harm(
    mosquitto: Mosquitto, venus: tuple[MqttBmsSimulator, MqttBmsDevice]
) -> None:
    simulator, device = venus
    portal = device.decoder.variables["portal_id"]
    await device.connect()
    garbage = [b"{not json", b"", b'{"value": "high"}', b"\xff\xfe\x00", b"[" * 50_000]
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as publisher:
        for payload in garbage:
            await publisher.publish(f"N/{portal}/battery/512/Soc", payload)
    await eventually(device.read, lambda _: device.stats.rejected >= len(garbage))
    assert "N/" in (device.stats.last_error or "")
    readings = await eventually(device.read, complete(CATALOG["venus_os_battery"].points))
    assert readings["soc_pct"].value == pytest.approx(simulator.battery.soc_pct, abs=0.1)
    assert device.health.connected


async def test_the_device_reconnects_and_resumes_after_a_broker_restart(
    own_broker: Mosquitto,
) -> None:
    variables = own_variables("esphome_jk_bms")
    topic_map = CATALOG["esphome_jk_bms"]
    simulator = MqttBmsSimulator(
        topic_map,
        host=own_broker.host,
        port=own_broker.port,
        variables=variables,
        interval=0.1,
        backoff=quick_backoff(),
    )
    device = MqttBmsDevice(
        "jk",
        TopicMapDecoder(topic_map, variables),
        host=own_broker.host,
        port=own_broker.port,
        backoff=quick_backoff(),
    )
    async with simulator:
        try:
            await device.connect()
            await eventually(device.read, complete(topic_map.points))
            await asyncio.to_thread(own_broker.stop)
            await eventually(lambda: health_of(device), lambda health: not health.connected)
            assert device.health.last_error
            await asyncio.to_thread(own_broker.start)
            restarted = await eventually(lambda: health_of(device), lambda health: health.connected)
            assert restarted.last_seen is not None
            since = restarted.last_seen
            readings = await eventually(
                device.read,
                lambda readings: min(r.timestamp for r in readings.values()) > since,
            )
        finally:
            await device.close()
    assert all(reading.quality is Quality.GOOD for reading in readings.values())


async def test_an_unreachable_broker_is_a_connection_error() -> None:
    device = MqttBmsDevice(
        "nowhere",
        TopicMapDecoder(CATALOG["batmon_ha"]),
        host="127.0.0.1",
        port=free_port(),
        connect_timeout=1.0,
        backoff=quick_backoff(),
    )
    with pytest.raises(DeviceConnectionError, match="cannot reach MQTT broker"):
        await device.connect()
    assert not device.health.connected
    assert device.health.error_streak > 0


async def test_writes_are_refused_before_anything_is_sent(
    venus: tuple[MqttBmsSimulator, MqttBmsDevice],
) -> None:
    _, device = venus
    assert device.commands == {}
    with pytest.raises(WriteRefusedError) as caught:
        await device.write("battery_power_setpoint_w", 1000)
    assert caught.value.reason == "unknown_command"


def soc(readings: Readings) -> float:
    value = readings["soc_pct"].value
    assert isinstance(value, float)
    return value


async def test_state_of_charge_integrates_the_commanded_power(mosquitto: Mosquitto) -> None:
    variables = own_variables("esphome_jk_bms")
    topic_map = CATALOG["esphome_jk_bms"]
    device = MqttBmsDevice(
        "jk", TopicMapDecoder(topic_map, variables), host=mosquitto.host, port=mosquitto.port
    )
    async with MqttBmsSimulator(
        topic_map,
        host=mosquitto.host,
        port=mosquitto.port,
        variables=variables,
        interval=0.1,
        clock=fast_clock(3600.0),  # an hour a second
    ) as simulator:
        simulator.battery.command(-5000.0)  # charge at 5 kW
        try:
            await device.connect()
            start = await eventually(device.read, lambda readings: "soc_pct" in readings)
            rising = await eventually(device.read, lambda readings: soc(readings) > soc(start) + 10)
        finally:
            await device.close()
    assert rising["battery_current_a"].value < 0  # charging, in our sign convention
    assert rising["battery_power_w"].value == pytest.approx(-5000.0, rel=0.01)
