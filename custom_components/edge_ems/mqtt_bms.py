"""A battery management system read through Home Assistant's own MQTT connection.

The library's :class:`~edge_ems.bms.MqttBmsDevice` opens a broker connection of its own, which
an edge agent needs; inside Home Assistant the MQTT integration already holds one. This
device is the same :class:`~edge_ems.bms.TopicMapDevice`, fed from Home Assistant's
subscriptions instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

from homeassistant.components import mqtt
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.event import async_track_time_interval

from edge_ems.bms import TopicMapDecoder, TopicMapDevice
from edge_ems.device import DeviceIdentity, Health
from edge_ems.exceptions import DeviceConnectionError
from edge_ems.readings import Readings

MAX_AGE = 60.0
"""Seconds after which a value the bridge stopped publishing reads as stale."""


class HaMqttBmsDevice(TopicMapDevice):
    """The library's device contract over Home Assistant MQTT subscriptions."""

    def __init__(
        self,
        hass: HomeAssistant,
        name: str,
        decoder: TopicMapDecoder,
        *,
        max_age: float = MAX_AGE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(name, decoder, max_age=max_age, clock=clock)
        self._hass = hass
        self._unsubscribe: list[CALLBACK_TYPE] = []

    @property
    def health(self) -> Health:
        """Connected while subscribed and something arrived within the maximum age."""
        health = self._health.snapshot()
        if not self._latest.fresh():
            return Health(False, health.last_seen, health.error_streak, health.breaker, None)
        return health

    def received_any(self) -> bool:
        """Whether a message decoded into readings since subscribing."""
        return self.stats.accepted > 0

    async def connect(self) -> DeviceIdentity:
        """Subscribe to the topic map's topics through Home Assistant's MQTT client."""
        if not self._unsubscribe:
            if not await mqtt.async_wait_for_mqtt_client(self._hass):
                raise DeviceConnectionError(f"{self._name}: Home Assistant's MQTT is not set up")
            for topic in self.decoder.filters:
                self._unsubscribe.append(
                    await mqtt.async_subscribe(self._hass, topic, self._receive, encoding=None)
                )
            if self._keepalive is not None:
                # Bridges such as Venus OS publish only while something keeps asking.
                first = self._keepalive.initial_payload
                await self._keep_alive(self._keepalive.payload if first is None else first)
                self._unsubscribe.append(
                    async_track_time_interval(
                        self._hass,
                        self._keep_alive_now,
                        timedelta(seconds=self._keepalive.interval),
                        name=f"edge_ems {self._name} keepalive",
                    )
                )
        return self._bridge_identity()

    async def read(self) -> Readings:
        """The newest value of every metric, stale where older than the maximum age.

        Raises :class:`DeviceConnectionError` when the bridge went silent; before its first
        message there is simply nothing yet.
        """
        if self.received_any() and not self._latest.fresh():
            raise DeviceConnectionError(
                f"{self._name}: nothing received for {self._latest.max_age:.0f} s"
            )
        return self._latest.snapshot()

    async def close(self) -> None:
        """Unsubscribe."""
        unsubscribe, self._unsubscribe = self._unsubscribe, []
        for unsub in unsubscribe:
            unsub()

    async def _keep_alive(self, payload: str) -> None:
        assert self._keepalive is not None
        await mqtt.async_publish(self._hass, self._keepalive.topic, payload)

    async def _keep_alive_now(self, _now: datetime) -> None:
        assert self._keepalive is not None
        await self._keep_alive(self._keepalive.payload)

    @callback
    def _receive(self, message: mqtt.ReceiveMessage) -> None:
        payload = message.payload
        self.receive(
            message.topic, payload if isinstance(payload, bytes) else str(payload).encode()
        )
