"""What battery monitors that only report have in common, whatever carries their messages.

MQTT bridges and CAN batteries push readings and take no commands: the device keeps the
newest value of each metric (stale past ``max_age``), counts what became of each message, and
refuses every write. :class:`ReportingDevice` holds that; :class:`TopicMapDevice` adds the
decoding of MQTT messages by a topic map, which both the library's own MQTT client and Home
Assistant's MQTT connection feed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from ..device import AssetType, Command, DeviceIdentity, HealthTracker, WriteResult
from ..exceptions import DeviceProtocolError, WriteRefusedError
from ..readings import Readings, Value
from ..resilience import CircuitBreaker
from .decoder import TopicMapDecoder
from .latest import DecodeStats, LatestReadings
from .topicmap import Keepalive

_LOGGER = logging.getLogger(__name__)


class ReportingDevice:
    """The read-only half of the device contract, shared by devices that only report."""

    def __init__(
        self,
        name: str,
        *,
        max_age: float,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._name = name
        self._clock = clock
        self._health = HealthTracker(breaker or CircuitBreaker(name), wall_clock=clock)
        self._latest = LatestReadings(max_age, clock=clock)
        self.stats = DecodeStats()
        """What became of the messages received so far."""

    @property
    def name(self) -> str:
        """A short name for logs and errors."""
        return self._name

    @property
    def asset_type(self) -> AssetType:
        """A battery's management system: read, never driven."""
        return AssetType.BMS

    @property
    def commands(self) -> Mapping[str, Command]:
        """None: the device only reports."""
        return MappingProxyType({})

    def state_options(self, metric: str) -> tuple[str, ...] | None:
        """None: what these devices report names no states."""
        return None

    @property
    def learned(self) -> Mapping[str, Any]:
        """Nothing: a reporting device only listens."""
        return MappingProxyType({})

    async def register_dump(self) -> dict[str, Any] | None:
        """None: messages, not registers."""
        return None

    @property
    def safe_mode(self) -> Mapping[str, Value]:
        """Nothing: the device takes no commands."""
        return MappingProxyType({})

    @property
    def revert_timer(self) -> str | None:
        """None: the device takes no commands."""
        return None

    async def write(self, metric: str, value: Value) -> WriteResult:
        """Refuse: the device takes no commands."""
        raise WriteRefusedError(
            f"{self._name}: {metric} is not a command of this device", reason="unknown_command"
        )

    def _accept(self, readings: Readings) -> None:
        """Keep readings decoded from one message."""
        self.stats.accepted += 1
        self._latest.update(readings)
        self._health.record_success()

    def _reject(self, error: Exception) -> None:
        """Count a message that could not be decoded."""
        self.stats.rejected += 1
        self.stats.last_error = str(error)
        _LOGGER.debug("%s: message rejected: %s", self._name, error)


class TopicMapDevice(ReportingDevice):
    """A battery bridge's MQTT messages, decoded by its topic map; the transport is the
    subclass's."""

    def __init__(
        self,
        name: str,
        decoder: TopicMapDecoder,
        *,
        max_age: float = 60.0,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(name, max_age=max_age, breaker=breaker, clock=clock)
        self.decoder = decoder
        # A map that needs a keepalive without its topic's values fails here, at once.
        self._keepalive: Keepalive | None = decoder.keepalive()
        self._identity: DeviceIdentity | None = None

    @property
    def identity(self) -> DeviceIdentity | None:
        """The bridge's maker and model, known once connected."""
        return self._identity

    @property
    def declared_metrics(self) -> frozenset[str]:
        """Every metric the topic map names, reported once the bridge publishes it."""
        return frozenset(self.decoder.topic_map.points)

    def _bridge_identity(self) -> DeviceIdentity:
        bridge = self.decoder.topic_map.bridge
        self._identity = DeviceIdentity(manufacturer=bridge.maker, model=bridge.model)
        return self._identity

    def receive(self, topic: str, payload: bytes) -> None:
        """Take one message: decode it into the newest readings, or count why not."""
        if not self.decoder.matches(topic):
            self.stats.ignored += 1
            return
        try:
            readings = self.decoder.decode(topic, payload, self._clock())
        except DeviceProtocolError as err:
            self._reject(err)
            return
        if not readings:
            self.stats.ignored += 1
            return
        self._accept(readings)
