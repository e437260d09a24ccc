"""Setpoints from the hub: routing, gateway mode, the guarded path in the agent, acks with
audit records, timeouts and agents that go away."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest

from edge_ems.dispatch import ControlPolicy, Outcome, Reason
from edge_ems.gateway import RoutingError, SetpointTimeoutError
from edge_ems.gateway.proto import gateway_pb2 as pb
from edge_ems.gateway.proto.gateway_pb2_grpc import GatewayServicer, add_GatewayServicer_to_server
from edge_ems.hub.gateway import GatewaySettings
from edge_ems.hub.sessions import InventoryAsset
from edge_ems.metrics import BATTERY_POWER
from edge_ems.sim.bess import SimulatedBess
from edge_ems.sim.physics import Battery

from .conftest import WAIT, Hub, HubFactory, Proxy, SiteFactory, batteries, eventually


async def test_asset_setpoint_reaches_only_that_asset(hub: Hub, site_factory: SiteFactory) -> None:
    site = await site_factory(hub.address)
    result = await hub.server.dispatch(-3000, asset_id="bess-2", issued_by="user:ops", ttl=60)
    assert result.agent_id == "agent-1"
    assert result.error is None
    [record] = result.records
    assert (record.device_id, record.outcome, record.applied) == ("bess-2", Outcome.APPLIED, -3000)
    assert (record.requested_by, record.source) == ("user:ops", "hub")
    assert site.batteries["bess-2"].battery.command_w == -3000
    assert site.batteries["bess-1"].battery.command_w == 0
    assert [r for _, r in hub.audits] == [record]


async def test_site_setpoint_is_split_by_capacity_inside_the_agent(
    hub: Hub, site_factory: SiteFactory
) -> None:
    site = await site_factory(hub.address, devices=batteries(3))
    result = await hub.server.dispatch(12_000, site_id="farm", issued_by="planner")
    shares = {r.device_id: r.applied for r in result.records}
    assert shares == {"bess-1": 2000, "bess-2": 4000, "bess-3": 6000}
    assert all(r.outcome is Outcome.APPLIED for r in result.records)
    assert {asset: b.battery.command_w for asset, b in site.batteries.items()} == {
        "bess-1": 2000,
        "bess-2": 4000,
        "bess-3": 6000,
    }


async def test_site_setpoint_is_clamped_per_asset(hub: Hub, site_factory: SiteFactory) -> None:
    await site_factory(hub.address)
    result = await hub.server.dispatch(-100_000, site_id="farm", issued_by="planner")
    assert {r.device_id: r.applied for r in result.records} == {"bess-1": -5000, "bess-2": -10_000}


async def test_asset_id_wins_over_site_id(hub: Hub, site_factory: SiteFactory) -> None:
    site = await site_factory(hub.address)
    result = await hub.server.dispatch(
        1500, asset_id="bess-1", site_id="farm", issued_by="user:ops"
    )
    assert [r.device_id for r in result.records] == ["bess-1"]
    assert site.batteries["bess-2"].battery.command_w == 0


async def test_release_returns_the_site_to_safe_mode(hub: Hub, site_factory: SiteFactory) -> None:
    site = await site_factory(hub.address)
    await hub.server.dispatch(4000, site_id="farm", issued_by="planner")
    result = await hub.server.dispatch(site_id="farm", release=True, issued_by="planner")
    assert {r.outcome for r in result.records} == {Outcome.RELEASED}
    assert all(b.battery.command_w == 0 for b in site.batteries.values())


async def test_guards_apply_and_refusals_come_back_audited(
    hub: Hub, site_factory: SiteFactory
) -> None:
    await site_factory(hub.address, policy=ControlPolicy())  # control off, as by default
    result = await hub.server.dispatch(1000, asset_id="bess-1", issued_by="user:ops")
    [record] = result.records
    assert (record.outcome, record.reason) == (Outcome.REFUSED, Reason.CONTROL_DISABLED)
    assert hub.audits == [("agent-1", record)]


async def test_routing_errors_say_what_is_wrong(hub_factory: HubFactory) -> None:
    inventory = [InventoryAsset("bess-9", "far", "Remote battery")]
    hub = await hub_factory(inventory=inventory)
    cases = [
        ({"asset_id": "nope"}, "unknown_asset"),
        ({"site_id": "nowhere"}, "unknown_site"),
        ({"asset_id": "bess-9"}, "not_connected"),
        ({"site_id": "far"}, "not_connected"),
        ({}, "no_target"),
    ]
    for target, reason in cases:
        with pytest.raises(RoutingError) as raised:
            await hub.server.dispatch(100, issued_by="test", **target)  # type: ignore[arg-type]
        assert raised.value.reason == reason, target


async def test_setpoint_to_a_dead_agent_times_out(
    hub: Hub, site_factory: SiteFactory, proxy_factory: Callable[[int], Awaitable[Proxy]]
) -> None:
    proxy = await proxy_factory(hub.port)
    await site_factory(proxy.address)
    proxy.stall()  # the agent's link hangs: no RST, no answer
    with pytest.raises(SetpointTimeoutError, match="did not acknowledge") as raised:
        await hub.server.dispatch(1000, asset_id="bess-1", issued_by="test", ack_timeout=0.5)
    assert raised.value.command_id


async def test_agent_leaving_fails_the_waiting_setpoint(
    hub: Hub, site_factory: SiteFactory, proxy_factory: Callable[[int], Awaitable[Proxy]]
) -> None:
    proxy = await proxy_factory(hub.port)
    await site_factory(proxy.address)
    proxy.stall()
    waiting = asyncio.ensure_future(
        hub.server.dispatch(1000, asset_id="bess-1", issued_by="test", ack_timeout=WAIT)
    )
    await asyncio.sleep(0.1)
    await proxy.drop()
    with pytest.raises(RoutingError) as raised:
        await waiting
    assert raised.value.reason == "disconnected"


async def test_local_actions_and_lapsed_leases_reach_the_hub(
    hub: Hub, site_factory: SiteFactory
) -> None:
    site = await site_factory(hub.address)
    local = await site.dispatcher.write(
        "bess-1", BATTERY_POWER, 700, requested_by="ha:user", source="ha_action"
    )
    await hub.server.dispatch(2000, asset_id="bess-2", issued_by="planner", ttl=0.3)
    await eventually(
        lambda: any(r.reason is Reason.LEASE_EXPIRED for _, r in hub.audits), within=WAIT
    )
    sources = [(r.device_id, r.source, r.outcome) for _, r in hub.audits]
    assert ("bess-1", "ha_action", Outcome.APPLIED) in sources
    assert ("bess-2", "hub", Outcome.APPLIED) in sources
    assert ("bess-2", "lease", Outcome.RELEASED) in sources
    assert [r for _, r in hub.audits].count(local) == 1
    assert site.batteries["bess-2"].battery.command_w == 0


async def test_setpoints_to_many_agents_run_concurrently(
    hub: Hub, site_factory: SiteFactory
) -> None:
    for n in range(1, 4):
        bess = SimulatedBess(f"site-{n}-bess", Battery(max_discharge_w=5000))
        await site_factory(
            hub.address, agent_id=f"agent-{n}", site_id=f"site-{n}", devices={bess.asset_id: bess}
        )
    results = await asyncio.gather(
        *(hub.server.dispatch(500 * n, site_id=f"site-{n}", issued_by="t") for n in range(1, 4))
    )
    assert [r.agent_id for r in results] == ["agent-1", "agent-2", "agent-3"]
    assert [(r.records[0].device_id, r.records[0].applied) for r in results] == [
        ("site-1-bess", 500),
        ("site-2-bess", 1000),
        ("site-3-bess", 1500),
    ]


async def test_two_agents_of_one_site_need_asset_targets(
    hub_factory: HubFactory, site_factory: SiteFactory
) -> None:
    # Two credentials share a site only where the inventory says so.
    inventory = [
        InventoryAsset("bess-1", "farm", agent_id="agent-1"),
        InventoryAsset("bess-2", "farm", agent_id="agent-2"),
    ]
    hub = await hub_factory(inventory=inventory)
    await site_factory(hub.address, agent_id="agent-1", devices=batteries(1), gateway_id="")
    second = {"bess-2": batteries(2)["bess-2"]}
    await site_factory(hub.address, agent_id="agent-2", devices=second, gateway_id="")
    with pytest.raises(RoutingError) as raised:
        await hub.server.dispatch(100, site_id="farm", issued_by="t")
    assert raised.value.reason == "ambiguous_site"
    result = await hub.server.dispatch(100, asset_id="bess-2", issued_by="t")
    assert result.agent_id == "agent-2"


class ScriptedHub(GatewayServicer):
    """A hub that sends one setpoint twice and records what comes back."""

    def __init__(self, setpoint: pb.Setpoint) -> None:
        self.setpoint = setpoint
        self.acks: list[pb.SetpointAck] = []

    async def Connect(
        self,
        request_iterator: AsyncIterator[pb.AgentMessage],
        context: grpc.aio.ServicerContext[pb.AgentMessage, pb.HubMessage],
    ) -> AsyncIterator[pb.HubMessage]:
        await anext(request_iterator)
        yield pb.HubMessage(register_ack=pb.RegisterAck(session_id="s", heartbeat_interval_s=30))
        yield pb.HubMessage(setpoint=self.setpoint)
        yield pb.HubMessage(setpoint=self.setpoint)
        async for message in request_iterator:
            if message.WhichOneof("body") == "setpoint_ack":
                self.acks.append(message.setpoint_ack)


async def test_a_repeated_command_id_is_answered_not_executed_again(
    site_factory: SiteFactory,
) -> None:
    scripted = ScriptedHub(
        pb.Setpoint(command_id="c-1", asset_id="bess-1", power_w=1000, issued_by="t")
    )
    server = grpc.aio.server()
    add_GatewayServicer_to_server(scripted, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        site = await site_factory(f"127.0.0.1:{port}")
        await eventually(lambda: len(scripted.acks) == 2)
        first, second = scripted.acks
        assert first == second
        assert [r.outcome for r in first.records] == ["applied"]
        assert len([r for r in site.local_audits if r.source == "hub"]) == 1
    finally:
        await server.stop(None)


async def test_default_setpoint_timeout_comes_from_the_settings(
    hub_factory: HubFactory,
    site_factory: SiteFactory,
    proxy_factory: Callable[[int], Awaitable[Proxy]],
) -> None:
    hub = await hub_factory(settings=GatewaySettings(setpoint_timeout=0.3))
    proxy = await proxy_factory(hub.port)
    await site_factory(proxy.address)
    proxy.stall()
    with pytest.raises(SetpointTimeoutError, match=r"in 0\.3 s"):
        await hub.server.dispatch(1000, site_id="farm", issued_by="test")
