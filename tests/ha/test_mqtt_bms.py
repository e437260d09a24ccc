"""The MQTT battery read through Home Assistant's own MQTT connection."""

from __future__ import annotations

import asyncio

import pytest
from custom_components.edge_ems.devices import async_get_catalog
from custom_components.edge_ems.mqtt_bms import HaMqttBmsDevice
from homeassistant.components import mqtt
from homeassistant.core import HomeAssistant

from edge_ems.bms import TopicMapDecoder
from edge_ems.exceptions import DeviceConnectionError, WriteRefusedError
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
