"""Home Assistant tests: the integration against the simulators over real loopback sockets.

Run with Home Assistant's test plugin, which the normal pytest pass leaves out::

    pytest -p pytest_homeassistant_custom_component.plugins tests/ha

Home Assistant's loader finds the integration in ``custom_components``; importing the package
here makes sure it is the one from this checkout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import custom_components.edge_ems  # noqa: F401 - HA's loader imports it from here
import grpc
import pytest
import pytest_socket
from homeassistant import block_async_io
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from edge_ems.sim.config import SiteConfig
from edge_ems.sim.site import SimulatedSite
from tests.lib.bms.support import Mosquitto, free_port

from .hub_process import PLANNER, HubProcess, hub_process
from .support import BATTERY_SITE, DOMAIN, StartSite, setup_mqtt

# Home Assistant's own detection of blocking calls in the event loop, on as in production
# (the test harness leaves it off): a blocking call in our code fails the test that made it.
block_async_io.enable()


@pytest.fixture(autouse=True)
def _custom_integrations(enable_custom_integrations: None) -> None:
    """Load the integration from custom_components; let tests reach the loopback servers."""
    pytest_socket.enable_socket()


@pytest.fixture(autouse=True, scope="session")
def _grpc_poller() -> Iterator[None]:
    """grpc's asyncio poller thread, kept for the whole session: grpc starts it with a
    process's first open channel and ends it with the last, which Home Assistant's harness
    would take for a thread left behind by every test that links a site to a hub. One channel
    held open (never used) keeps the one thread for every test."""
    held: list[grpc.aio.Channel] = []

    async def open_a_channel() -> None:
        held.append(grpc.aio.insecure_channel("127.0.0.1:1"))

    asyncio.run(open_a_channel())
    yield
    held.clear()


class _Reports(logging.Handler):
    """Home Assistant's reports of deprecated use by this integration."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.found: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "Detected" in message and "integration 'edge_ems'" in message:
            self.found.append(message)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Fail a test in which the integration used something Home Assistant deprecates (HA
    reports it as "Detected that custom integration 'edge_ems' ...") or made Home Assistant
    raise a repair of its own about it. Checked after the test, while its hass still runs."""
    reports = _Reports()
    logging.getLogger().addHandler(reports)
    try:
        result = yield
    finally:
        logging.getLogger().removeHandler(reports)
    assert reports.found == [], reports.found
    hass = getattr(item, "funcargs", {}).get("hass")
    if isinstance(hass, HomeAssistant):
        theirs = [
            f"{domain}: {issue_id}"
            for (domain, issue_id), issue in ir.async_get(hass).issues.items()
            if domain != DOMAIN and DOMAIN in f"{issue_id} {issue.translation_placeholders}"
        ]
        assert theirs == [], theirs
    return result


@pytest.fixture(scope="session")
def opcua_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OPC UA's standard address space, built once for every simulated server."""
    return tmp_path_factory.mktemp("opcua") / "address-space"


@pytest.fixture
async def start_site(hass: HomeAssistant, opcua_cache: Path) -> AsyncIterator[StartSite]:
    """Start simulated sites with the devices a test needs; entries unload before they stop."""
    sites: list[SimulatedSite] = []

    async def start(config: SiteConfig, mqtt: tuple[str, int] | None = None) -> SimulatedSite:
        site = SimulatedSite(config, mqtt=mqtt, opcua_cache=opcua_cache)
        await site.start()
        sites.append(site)
        return site

    yield start
    for entry in hass.config_entries.async_entries(DOMAIN):
        if entry.state is ConfigEntryState.LOADED:
            await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    for site in sites:
        await site.stop()


@pytest.fixture
async def sim_site(enable_custom_integrations: None, start_site: StartSite) -> SimulatedSite:
    """A simulated :data:`~.support.BATTERY_SITE`."""
    pytest_socket.enable_socket()  # also where a module replaces the autouse fixture above
    return await start_site(BATTERY_SITE)


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[Mosquitto]:
    """A real mosquitto broker on a free loopback port (started and stopped off the loop)."""
    pytest_socket.enable_socket()
    mosquitto = Mosquitto(tmp_path, free_port())
    await asyncio.to_thread(mosquitto.start)
    yield mosquitto
    await asyncio.to_thread(mosquitto.stop)


@pytest.fixture
async def ha_mqtt(
    hass: HomeAssistant, broker: Mosquitto, tmp_path: Path
) -> AsyncIterator[Mosquitto]:
    """Home Assistant's MQTT integration on the test's broker, unloaded before it stops."""
    await setup_mqtt(hass, broker, tmp_path)
    yield broker
    for entry in hass.config_entries.async_entries("mqtt"):
        await hass.config_entries.async_unload(entry.entry_id)


@pytest.fixture
async def planner_hub(tmp_path: Path) -> AsyncIterator[HubProcess]:
    """A hub that plans the site ``home`` on recorded prices, started."""
    async with hub_process(tmp_path, PLANNER) as process:
        await process.start()
        yield process
