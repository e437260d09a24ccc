"""The MQTT battery read through Home Assistant's own MQTT connection."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from custom_components.edge_ems.mqtt_bms import HaMqttBmsDevice
from custom_components.edge_ems.site import async_get_catalog
from homeassistant.components import mqtt
from homeassistant.core import HomeAssistant, callback
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from edge_ems.bms import TopicMapDecoder
from edge_ems.exceptions import ConfigError, DeviceConnectionError, WriteRefusedError
from tests.lib.bms.support import Mosquitto

from .support import PATIENCE, eventually

PREFIX = "test-bms"
SOC_TOPIC = f"{PREFIX}/sensor/jk-bms_capacity_remaining/state"
VOLTAGE_TOPIC = f"{PREFIX}/sensor/jk-bms_total_voltage/state"


async def test_values_arrive_age_and_go_stale(hass: HomeAssistant, ha_mqtt: Mosquitto) -> None:
    await eventually(lambda: mqtt.is_connected(hass), bool)
    catalog = await async_get_catalog(hass)
    decoder = TopicMapDecoder(catalog.topic_maps["esphome_jk_bms"], {"topic_prefix": PREFIX})
    now = [1000.0]
    device = HaMqttBmsDevice(hass, "JK", decoder, max_age=30.0, clock=lambda: now[0])
    identity = await device.connect()
    assert identity.manufacturer == "JK (Jikong)"
    # Before the bridge's first message there is nothing yet, and that is no error.
    assert await device.read() == {}
    assert not device.health.connected

    # Subscriptions reach the broker a moment later: publish until they are heard.
    for _ in range(int(PATIENCE / 0.2)):
        await mqtt.async_publish(hass, SOC_TOPIC, "55")
        await mqtt.async_publish(hass, VOLTAGE_TOPIC, "not a number")
        await asyncio.sleep(0.2)
        if device.stats.accepted and device.stats.rejected:
            break
    assert device.stats.accepted
    assert device.stats.rejected
    readings = await device.read()
    assert readings["soc_pct"].value == 55
    assert "battery_voltage_v" not in readings
    assert device.health.connected
    assert device.stats.last_error is not None

    with pytest.raises(WriteRefusedError):
        await device.write("soc_pct", 50)

    now[0] += 31.0  # the bridge went silent
    assert not device.health.connected
    with pytest.raises(DeviceConnectionError):
        await device.read()
    await device.close()


async def test_a_bridge_that_needs_a_keepalive_gets_one(
    hass: HomeAssistant, ha_mqtt: Mosquitto
) -> None:
    """Venus OS publishes nothing until asked: first for every value, then to keep going."""
    await eventually(lambda: mqtt.is_connected(hass), bool)
    catalog = await async_get_catalog(hass)
    variables = {"portal_id": "c0619ab1", "instance": "512"}
    decoder = TopicMapDecoder(catalog.topic_maps["venus_os_battery"], variables)
    heard: list[str] = []

    @callback
    def keepalive(message: mqtt.ReceiveMessage) -> None:
        heard.append(str(message.payload))

    unsubscribe = await mqtt.async_subscribe(hass, "R/c0619ab1/keepalive", keepalive)
    device = HaMqttBmsDevice(hass, "Venus", decoder)
    try:
        # The subscription may reach the broker after the first keepalive: reconnect until
        # the first one is heard.
        for _ in range(int(PATIENCE / 0.5)):
            await device.connect()
            await asyncio.sleep(0.5)
            if heard:
                break
            await device.close()
        assert heard[0] == ""  # "send every value"
        async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=31))
        await eventually(lambda: len(heard) > 1, bool)
        assert heard[1] == '{"keepalive-options": ["suppress-republish"]}'
    finally:
        await device.close()
        unsubscribe()


async def test_a_keepalive_needs_concrete_variables(hass: HomeAssistant) -> None:
    catalog = await async_get_catalog(hass)
    decoder = TopicMapDecoder(catalog.topic_maps["venus_os_battery"], {"instance": "512"})
    with pytest.raises(ConfigError, match="keepalive topic"):
        HaMqttBmsDevice(hass, "Venus", decoder)
