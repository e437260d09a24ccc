"""A battery management system read through Home Assistant's own MQTT connection.

The library's :class:`~edge_ems.bms.MqttBmsDevice` opens a broker connection of its own, which
an edge agent needs; inside Home Assistant the MQTT integration already holds one. This
device feeds the same :class:`~edge_ems.bms.TopicMapDecoder` and
:class:`~edge_ems.bms.LatestReadings` from Home Assistant's subscriptions instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from types import MappingProxyType

from homeassistant.components import mqtt
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.event import async_track_time_interval

from edge_ems.bms import DecodeStats, LatestReadings, TopicMapDecoder
from edge_ems.device import Command, DeviceIdentity, Health, HealthTracker, WriteResult
from edge_ems.exceptions import DeviceConnectionError, DeviceProtocolError, WriteRefusedError
from edge_ems.readings import Readings, Value
from edge_ems.resilience import CircuitBreaker

MAX_AGE = 60.0
"""Seconds after which a value the bridge stopped publishing reads as stale."""


class HaMqttBmsDevice:
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
        self._hass = hass
        self._name = name
        self.decoder = decoder
        self._clock = clock
        self._health = HealthTracker(CircuitBreaker(name), wall_clock=clock)
        self._latest = LatestReadings(max_age, clock=clock)
        self._unsubscribe: list[CALLBACK_TYPE] = []
        self._identity: DeviceIdentity | None = None
        # A map that needs a keepalive without its topic fails here, before any subscription.
        self._keepalive = decoder.keepalive()
        self.stats = DecodeStats()
        """What became of the messages received so far."""

    @property
    def name(self) -> str:
        """A short name for logs and errors."""
        return self._name

    @property
    def identity(self) -> DeviceIdentity | None:
        """The bridge's maker and model, once subscribed."""
        return self._identity

    @property
    def commands(self) -> Mapping[str, Command]:
        """None: the bridges only publish readings."""
        return MappingProxyType({})

    @property
    def safe_mode(self) -> Mapping[str, Value]:
        """Nothing: the device takes no commands."""
        return MappingProxyType({})

    @property
    def revert_timer(self) -> str | None:
        """None: the device takes no commands."""
        return None

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
        bridge = self.decoder.topic_map.bridge
        self._identity = DeviceIdentity(manufacturer=bridge.maker, model=bridge.model)
        return self._identity

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

    async def write(self, metric: str, value: Value) -> WriteResult:
        """Refuse: MQTT battery bridges take no commands."""
        raise WriteRefusedError(
            f"{self._name}: {metric} is not a command of this device", reason="unknown_command"
        )

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
        raw = payload if isinstance(payload, bytes) else str(payload).encode()
        try:
            readings = self.decoder.decode(message.topic, raw, self._clock())
        except DeviceProtocolError as err:
            self.stats.rejected += 1
            self.stats.last_error = str(err)
            return
        if not readings:
            self.stats.ignored += 1
            return
        self.stats.accepted += 1
        self._latest.update(readings)
        self._health.record_success()
