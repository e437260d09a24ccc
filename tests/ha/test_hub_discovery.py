"""Linking a site to the hub: through the app's Supervisor discovery, or by hand in the options."""

from __future__ import annotations

from typing import Any

import pytest
from custom_components.edge_ems.const import DOMAIN
from homeassistant.config_entries import SOURCE_HASSIO
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .support import SITE_OPTIONS

DISCOVERY = HassioServiceInfo(
    config={
        "host": "edge-ems-hub",
        "port": 50051,
        "api_port": 8099,
        "agent_id": "homeassistant",
        "token": "announced-token",
        "api_token": "api-token",
    },
    name="Edge EMS hub",
    slug="edge_ems",
    uuid="0123456789abcdef",
)
LINKED = {
    "hub": "edge-ems-hub:50051",
    "hub_token": "announced-token",
    "hub_agent_id": "homeassistant",
}


def site(hass: HomeAssistant, site_id: str, **options: Any) -> MockConfigEntry:
    """A site entry without devices (nothing to connect to)."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=site_id.title(),
        unique_id=site_id,
        data={"site_id": site_id, "site_name": site_id.title()},
        options={**SITE_OPTIONS, **options},
    )
    entry.add_to_hass(hass)
    return entry


async def discover(hass: HomeAssistant) -> Any:
    return await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=DISCOVERY
    )


async def test_discovery_without_a_site_waits_for_one(hass: HomeAssistant) -> None:
    result = await discover(hass)
    assert (result["type"], result["reason"]) == (FlowResultType.ABORT, "no_site")


@pytest.mark.parametrize(
    "garbage",
    [
        {"token": None},
        {"token": ""},
        {"port": "not-a-port"},
        {"port": 70000},
        {"host": ""},
        {"agent_id": 7},
    ],
)
async def test_a_garbled_announcement_is_refused(
    hass: HomeAssistant, garbage: dict[str, Any]
) -> None:
    site(hass, "home")
    garbled = HassioServiceInfo(
        config={**DISCOVERY.config, **garbage}, name="x", slug="edge_ems", uuid="u1"
    )
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=garbled
    )
    assert (result["type"], result["reason"]) == (FlowResultType.ABORT, "invalid_discovery_info")


async def test_discovery_links_the_chosen_site(hass: HomeAssistant) -> None:
    site(hass, "home")
    cabin = site(hass, "cabin")
    result = await discover(hass)
    assert (result["type"], result["step_id"]) == (FlowResultType.FORM, "hassio_confirm")
    assert result["description_placeholders"] == {"hub": "edge-ems-hub:50051"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"site_id": cabin.entry_id}
    )
    assert (result["type"], result["reason"]) == (FlowResultType.ABORT, "hub_linked")
    assert result["description_placeholders"] == {"site": "Cabin"}
    assert cabin.options == {**SITE_OPTIONS, **LINKED}
    # The same announcement again finds the site linked.
    result = await discover(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"site_id": cabin.entry_id}
    )
    assert (result["type"], result["reason"]) == (FlowResultType.ABORT, "already_linked")


async def test_a_site_removed_meanwhile_is_not_linked(hass: HomeAssistant) -> None:
    home = site(hass, "home")
    result = await discover(hass)
    await hass.config_entries.async_remove(home.entry_id)
    site(hass, "cabin")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"site_id": home.entry_id}
    )
    assert (result["type"], result["reason"]) == (FlowResultType.ABORT, "no_site")


@pytest.mark.parametrize(
    ("hub", "token", "error"),
    [
        ("edge-ems-hub", "t", {"hub": "invalid_hub"}),
        ("edge-ems-hub:0", "t", {"hub": "invalid_hub"}),
        ("edge-ems-hub:port", "t", {"hub": "invalid_hub"}),
        ("a:1, :2", "t", {"hub": "invalid_hub"}),
        ("edge-ems-hub:50051", "", {"hub_token": "hub_token_missing"}),
    ],
)
async def test_options_refuse_a_bad_hub(
    hass: HomeAssistant, hub: str, token: str, error: dict[str, str]
) -> None:
    entry = site(hass, "home")
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {**SITE_OPTIONS, "hub": hub, "hub_token": token}
    )
    assert (result["type"], result["errors"]) == (FlowResultType.FORM, error)


async def test_options_link_and_unlink_the_hub(hass: HomeAssistant) -> None:
    entry = site(hass, "home")
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {**SITE_OPTIONS, "hub": "10.0.0.5:50051, 10.0.0.6:50051", "hub_token": "t"},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options["hub"] == "10.0.0.5:50051, 10.0.0.6:50051"
    assert entry.options["hub_token"] == "t"
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(result["flow_id"], SITE_OPTIONS)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert "hub" not in entry.options
    assert "hub_token" not in entry.options


async def test_options_name_what_home_assistant_gives_the_planner(hass: HomeAssistant) -> None:
    entry = site(hass, "home")
    hass.states.async_set("sensor.nordpool", "0.12", {"unit_of_measurement": "EUR/kWh"})
    linked = {**SITE_OPTIONS, "hub": "10.0.0.5:50051", "hub_token": "t"}
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {**linked, "price_entity": "sensor.nordpool", "price_kind": "import",
         "solar_forecast": True},
    )  # fmt: skip
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert (entry.options["price_entity"], entry.options["price_kind"]) == (
        "sensor.nordpool", "import",
    )  # fmt: skip
    assert entry.options["solar_forecast"] is True
    # Cleared, the entity is forgotten; the kind keeps its default.
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(result["flow_id"], linked)
    assert "price_entity" not in entry.options
    assert entry.options["price_kind"] == "spot"
