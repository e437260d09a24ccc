"""What the integration's tests share: site configs, subentries per device kind, waiting."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from custom_components.edge_ems.const import DOMAIN
from homeassistant.config_entries import ConfigSubentryDataWithId
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

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


def deye(site: SimulatedSite) -> dict[str, Any]:
    """Subentry data of the Deye behind the simulated RS-485 gateway."""
    ends = site.endpoints
    return {
        "point_map": "deye_sun_sg_hybrid",
        "transport": "tcp",
        "host": ends.host,
        "port": ends.gateway_port,
        "unit_id": ends.deye_unit,
    }


def meter(site: SimulatedSite, *, rtu_over_tcp: bool = False) -> dict[str, Any]:
    """Subentry data of the SDM630, behind the gateway or alone as RTU over TCP."""
    ends = site.endpoints
    return {
        "point_map": "eastron_sdm630",
        "transport": "rtu_over_tcp" if rtu_over_tcp else "tcp",
        "host": ends.host,
        "port": ends.meter_rtu_port if rtu_over_tcp else ends.gateway_port,
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
        options={"enable_control": False, "dry_run": True, "lease_ttl": 60.0,
                 "eeprom_daily_writes": 100, **(options or {})},
        subentries_data=list(devices),
    )  # fmt: skip
    entry.add_to_hass(hass)
    loaded = await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert loaded is expect_loaded, entry.state
    return entry


async def eventually[T](
    probe: Callable[[], T], check: Callable[[T], bool], *, within: float = PATIENCE
) -> T:
    """Call ``probe`` until ``check`` accepts its result; fail after ``within`` seconds."""
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
