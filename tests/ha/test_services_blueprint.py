"""The bundled blueprint, run by Home Assistant's automation engine against the simulated site."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component

from edge_ems.sim.site import SimulatedSite

from .support import (
    BESS,
    LIVE,
    SUNSPEC,
    ha_device_id,
    setup_battery_site,
)

pytestmark = pytest.mark.ha

BLUEPRINTS = Path(__file__).parents[2] / "blueprints"
CHARGE_WHEN_CHEAP = "edge_ems/charge_when_cheap.yaml"
PRICE = "sensor.spot_price"


@pytest.fixture(name="config_dir")
async def fixture_config_dir(hass: HomeAssistant, tmp_path: Path) -> AsyncIterator[Path]:
    """A configuration folder of the test's own, holding the bundled blueprints.

    The automations are turned off afterwards: their minute timer would outlive the test.
    """
    await hass.async_add_executor_job(shutil.copytree, BLUEPRINTS, tmp_path / "blueprints")
    hass.config.config_dir = str(tmp_path)
    yield tmp_path
    if hass.services.has_service("automation", "turn_off"):
        await hass.services.async_call(
            "automation", "turn_off", {"entity_id": "all"}, blocking=True
        )


async def start_automation(hass: HomeAssistant, inputs: dict[str, object]) -> None:
    """The blueprint as an automation, as the UI would save it."""
    automation = {
        "id": "cheap_charge",
        "alias": "Cheap charge",
        "use_blueprint": {"path": CHARGE_WHEN_CHEAP, "input": inputs},
    }
    assert await async_setup_component(hass, "automation", {"automation": automation})
    await hass.async_block_till_done()
    assert hass.states.get("automation.cheap_charge") is not None


async def test_cheap_power_charges_the_site_batteries(
    hass: HomeAssistant, config_dir: Path, sim_site: SimulatedSite
) -> None:
    entry = await setup_battery_site(hass, sim_site, options=LIVE)
    hass.states.async_set(PRICE, "0.30")
    await start_automation(
        hass,
        {"site": entry.entry_id, "price_sensor": PRICE, "max_price": 0.1, "charge_power_w": 2500},
    )
    hass.states.async_set(PRICE, "0.20")  # a change, but not cheap: nothing happens
    await hass.async_block_till_done()
    assert entry.runtime_data.audit.records() == []

    hass.states.async_set(PRICE, "0.05")
    await hass.async_block_till_done()
    records = entry.runtime_data.audit.records()
    assert {(r["device_id"], r["outcome"], r["applied"], r["ttl"]) for r in records} == {
        (BESS, "applied", -2000, 180),
        (SUNSPEC, "applied", -500, 180),
    }
    assert {r["requested_by"] for r in records} == {"automation:automation.cheap_charge"}
    assert entry.runtime_data.dispatcher.leases().keys() == {BESS, SUNSPEC}


async def test_one_battery_until_it_is_full(
    hass: HomeAssistant, config_dir: Path, sim_site: SimulatedSite
) -> None:
    entry = await setup_battery_site(hass, sim_site, options=LIVE)
    hass.states.async_set(PRICE, "0.30")
    hass.states.async_set("sensor.bess_soc", "95", {"device_class": "battery"})
    await start_automation(
        hass,
        {
            "site": entry.entry_id,
            "battery": ha_device_id(hass, entry, BESS),
            "price_sensor": PRICE,
            "soc_sensor": "sensor.bess_soc",
            "target_soc": 90,
        },
    )
    hass.states.async_set(PRICE, "0.05")  # cheap, but the battery is full enough
    await hass.async_block_till_done()
    assert entry.runtime_data.audit.records() == []

    hass.states.async_set("sensor.bess_soc", "40", {"device_class": "battery"})
    hass.states.async_set(PRICE, "0.04")
    await hass.async_block_till_done()
    (record,) = entry.runtime_data.audit.records()
    assert (record["device_id"], record["outcome"], record["applied"]) == (BESS, "applied", -3000)
