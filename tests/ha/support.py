"""What the integration's tests share: site configs, subentries per device kind, a site entry
set up as Home Assistant sets up any entry, our actions, waiting.

The devices answer from the simulators on loopback ports; the fixtures that start them are in
``conftest.py``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, cast

import pytest
from custom_components.edge_ems.const import DOMAIN
from custom_components.edge_ems.models import EdgeEmsConfigEntry
from homeassistant.config_entries import ConfigSubentryDataWithId
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.common import MockConfigEntry

from edge_ems.pointmap import RegisterSpace
from edge_ems.sim.config import SiteConfig
from edge_ems.sim.site import SimulatedSite

__all__ = ["DOMAIN"]

PATIENCE = 60.0
"""Seconds to wait for a condition on a loaded two-core machine."""

MODBUS_ONLY = SiteConfig(sunspec=None, bess=None, mqtt_bms=None, can_bms=False)
SUNSPEC_ONLY = SiteConfig(bess=None, mqtt_bms=None, can_bms=False)
OPCUA_ONLY = SiteConfig(sunspec=None, mqtt_bms=None, can_bms=False)
CAN_ONLY = SiteConfig(sunspec=None, bess=None, mqtt_bms=None)
MQTT_ONLY = SiteConfig(sunspec=None, bess=None, can_bms=False)
BATTERY_SITE = SiteConfig(mqtt_bms=None, can_bms=False, tick=0.5)
"""The Deye (with the meter) behind its gateway, the SunSpec hybrid and the OPC UA BESS."""


class StartSite(Protocol):
    """The ``start_site`` fixture: starts a simulated site (its MQTT BMS on ``mqtt``)."""

    def __call__(
        self, config: SiteConfig, mqtt: tuple[str, int] | None = None
    ) -> Awaitable[SimulatedSite]: ...


SITE_OPTIONS: Mapping[str, Any] = {
    "enable_control": False, "dry_run": True, "lease_ttl": 60.0, "eeprom_daily_writes": 100,
}  # fmt: skip
"""A new site's options, as the config flow gives them."""
LIVE: Mapping[str, Any] = {"enable_control": True, "dry_run": False}
"""Options that let the site write to its devices."""

DEYE = "deye"
SUNSPEC = "sunspec"
BESS = "bess"
BATTERIES = {
    SUNSPEC: {"max_charge_w": 2500, "max_discharge_w": 2500, "capacity_wh": 5000},
    BESS: {"max_charge_w": 5000, "max_discharge_w": 5000, "capacity_wh": 20_000},
}
"""The simulated batteries' ratings, as a user gives them in the site's options."""


def deye(site: SimulatedSite) -> dict[str, Any]:
    """Subentry data of the Deye behind the simulated RS-485 gateway."""
    ends = site.endpoints
    return {
        "point_map": "deye_sun_sg_hybrid",
        "transport": "tcp",
        "host": ends.host,
        "port": ends.modbus_gateway_port,
        "unit_id": ends.deye_unit,
    }


def meter(site: SimulatedSite, *, rtu_over_tcp: bool = False) -> dict[str, Any]:
    """Subentry data of the SDM630, behind the gateway or alone as RTU over TCP."""
    ends = site.endpoints
    return {
        "point_map": "eastron_sdm630",
        "transport": "rtu_over_tcp" if rtu_over_tcp else "tcp",
        "host": ends.host,
        "port": ends.meter_rtu_port if rtu_over_tcp else ends.modbus_gateway_port,
        "unit_id": ends.meter_unit,
    }


def sunspec(site: SimulatedSite) -> dict[str, Any]:
    """Subentry data of the SunSpec hybrid inverter."""
    ends = site.endpoints
    return {"host": ends.host, "port": ends.sunspec_port, "unit_id": ends.sunspec_unit}


def opcua(site: SimulatedSite) -> dict[str, Any]:
    """Subentry data of the OPC UA BESS."""
    return {"url": site.endpoints.opcua_url, "node_map": "sim_bess"}


def can_bms(site: SimulatedSite) -> dict[str, Any]:
    """Subentry data of the CAN BMS on python-can's virtual bus."""
    return {"interface": "virtual", "channel": site.endpoints.can_channel}


def mqtt_bms(site: SimulatedSite) -> dict[str, Any]:
    """Subentry data of the MQTT BMS, as the simulated ESPHome bridge publishes it."""
    ends = site.endpoints
    return {"topic_map": ends.mqtt_topic_map, "variables": dict(ends.mqtt_variables)}


def subentry(
    kind: str, data: Mapping[str, Any], *, subentry_id: str | None = None, title: str = ""
) -> ConfigSubentryDataWithId:
    """One device subentry, as the config flow stores it."""
    key = subentry_id or kind
    return ConfigSubentryDataWithId(
        subentry_id=key,
        subentry_type=kind,
        title=title or key,
        unique_id=f"{key}-unique",
        data=dict(data),
    )


async def setup_site(
    hass: HomeAssistant,
    devices: Sequence[ConfigSubentryDataWithId],
    *,
    options: Mapping[str, Any] | None = None,
    expect_loaded: bool = True,
) -> MockConfigEntry:
    """Add a site entry with ``devices`` and let Home Assistant set it up."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Home",
        unique_id="home",
        data={"site_id": "home", "site_name": "Home"},
        options={**SITE_OPTIONS, **(options or {})},
        subentries_data=list(devices),
    )
    entry.add_to_hass(hass)
    loaded = await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert loaded is expect_loaded, entry.state
    return entry


async def setup_battery_site(
    hass: HomeAssistant, site: SimulatedSite, *, options: Mapping[str, Any]
) -> EdgeEmsConfigEntry:
    """A loaded site entry over a :data:`BATTERY_SITE` with ``options`` (and the batteries'
    ratings)."""
    devices = [
        subentry("modbus", deye(site), subentry_id=DEYE, title="Deye"),
        subentry("sunspec", sunspec(site), subentry_id=SUNSPEC, title="SunSpec"),
        subentry("opcua", opcua(site), subentry_id=BESS, title="BESS"),
    ]
    entry = await setup_site(hass, devices, options={"batteries": BATTERIES, **options})
    return cast(EdgeEmsConfigEntry, entry)


async def call(
    hass: HomeAssistant, service: str, *, context: Context | None = None, **data: Any
) -> Any:
    """Call one of our actions and return its response."""
    return await hass.services.async_call(
        DOMAIN, service, data, blocking=True, return_response=True, context=context
    )


def ha_device_id(hass: HomeAssistant, entry: EdgeEmsConfigEntry, subentry_id: str) -> str:
    """The device registry id of the device a subentry added."""
    for device in dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id):
        if device.config_subentry_id == subentry_id:
            return device.id
    raise AssertionError(f"no device registered for subentry {subentry_id}")


def deye_register(site: SimulatedSite, address: int) -> int:
    """What the simulated Deye holds in one holding register."""
    assert site.deye_image is not None
    return site.deye_image.read(RegisterSpace.HOLDING, address, 1)[0]


async def eventually[T](
    probe: Callable[[], T], check: Callable[[T], bool] = bool, *, within: float = PATIENCE
) -> T:
    """Call ``probe`` until ``check`` accepts its result (by default: until it is true), and
    return that result; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = probe()
        if check(result):
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {within} s; last result: {result!r}")
        await asyncio.sleep(0.1)


async def setup_mqtt(hass: HomeAssistant, broker: Any, config_dir: Path) -> None:
    """Home Assistant's own MQTT integration, on the test's broker."""
    # MQTT reads its YAML settings from configuration.yaml; the test harness ships none.
    await hass.async_add_executor_job((config_dir / "configuration.yaml").write_text, "")
    hass.config.config_dir = str(config_dir)
    mqtt_entry = MockConfigEntry(domain="mqtt", data={"broker": broker.host, "port": broker.port})
    mqtt_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mqtt_entry.entry_id)
    await hass.async_block_till_done()
