"""What the action, lease and audit tests share, on top of the integration's test support.

The site entry is a real config entry with a subentry per device (the Deye behind the
Modbus gateway, the SunSpec hybrid, the OPC UA BESS), set up by Home Assistant as it sets up
any entry; its devices answer from the simulators on loopback ports.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

import pytest
import pytest_socket
from custom_components.edge_ems.models import EdgeEmsConfigEntry
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import device_registry as dr

from edge_ems.pointmap import RegisterSpace
from edge_ems.sim.config import SiteConfig
from edge_ems.sim.site import SimulatedSite

from .support import DOMAIN, PATIENCE, deye, opcua, subentry, sunspec
from .support import eventually as wait_for
from .support import setup_site as setup_entry

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


@pytest.fixture(name="sim_site")
async def fixture_sim_site(
    enable_custom_integrations: None, start_site: Callable[[SiteConfig], Awaitable[SimulatedSite]]
) -> SimulatedSite:
    """The Deye (with the meter) behind its gateway, the SunSpec hybrid and the OPC UA BESS."""
    pytest_socket.enable_socket()  # also where the package's autouse fixture is replaced
    return await start_site(SITE)


async def setup_site(
    hass: HomeAssistant, site: SimulatedSite, *, options: Mapping[str, Any]
) -> EdgeEmsConfigEntry:
    """A loaded site entry over ``site`` with ``options`` (and the batteries' limits)."""
    devices = [
        subentry("modbus", deye(site), subentry_id=DEYE, title="Deye"),
        subentry("sunspec", sunspec(site), subentry_id=SUNSPEC, title="SunSpec"),
        subentry("opcua", opcua(site), subentry_id=BESS, title="BESS"),
    ]
    entry = await setup_entry(hass, devices, options={"batteries": BATTERIES, **options})
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


async def eventually[T](probe: Callable[[], T], *, within: float = PATIENCE) -> T:
    """Wait until ``probe`` returns something true, and return it."""
    return await wait_for(probe, bool, within=within)
