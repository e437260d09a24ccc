"""Sites without Home Assistant against a live hub: simulated BESS devices, OPC UA as the
telemetry source, a simulated battery mirrored to OPC UA, and a fleet in one process."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from asyncua import ua
from asyncua.server.server import Server

from edge_ems.dispatch import Outcome
from edge_ems.sim.opcua_server import (
    NAMESPACE,
    TELEMETRY,
    OpcUaBessSimulator,
    close_address_space_cache,
)
from edge_ems.site import HubSettings, Site, catalog_for, parse_site_file
from edge_ems.site.fleet import Fleet, Flood, flood_metrics, simulated_site
from tests.lib.bms.support import free_port

from .conftest import TOKEN, WAIT, Hub, HubFactory, eventually


def site_file(devices: list[dict[str, object]], hub: Hub) -> Site:
    """A live site with ``devices``, its agent ``agent-1`` linked to ``hub``."""
    parsed = parse_site_file(
        {
            "site": {"id": "farm", "name": "Farm"},
            "poll_interval": 0.1,
            "agent": {"id": "agent-1", "flush_interval": 0.1},
            "control": {"enable_control": True, "dry_run": False},
            "devices": devices,
        }
    )
    description = dataclasses.replace(
        parsed.description, hub=HubSettings((hub.address,), TOKEN, parsed.agent_id)
    )
    return Site(description, catalog_for(description))


@pytest.fixture
async def sites() -> AsyncIterator[list[Site]]:
    started: list[Site] = []
    yield started
    for site in started:
        await site.stop()


@pytest.fixture(scope="module")
def address_space(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("opcua") / "address-space"


async def test_simulated_site_streams_and_obeys(hub: Hub, sites: list[Site]) -> None:
    site = site_file(
        [
            {"id": "bess-1", "kind": "sim_bess", "capacity_wh": 10_000},
            {"id": "bess-2", "kind": "sim_bess", "capacity_wh": 30_000},
        ],
        hub,
    )
    sites.append(site)
    await site.start()
    await eventually(
        lambda: {s[:2] for s in hub.sink.samples("agent-1")}
        >= {("bess-1", "soc_pct"), ("bess-2", "battery_power_w"), ("bess-2", "battery_state")}
    )
    result = await hub.server.dispatch(-4000, site_id="farm", issued_by="planner")
    assert {r.device_id: r.applied for r in result.records} == {"bess-1": -1000, "bess-2": -3000}
    await eventually(
        lambda: any(
            s[:2] == ("bess-2", "battery_power_w") and s[3] == -3000
            for s in hub.sink.samples("agent-1")
        )
    )
    rows = hub.server.registry.assets()
    assert [(r.asset_id, r.capacity_wh, r.type) for r in rows] == [
        ("bess-1", 10_000, "battery"),
        ("bess-2", 30_000, "battery"),
    ]


async def test_opcua_is_the_telemetry_source(
    hub: Hub, sites: list[Site], address_space: Path
) -> None:
    async with OpcUaBessSimulator(
        port=free_port(), interval=0.1, address_space_cache=address_space
    ) as simulator:
        battery = {"max_charge_w": 3000, "max_discharge_w": 3000, "capacity_wh": 10_000}
        device = {"id": "plant", "kind": "opcua", "url": simulator.url, "node_map": "sim_bess"}
        site = site_file([{**device, "battery": battery}], hub)
        sites.append(site)
        await site.start()
        await eventually(
            lambda: ("plant", "soc_pct") in {s[:2] for s in hub.sink.samples("agent-1")}
        )
        result = await hub.server.dispatch(2500, asset_id="plant", issued_by="ops")
        [record] = result.records
        assert (record.outcome, record.applied, record.read_back) == (Outcome.APPLIED, 2500, 2500)
        await eventually(lambda: simulator.battery.power_w == 2500)


async def test_a_simulated_battery_mirrors_its_telemetry_to_opcua(
    hub: Hub, sites: list[Site], address_space: Path
) -> None:
    url = f"opc.tcp://127.0.0.1:{free_port()}/edge-ems/scada"
    server = Server()
    await server.init(address_space)
    server.set_endpoint(url)
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    index = ua.Int16(await server.register_namespace(NAMESPACE))
    bess = await server.nodes.objects.add_object(ua.NodeId("BESS", index), "BESS")
    nodes = {}
    for name, metric in TELEMETRY.items():
        node = await bess.add_variable(
            ua.NodeId(f"BESS.{name}", index), name, ua.Variant(0.0, ua.VariantType.Double)
        )
        await node.set_writable()
        nodes[metric] = node
    await server.start()
    try:
        mirror = {"url": url, "node_map": "sim_bess"}
        device = {"id": "bess-1", "kind": "sim_bess", "soc_pct": 64, "mirror": mirror}
        site = site_file([device], hub)
        sites.append(site)
        await site.start()
        assert site.agent is not None
        async with asyncio.timeout(WAIT):
            await site.agent.wait_connected()
        await hub.server.dispatch(-1500, asset_id="bess-1", issued_by="ops")
        async with asyncio.timeout(WAIT):
            while await nodes["battery_power_w"].read_value() != -1500:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert round(await nodes["soc_pct"].read_value()) == 64
        assert ("bess-1", "soc_pct") in {s[:2] for s in hub.sink.samples("agent-1")}
    finally:
        await sites.pop().stop()
        await server.stop()
        close_address_space_cache(server)


async def test_a_fleet_floods_the_hub(hub_factory: HubFactory) -> None:
    tokens = {f"fleet-{n:04d}": TOKEN for n in range(1, 4)}
    hub = await hub_factory(tokens)
    sites = [simulated_site(n, prefix="fleet", read_interval=0.2) for n in range(1, 4)]
    fleet = Fleet(sites, HubSettings((hub.address,), TOKEN, ""), flood=Flood(metrics=3, samples=20))
    await fleet.start()
    try:
        await eventually(lambda: hub.server.stats().points > 3 * 3 * 20 * 5)
        assert sorted(hub.server.connected_agents()) == sorted(tokens)
        result = await hub.server.dispatch(3000, site_id="fleet-0002", issued_by="t")
        assert [r.applied for r in result.records] == [1500, 1500]
        stats = fleet.stats()
        assert (stats.agents, stats.connected) == (3, 3)
        assert stats.flooded_points > 0
        flooded = {s[1] for s in hub.sink.samples("fleet-0001")}
        assert set(flood_metrics(3)) <= flooded
    finally:
        await fleet.stop()
