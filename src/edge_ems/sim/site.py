"""One simulated site: a plant driving every simulated device, served on real protocols.

::

    async with SimulatedSite(SiteConfig(), clock=fast_clock) as site:
        site.endpoints.modbus_gateway_port  # the Deye (unit 1) and the SDM630 (unit 2)
        site.physics.grid_w(now)  # what every meter of the site reads
        site.step()  # settle the flows now (a tick does it every second)

What runs, each on a loopback port of its own unless ``base_port`` fixes them:

* an RS-485 gateway on Modbus TCP with the Deye hybrid (``deye_sun_sg_hybrid``) and the
  Eastron SDM630 grid meter (``eastron_sdm630``) behind it, as two unit ids;
* the same SDM630 as RTU over TCP, as a transparent serial gateway passes it on;
* the SunSpec hybrid inverter with storage and its meter, on Modbus TCP;
* an EV charger (``alfen_eve``) with a car that comes, charges and goes, a heat pump
  (``stiebel_eltron_isg``) heating the house and its hot water, and a battery inverter
  (``victron_vebus_ess``, a MultiPlus-II in ESS mode 3 as its GX serves it) taking power
  setpoints, each on Modbus TCP;
* the BESS on OPC UA, the SunSpec inverter's battery as a JK-BMS publishing through
  ESPHome over MQTT (on a private mosquitto unless a broker is given; the Deye's battery
  when the SunSpec inverter is left out), and the Deye's battery as a Pylontech speaking
  on python-can's virtual bus (in this process only).

Every tick (and at once after a write) the plant settles its flows from the settings the
devices hold and every register image is recomputed from it: settings written over Modbus
take effect on the physics. ``clock`` is the plant's time (pass a faster one to replay a day
in minutes); ``monotonic`` times the SunSpec revert timers, the charger's validity and the
battery inverter's watchdog in real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import secrets
import socket
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, Self

from ..bms.topicmap import catalog_paths as topic_map_paths
from ..bms.topicmap import load_topic_map
from ..exceptions import ConfigError
from ..metrics import BATTERY_POWER
from ..pointmap import PointMap, RegisterSpace, catalog_paths, load_point_map
from . import battery_inverter, deye, deye_readings, ev_charger, heat_pump, meter
from .ambient import outdoor_temperature
from .bms_can import CanBmsSimulator
from .bms_mqtt import MqttBmsSimulator
from .broker import Mosquitto
from .config import SiteConfig
from .modbus_server import ModbusSimServer, UnitImage
from .opcua_server import OpcUaBessSimulator
from .physics import Battery, Site
from .plant import Flows, Plant
from .sunspec_hybrid import BASE, SunSpecInverter

_LOGGER = logging.getLogger(__name__)

PORT_OFFSETS: Mapping[str, int] = MappingProxyType(
    {
        "modbus_gateway": 0,
        "meter_rtu": 1,
        "sunspec": 2,
        "opcua": 3,
        "mqtt": 4,
        "ev_charger": 5,
        "heat_pump": 6,
        "battery_inverter": 7,
    }
)
"""Where each service listens relative to ``base_port``."""
TOPIC_VARIABLES: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "esphome_jk_bms": {"topic_prefix": "edge-ems-sim/jk-bms"},
        "venus_os_battery": {"portal_id": "edgeemssim", "instance": "512"},
        "batmon_ha": {"alias": "edge-ems-sim"},
    }
)
"""Topic placeholders the simulated bridges publish under, apart from a real bridge's."""


@dataclass(frozen=True, slots=True)
class Service:
    """One device the site serves, and where."""

    device: str
    protocol: str
    host: str | None
    port: int | None
    unit: int | None
    detail: str


@dataclass(frozen=True, slots=True)
class SiteEndpoints:
    """Where a running site's devices answer."""

    host: str
    modbus_gateway_port: int
    """Modbus TCP gateway: the Deye and the SDM630 behind it."""
    meter_rtu_port: int
    """The SDM630 alone, as RTU over TCP."""
    deye_unit: int
    meter_unit: int
    sunspec_port: int | None = None
    sunspec_unit: int | None = None
    opcua_url: str | None = None
    mqtt: tuple[str, int] | None = None
    mqtt_topic_map: str | None = None
    mqtt_variables: Mapping[str, str] = field(default_factory=dict)
    can_channel: str | None = None
    can_interface: str = "virtual"
    ev_charger_port: int | None = None
    ev_charger_unit: int | None = None
    heat_pump_port: int | None = None
    heat_pump_unit: int | None = None
    battery_inverter_port: int | None = None
    battery_inverter_unit: int | None = None

    def services(self) -> list[Service]:
        """What runs where, one row per way in."""
        rows = [
            Service("Deye hybrid inverter", "Modbus TCP", self.host, self.modbus_gateway_port,
                    self.deye_unit, deye.MAP_ID),
            Service("SDM630 grid meter", "Modbus TCP", self.host, self.modbus_gateway_port,
                    self.meter_unit, meter.MAP_ID),
            Service("SDM630 grid meter", "RTU over TCP", self.host, self.meter_rtu_port,
                    self.meter_unit, meter.MAP_ID),
        ]  # fmt: skip
        if self.sunspec_port is not None:
            rows.append(
                Service("SunSpec hybrid inverter + meter", "Modbus TCP", self.host,
                        self.sunspec_port, self.sunspec_unit, f"SunSpec at {BASE}")
            )  # fmt: skip
        if self.ev_charger_port is not None:
            rows.append(
                Service("EV charger", "Modbus TCP", self.host, self.ev_charger_port,
                        self.ev_charger_unit, ev_charger.MAP_ID)
            )  # fmt: skip
        if self.heat_pump_port is not None:
            rows.append(
                Service("Heat pump", "Modbus TCP", self.host, self.heat_pump_port,
                        self.heat_pump_unit, heat_pump.MAP_ID)
            )  # fmt: skip
        if self.battery_inverter_port is not None:
            rows.append(
                Service("Battery inverter", "Modbus TCP", self.host, self.battery_inverter_port,
                        self.battery_inverter_unit, battery_inverter.MAP_ID)
            )  # fmt: skip
        if self.opcua_url is not None:
            port = urllib.parse.urlsplit(self.opcua_url).port
            rows.append(Service("BESS", "OPC UA", self.host, port, None, self.opcua_url))
        if self.mqtt is not None and self.mqtt_topic_map is not None:
            prefix = ", ".join(f"{k}={v}" for k, v in self.mqtt_variables.items())
            rows.append(
                Service("MQTT BMS", "MQTT", self.mqtt[0], self.mqtt[1], None,
                        f"{self.mqtt_topic_map} ({prefix})")
            )  # fmt: skip
        if self.can_channel is not None:
            reach = "this process only" if self.can_interface == "virtual" else "this machine"
            rows.append(
                Service("CAN BMS", f"CAN ({self.can_interface})", None, None, None,
                        f"Pylontech on channel {self.can_channel!r}, {reach}")
            )  # fmt: skip
        return rows


def _battery(power_w: float, capacity_wh: float) -> dict[str, float]:
    return {"max_charge_w": power_w, "max_discharge_w": power_w, "capacity_wh": capacity_wh}


def _own_can_channel(interface: str) -> str:
    """A channel no other simulated site uses: a name, or a multicast group of its own."""
    if interface == "udp_multicast":
        group = secrets.randbelow(256**2)
        return f"239.74.{group >> 8}.{group & 0xFF}"
    return f"edge-ems-sim-{uuid.uuid4().hex[:8]}"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now, for servers that cannot bind port 0."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _load_maps(*map_ids: str) -> list[PointMap]:
    paths = catalog_paths()
    return [load_point_map(paths[map_id]) for map_id in map_ids]


class SimulatedSite:
    """A simulated site on loopback (or ``host``) ports; use it as an async context manager.

    ``mqtt`` is a broker's ``(host, port)``; without one a private mosquitto is started (and
    the MQTT BMS is left out, with a warning, where mosquitto is not installed).
    ``opcua_cache`` keeps OPC UA's standard address space between runs, which makes the OPC UA
    server start in a fraction of the time.
    """

    def __init__(
        self,
        config: SiteConfig | None = None,
        *,
        host: str = "127.0.0.1",
        base_port: int = 0,
        mqtt: tuple[str, int] | None = None,
        opcua_cache: Path | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or SiteConfig()
        self.plant = Plant(self.config)
        self._host = host
        self._base_port = base_port
        self._mqtt = mqtt
        self._opcua_cache = opcua_cache
        self._clock = clock
        self._monotonic = monotonic
        self._stack = contextlib.AsyncExitStack()
        self._ticker: asyncio.Task[None] | None = None
        self._endpoints: SiteEndpoints | None = None
        self.deye_map: PointMap | None = None
        self.meter_map: PointMap | None = None
        self.deye_image: UnitImage | None = None
        self.meter_image: UnitImage | None = None
        self.sunspec: SunSpecInverter | None = None
        self.modbus_gateway: ModbusSimServer | None = None
        """The Modbus TCP gateway with the Deye and the SDM630 behind it."""
        self.meter_rtu: ModbusSimServer | None = None
        self.sunspec_server: ModbusSimServer | None = None
        self.ev_map: PointMap | None = None
        self.ev_image: UnitImage | None = None
        self.ev_server: ModbusSimServer | None = None
        self.heat_pump_map: PointMap | None = None
        self.heat_pump_image: UnitImage | None = None
        self.heat_pump_server: ModbusSimServer | None = None
        self.battery_inverter_map: PointMap | None = None
        self.battery_inverter_image: UnitImage | None = None
        self.battery_inverter_server: ModbusSimServer | None = None
        self.mqtt_bms: MqttBmsSimulator | None = None
        self.can_bms: CanBmsSimulator | None = None
        self.opcua: OpcUaBessSimulator | None = None

    @property
    def physics(self) -> Site:
        """The :class:`~edge_ems.sim.physics.Site` behind every device."""
        return self.plant.physics

    @property
    def endpoints(self) -> SiteEndpoints:
        """Where the devices answer; known once started."""
        if self._endpoints is None:
            raise RuntimeError("the site is not running")
        return self._endpoints

    def site_file(self, site_id: str = "sim") -> dict[str, Any]:
        """A site file (``edge-ems agent --site``) with every device this site serves.

        A CAN battery on python-can's virtual bus reaches only this process; on
        ``udp_multicast`` (``can_bms: {interface: udp_multicast}``) every process here.
        """
        ends, config = self.endpoints, self.config
        devices: list[dict[str, Any]] = [
            {"id": "deye", "name": "Deye hybrid inverter", "kind": "modbus",
             "point_map": deye.MAP_ID, "host": ends.host, "port": ends.modbus_gateway_port,
             "unit_id": ends.deye_unit},
            {"id": "meter", "name": "SDM630 grid meter", "kind": "modbus",
             "point_map": meter.MAP_ID, "transport": "rtu_over_tcp", "host": ends.host,
             "port": ends.meter_rtu_port, "unit_id": ends.meter_unit},
        ]  # fmt: skip
        if ends.sunspec_port is not None and config.sunspec is not None:
            devices.append(
                {"id": "sunspec", "name": "SunSpec hybrid inverter", "kind": "sunspec",
                 "host": ends.host, "port": ends.sunspec_port, "unit_id": ends.sunspec_unit,
                 "battery": _battery(config.sunspec.max_power_w, config.sunspec.capacity_wh)}
            )  # fmt: skip
        if ends.opcua_url is not None and config.bess is not None:
            devices.append(
                {"id": "bess", "name": "BESS", "kind": "opcua", "url": ends.opcua_url,
                 "node_map": "sim_bess",
                 "battery": _battery(config.bess.max_power_w, config.bess.capacity_wh)}
            )  # fmt: skip
        if ends.mqtt is not None and ends.mqtt_topic_map is not None:
            devices.append(
                {"id": "mqtt-bms", "name": "MQTT BMS", "kind": "mqtt_bms",
                 "topic_map": ends.mqtt_topic_map, "variables": dict(ends.mqtt_variables),
                 "broker": {"host": ends.mqtt[0], "port": ends.mqtt[1]}}
            )  # fmt: skip
        if ends.ev_charger_port is not None:
            devices.append(
                {"id": "ev-charger", "name": "EV charger", "kind": "modbus",
                 "point_map": ev_charger.MAP_ID, "host": ends.host,
                 "port": ends.ev_charger_port, "unit_id": ends.ev_charger_unit}
            )  # fmt: skip
        if ends.heat_pump_port is not None:
            devices.append(
                {"id": "heat-pump", "name": "Heat pump", "kind": "modbus",
                 "point_map": heat_pump.MAP_ID, "host": ends.host,
                 "port": ends.heat_pump_port, "unit_id": ends.heat_pump_unit}
            )  # fmt: skip
        inverter = config.battery_inverter
        if ends.battery_inverter_port is not None and inverter is not None:
            devices.append(
                {"id": "battery-inverter", "name": "Battery inverter", "kind": "modbus",
                 "point_map": battery_inverter.MAP_ID, "host": ends.host,
                 "port": ends.battery_inverter_port, "unit_id": ends.battery_inverter_unit,
                 "battery": _battery(inverter.max_power_w, inverter.capacity_wh)}
            )  # fmt: skip
        if ends.can_channel is not None:
            devices.append(
                {"id": "can-bms", "name": "CAN BMS", "kind": "can_bms",
                 "interface": ends.can_interface, "channel": ends.can_channel}
            )  # fmt: skip
        return {"site": {"id": site_id, "name": "Simulated site"}, "devices": devices}

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def _port(self, service: str) -> int:
        return self._base_port + PORT_OFFSETS[service] if self._base_port else 0

    async def start(self) -> None:
        """Start every device; on failure, stop what already runs and raise."""
        if self._endpoints is not None:
            return
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        deye_map, meter_map, ev_map, heat_pump_map, inverter_map = await asyncio.to_thread(
            _load_maps, deye.MAP_ID, meter.MAP_ID, ev_charger.MAP_ID, heat_pump.MAP_ID,
            battery_inverter.MAP_ID,
        )  # fmt: skip
        self.deye_map, self.meter_map = deye_map, meter_map
        if self.plant.ev is not None:
            self.ev_map, self.ev_image = ev_map, UnitImage.from_point_map(ev_map)
            self.ev_image.set("ev_current_limit_a", self.plant.ev.fallback_current_a)
            self.ev_image.set("ev_phases", self.plant.ev.phases)
        if self.plant.heat_pump is not None:
            self.heat_pump_map = heat_pump_map
            self.heat_pump_image = UnitImage.from_point_map(heat_pump_map)
            heat_pump.install_settings(self.heat_pump_image)
        if self.plant.battery_inverter is not None:
            self.battery_inverter_map = inverter_map
            self.battery_inverter_image = UnitImage.from_point_map(inverter_map)
            battery_inverter.install_settings(self.battery_inverter_image)
        self.deye_image = UnitImage.from_point_map(deye_map)
        deye.install_settings(self.deye_image)
        self.meter_image = UnitImage.from_point_map(meter_map)
        if self.plant.sunspec is not None:
            self.sunspec = await SunSpecInverter.create(self.plant, monotonic=self._monotonic)
        self.step()
        endpoints = await self._start_modbus_gateway()
        endpoints = await self._start_sunspec(endpoints)
        endpoints = await self._start_ev_charger(endpoints)
        endpoints = await self._start_heat_pump(endpoints)
        endpoints = await self._start_battery_inverter(endpoints)
        endpoints = await self._start_opcua(endpoints)
        endpoints = await self._start_mqtt_bms(endpoints)
        endpoints = await self._start_can_bms(endpoints)
        self._endpoints = endpoints
        self._ticker = asyncio.create_task(self._tick(), name="edge-ems sim site")

    async def _start_modbus_gateway(self) -> SiteEndpoints:
        """The RS-485 gateway with the Deye and the SDM630, and the SDM630 as RTU over TCP."""
        assert self.deye_image is not None
        assert self.meter_image is not None
        config, host = self.config, self._host
        units = {config.deye.unit_id: self.deye_image, config.meter_unit_id: self.meter_image}
        self.modbus_gateway = await self._stack.enter_async_context(
            ModbusSimServer(units, on_write=self._modbus_gateway_write)
        )
        _, modbus_gateway_port = await self.modbus_gateway.start_tcp(
            host, self._port("modbus_gateway")
        )
        self.meter_rtu = await self._stack.enter_async_context(
            ModbusSimServer({config.meter_unit_id: self.meter_image}, on_write=self._meter_write)
        )
        _, rtu_port = await self.meter_rtu.start_tcp(
            host, self._port("meter_rtu"), rtu_framing=True
        )
        return SiteEndpoints(
            host, modbus_gateway_port, rtu_port, config.deye.unit_id, config.meter_unit_id
        )

    async def _start_sunspec(self, endpoints: SiteEndpoints) -> SiteEndpoints:
        unit = self.config.sunspec
        if self.sunspec is None or unit is None:
            return endpoints
        self.sunspec_server = await self._stack.enter_async_context(
            ModbusSimServer({unit.unit_id: self.sunspec.image}, on_write=self._sunspec_write)
        )
        _, port = await self.sunspec_server.start_tcp(self._host, self._port("sunspec"))
        return dataclasses.replace(endpoints, sunspec_port=port, sunspec_unit=unit.unit_id)

    async def _start_ev_charger(self, endpoints: SiteEndpoints) -> SiteEndpoints:
        config = self.config.ev_charger
        if self.ev_image is None or config is None:
            return endpoints
        self.ev_server = await self._stack.enter_async_context(
            ModbusSimServer({config.unit_id: self.ev_image}, on_write=self._ev_write)
        )
        _, port = await self.ev_server.start_tcp(self._host, self._port("ev_charger"))
        return dataclasses.replace(endpoints, ev_charger_port=port, ev_charger_unit=config.unit_id)

    async def _start_heat_pump(self, endpoints: SiteEndpoints) -> SiteEndpoints:
        config = self.config.heat_pump
        if self.heat_pump_image is None or config is None:
            return endpoints
        self.heat_pump_server = await self._stack.enter_async_context(
            ModbusSimServer({config.unit_id: self.heat_pump_image}, on_write=self._heat_pump_write)
        )
        _, port = await self.heat_pump_server.start_tcp(self._host, self._port("heat_pump"))
        return dataclasses.replace(endpoints, heat_pump_port=port, heat_pump_unit=config.unit_id)

    async def _start_battery_inverter(self, endpoints: SiteEndpoints) -> SiteEndpoints:
        config = self.config.battery_inverter
        if self.battery_inverter_image is None or config is None:
            return endpoints
        self.battery_inverter_server = await self._stack.enter_async_context(
            ModbusSimServer(
                {config.unit_id: self.battery_inverter_image}, on_write=self._battery_inverter_write
            )
        )
        _, port = await self.battery_inverter_server.start_tcp(
            self._host, self._port("battery_inverter")
        )
        return dataclasses.replace(
            endpoints, battery_inverter_port=port, battery_inverter_unit=config.unit_id
        )

    async def _start_opcua(self, endpoints: SiteEndpoints) -> SiteEndpoints:
        if self.plant.bess is None:
            return endpoints
        self.opcua = await self._stack.enter_async_context(
            OpcUaBessSimulator(
                host=self._host,
                port=self._port("opcua") or free_port(self._host),
                battery=self.plant.bess,
                interval=min(0.5, self.config.tick),
                address_space_cache=self._opcua_cache,
                clock=self._clock,
            )
        )
        return dataclasses.replace(endpoints, opcua_url=self.opcua.url)

    async def _start_mqtt_bms(self, endpoints: SiteEndpoints) -> SiteEndpoints:
        map_id = self.config.mqtt_bms
        if map_id is None:
            return endpoints
        paths = topic_map_paths()
        if map_id not in paths:
            raise ConfigError(f"no bundled topic map {map_id!r}; there are {', '.join(paths)}")
        topic_map = await asyncio.to_thread(load_topic_map, paths[map_id])
        broker = self._mqtt
        if broker is None:
            mosquitto = Mosquitto(self._host, self._port("mqtt") or free_port(self._host))
            try:
                await self._stack.enter_async_context(mosquitto)
            except ConfigError as err:
                _LOGGER.warning("MQTT BMS left out: %s", err)
                return endpoints
            broker = (mosquitto.host, mosquitto.port)
        variables = TOPIC_VARIABLES.get(map_id, {})
        self.mqtt_bms = await self._stack.enter_async_context(
            MqttBmsSimulator(
                topic_map,
                host=broker[0],
                port=broker[1],
                variables=variables,
                battery=self._mqtt_battery(),
                interval=self.config.tick,
                clock=self._clock,
            )
        )
        return dataclasses.replace(
            endpoints, mqtt=broker, mqtt_topic_map=map_id, mqtt_variables=dict(variables)
        )

    def _mqtt_battery(self) -> Battery:
        """The SunSpec inverter's battery; the Deye's when the SunSpec inverter is left out."""
        hybrid = self.plant.sunspec
        return self.plant.physics.battery if hybrid is None else hybrid.battery

    async def _start_can_bms(self, endpoints: SiteEndpoints) -> SiteEndpoints:
        if not self.config.can_bms:
            return endpoints
        interface = self.config.can_interface
        channel = self.config.can_channel or _own_can_channel(interface)
        self.can_bms = await self._stack.enter_async_context(
            CanBmsSimulator(
                interface=interface,
                channel=channel,
                battery=self.plant.physics.battery,
                interval=self.config.tick,
                clock=self._clock,
            )
        )
        return dataclasses.replace(endpoints, can_channel=channel, can_interface=interface)

    async def stop(self) -> None:
        """Stop every device, newest first."""
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            await asyncio.wait([ticker])
        self._endpoints = None
        await self._stack.aclose()
        self._stack = contextlib.AsyncExitStack()
        if self.opcua is not None:
            # asyncua leaves its cached address space (a shelve) open until the server is
            # collected, and Python 3.14's sqlite-backed shelve may only be closed by the
            # thread that opened it: this one. Collected elsewhere, it raises on close.
            gc.collect()
        if ticker is not None and not ticker.cancelled() and (error := ticker.exception()):
            raise error

    def step(self) -> Flows:
        """Settle the plant's flows now and rewrite every register image from them."""
        assert self.deye_image is not None
        assert self.deye_map is not None
        assert self.meter_image is not None
        assert self.meter_map is not None
        plant = self.plant
        settings = deye.read_settings(self.deye_image, self.deye_map)
        storage = None
        if self.sunspec is not None and plant.sunspec is not None:
            storage = self.sunspec.controls(plant.sunspec)
        timestamp, monotonic = self._clock(), self._monotonic()
        pump_settings = None
        if self.heat_pump_image is not None and self.heat_pump_map is not None:
            pump_settings = heat_pump.read_settings(self.heat_pump_image, self.heat_pump_map)
        flows = plant.step(
            timestamp, settings, storage, heat_pump=pump_settings, monotonic=monotonic
        )
        if plant.ev is not None and self.ev_image is not None:
            for metric, value in ev_charger.charger_values(plant.ev, timestamp, monotonic).items():
                self.ev_image.set(metric, value)
        if plant.battery_inverter is not None and self.battery_inverter_image is not None:
            readings = battery_inverter.inverter_values(
                plant.battery_inverter, timestamp, monotonic
            )
            for metric, value in readings.items():
                self.battery_inverter_image.set(metric, value)
        if plant.heat_pump is not None and self.heat_pump_image is not None:
            outdoor = outdoor_temperature(timestamp)
            for metric, value in heat_pump.heat_pump_values(plant.heat_pump, outdoor).items():
                self.heat_pump_image.set(metric, value)
        for metric, value in deye_readings.deye_values(plant).items():
            self.deye_image.set(metric, value)
        readings = meter.grid_meter_values(plant, unit_id=self.config.meter_unit_id)
        for metric in self.meter_map.points:
            self.meter_image.set(metric, readings[metric])
        if self.sunspec is not None:
            self.sunspec.refresh(plant)
        return flows

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.config.tick)
            self.step()

    def _modbus_gateway_write(self, unit: int, address: int, values: list[int]) -> None:
        if unit == self.config.deye.unit_id:
            assert self.deye_image is not None
            assert self.deye_map is not None
            deye.accept_write(self.deye_image, self.deye_map, address, len(values))
            self.step()
        else:
            self._meter_write(unit, address, values)

    def _meter_write(self, unit: int, address: int, values: list[int]) -> None:
        # The meter takes no settings: cleared, the written registers are restored by the
        # refresh (everything the image holds apart from its points reads 0).
        assert self.meter_image is not None
        self.meter_image.write(RegisterSpace.HOLDING, address, [0] * len(values))
        self.step()

    def _ev_write(self, unit: int, address: int, values: list[int]) -> None:
        """A master wrote the current limit or the phases: the charger takes them now."""
        assert self.ev_image is not None
        assert self.ev_map is not None
        assert self.plant.ev is not None
        settings = ev_charger.read_settings(self.ev_image, self.ev_map)
        limit = ev_charger.written(self.ev_map, "ev_current_limit_a", address, len(values))
        self.plant.ev.accept(settings, self._monotonic(), limit_written=limit)
        self.step()

    def _heat_pump_write(self, unit: int, address: int, values: list[int]) -> None:
        self.step()

    def _battery_inverter_write(self, unit: int, address: int, values: list[int]) -> None:
        """A master wrote the ESS setpoint (or a setting): the Multi takes it now."""
        assert self.battery_inverter_image is not None
        assert self.battery_inverter_map is not None
        assert self.plant.battery_inverter is not None
        settings = battery_inverter.read_settings(
            self.battery_inverter_image, self.battery_inverter_map
        )
        setpoint = battery_inverter.written(
            self.battery_inverter_map, BATTERY_POWER, address, len(values)
        )
        self.plant.battery_inverter.accept(settings, self._monotonic(), setpoint_written=setpoint)
        self.step()

    def _sunspec_write(self, unit: int, address: int, values: list[int]) -> None:
        assert self.sunspec is not None
        self.sunspec.note_write(address, len(values))
        self.step()
