"""Library devices built from a device subentry's data: the one place that knows every kind."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asyncua.ua.status_codes import StatusCodes
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME
from homeassistant.core import HomeAssistant

from edge_ems.bms import FRAMES, CanBmsDevice, TopicMap, TopicMapDecoder, load_topic_map
from edge_ems.bms import catalog_paths as topic_map_paths
from edge_ems.device import Device, DeviceIdentity
from edge_ems.exceptions import ConfigError, DeviceExceptionError
from edge_ems.modbus import (
    Endpoint,
    LinkRegistry,
    ModbusDevice,
    RtuOverTcpEndpoint,
    SerialEndpoint,
    TcpEndpoint,
)
from edge_ems.opcua.device import MODES, POLICIES, OpcUaDevice, OpcUaSecurity
from edge_ems.opcua.nodemap import NodeMap, load_node_map
from edge_ems.opcua.nodemap import catalog_paths as node_map_paths
from edge_ems.pointmap import PointMap, catalog_paths, load_point_map
from edge_ems.sunspec import LinkUnit, SunSpecDevice

from .const import (
    CONF_APPLICATION_URI,
    CONF_BASE_ADDRESS,
    CONF_BAUDRATE,
    CONF_CERTIFICATE,
    CONF_CHANNEL,
    CONF_INTERFACE,
    CONF_NODE_MAP,
    CONF_PARITY,
    CONF_POINT_MAP,
    CONF_PRIVATE_KEY,
    CONF_SECURITY,
    CONF_SERIAL_PORT,
    CONF_TOPIC_MAP,
    CONF_TRANSPORT,
    CONF_UNIT_ID,
    CONF_URL,
    CONF_VARIABLES,
    SECURITY_NONE,
    SUBENTRY_CAN_BMS,
    SUBENTRY_MODBUS,
    SUBENTRY_MQTT_BMS,
    SUBENTRY_OPCUA,
    SUBENTRY_SUNSPEC,
    TRANSPORT_RTU,
    TRANSPORT_RTU_OVER_TCP,
)
from .mqtt_bms import HaMqttBmsDevice


@dataclass
class Catalog:
    """The bundled maps, loaded once off the event loop."""

    point_maps: dict[str, PointMap] = field(default_factory=dict)
    topic_maps: dict[str, TopicMap] = field(default_factory=dict)
    node_maps: dict[str, NodeMap] = field(default_factory=dict)


def _load_catalog() -> Catalog:
    return Catalog(
        point_maps={key: load_point_map(path) for key, path in sorted(catalog_paths().items())},
        topic_maps={key: load_topic_map(path) for key, path in sorted(topic_map_paths().items())},
        node_maps={key: load_node_map(path) for key, path in sorted(node_map_paths().items())},
    )


_CATALOG_KEY = "edge_ems_catalog"


async def async_get_catalog(hass: HomeAssistant) -> Catalog:
    """The bundled point, topic and node maps (file reads run in the executor, once)."""
    catalog: Catalog | None = hass.data.get(_CATALOG_KEY)
    if catalog is None:
        catalog = hass.data[_CATALOG_KEY] = await hass.async_add_executor_job(_load_catalog)
    return catalog


def modbus_endpoint(data: Mapping[str, Any]) -> Endpoint:
    """The link a Modbus subentry's data describes."""
    transport = data.get(CONF_TRANSPORT)
    if transport == TRANSPORT_RTU:
        return SerialEndpoint(
            data[CONF_SERIAL_PORT], baudrate=int(data[CONF_BAUDRATE]), parity=data[CONF_PARITY]
        )
    if transport == TRANSPORT_RTU_OVER_TCP:
        return RtuOverTcpEndpoint(data[CONF_HOST], int(data[CONF_PORT]))
    return TcpEndpoint(data[CONF_HOST], int(data[CONF_PORT]))


def build_device(
    hass: HomeAssistant,
    kind: str,
    data: Mapping[str, Any],
    *,
    name: str,
    catalog: Catalog,
    links: LinkRegistry,
) -> Device:
    """The library device for one subentry (not connected yet).

    Raises :class:`ConfigError` when the data names a map the catalog lacks or a link
    another device opened with other settings.
    """
    if kind == SUBENTRY_SUNSPEC:
        link = links.link(TcpEndpoint(data[CONF_HOST], int(data[CONF_PORT])))
        unit = LinkUnit(link, int(data[CONF_UNIT_ID]), name=name)
        base = data.get(CONF_BASE_ADDRESS)
        return SunSpecDevice(unit, name=name, base_address=None if base is None else int(base))
    if kind == SUBENTRY_MODBUS:
        point_map = _known(catalog.point_maps, data[CONF_POINT_MAP], "point map")
        link = links.link(modbus_endpoint(data))
        return ModbusDevice(link, point_map, unit_id=int(data[CONF_UNIT_ID]), name=name)
    if kind == SUBENTRY_MQTT_BMS:
        topic_map = _known(catalog.topic_maps, data[CONF_TOPIC_MAP], "topic map")
        decoder = TopicMapDecoder(topic_map, dict(data.get(CONF_VARIABLES) or {}))
        return HaMqttBmsDevice(hass, name, decoder)
    if kind == SUBENTRY_CAN_BMS:
        return CanBmsDevice(name, interface=data[CONF_INTERFACE], channel=data[CONF_CHANNEL])
    if kind == SUBENTRY_OPCUA:
        node_map = _known(catalog.node_maps, data[CONF_NODE_MAP], "node map")
        security = opcua_security(data)
        extra = {} if security is None else {"application_uri": data[CONF_APPLICATION_URI]}
        return OpcUaDevice(
            name,
            node_map,
            url=data[CONF_URL],
            security=security,
            username=data.get(CONF_USERNAME) or None,
            password=data.get(CONF_PASSWORD) or None,
            **extra,
        )
    raise ConfigError(f"unknown device kind {kind!r}")


SECURITY_CHOICES = [SECURITY_NONE] + [f"{policy}_{mode}" for policy in POLICIES for mode in MODES]
"""OPC UA message security a user can pick: none, or a policy with a mode."""


def opcua_security(data: Mapping[str, Any]) -> OpcUaSecurity | None:
    """The secure channel an OPC UA subentry asks for, with the client's certificate."""
    choice = data.get(CONF_SECURITY, SECURITY_NONE)
    if choice == SECURITY_NONE:
        return None
    policy, mode = choice.rsplit("_", 1)
    return OpcUaSecurity(
        Path(data[CONF_CERTIFICATE]), Path(data[CONF_PRIVATE_KEY]), policy=policy, mode=mode
    )


def _known[T](maps: Mapping[str, T], key: str, what: str) -> T:
    try:
        return maps[key]
    except KeyError:
        raise ConfigError(f"no bundled {what} {key!r}") from None


def identity_dict(identity: DeviceIdentity | None) -> dict[str, str | None]:
    """A device identity as plain data, for diagnostics."""
    if identity is None:
        return {}
    return {
        "manufacturer": identity.manufacturer,
        "model": identity.model,
        "serial": identity.serial,
        "firmware": identity.firmware,
        "hardware": identity.hardware,
    }


_AUTH_CODES = frozenset(
    {
        StatusCodes.BadUserAccessDenied,
        StatusCodes.BadIdentityTokenInvalid,
        StatusCodes.BadIdentityTokenRejected,
    }
)


def is_auth_error(error: BaseException) -> bool:
    """Whether an OPC UA server refused the user name or password."""
    return isinstance(error, DeviceExceptionError) and error.code in _AUTH_CODES


def declared_metrics(device: Device) -> frozenset[str]:
    """What a push device (MQTT, CAN) will report, known before its first message.

    Polled devices report what they have on the first read; a push device may not have
    published yet when the site starts, and its entities must exist all the same.
    """
    if isinstance(device, HaMqttBmsDevice):
        return frozenset(device.decoder.topic_map.points)
    if isinstance(device, CanBmsDevice):
        return frozenset(field.metric for frame in FRAMES.values() for field in frame.fields)
    return frozenset()
