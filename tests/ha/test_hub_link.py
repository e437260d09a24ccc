"""End to end over real sockets: the simulators, the integration in Home Assistant's test
harness, and the hub as its own process (``python -m edge_ems.hub``).

Telemetry: simulated devices → coordinators → the site's gateway agent → the hub's gateway →
its store → ``/measurements``. Control: ``/dispatch`` → the hub's gateway → the site's agent →
the site's guarded Dispatcher → the simulated battery's setpoint; the audit record lands in
Home Assistant's audit log and in the hub's ``/audit``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from custom_components.edge_ems import hub as hub_module
from custom_components.edge_ems.const import DOMAIN
from custom_components.edge_ems.hub import CHECK_EVERY, issue_id
from custom_components.edge_ems.site import hub_settings
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import async_fire_time_changed
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from edge_ems.sim.site import SimulatedSite

from .hub_process import AGENT_TOKEN, AUTH, PATIENCE, get, hub_process, until
from .support import (
    BESS,
    DEYE,
    LIVE,
    SUNSPEC,
    setup_battery_site,
)

type StartHub = Callable[[], Coroutine[Any, Any, asyncio.subprocess.Process]]


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[tuple[StartHub, str, str]]:
    """Start (and restart) the hub process; its API and gateway addresses."""
    extra = f"assets:\n  - {{asset_id: {BESS}, site_id: home, name: BESS, site_name: Home}}"
    async with hub_process(tmp_path, extra) as process:
        yield process.start, process.api, process.gateway


async def test_a_hub_out_of_reach_is_said_once_and_repaired_on_reconnect(
    hass: HomeAssistant,
    sim_site: SimulatedSite,
    hub: tuple[StartHub, str, str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    hass_client: ClientSessionGenerator,
) -> None:
    start_hub, _, gateway = hub
    entry = await setup_battery_site(
        hass, sim_site, options={**LIVE, "hub": gateway, "hub_token": AGENT_TOKEN}
    )
    agent = entry.runtime_data.site.agent
    assert agent is not None
    # Nothing listens yet: the agent tries, and tries again, and says so once.
    async with asyncio.timeout(PATIENCE):
        while agent.down_since is None or time.time() - agent.down_since < 3:  # noqa: ASYNC110 - a few attempts
            await asyncio.sleep(0.2)
    said = [r for r in caplog.records if r.name == "edge_ems.agent.client" and r.levelno >= 30]
    assert len(said) == 1
    assert "trying again" in said[0].getMessage()
    issues = ir.async_get(hass)
    assert issues.async_get_issue(DOMAIN, issue_id(entry.entry_id)) is None  # not for a blip
    monkeypatch.setattr(hub_module, "UNREACHABLE_AFTER", timedelta(0))
    async_fire_time_changed(hass, dt_util.utcnow() + CHECK_EVERY)
    await hass.async_block_till_done()
    issue = issues.async_get_issue(DOMAIN, issue_id(entry.entry_id))
    assert issue is not None
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["hub"] == gateway
    # Diagnostics keep where the hub is and the token to themselves.
    shown = json.dumps(await get_diagnostics_for_config_entry(hass, hass_client, entry))
    assert gateway not in shown
    assert AGENT_TOKEN not in shown
    await start_hub()
    async with asyncio.timeout(PATIENCE):
        await agent.wait_connected()
    await hass.async_block_till_done()
    assert issues.async_get_issue(DOMAIN, issue_id(entry.entry_id)) is None


def test_hub_settings_need_an_address_and_a_token() -> None:
    assert hub_settings({}, "home") is None
    assert hub_settings({"hub": "h:1"}, "home") is None
    assert hub_settings({"hub": "h", "hub_token": "t"}, "home") is None  # not host:port
    settings = hub_settings({"hub": "a:1, b:2", "hub_token": "t"}, "home")
    assert settings is not None
    assert (settings.hubs, settings.agent_id) == (("a:1", "b:2"), "homeassistant/home")
    named = hub_settings({"hub": "a:1", "hub_token": "t", "hub_agent_id": "x"}, "home")
    assert named is not None
    assert named.agent_id == "x/home"


async def test_site_streams_to_the_hub_and_takes_its_setpoints(
    hass: HomeAssistant,
    sim_site: SimulatedSite,
    hub: tuple[StartHub, str, str],
) -> None:
    start_hub, api, gateway = hub
    process = await start_hub()
    entry = await setup_battery_site(
        hass, sim_site, options={**LIVE, "hub": gateway, "hub_token": AGENT_TOKEN}
    )
    site = entry.runtime_data
    battery = {info.asset_id: info for info in site.site.asset_infos() if info.type == "battery"}
    assert set(battery) == {"sunspec", BESS}
    assert battery[BESS].max_charge_w == 5000
    async with aiohttp.ClientSession() as http:

        async def connected() -> bool:
            answer = await get(http, f"{api}/agents")
            rows = [] if answer is None else answer["agents"]
            assert {row["agent_id"] for row in rows} <= {"homeassistant/home", None}
            # The configured BESS and the two assets the site registered besides.
            return sorted((row["asset_id"], row["connected"]) for row in rows) == [
                (BESS, True),
                (DEYE, True),
                (SUNSPEC, True),
            ]

        await until(connected)

        async def batteries_registered() -> bool:
            # The SunSpec hybrid shows its storage controls once it answered: the site
            # registers again with them.
            answer = await get(http, f"{api}/assets")
            rows = [] if answer is None else answer["assets"]
            return {row["asset_id"] for row in rows if row["type"] == "battery"} == {
                SUNSPEC,
                BESS,
            }

        await until(batteries_registered)

        async def soc_reported() -> bool:
            answer = await get(http, f"{api}/telemetry/{BESS}")
            return answer is not None and "soc_pct" in answer["values"]

        await until(soc_reported)

        async with http.post(
            f"{api}/dispatch",
            json={"asset_id": BESS, "power_w": -3000, "ttl_s": 300, "requested_by": "e2e"},
            headers=AUTH,
        ) as response:
            assert response.status == 200, await response.text()
            [record] = (await response.json())["records"]
        assert (record["outcome"], record["applied"], record["source"]) == (
            "applied",
            -3000,
            "hub",
        )
        bess = sim_site.plant.bess
        assert bess is not None

        async def charging() -> bool:
            await hass.async_block_till_done()
            return bess.command_w == -3000

        await until(charging)
        # The same record in Home Assistant's audit log and in the hub's.
        assert record["id"] in [kept["id"] for kept in site.audit.records()]
        hub_audit = await get(http, f"{api}/audit", device_id=BESS)
        assert record["id"] in [kept["id"] for kept in hub_audit["records"]]

        # What happens at the site reaches the hub too: a release asked for in HA.
        answer: Any = await hass.services.async_call(
            DOMAIN, "release", {"config_entry_id": entry.entry_id},
            blocking=True, return_response=True,
        )  # fmt: skip
        assert answer is not None
        released = {kept["id"] for kept in answer["records"]}

        async def release_reported() -> bool:
            answer = await get(http, f"{api}/audit", device_id=BESS)
            return answer is not None and bool(released & {r["id"] for r in answer["records"]})

        await until(release_reported)

        # SIGTERM flushes the open minutes; a new hub on the same store serves them.
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(PATIENCE):
            assert await process.wait() == 0
        await start_hub()
        # The site's agent finds the hub back by itself.
        await until(connected)
        since = str(round(time.time() * 1000) - 3_600_000)

        async def measured() -> Any:
            answer = await get(
                http, f"{api}/measurements", asset=BESS, metric="soc_pct", **{"from": since}
            )
            return answer and answer["series"]

        [series] = await until(measured)
        assert series["site_id"] == "home"
        assert sum(point[5] for point in series["points"]) > 0  # the count column
