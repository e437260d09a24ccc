"""A device behind an OPC UA server, read and written through a node map (asyncua).

Points are polled in one batched Read per :meth:`OpcUaDevice.read`, or subscribed to and
pushed by the server on change. When the connection drops, a background task reconnects with
:class:`~edge_ems.resilience.Backoff` and subscribes again; reads and writes fail fast with
:class:`~edge_ems.exceptions.DeviceConnectionError` meanwhile. Writes go only through
:meth:`OpcUaDevice.write`, which enforces the map's access, ``allow_write`` and limits, then
reads the node back.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.common.subscription import DataChangeNotif
from asyncua.crypto import security_policies
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaError, UaStatusCodeError

from ..device import AssetType, Command, DeviceIdentity, Health, HealthTracker, WriteResult
from ..exceptions import (
    ConfigError,
    DeviceAuthenticationError,
    DeviceConnectionError,
    DeviceError,
    DeviceExceptionError,
    DeviceProtocolError,
    DeviceTimeoutError,
    IdentificationError,
    ReadBackMismatchError,
    WriteRefusedError,
)
from ..metrics import BATTERY_POWER, LEASED_METRICS
from ..pointmap.model import Access
from ..quiet import QuietLogs
from ..readings import Quality, Reading, Readings, Value
from ..resilience import Backoff, CircuitBreaker
from .nodemap import NodeMap, NodePoint, ReadMode

_LOGGER = logging.getLogger(__name__)
ASYNCUA_LOGGERS = ("asyncua",)

POLICIES = ("Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss")
MODES = ("Sign", "SignAndEncrypt")
_INTEGER_TYPES = frozenset(
    {
        ua.VariantType.SByte, ua.VariantType.Byte, ua.VariantType.Int16, ua.VariantType.UInt16,
        ua.VariantType.Int32, ua.VariantType.UInt32, ua.VariantType.Int64, ua.VariantType.UInt64,
    }
)  # fmt: skip
_AUTH_CODES = frozenset(
    {
        StatusCodes.BadUserAccessDenied,
        StatusCodes.BadIdentityTokenInvalid,
        StatusCodes.BadIdentityTokenRejected,
    }
)
"""What a server answers when it refuses the user name or password."""
# Identity metrics fill DeviceIdentity's fields, read once when connecting.
_IDENTITY_FIELDS: Mapping[str, str] = MappingProxyType(
    {
        "device_manufacturer": "manufacturer", "device_model": "model",
        "device_serial": "serial", "device_firmware": "firmware", "device_hardware": "hardware",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class OpcUaSecurity:
    """Message security for the secure channel, with this client's certificate and key."""

    certificate: Path
    """The client's application instance certificate (DER or PEM); its URI must be the
    device's ``application_uri``."""
    private_key: Path
    policy: str = "Basic256Sha256"
    """One of :data:`POLICIES`."""
    mode: str = "SignAndEncrypt"
    """One of :data:`MODES`."""
    private_key_password: str | None = None
    server_certificate: Path | None = None
    """Pin the server's certificate; by default it is taken from the server's endpoint."""

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ConfigError(f"OPC UA security policy {self.policy!r} is not one of {POLICIES}")
        if self.mode not in MODES:
            raise ConfigError(f"OPC UA security mode {self.mode!r} is not one of {MODES}")


class OpcUaDevice:
    """Reads and writes a device's metrics on an OPC UA server as its node map says."""

    def __init__(
        self,
        name: str,
        node_map: NodeMap,
        *,
        url: str,
        security: OpcUaSecurity | None = None,
        username: str | None = None,
        password: str | None = None,
        application_uri: str = "urn:edge-ems:client",
        timeout: float = 5.0,
        backoff: Backoff | None = None,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._name = name
        self._map = node_map
        self._url = url
        self._security = security
        self._username, self._password = username, password
        self._application_uri = application_uri
        self._timeout = timeout
        self._backoff = backoff or Backoff(base=1.0, cap=60.0)
        self._health = HealthTracker(breaker or CircuitBreaker(name), wall_clock=clock)
        self._clock = clock
        self._client: Client | None = None
        self._nodes: dict[str, Node] = {}
        self._by_node: dict[ua.NodeId, NodePoint] = {}
        self._pushed: Readings = {}
        self._subscription_alive = False
        self._identity: DeviceIdentity | None = None
        self._identity_readings: Readings = {}
        self._variant_types: dict[str, ua.VariantType] = {}
        self._reconnect: asyncio.Task[None] | None = None
        self._closing = False
        self._quiet = QuietLogs(ASYNCUA_LOGGERS, _LOGGER)
        self._commands = MappingProxyType(
            {
                metric: Command(
                    metric,
                    minimum=point.write.minimum,
                    maximum=point.write.maximum,
                    allow_write=point.write.allow_write,
                    eeprom=False,
                    lease=metric in LEASED_METRICS,
                )
                for metric, point in node_map.points.items()
                if point.write is not None
            }
        )

    @property
    def name(self) -> str:
        """A short name for logs and errors."""
        return self._name

    @property
    def asset_type(self) -> AssetType:
        """What the node map says the device is."""
        return self._map.device.kind

    @property
    def identity(self) -> DeviceIdentity | None:
        """What :meth:`connect` found, or ``None`` before it."""
        return self._identity

    @property
    def commands(self) -> Mapping[str, Command]:
        """The writable metrics, by name."""
        return self._commands

    @property
    def safe_mode(self) -> Mapping[str, Value]:
        """No power commanded, where the node map offers a battery power setpoint."""
        return {BATTERY_POWER: 0} if BATTERY_POWER in self._commands else {}

    @property
    def revert_timer(self) -> str | None:
        """None: node maps name no watchdog, so leases refresh the setpoint itself."""
        return None

    @property
    def health(self) -> Health:
        """Connection and error state now."""
        return self._health.snapshot()

    @property
    def declared_metrics(self) -> frozenset[str]:
        """Every readable point of the node map but the identity, which the registry shows."""
        return frozenset(
            metric
            for metric, point in self._map.points.items()
            if point.readable and metric not in _IDENTITY_FIELDS
        )

    def state_options(self, metric: str) -> tuple[str, ...] | None:
        """None: node maps name no states."""
        return None

    @property
    def learned(self) -> Mapping[str, Any]:
        """Nothing: the node map says all there is to know."""
        return MappingProxyType({})

    async def register_dump(self) -> dict[str, Any] | None:
        """None: nodes, not registers."""
        return None

    async def connect(self) -> DeviceIdentity:
        """Connect, identify the device and subscribe; reconnect by itself until closed.

        From here on asyncua's own lines about this device go to debug: it warns on every
        connect and logs a traceback when a session drops, where the device's error says
        what matters once.
        """
        self._closing = False
        self._quiet.mute(on=True)
        if self._client is None:
            await self._stop_reconnecting()
            with self._quiet.context():
                await self._health.run(self._open)
        assert self._identity is not None
        return self._identity

    async def read(self) -> Readings:
        """Poll the polled points in one request; add the newest pushed values."""
        with self._quiet.context():
            return await self._health.run(self._read)

    async def write(self, metric: str, value: Value) -> WriteResult:
        """Write one command, then read it back.

        Refuses (:class:`WriteRefusedError`) before anything reaches the server when the
        metric is no command (``unknown_command``), is read-only (``not_writable``), is not
        allowed (``not_allowed``), or the value is outside the map's limits (``out_of_range``)
        or of the wrong kind (``invalid_value``).
        """
        point = self._writable(metric)
        raw = _raw_for_write(self._name, point, value)
        with self._quiet.context():
            return await self._health.run(lambda: self._write(point, value, raw))

    async def close(self) -> None:
        """Stop reconnecting and disconnect; :meth:`connect` may open the device again."""
        self._closing = True
        await self._stop_reconnecting()
        client, self._client = self._client, None
        if client is not None:
            with self._quiet.context():
                await _disconnect_quietly(client)
        self._health.connected = False
        self._quiet.mute(on=False)

    async def _stop_reconnecting(self) -> None:
        task, self._reconnect = self._reconnect, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])

    async def _open(self) -> None:
        client = Client(self._url, timeout=self._timeout)
        self._quiet.refresh()  # the client made its loggers
        client.application_uri = self._application_uri
        if self._username is not None:
            client.set_user(self._username)
        if self._password is not None:
            client.set_password(self._password)
        client.connection_lost_callback = self._on_connection_lost
        try:
            with self._translated("connect"):
                await self._secure(client)
                await client.connect()
                self._nodes = await self._resolve(client)
                await self._identify(client)
                await self._subscribe(client)
        except BaseException:
            await _disconnect_quietly(client)
            raise
        self._client = client
        self._variant_types.clear()
        _LOGGER.debug("%s: connected to %s", self._name, self._url)

    async def _secure(self, client: Client) -> None:
        security = self._security
        if security is None:
            return
        await client.set_security(
            getattr(security_policies, f"SecurityPolicy{security.policy}"),
            certificate=str(security.certificate),
            private_key=str(security.private_key),
            private_key_password=security.private_key_password,
            server_certificate=(
                None if security.server_certificate is None else str(security.server_certificate)
            ),
            mode=getattr(ua.MessageSecurityMode, security.mode),
        )

    async def _resolve(self, client: Client) -> dict[str, Node]:
        """Nodes by metric, with ``nsu=`` namespace URIs turned into this server's indexes."""
        namespaces: list[str] | None = None
        nodes = {}
        for metric, point in self._map.points.items():
            node_id = ua.NodeId.from_string(point.node)
            if isinstance(node_id, ua.ExpandedNodeId) and node_id.NamespaceUri:
                if namespaces is None:
                    namespaces = await client.get_namespace_array()
                if node_id.NamespaceUri not in namespaces:
                    raise IdentificationError(
                        f"{self._name}: the server has no namespace {node_id.NamespaceUri!r} "
                        f"(points.{metric}.node)"
                    )
                index = ua.Int16(namespaces.index(node_id.NamespaceUri))
                node_id = ua.NodeId(node_id.Identifier, index, node_id.NodeIdType)
            nodes[metric] = client.get_node(node_id)
        return nodes

    async def _identify(self, client: Client) -> None:
        metrics = [metric for metric in self._nodes if metric in _IDENTITY_FIELDS]
        readings = await self._read_points(client, [self._map.points[m] for m in metrics])
        found = {
            _IDENTITY_FIELDS[metric]: str(reading.value)
            for metric, reading in readings.items()
            if reading.value is not None and reading.quality is Quality.GOOD
        }
        device = self._map.device
        self._identity = DeviceIdentity(
            manufacturer=found.get("manufacturer", device.maker),
            model=found.get("model", device.model),
            serial=found.get("serial"),
            firmware=found.get("firmware"),
            hardware=found.get("hardware"),
        )
        self._identity_readings = readings

    async def _subscribe(self, client: Client) -> None:
        points = [point for point in self._map.points.values() if point.mode is ReadMode.SUBSCRIBE]
        self._by_node = {self._nodes[point.metric].nodeid: point for point in points}
        if not points:
            return
        interval_ms = self._map.device.subscription_interval * 1000.0
        handler = _Notifications(self._on_change, self._on_status)
        subscription = await client.create_subscription(interval_ms, handler)
        results = await subscription.subscribe_data_change(
            [self._nodes[point.metric] for point in points]
        )
        for point, result in zip(points, results, strict=True):
            if isinstance(result, ua.StatusCode):
                raise DeviceExceptionError(
                    f"{self._name}: cannot subscribe to {point.metric} ({point.node}): {result}",
                    code=result.value,
                )
        self._subscription_alive = True

    def _on_change(self, node: Node, value: ua.DataValue) -> None:
        point = self._by_node.get(node.nodeid)
        if point is not None:
            self._pushed[point.metric] = self._reading(point, value, self._clock())

    def _on_status(self, good: bool) -> None:
        if not good:  # the subscription died; its values no longer follow the server
            self._subscription_alive = False

    async def _on_connection_lost(self, error: Exception) -> None:
        """asyncua's callback when its watchdog finds the server gone."""
        self._health.record_failure(DeviceConnectionError(f"{self._name}: lost: {error}"))
        self._lost()

    def _lost(self) -> None:
        """Reconnect in the background (unless closing, or already reconnecting)."""
        self._health.connected = False
        self._subscription_alive = False
        if self._closing or (self._reconnect is not None and not self._reconnect.done()):
            return
        self._reconnect = asyncio.create_task(
            self._reconnect_forever(), name=f"edge-ems opcua reconnect {self._name}"
        )

    async def _reconnect_forever(self) -> None:
        stale, self._client = self._client, None
        if stale is not None:
            await _disconnect_quietly(stale)
        while True:
            await asyncio.sleep(self._backoff.delay())
            try:
                await self._health.run(self._open)
            except DeviceError as err:
                _LOGGER.debug("%s: reconnect failed: %s", self._name, err)
                continue
            self._backoff.reset()
            return

    def _require_client(self) -> Client:
        if self._client is None:
            raise DeviceConnectionError(f"{self._name}: not connected to {self._url}")
        return self._client

    async def _read(self) -> Readings:
        client = self._require_client()
        points = [
            point
            for point in self._map.points.values()
            if point.readable
            and point.mode is ReadMode.POLL
            and point.metric not in _IDENTITY_FIELDS
        ]
        try:
            with self._translated("read"):
                polled = await self._read_points(client, points)
        except DeviceConnectionError:  # timeouts included; run() records the failure
            self._lost()
            raise
        readings = self._identity_readings | polled
        for metric, reading in self._pushed.items():
            stale = not self._subscription_alive and reading.quality is Quality.GOOD
            readings[metric] = (
                dataclasses.replace(reading, quality=Quality.STALE) if stale else reading
            )
        return readings

    async def _read_points(self, client: Client, points: list[NodePoint]) -> Readings:
        """Read ``points`` in one request."""
        if not points:
            return {}
        values = await client.read_attributes([self._nodes[point.metric] for point in points])
        now = self._clock()
        return {
            point.metric: self._reading(point, value, now)
            for point, value in zip(points, values, strict=True)
        }

    def _writable(self, metric: str) -> NodePoint:
        point = self._map.points.get(metric)
        if point is None:
            raise WriteRefusedError(
                f"{self._name}: {metric} is not a point of this device", reason="unknown_command"
            )
        if point.access is Access.READ or point.write is None:
            raise WriteRefusedError(f"{self._name}: {metric} is read-only", reason="not_writable")
        if not point.write.allow_write:
            raise WriteRefusedError(
                f"{self._name}: writing {metric} is not allowed by the node map",
                reason="not_allowed",
            )
        return point

    async def _write(self, point: NodePoint, requested: Value, raw: Any) -> WriteResult:
        client = self._require_client()
        node = self._nodes[point.metric]
        try:
            with self._translated(f"write {point.metric}"):
                variant_type = self._variant_types.get(point.metric)
                if variant_type is None:
                    variant_type = await node.read_data_type_as_variant_type()
                    self._variant_types[point.metric] = variant_type
                typed = _typed(raw, variant_type, f"{self._name}: {point.metric}")
                await client.write_values([node], [ua.Variant(typed, variant_type)])
                (back,) = await client.read_attributes([node])
        except DeviceConnectionError:  # timeouts included; run() records the failure
            self._lost()
            raise
        written = self._scaled(point, typed)
        read_back = self._reading(point, back, self._clock()).value
        if not _same(typed, back.Value.Value if back.Value is not None else None):
            raise ReadBackMismatchError(
                f"{self._name}: wrote {written!r} to {point.metric}, read back {read_back!r}",
                expected=written,
                actual=read_back,
            )
        return WriteResult(point.metric, requested, written, read_back, self._clock())

    def _reading(self, point: NodePoint, data: ua.DataValue, timestamp: float) -> Reading:
        status = data.StatusCode
        if status is not None and not status.is_good():
            return Reading(point.metric, None, timestamp, Quality.INVALID)
        raw = data.Value.Value if data.Value is not None else None
        value = self._scaled(point, raw)
        valid = point.valid_range
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if valid is not None and numeric and not valid[0] <= value <= valid[1]:  # type: ignore[operator]
            return Reading(point.metric, value, timestamp, Quality.INVALID)
        return Reading(point.metric, value, timestamp)

    @staticmethod
    def _scaled(point: NodePoint, raw: Any) -> Value:
        if raw is None or isinstance(raw, bool | str):
            return raw
        if isinstance(raw, int | float):
            if not math.isfinite(raw):
                return None
            if point.scale == 1:
                return raw
            return round(raw * point.scale, 9) + 0.0
        if isinstance(raw, ua.LocalizedText):
            return raw.Text
        return str(raw)

    @contextlib.contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        """Turn asyncua's and the socket's errors into the library's."""
        where = f"{self._name}: {action} at {self._url}"
        try:
            yield
        except TimeoutError as err:
            raise DeviceTimeoutError(f"{where}: no answer within {self._timeout} s") from err
        except UaStatusCodeError as err:
            if err.code in _AUTH_CODES:
                raise DeviceAuthenticationError(f"{where}: {err}") from err
            raise DeviceExceptionError(f"{where}: {err}", code=err.code) from err
        except UaError as err:
            raise DeviceProtocolError(f"{where}: {err}") from err
        except OSError as err:  # ConnectionError included
            raise DeviceConnectionError(f"{where}: {err}") from err


class _Notifications:
    """asyncua's subscription handler: hands data changes and status changes on."""

    def __init__(
        self,
        on_change: Callable[[Node, ua.DataValue], None],
        on_status: Callable[[bool], None],
    ) -> None:
        self._on_change = on_change
        self._on_status = on_status

    def datachange_notification(self, node: Node, val: Any, data: DataChangeNotif) -> None:
        self._on_change(node, data.monitored_item.Value)

    def status_change_notification(self, status: ua.StatusChangeNotification) -> None:
        self._on_status(status.Status.is_good())


def _raw_for_write(name: str, point: NodePoint, value: Value) -> float | bool:
    """The unscaled value to write, checked against the map's limits."""
    assert point.write is not None
    if isinstance(value, bool):
        return value
    if not isinstance(value, int | float):
        raise WriteRefusedError(
            f"{name}: {point.metric} takes a number, not {value!r}", reason="invalid_value"
        )
    low, high = point.write.minimum, point.write.maximum
    if (
        not math.isfinite(value)
        or (low is not None and value < low)
        or (high is not None and value > high)
    ):
        raise WriteRefusedError(
            f"{name}: {point.metric} = {value} is outside [{low}, {high}]", reason="out_of_range"
        )
    return value / point.scale


def _typed(raw: float | bool, variant_type: ua.VariantType, where: str) -> Any:
    """``raw`` as the node's data type wants it."""
    if variant_type is ua.VariantType.Boolean:
        return bool(raw)
    if variant_type in _INTEGER_TYPES:
        return round(raw)
    if variant_type in (ua.VariantType.Float, ua.VariantType.Double):
        return float(raw)
    raise DeviceProtocolError(f"{where}: cannot write a number to a {variant_type.name} node")


def _same(written: Any, read_back: Any) -> bool:
    if isinstance(written, float) and isinstance(read_back, int | float):
        return math.isclose(written, read_back, rel_tol=1e-6, abs_tol=1e-9)
    return bool(written == read_back)


async def _disconnect_quietly(client: Client) -> None:
    try:
        await client.disconnect()
    except (OSError, UaError) as err:  # the server is gone anyway
        _LOGGER.debug("disconnect from %s: %s", client, err)
