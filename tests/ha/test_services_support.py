"""What the action, lease and audit tests share: the simulated site, a site entry over it.

The site entry is a real config entry with a subentry per device (the Deye behind the
Modbus gateway, the SunSpec hybrid, the OPC UA BESS), set up by Home Assistant as it sets up
any entry; its devices answer from the simulators on loopback ports.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import pytest_socket
from custom_components.edge_ems.const import DOMAIN
from custom_components.edge_ems.models import EdgeEmsConfigEntry
from homeassistant.config_entries import ConfigEntryState, ConfigSubentryDataWithId
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.common import MockConfigEntry

from edge_ems.pointmap import RegisterSpace
from edge_ems.sim.config import SiteConfig
from edge_ems.sim.site import SimulatedSite

DEYE = "deye"
SUNSPEC = "sunspec"
BESS = "bess"
LIVE: Mapping[str, Any] = {"enable_control": True, "dry_run": False}
BATTERIES = {
    SUNSPEC: {"max_charge_w": 2500, "max_discharge_w": 2500, "capacity_wh": 5000},
    BESS: {"max_charge_w": 5000, "max_discharge_w": 5000, "capacity_wh": 20_000},
}
"""The simulated batteries' ratings, as a user gives them in the site's options."""
SITE = SiteConfig(mqtt_bms=None, can_bms=False, tick=0.5)
PATIENCE = 60.0
"""Seconds to wait for a condition on a loaded two-core machine."""


@pytest.fixture(name="custom_integrations", autouse=True)
def fixture_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load the integration from custom_components, and let the tests
    open sockets: the simulators are real servers on the loopback interface."""
    pytest_socket.enable_socket()


@pytest.fixture(name="opcua_address_space", scope="session")
def fixture_opcua_address_space(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OPC UA's standard address space, built once and reused by every site."""
    return tmp_path_factory.mktemp("opcua") / "address-space"


@pytest.fixture(name="sim_site")
async def fixture_sim_site(
    hass: HomeAssistant, opcua_address_space: Path
) -> AsyncIterator[SimulatedSite]:
    """The simulated site; site entries over it are unloaded before it stops."""
    async with SimulatedSite(SITE, opcua_cache=opcua_address_space) as running:
        yield running
        for entry in hass.config_entries.async_entries(DOMAIN):
            if entry.state is ConfigEntryState.LOADED:
                await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()


def subentries(site: SimulatedSite) -> list[ConfigSubentryDataWithId]:
    """A subentry per device the tests drive, as the config flow would store them."""
    endpoints = site.endpoints
    assert endpoints.sunspec_port is not None
    assert endpoints.opcua_url is not None
    return [
        ConfigSubentryDataWithId(
            subentry_id=DEYE, subentry_type="modbus", title="Deye", unique_id="deye-serial",
            data={"transport": "tcp", "host": endpoints.host, "port": endpoints.gateway_port,
                  "unit_id": endpoints.deye_unit, "point_map": "deye_sun_sg_hybrid"},
        ),
        ConfigSubentryDataWithId(
            subentry_id=SUNSPEC, subentry_type="sunspec", title="SunSpec", unique_id="ss-serial",
            data={"host": endpoints.host, "port": endpoints.sunspec_port,
                  "unit_id": endpoints.sunspec_unit},
        ),
        ConfigSubentryDataWithId(
            subentry_id=BESS, subentry_type="opcua", title="BESS", unique_id="bess-serial",
            data={"url": endpoints.opcua_url, "node_map": "sim_bess"},
        ),
    ]  # fmt: skip


async def setup_site(
    hass: HomeAssistant, site: SimulatedSite, *, options: Mapping[str, Any]
) -> EdgeEmsConfigEntry:
    """A loaded site entry over ``site`` with ``options`` (and the batteries' limits)."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Home",
        data={"site_id": "home", "site_name": "Home"},
        options={"batteries": BATTERIES, **options},
        subentries_data=subentries(site),
        unique_id="home",
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    return entry  # type: ignore[return-value]


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


async def eventually[T](probe: Callable[[], T], *, within: float = PATIENCE) -> T:
    """Wait until ``probe`` returns something true, and return it."""
    deadline = time.monotonic() + within
    while not (found := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {probe}")
        await asyncio.sleep(0.1)
    return found
