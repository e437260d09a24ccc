"""``telemetry_write_sim``: simulated telemetry written to an OPC UA server's nodes.

A site without the real plant yet (commissioning, a demo, a SCADA test bench) can have the
agent simulate an asset and write every reading to the nodes a node map names, so the OPC UA
side sees live values. The mirror connects lazily and, after a failure, tries again only once
its backoff allows: the agent's telemetry never waits for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.ua.uaerrors import UaError, UaStatusCodeError

from ..readings import Quality, Reading
from ..resilience import Backoff
from .nodemap import NodeMap

_LOGGER = logging.getLogger(__name__)

_NUMBER_TYPES = {
    ua.VariantType.Double: float,
    ua.VariantType.Float: float,
    ua.VariantType.Int16: int,
    ua.VariantType.UInt16: int,
    ua.VariantType.Int32: int,
    ua.VariantType.UInt32: int,
    ua.VariantType.Int64: int,
    ua.VariantType.UInt64: int,
}


class OpcUaTelemetryWriter:
    """Writes readings to the nodes of ``node_map`` on the server at ``url``."""

    def __init__(
        self,
        name: str,
        node_map: NodeMap,
        *,
        url: str,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 5.0,
        backoff: Backoff | None = None,
    ) -> None:
        self._name = name
        self._map = node_map
        self._url = url
        self._username, self._password = username, password
        self._timeout = timeout
        self._backoff = backoff or Backoff(base=1.0, cap=60.0)
        self._client: Client | None = None
        self._nodes: dict[str, tuple[Node, ua.VariantType]] = {}
        self._retry_at = 0.0
        self.written = 0
        """Values written so far."""

    async def write(self, readings: Mapping[str, Reading]) -> None:
        """Write every good reading whose metric the node map has; failures are logged."""
        loop = asyncio.get_running_loop()
        if self._client is None:
            if loop.time() < self._retry_at:
                return
            try:
                await self._connect()
            except (UaError, OSError, TimeoutError) as err:
                self._retry_at = loop.time() + self._backoff.delay()
                _LOGGER.warning("%s: cannot reach OPC UA server %s: %s", self._name, self._url, err)
                return
            self._backoff.reset()
        try:
            await self._write(readings)
        except (UaError, OSError, TimeoutError) as err:
            _LOGGER.warning("%s: writing telemetry to %s failed: %s", self._name, self._url, err)
            await self.close()
            self._retry_at = loop.time() + self._backoff.delay()

    async def close(self) -> None:
        """Disconnect; the next :meth:`write` connects again."""
        client, self._client = self._client, None
        self._nodes = {}
        if client is not None:
            try:
                await client.disconnect()
            except (UaError, OSError, TimeoutError) as err:
                _LOGGER.debug("%s: disconnecting: %s", self._name, err)

    async def _connect(self) -> None:
        client = Client(self._url, timeout=self._timeout)
        if self._username is not None:
            client.set_user(self._username)
        if self._password is not None:
            client.set_password(self._password)
        await client.connect()
        try:
            namespaces = await client.get_namespace_array()
            nodes = {}
            for metric, point in self._map.points.items():
                if point.write is not None:
                    continue  # commands are the device's to hold, not telemetry to mirror
                node_id = ua.NodeId.from_string(point.node)
                if isinstance(node_id, ua.ExpandedNodeId) and node_id.NamespaceUri:
                    if node_id.NamespaceUri not in namespaces:
                        continue
                    index = ua.Int16(namespaces.index(node_id.NamespaceUri))
                    node_id = ua.NodeId(node_id.Identifier, index, node_id.NodeIdType)
                node = client.get_node(node_id)
                try:
                    nodes[metric] = (node, await node.read_data_type_as_variant_type())
                except UaStatusCodeError as err:
                    _LOGGER.debug(
                        "%s: not mirroring %s (%s): %s", self._name, metric, point.node, err
                    )
        except BaseException:
            await client.disconnect()
            raise
        self._client, self._nodes = client, nodes

    async def _write(self, readings: Mapping[str, Reading]) -> None:
        for metric, reading in readings.items():
            target = self._nodes.get(metric)
            if target is None or reading.quality is not Quality.GOOD or reading.value is None:
                continue
            node, variant_type = target
            point = self._map.points[metric]
            value = reading.value
            cast = _NUMBER_TYPES.get(variant_type)
            if cast is not None and isinstance(value, int | float):
                value = cast(value / point.scale if point.scale else value)
            elif variant_type is ua.VariantType.Boolean:
                value = bool(value)
            elif variant_type is ua.VariantType.String:
                value = str(value)
            else:
                continue
            await node.write_value(ua.DataValue(ua.Variant(value, variant_type)))
            self.written += 1
