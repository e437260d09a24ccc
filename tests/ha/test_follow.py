"""Read-back verification in Home Assistant: a repair when a leased command is not held."""

from __future__ import annotations

import struct
from datetime import timedelta

from custom_components.edge_ems.const import DOMAIN
from custom_components.edge_ems.follow import CHECK_EVERY, issue_id
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
from pymodbus.client import AsyncModbusTcpClient
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from edge_ems.sim.config import SiteConfig

from .support import LIVE, StartSite, call, ha_device_id, setup_site, subentry

EV_SITE = SiteConfig(sunspec=None, bess=None, mqtt_bms=None, can_bms=False, heat_pump=None)
LIMIT = "ev_current_limit_a"


async def test_a_current_another_master_overwrites_raises_a_repair(
    hass: HomeAssistant, start_site: StartSite
) -> None:
    site = await start_site(EV_SITE)
    ends = site.endpoints
    charger = {
        "point_map": "alfen_eve",
        "transport": "tcp",
        "host": ends.host,
        "port": ends.ev_charger_port,
        "unit_id": ends.ev_charger_unit,
    }
    # A long lease, so that its own refresh does not write the current back during the test.
    entry = await setup_site(
        hass,
        [subentry("modbus", charger, subentry_id="ev", title="Carport")],
        options={**LIVE, "lease_ttl": 3600},
    )
    await call(hass, "write_point", device_id=ha_device_id(hass, entry, "ev"),
               command=LIMIT, value=10)  # fmt: skip
    coordinator = entry.runtime_data.devices["ev"].coordinator
    issues = ir.async_get(hass)
    repair = issue_id(entry.entry_id, "ev", LIMIT)
    now = dt_util.utcnow()

    async def check(after: int) -> ir.IssueEntry | None:
        await coordinator.async_refresh()
        async_fire_time_changed(hass, now + after * CHECK_EVERY + timedelta(seconds=1))
        await hass.async_block_till_done()
        return issues.async_get_issue(DOMAIN, repair)

    assert await check(1) is None  # held
    async with AsyncModbusTcpClient(ends.host, port=ends.ev_charger_port) as client:
        words = list(struct.unpack(">HH", struct.pack(">f", 16.0)))
        await client.write_registers(1210, words, device_id=ends.ev_charger_unit)
    assert await check(2) is None  # once may be a write in flight
    raised = await check(3)
    assert raised is not None
    assert raised.translation_placeholders == {
        "device": "Carport", "command": LIMIT, "expected": "10", "actual": "16.0",
    }  # fmt: skip
    # The device holds the value again: the repair goes.
    await call(hass, "write_point", device_id=ha_device_id(hass, entry, "ev"),
               command=LIMIT, value=10)  # fmt: skip
    assert await check(4) is None
