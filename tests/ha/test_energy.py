"""Home Assistant's own Energy dashboard validation accepts our grid, solar and battery
sensors."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_socket
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
    do_adhoc_statistics,
)
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from .support import MODBUS_ONLY, StartSite, deye, meter, setup_site, subentry


@pytest.fixture(autouse=True)
def _custom_integrations(recorder_mock: Any, enable_custom_integrations: None) -> None:
    """The recorder must start before Home Assistant (and so before custom integrations)."""
    pytest_socket.enable_socket()


async def test_energy_validation_finds_no_error(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    start_site: StartSite,
) -> None:
    assert await async_setup_component(hass, "energy", {})
    site = await start_site(MODBUS_ONLY)
    await setup_site(
        hass,
        [subentry("modbus", deye(site), subentry_id="deye", title="Deye"),
         subentry("modbus", meter(site), subentry_id="meter", title="Grid meter")],
    )  # fmt: skip
    # The Energy dashboard reads long-term statistics: record the states, compile them.
    await async_wait_recording_done(hass)
    now = dt_util.utcnow()
    do_adhoc_statistics(hass, start=now.replace(minute=now.minute - now.minute % 5, second=0,
                                                microsecond=0))  # fmt: skip
    await async_wait_recording_done(hass)
    client = await hass_ws_client(hass)
    await client.send_json_auto_id(
        {
            "type": "energy/save_prefs",
            "energy_sources": [
                {
                    "type": "grid",
                    "stat_energy_from": "sensor.grid_meter_grid_import_energy",
                    "stat_energy_to": "sensor.grid_meter_grid_export_energy",
                    "stat_cost": None,
                    "entity_energy_price": None,
                    "number_energy_price": None,
                    "stat_compensation": None,
                    "entity_energy_price_export": None,
                    "number_energy_price_export": None,
                    "cost_adjustment_day": 0,
                },
                {
                    "type": "solar",
                    "stat_energy_from": "sensor.deye_pv_energy",
                    "config_entry_solar_forecast": None,
                },
                {
                    "type": "battery",
                    "stat_energy_from": "sensor.deye_battery_discharge_energy",
                    "stat_energy_to": "sensor.deye_battery_charge_energy",
                },
            ],
        }
    )
    saved = await client.receive_json()
    assert saved["success"], saved
    await hass.async_block_till_done()
    await client.send_json_auto_id({"type": "energy/validate"})
    validated = await client.receive_json()
    assert validated["success"], validated
    result = validated["result"]
    assert len(result["energy_sources"]) == 3
    assert result["energy_sources"] == [[], [], []]
