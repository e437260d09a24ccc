"""No takeover: one credential cannot claim another's site or assets, whatever sub-agent it
opens, and one credential cannot open sub-agents without bound. Two real agents on one hub,
on the real store."""

from __future__ import annotations

import logging

import pytest

from edge_ems.sim.bess import SimulatedBess
from edge_ems.sim.physics import Battery

from ..gateway.conftest import SiteFactory, eventually
from .conftest import HubMaker, LiveHub


def battery(asset_id: str) -> dict[str, SimulatedBess]:
    return {asset_id: SimulatedBess(asset_id, Battery(10_000, 5000, 5000, soc_pct=50))}


async def test_a_sub_agent_cannot_take_over_another_credential_s_site_or_asset(
    live: LiveHub, site_factory: SiteFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="edge_ems.hub.gateway")
    owner = await site_factory(
        live.address, agent_id="agent-2", site_id="barn", devices=battery("barn-bess")
    )
    # agent-1's token opens sub-agents; each tries a way into agent-2's site.
    attempts = {
        "agent-1/same-site-same-asset": ("barn", "barn-bess"),
        "agent-1/own-site-their-asset": ("lab", "barn-bess"),
        "agent-1/their-site-new-asset": ("barn", "lab-bess"),
    }
    intruders = [
        await site_factory(
            live.address, agent_id=agent_id, site_id=site, devices=battery(asset), connect=False
        )
        for agent_id, (site, asset) in attempts.items()
    ]
    await eventually(lambda: live.gateway.stats().refused_registrations >= 3)
    assert not any(site.agent.connected for site in intruders)
    assert all(site.agent.stats().sessions == 0 for site in intruders)
    assert live.gateway.connected_agents() == ["agent-2"]

    assets = {row["asset_id"]: row for row in (await live.json("/assets"))["assets"]}
    assert (assets["barn-bess"]["agent_id"], assets["barn-bess"]["site_id"]) == ("agent-2", "barn")
    assert "lab-bess" not in assets
    answer = await live.post("/dispatch", {"asset_id": "barn-bess", "power_w": 1000})
    assert answer.status == 200
    assert (await answer.json())["agent_id"] == "agent-2"
    assert owner.batteries["barn-bess"].battery.command_w == 1000

    refused = (await live.json("/audit", command="register"))["records"]
    assert {(r["requested_by"], r["outcome"], r["reason"]) for r in refused} == {
        (agent_id, "refused", "not_allowed") for agent_id in attempts
    }
    assert {r["site_id"] for r in refused} == {"barn", "lab"}
    warnings = [r.getMessage() for r in caplog.records if "held by" in r.getMessage()]
    assert warnings
    assert all("agent-1/" in line for line in warnings)


async def test_the_same_credential_may_move_its_own_assets_between_its_sub_agents(
    live: LiveHub, site_factory: SiteFactory
) -> None:
    first = await site_factory(live.address, agent_id="agent-1/a", site_id="farm")
    await first.agent.stop()
    await site_factory(live.address, agent_id="agent-1/b", site_id="farm")
    assets = {row["asset_id"]: row["agent_id"] for row in (await live.json("/assets"))["assets"]}
    assert (assets["bess-1"], assets["bess-2"]) == ("agent-1/b", "agent-1/b")


async def test_an_asset_the_inventory_places_at_another_site_is_refused(
    live: LiveHub, site_factory: SiteFactory
) -> None:
    # The inventory puts "spare" at site "depot".
    intruder = await site_factory(
        live.address, agent_id="agent-1", site_id="farm", devices=battery("spare"), connect=False
    )
    await eventually(lambda: live.gateway.stats().refused_registrations >= 1)
    assert intruder.agent.stats().sessions == 0
    [record] = (await live.json("/audit", command="register"))["records"]
    assert "depot" in record["message"]


async def test_one_credential_opens_at_most_max_sub_agents(
    hub_maker: HubMaker, site_factory: SiteFactory
) -> None:
    hub = await hub_maker(max_sub_agents=3)
    for n in range(3):
        await site_factory(
            hub.address, agent_id=f"agent-1/site-{n}", site_id=f"site-{n}", devices=battery(f"b{n}")
        )
    extra = await site_factory(
        hub.address,
        agent_id="agent-1/site-3",
        site_id="site-3",
        devices=battery("b3"),
        connect=False,
    )
    await eventually(lambda: hub.gateway.stats().refused_registrations >= 1)
    assert extra.agent.stats().sessions == 0
    assert len(hub.gateway.connected_agents()) == 3
    # Another credential has its own allowance.
    await site_factory(
        hub.address, agent_id="agent-2/site-9", site_id="site-9", devices=battery("b9")
    )
