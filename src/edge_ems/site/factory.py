"""Devices built from their descriptions: the one place that knows every kind.

A host can replace or add a kind's factory (Home Assistant reads MQTT batteries through its
own MQTT connection); everything else is built here for the integration and for
``edge-ems agent`` alike.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..bms import CanBmsDevice, MqttBmsDevice, TopicMap, TopicMapDecoder, load_topic_map
from ..bms import catalog_paths as topic_map_paths
from ..device import Device
from ..exceptions import ConfigError
from ..modbus import (
    Endpoint,
    LinkRegistry,
    LinkSettings,
    ModbusDevice,
    RtuOverTcpEndpoint,
    SerialEndpoint,
    TcpEndpoint,
)
from ..opcua import MODES, POLICIES, NodeMap, OpcUaDevice, OpcUaSecurity, load_node_map
from ..opcua import catalog_paths as node_map_paths
from ..opcua.mirror import OpcUaTelemetryWriter
from ..pointmap import PointMap, load_point_map
from ..pointmap import catalog_paths as point_map_paths
from ..pointmap.loader import load_bundled
from ..resilience import Backoff, CircuitBreaker
from ..sim.bess import SimulatedBess
from ..sim.physics import Battery
from ..sunspec import LinkUnit, SunSpecDevice
from . import keys
from .description import DeviceSpec, SiteDescription

_SECURITY = {f"{policy}_{mode}".lower(): (policy, mode) for policy in POLICIES for mode in MODES}
SECURITY_CHOICES: tuple[str, ...] = (keys.SECURITY_NONE, *_SECURITY)
"""OPC UA message security a device can ask for: none, or a policy with a mode."""


@dataclass(frozen=True, slots=True)
class Catalog:
    """The point, topic and node maps a site's devices may name, by id (or by file path)."""

    point_maps: Mapping[str, PointMap] = field(default_factory=dict)
    topic_maps: Mapping[str, TopicMap] = field(default_factory=dict)
    node_maps: Mapping[str, NodeMap] = field(default_factory=dict)


_MAP_KEYS = {
    keys.POINT_MAP: (point_map_paths, load_point_map),
    keys.TOPIC_MAP: (topic_map_paths, load_topic_map),
    keys.NODE_MAP: (node_map_paths, load_node_map),
}


def load_catalog(devices: Iterable[DeviceSpec] = ()) -> Catalog:
    """The bundled maps, and the map files ``devices`` name (by a path, or a name ending in
    ``.yaml``) instead of a bundled id.

    Blocking I/O: call it before the event loop runs, or in an executor.
    """
    loaded: dict[str, dict[str, Any]] = {}
    for key, (paths, load) in _MAP_KEYS.items():
        maps: dict[str, Any] = load_bundled(paths(), load)
        for spec in devices:
            named = _map_reference(spec.settings, key)
            if named is not None and named not in maps and _is_path(named):
                maps[named] = load(Path(named))
        loaded[key] = maps
    return Catalog(loaded[keys.POINT_MAP], loaded[keys.TOPIC_MAP], loaded[keys.NODE_MAP])


def _is_path(name: str) -> bool:
    """A map named by its file (anything else must be a bundled id)."""
    return "/" in name or name.endswith((".yaml", ".yml"))


def _map_reference(settings: Mapping[str, Any], key: str) -> str | None:
    named = settings.get(key)
    if key == keys.NODE_MAP and named is None:
        named = (settings.get(keys.MIRROR) or {}).get(keys.NODE_MAP)
    return None if named is None else str(named)


@dataclass(frozen=True, slots=True)
class BuildContext:
    """What building a device may draw on besides its own description."""

    catalog: Catalog
    links: LinkRegistry
    """The site's Modbus links: devices behind one gateway share its connection."""
    poll_interval: float
    """The device's poll interval: no backoff holds it back longer than this."""
    learned: Mapping[str, Any] = field(default_factory=dict)
    """What the device learned about itself on an earlier run (its ``learned`` property)."""
    clock: Callable[[], float] = time.time
    link_settings: LinkSettings | None = None
    """How the site's Modbus links are run; ``None`` takes a link as it is (a probe)."""

    def backoff(self) -> Backoff:
        """Reconnection pacing that never waits longer than one poll."""
        return Backoff(base=min(1.0, self.poll_interval), cap=max(self.poll_interval, 0.05))

    def breaker(self, name: str) -> CircuitBreaker:
        """A circuit breaker that never waits longer than one poll before trying again."""
        interval = max(self.poll_interval, 0.05)
        return CircuitBreaker(name, reset_timeout=min(10.0, interval), max_reset_timeout=interval)


type DeviceFactory = Callable[[DeviceSpec, BuildContext], Device]


def modbus_endpoint(settings: Mapping[str, Any]) -> Endpoint:
    """The link a Modbus device's settings describe."""
    transport = settings.get(keys.TRANSPORT, keys.TRANSPORT_TCP)
    if transport == keys.TRANSPORT_RTU:
        parity = keys.PARITIES.get(str(settings.get(keys.PARITY, "none")))
        if parity is None:
            raise ConfigError(f"parity {settings.get(keys.PARITY)!r} is not none, even or odd")
        return SerialEndpoint(
            settings[keys.SERIAL_PORT], baudrate=int(settings[keys.BAUDRATE]), parity=parity
        )
    if transport == keys.TRANSPORT_RTU_OVER_TCP:
        return RtuOverTcpEndpoint(settings[keys.HOST], int(settings.get(keys.PORT, 502)))
    if transport == keys.TRANSPORT_TCP:
        return TcpEndpoint(settings[keys.HOST], int(settings.get(keys.PORT, 502)))
    raise ConfigError(f"unknown Modbus transport {transport!r}")


def _sunspec(spec: DeviceSpec, context: BuildContext) -> Device:
    settings = spec.settings
    endpoint = TcpEndpoint(settings[keys.HOST], int(settings.get(keys.PORT, 502)))
    link = context.links.link(endpoint)
    unit = LinkUnit(link, int(settings.get(keys.UNIT_ID, 1)), name=spec.name)
    base = settings.get(keys.BASE_ADDRESS)
    return SunSpecDevice(
        unit,
        name=spec.name,
        base_address=None if base is None else int(base),
        device_index=int(settings.get(keys.DEVICE_INDEX, 0)),
        breaker=context.breaker(spec.name),
        wall_clock=context.clock,
        learned=context.learned,
    )


def _modbus(spec: DeviceSpec, context: BuildContext) -> Device:
    settings = spec.settings
    point_map = _known(context.catalog.point_maps, settings[keys.POINT_MAP], "point map")
    link = context.links.link(modbus_endpoint(settings), context.link_settings)
    return ModbusDevice(
        link,
        point_map,
        unit_id=int(settings.get(keys.UNIT_ID, point_map.device.default_unit_id)),
        name=spec.name,
        breaker=context.breaker(spec.name),
        wall_clock=context.clock,
        learned=context.learned,
    )


def _mqtt_bms(spec: DeviceSpec, context: BuildContext) -> Device:
    settings = spec.settings
    topic_map = _known(context.catalog.topic_maps, settings[keys.TOPIC_MAP], "topic map")
    decoder = TopicMapDecoder(topic_map, dict(settings.get(keys.VARIABLES) or {}))
    broker = settings.get(keys.BROKER)
    if not broker:
        raise ConfigError(f"{spec.name}: an MQTT battery needs its broker ({keys.BROKER})")
    return MqttBmsDevice(
        spec.name,
        decoder,
        host=broker[keys.HOST],
        port=int(broker.get(keys.PORT, 1883)),
        username=broker.get(keys.USERNAME) or None,
        password=broker.get(keys.PASSWORD) or None,
        tls_context=ssl.create_default_context() if broker.get("tls") else None,
        breaker=context.breaker(spec.name),
        clock=context.clock,
    )


def _can_bms(spec: DeviceSpec, context: BuildContext) -> Device:
    settings = spec.settings
    return CanBmsDevice(
        spec.name,
        interface=settings.get(keys.INTERFACE, "socketcan"),
        channel=settings.get(keys.CHANNEL, "can0"),
        breaker=context.breaker(spec.name),
        clock=context.clock,
    )


def opcua_security(settings: Mapping[str, Any]) -> OpcUaSecurity | None:
    """The secure channel an OPC UA device asks for, with the client's certificate."""
    choice = str(settings.get(keys.SECURITY, keys.SECURITY_NONE)).lower()
    if choice == keys.SECURITY_NONE:
        return None
    if choice not in _SECURITY:
        raise ConfigError(f"OPC UA security {choice!r} is not one of {list(SECURITY_CHOICES)}")
    policy, mode = _SECURITY[choice]
    return OpcUaSecurity(
        Path(settings[keys.CERTIFICATE]), Path(settings[keys.PRIVATE_KEY]), policy=policy, mode=mode
    )


def _opcua(spec: DeviceSpec, context: BuildContext) -> Device:
    settings = spec.settings
    node_map = _known(context.catalog.node_maps, settings[keys.NODE_MAP], "node map")
    security = opcua_security(settings)
    extra = {} if security is None else {"application_uri": settings[keys.APPLICATION_URI]}
    return OpcUaDevice(
        spec.name,
        node_map,
        url=settings[keys.URL],
        security=security,
        username=settings.get(keys.USERNAME) or None,
        password=settings.get(keys.PASSWORD) or None,
        backoff=context.backoff(),
        breaker=context.breaker(spec.name),
        clock=context.clock,
        **extra,
    )


def _sim_bess(spec: DeviceSpec, context: BuildContext) -> Device:
    settings = spec.settings
    battery = Battery(
        capacity_wh=float(settings.get(keys.CAPACITY_WH, 10_000.0)),
        max_charge_w=float(settings.get(keys.MAX_CHARGE_W, 5000.0)),
        max_discharge_w=float(settings.get(keys.MAX_DISCHARGE_W, 5000.0)),
        soc_pct=float(settings.get(keys.SOC_PCT, 50.0)),
    )
    return SimulatedBess(
        spec.device_id,
        battery,
        name=spec.name,
        breaker=context.breaker(spec.name),
        clock=context.clock,
    )


FACTORIES: Mapping[str, DeviceFactory] = {
    keys.DeviceKind.SUNSPEC: _sunspec,
    keys.DeviceKind.MODBUS: _modbus,
    keys.DeviceKind.MQTT_BMS: _mqtt_bms,
    keys.DeviceKind.CAN_BMS: _can_bms,
    keys.DeviceKind.OPCUA: _opcua,
    keys.DeviceKind.SIM_BESS: _sim_bess,
}
"""How each kind of device is built."""


def build_device(
    spec: DeviceSpec,
    context: BuildContext,
    factories: Mapping[str, DeviceFactory] = FACTORIES,
) -> Device:
    """The device ``spec`` describes, not connected yet.

    Raises :class:`ConfigError` when the description names a map the catalog lacks, a link
    another device opened with other settings, or a kind nobody builds.
    """
    factory = factories.get(spec.kind)
    if factory is None:
        raise ConfigError(f"{spec.name}: unknown device kind {spec.kind!r}")
    try:
        return factory(spec, context)
    except KeyError as err:
        raise ConfigError(f"{spec.name}: missing setting {err.args[0]!r}") from None
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{spec.name}: {err}") from None


def build_mirror(spec: DeviceSpec, context: BuildContext) -> OpcUaTelemetryWriter | None:
    """Where a simulated battery writes its telemetry, if its description names a server."""
    mirror = spec.settings.get(keys.MIRROR)
    if spec.kind != keys.DeviceKind.SIM_BESS or not mirror:
        return None
    return OpcUaTelemetryWriter(
        spec.name,
        _known(context.catalog.node_maps, mirror[keys.NODE_MAP], "node map"),
        url=mirror[keys.URL],
        username=mirror.get(keys.USERNAME) or None,
        password=mirror.get(keys.PASSWORD) or None,
    )


def link_settings(description: SiteDescription) -> LinkSettings:
    """How the site's Modbus links run: reconnecting at least once per poll of the most
    frequently read device (devices sharing a link must agree on its settings)."""
    intervals = [description.interval(spec) for spec in description.devices]
    return LinkSettings(reconnect_ceiling=min(intervals, default=description.poll_interval))


def catalog_for(description: SiteDescription) -> Catalog:
    """The catalog ``description``'s devices need (blocking I/O)."""
    return load_catalog(description.devices)


def _known[T](maps: Mapping[str, T], key: str, what: str) -> T:
    try:
        return maps[key]
    except KeyError:
        known = ", ".join(sorted(maps)) or "none"
        raise ConfigError(f"no {what} {key!r} (bundled: {known})") from None
