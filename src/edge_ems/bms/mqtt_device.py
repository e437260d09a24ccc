"""A battery management system whose bridge publishes over MQTT, for ``edge-ems agent``.

The device subscribes to the topics of its topic map, keeps the newest value of each metric
and reports values older than ``max_age`` as stale. A lost broker connection is retried with
:class:`~edge_ems.resilience.Backoff` for as long as the device is open. Inside Home Assistant
the integration feeds :class:`~edge_ems.bms.decoder.TopicMapDecoder` from Home Assistant's own
MQTT connection instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable

import aiomqtt

from ..device import DeviceIdentity, Health
from ..exceptions import DeviceConnectionError
from ..readings import Readings
from ..resilience import Backoff, CircuitBreaker
from .decoder import TopicMapDecoder
from .reporting import TopicMapDevice
from .topicmap import Keepalive

_LOGGER = logging.getLogger(__name__)


class MqttBmsDevice(TopicMapDevice):
    """Reads a battery management system from the MQTT topics its bridge publishes."""

    def __init__(
        self,
        name: str,
        decoder: TopicMapDecoder,
        *,
        host: str,
        port: int = 1883,
        username: str | None = None,
        password: str | None = None,
        tls_context: ssl.SSLContext | None = None,
        max_age: float = 60.0,
        connect_timeout: float = 10.0,
        backoff: Backoff | None = None,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(name, decoder, max_age=max_age, breaker=breaker, clock=clock)
        self._host, self._port = host, port
        self._username, self._password = username, password
        self._tls_context = tls_context
        self._connect_timeout = connect_timeout
        self._backoff = backoff or Backoff(base=1.0, cap=60.0)
        self._linked = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def health(self) -> Health:
        """Whether the broker link is up, and the last error."""
        return self._health.snapshot()

    async def connect(self) -> DeviceIdentity:
        """Connect and subscribe; from then on reconnect by itself until :meth:`close`."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"edge-ems mqtt bms {self._name}")
        try:
            async with asyncio.timeout(self._connect_timeout):
                await self._linked.wait()
        except TimeoutError:
            reason = self._health.last_error or "no answer"
            await self.close()
            raise DeviceConnectionError(
                f"{self._name}: cannot reach MQTT broker {self._host}:{self._port}: {reason}"
            ) from None
        return self._bridge_identity()

    async def read(self) -> Readings:
        """The newest value of every metric received, stale where older than ``max_age``."""
        return self._latest.snapshot()

    async def close(self) -> None:
        """Disconnect; :meth:`connect` may open the device again."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        self._linked.clear()
        self._health.connected = False

    async def _run(self) -> None:
        while True:
            try:
                await self._session()
            except aiomqtt.MqttError as err:
                self._linked.clear()
                self._health.record_failure(err)
                self._health.connected = False
                _LOGGER.debug("%s: MQTT link lost: %s", self._name, err)
            await asyncio.sleep(self._backoff.delay())

    async def _session(self) -> None:
        async with connected(
            aiomqtt.Client(
                self._host,
                self._port,
                username=self._username,
                password=self._password,
                tls_context=self._tls_context,
                logger=_LOGGER,
            )
        ) as client:
            await client.subscribe([(topic, 0) for topic in self.decoder.filters])
            self._backoff.reset()
            self._health.record_success()
            self._linked.set()
            keepalive = None
            if self._keepalive is not None:
                keepalive = asyncio.create_task(self._keep_alive(client, self._keepalive))
            try:
                async for message in client.messages:
                    self.receive(message.topic.value, _as_bytes(message.payload))
            finally:
                self._linked.clear()
                if keepalive is not None:
                    keepalive.cancel()
                    await asyncio.wait([keepalive])

    async def _keep_alive(self, client: aiomqtt.Client, keepalive: Keepalive) -> None:
        """Publish the bridge's keepalive for as long as the session lasts."""
        payload = keepalive.initial_payload
        if payload is None:
            payload = keepalive.payload
        while True:
            try:
                await client.publish(keepalive.topic, payload)
            except aiomqtt.MqttError as err:  # the session notices a lost link by itself
                _LOGGER.debug("%s: keepalive not sent: %s", self._name, err)
            payload = keepalive.payload
            await asyncio.sleep(keepalive.interval)


@contextlib.asynccontextmanager
async def connected(client: aiomqtt.Client) -> AsyncIterator[aiomqtt.Client]:
    """``async with client``, safe to cancel while it connects.

    aiomqtt connects in an executor thread; cancelled meanwhile, the thread still opens the
    socket and the client's housekeeping task outlives everything. So the connect runs
    shielded, and a cancelled one is finished and closed before the cancellation goes on.
    """
    entering = asyncio.ensure_future(client.__aenter__())
    try:
        await asyncio.shield(entering)
    except asyncio.CancelledError:
        await asyncio.wait([entering])
        if not entering.cancelled() and entering.exception() is None:
            await client.__aexit__(None, None, None)
        raise
    try:
        yield client
    finally:
        await client.__aexit__(None, None, None)


def _as_bytes(payload: str | bytes | bytearray | int | float | None) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return b"" if payload is None else str(payload).encode()
