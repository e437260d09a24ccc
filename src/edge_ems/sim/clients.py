"""The library's own clients for every device of a simulated site.

What an integration would build for the same hardware: :class:`~edge_ems.modbus.ModbusDevice`
for the point-map devices (the Deye and the SDM630 sharing one link to their gateway),
:class:`~edge_ems.sunspec.SunSpecDevice` for the SunSpec inverter and its meter, the MQTT and
CAN battery devices and the OPC UA device. The demo shows them; tests drive them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ..bms import CanBmsDevice, MqttBmsDevice, TopicMap, TopicMapDecoder
from ..bms.topicmap import catalog_paths as topic_map_paths
from ..bms.topicmap import load_topic_map
from ..device import Device
from ..modbus import LinkRegistry, LinkSettings, ModbusDevice, ModbusLink, TcpEndpoint
from ..opcua import NodeMap, OpcUaDevice
from ..opcua.nodemap import catalog_paths as node_map_paths
from ..opcua.nodemap import load_node_map
from ..pointmap import PointMap, catalog_paths, load_point_map
from ..sunspec import LinkUnit, SunSpecDevice
from . import battery_inverter, deye, ev_charger, heat_pump, meter
from .site import SiteEndpoints

OPCUA_MAP = "sim_bess"


@dataclass(frozen=True, slots=True)
class SiteDevice:
    """One device of the site as a client sees it."""

    key: str
    """Short stable name: ``deye``, ``sdm630``, ``sunspec``, ..."""
    title: str
    where: str
    """Protocol and address, for people."""
    device: Device
    link: ModbusLink | None = None
    """The Modbus link the device talks through, shared with the others behind it."""


@dataclass(frozen=True, slots=True)
class _Maps:
    deye: PointMap
    meter: PointMap
    ev_charger: PointMap
    heat_pump: PointMap
    battery_inverter: PointMap
    bess: NodeMap | None
    bms: TopicMap | None


def _load_maps(endpoints: SiteEndpoints) -> _Maps:
    paths = catalog_paths()
    bess = None
    if endpoints.opcua_url is not None:
        bess = load_node_map(node_map_paths()[OPCUA_MAP])
    bms = None
    if endpoints.mqtt_topic_map is not None:
        bms = load_topic_map(topic_map_paths()[endpoints.mqtt_topic_map])
    deye_map, meter_map, ev_map, pump_map, inverter_map = (
        load_point_map(paths[map_id])
        for map_id in (
            deye.MAP_ID, meter.MAP_ID, ev_charger.MAP_ID, heat_pump.MAP_ID, battery_inverter.MAP_ID
        )
    )  # fmt: skip
    return _Maps(deye_map, meter_map, ev_map, pump_map, inverter_map, bess, bms)


async def site_devices(
    endpoints: SiteEndpoints, registry: LinkRegistry, *, settings: LinkSettings | None = None
) -> list[SiteDevice]:
    """Clients, not yet connected, for every device the site serves.

    Their Modbus links come from ``registry``, which the caller closes.
    """
    maps = await asyncio.to_thread(_load_maps, endpoints)
    host = endpoints.host
    gateway = registry.link(TcpEndpoint(host, endpoints.modbus_gateway_port), settings)
    where = f"{gateway.name} unit"
    found = [
        SiteDevice("deye", "Deye hybrid inverter", f"{where} {endpoints.deye_unit}",
                   ModbusDevice(gateway, maps.deye,
                                unit_id=endpoints.deye_unit, name="deye"), gateway),
        SiteDevice("sdm630", "SDM630 grid meter", f"{where} {endpoints.meter_unit}",
                   ModbusDevice(gateway, maps.meter,
                                unit_id=endpoints.meter_unit, name="sdm630"), gateway),
    ]  # fmt: skip
    if endpoints.sunspec_port is not None and endpoints.sunspec_unit is not None:
        link = registry.link(TcpEndpoint(host, endpoints.sunspec_port), settings)
        unit = LinkUnit(link, endpoints.sunspec_unit, name="sunspec")
        where = f"{link.name} unit {endpoints.sunspec_unit}"
        found += [
            SiteDevice("sunspec", "SunSpec hybrid inverter", where,
                       SunSpecDevice(unit, name="sunspec"), link),
            SiteDevice("sunspec_meter", "SunSpec meter", f"{where}, second device",
                       SunSpecDevice(unit, name="sunspec-meter", device_index=1), link),
        ]  # fmt: skip
    for key, title, port, unit_id, point_map in (
        ("ev_charger", "EV charger", endpoints.ev_charger_port, endpoints.ev_charger_unit,
         maps.ev_charger),
        ("heat_pump", "Heat pump", endpoints.heat_pump_port, endpoints.heat_pump_unit,
         maps.heat_pump),
        ("battery_inverter", "Battery inverter", endpoints.battery_inverter_port,
         endpoints.battery_inverter_unit, maps.battery_inverter),
    ):  # fmt: skip
        if port is not None and unit_id is not None:
            link = registry.link(TcpEndpoint(host, port), settings)
            device = ModbusDevice(link, point_map, unit_id=unit_id, name=key)
            found.append(SiteDevice(key, title, f"{link.name} unit {unit_id}", device, link))
    if endpoints.opcua_url is not None and maps.bess is not None:
        found.append(
            SiteDevice("bess", "BESS", endpoints.opcua_url,
                       OpcUaDevice("bess", maps.bess, url=endpoints.opcua_url))
        )  # fmt: skip
    if endpoints.mqtt is not None and maps.bms is not None:
        mqtt_host, mqtt_port = endpoints.mqtt
        decoder = TopicMapDecoder(maps.bms, endpoints.mqtt_variables)
        found.append(
            SiteDevice("mqtt_bms", "MQTT BMS",
                       f"mqtt://{mqtt_host}:{mqtt_port} {endpoints.mqtt_topic_map}",
                       MqttBmsDevice("mqtt-bms", decoder, host=mqtt_host, port=mqtt_port))
        )  # fmt: skip
    if endpoints.can_channel is not None:
        found.append(
            SiteDevice("can_bms", "CAN BMS",
                       f"can://virtual/{endpoints.can_channel}",
                       CanBmsDevice("can-bms", interface="virtual", channel=endpoints.can_channel))
        )  # fmt: skip
    return found
