"""What a simulated site holds, as data: sizes, start values and which devices run.

``edge-ems sim --config site.yaml`` reads it from YAML; every key is optional::

    load: {base_w: 350}
    deye: {unit_id: 1, pv_peak_w: 8000, capacity_wh: 10000, max_power_w: 5000, soc_pct: 55}
    meter: {unit_id: 2}  # the SDM630, behind the Deye's gateway
    sunspec: {
        unit_id: 1,
        pv_peak_w: 4000,
        rated_w: 5000,
        capacity_wh: 5000,
        max_power_w: 2500,
        soc_pct: 40,
    }
    bess: {capacity_wh: 20000, max_power_w: 5000, soc_pct: 60}
    mqtt_bms: {topic_map: esphome_jk_bms}  # publishes the SunSpec inverter's battery
    can_bms: {interface: udp_multicast}  # sends the Deye's battery (default: virtual)
    ev_charger: {
        unit_id: 1,
        capacity_wh: 60000,
        soc_pct: 40,
        fallback_current_a: 10,
        validity_s: 60,
        period_h: 8,
        stay_h: 5,
    }  # an Alfen Eve and its car
    heat_pump: {unit_id: 1, heat_max_w: 8000, room_c: 20.5, dhw_c: 46}  # Stiebel Eltron ISG
    battery_inverter: {
        unit_id: 227,
        capacity_wh: 10000,
        max_power_w: 4000,
        soc_pct: 50,
        watchdog_s: 60,
    }  # a Victron MultiPlus-II in ESS mode 3 behind a GX
    tick: 1.0  # seconds between physics updates

``sunspec``, ``bess``, ``mqtt_bms``, ``can_bms``, ``ev_charger``, ``heat_pump`` and
``battery_inverter`` can be ``false`` to leave that device out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import voluptuous as vol
import yaml

from ..exceptions import ConfigError


@dataclass(frozen=True, slots=True)
class DeyeConfig:
    """The Deye hybrid inverter with its PV array and its battery."""

    unit_id: int = 1
    pv_peak_w: float = 8000.0
    capacity_wh: float = 10_000.0
    max_power_w: float = 5000.0
    soc_pct: float = 55.0


@dataclass(frozen=True, slots=True)
class SunSpecConfig:
    """The AC-coupled SunSpec hybrid inverter with its own PV array and battery."""

    unit_id: int = 1
    pv_peak_w: float = 4000.0
    rated_w: float = 5000.0
    capacity_wh: float = 5000.0
    max_power_w: float = 2500.0
    soc_pct: float = 40.0


@dataclass(frozen=True, slots=True)
class BessConfig:
    """The battery energy storage system behind the OPC UA server."""

    capacity_wh: float = 20_000.0
    max_power_w: float = 5000.0
    soc_pct: float = 60.0


@dataclass(frozen=True, slots=True)
class EvChargerConfig:
    """The EV charger (an Alfen Eve socket) and the car that visits it."""

    unit_id: int = 1
    capacity_wh: float = 60_000.0
    soc_pct: float = 40.0
    """The car's state of charge when the simulation starts (it is plugged in)."""
    arrival_soc_pct: float = 30.0
    max_power_w: float = 11_000.0
    fallback_current_a: float = 10.0
    validity_s: float = 60.0
    """How long a written current limit holds without being written again."""
    period_h: float = 8.0
    stay_h: float = 5.0


@dataclass(frozen=True, slots=True)
class HeatPumpConfig:
    """The heat pump (a Stiebel Eltron WPM behind its ISG), its house and its tank."""

    unit_id: int = 1
    heat_max_w: float = 8000.0
    house_ua_w_k: float = 250.0
    room_c: float = 20.5
    dhw_c: float = 46.0


@dataclass(frozen=True, slots=True)
class BatteryInverterConfig:
    """The battery inverter (a Victron MultiPlus-II in ESS mode 3 behind a GX) and its battery."""

    unit_id: int = 227
    """The GX's unit id of the VE.Bus service (227 on a Cerbo GX)."""
    capacity_wh: float = 10_000.0
    max_power_w: float = 4000.0
    soc_pct: float = 50.0
    watchdog_s: float = 60.0
    """How long the Multi holds an ESS setpoint nobody rewrites."""


CAN_INTERFACES = ("virtual", "udp_multicast")
"""python-can interfaces the simulated CAN BMS can send on."""


@dataclass(frozen=True, slots=True)
class SiteConfig:
    """One simulated site. ``None`` leaves a device out."""

    load_base_w: float = 350.0
    deye: DeyeConfig = field(default_factory=DeyeConfig)
    meter_unit_id: int = 2
    sunspec: SunSpecConfig | None = field(default_factory=SunSpecConfig)
    bess: BessConfig | None = field(default_factory=BessConfig)
    mqtt_bms: str | None = "esphome_jk_bms"
    """Catalog id of the topic map the MQTT BMS publishes by."""
    can_bms: bool = True
    can_interface: str = "virtual"
    """python-can interface of the CAN BMS: ``virtual`` reaches this process only,
    ``udp_multicast`` every process on the machine (an agent or Home Assistant beside it)."""
    can_channel: str | None = None
    """The CAN BMS's channel (a multicast group for ``udp_multicast``); ``None`` gives each site
    one of its own, so that sites do not hear each other's batteries."""
    tick: float = 1.0
    """Seconds (of real time) between physics updates."""
    ev_charger: EvChargerConfig | None = field(default_factory=EvChargerConfig)
    heat_pump: HeatPumpConfig | None = field(default_factory=HeatPumpConfig)
    battery_inverter: BatteryInverterConfig | None = field(default_factory=BatteryInverterConfig)

    def __post_init__(self) -> None:
        if self.deye.unit_id == self.meter_unit_id:
            raise ConfigError(
                f"the Deye and the meter share a gateway: unit id {self.meter_unit_id} "
                "cannot be both"
            )
        if self.tick <= 0:
            raise ConfigError(f"tick must be positive, got {self.tick}")


_POSITIVE = vol.All(vol.Coerce(float), vol.Range(min=0, min_included=False))
_SOC = vol.All(vol.Coerce(float), vol.Range(min=0, max=100))
_UNIT = vol.All(int, vol.Range(min=1, max=247))
_BATTERY = {
    vol.Optional("capacity_wh"): _POSITIVE,
    vol.Optional("max_power_w"): _POSITIVE,
    vol.Optional("soc_pct"): _SOC,
}
_SCHEMA = vol.Schema(
    {
        vol.Optional("load"): {vol.Optional("base_w"): _POSITIVE},
        vol.Optional("deye"): {
            vol.Optional("unit_id"): _UNIT,
            vol.Optional("pv_peak_w"): _POSITIVE,
            **_BATTERY,
        },
        vol.Optional("meter"): {vol.Optional("unit_id"): _UNIT},
        vol.Optional("sunspec"): vol.Any(
            False,
            {
                vol.Optional("unit_id"): _UNIT,
                vol.Optional("pv_peak_w"): _POSITIVE,
                vol.Optional("rated_w"): _POSITIVE,
                **_BATTERY,
            },
        ),
        vol.Optional("bess"): vol.Any(False, _BATTERY),
        vol.Optional("mqtt_bms"): vol.Any(False, {vol.Optional("topic_map"): str}),
        vol.Optional("can_bms"): vol.Any(
            False,
            {
                vol.Optional("interface"): vol.In(CAN_INTERFACES),
                vol.Optional("channel"): str,
            },
        ),
        vol.Optional("ev_charger"): vol.Any(
            False,
            {
                vol.Optional("unit_id"): _UNIT,
                vol.Optional("capacity_wh"): _POSITIVE,
                vol.Optional("soc_pct"): _SOC,
                vol.Optional("arrival_soc_pct"): _SOC,
                vol.Optional("max_power_w"): _POSITIVE,
                vol.Optional("fallback_current_a"): vol.All(
                    vol.Coerce(float), vol.Range(min=0, max=32)
                ),
                vol.Optional("validity_s"): _POSITIVE,
                vol.Optional("period_h"): _POSITIVE,
                vol.Optional("stay_h"): _POSITIVE,
            },
        ),
        vol.Optional("heat_pump"): vol.Any(
            False,
            {
                vol.Optional("unit_id"): _UNIT,
                vol.Optional("heat_max_w"): _POSITIVE,
                vol.Optional("house_ua_w_k"): _POSITIVE,
                vol.Optional("room_c"): vol.All(vol.Coerce(float), vol.Range(min=0, max=35)),
                vol.Optional("dhw_c"): vol.All(vol.Coerce(float), vol.Range(min=5, max=75)),
            },
        ),
        vol.Optional("battery_inverter"): vol.Any(
            False,
            {vol.Optional("unit_id"): _UNIT, vol.Optional("watchdog_s"): _POSITIVE, **_BATTERY},
        ),
        vol.Optional("tick"): _POSITIVE,
    }
)


def _section[T](kind: type[T], data: Any, default: T | None) -> T | None:
    if data is False:
        return None
    return kind(**data) if data is not None else default


def site_config(data: Any, *, source: str = "<site>") -> SiteConfig:
    """Validate a site description (YAML's data) into a :class:`SiteConfig`."""
    try:
        valid = _SCHEMA(data or {})
    except vol.Invalid as err:
        where = ".".join(str(part) for part in err.path)
        message = f"{source}: {where}: {err.msg}" if where else f"{source}: {err.msg}"
        raise ConfigError(message) from None
    defaults = SiteConfig()
    mqtt, can = valid.get("mqtt_bms"), valid.get("can_bms")
    return SiteConfig(
        load_base_w=valid.get("load", {}).get("base_w", defaults.load_base_w),
        deye=DeyeConfig(**valid.get("deye", {})),
        meter_unit_id=valid.get("meter", {}).get("unit_id", defaults.meter_unit_id),
        sunspec=_section(SunSpecConfig, valid.get("sunspec"), defaults.sunspec),
        bess=_section(BessConfig, valid.get("bess"), defaults.bess),
        mqtt_bms=None if mqtt is False else (mqtt or {}).get("topic_map", defaults.mqtt_bms),
        can_bms=can is not False,
        can_interface=(can or {}).get("interface", defaults.can_interface),
        can_channel=None if can is False else (can or {}).get("channel"),
        tick=valid.get("tick", defaults.tick),
        ev_charger=_section(EvChargerConfig, valid.get("ev_charger"), defaults.ev_charger),
        heat_pump=_section(HeatPumpConfig, valid.get("heat_pump"), defaults.heat_pump),
        battery_inverter=_section(
            BatteryInverterConfig, valid.get("battery_inverter"), defaults.battery_inverter
        ),
    )


def load_site_config(path: str | Path) -> SiteConfig:
    """Read a site description from a YAML file (blocking I/O)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read: {err}") from None
    return site_config(data, source=str(path))
