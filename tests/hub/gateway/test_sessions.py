"""The registry behind /assets and /agents: inventory merged with registrations, sessions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from edge_ems.exceptions import ConfigError
from edge_ems.gateway import AssetInfo, Registration
from edge_ems.gateway.model import DeviceStatus
from edge_ems.gateway.proto import gateway_pb2 as pb
from edge_ems.hub.gateway import _Session
from edge_ems.hub.sessions import InventoryAsset, SessionRegistry, load_inventory, parse_inventory

from .conftest import Hub, SiteFactory, batteries

INVENTORY = """
assets:
  - {asset_id: bess-1, name: Barn battery, site_id: farm, site_name: The farm, type: battery,
     capacity_wh: 10000, max_charge_w: 5000, max_discharge_w: 5000}
  - {asset_id: bess-2, site_id: farm}
  - {asset_id: pv-9, name: Far PV, site_id: far, type: inverter}
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


def test_inventory_loads_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "assets.yaml"
    path.write_text(INVENTORY)
    assets = load_inventory(path)
    assert [a.asset_id for a in assets] == ["bess-1", "bess-2", "pv-9"]
    assert assets[0] == InventoryAsset(
        "bess-1", "farm", "Barn battery", "The farm", "battery", 10_000, 5000, 5000
    )
    assert parse_inventory([{"asset_id": "x", "site_id": "y"}])[0].name == ""


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"assets": [{"site_id": "farm"}]}, "assets.0.asset_id"),
        ({"assets": [{"asset_id": "a", "site_id": "s", "max_charge_w": -1}]}, "max_charge_w"),
        ({"assets": [{"asset_id": "a", "site_id": "s", "colour": "red"}]}, "colour"),
        ([{"asset_id": "a", "site_id": "s"}, {"asset_id": "a", "site_id": "t"}], "repeated: a"),
        ("nonsense", "<inventory>"),
    ],
)
def test_broken_inventories_say_where(data: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_inventory(data)


def test_missing_inventory_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml"):
        load_inventory(tmp_path / "nope.yaml")


def registration(agent: str = "gw-1", *assets: AssetInfo) -> Registration:
    return Registration(agent, "farm", "Farm (agent's name)", agent, assets)


def test_configured_and_registered_assets_merge() -> None:
    inventory = [
        {"asset_id": "bess-1", "site_id": "farm", "name": "Barn battery"},
        {"asset_id": "pv-9", "site_id": "far"},
    ]
    registry = SessionRegistry(parse_inventory(inventory), clock=Clock())
    registry.open(
        registration(
            "gw-1",
            AssetInfo("bess-1", "Battery one", "battery", 10_000, 5000, 6000),
            AssetInfo("meter", "Grid meter", "meter"),
        ),
        "s1",
        "ipv4:10.0.0.7:4000",
    )
    rows = {row.asset_id: row for row in registry.assets()}
    assert list(rows) == ["pv-9", "bess-1", "meter"]  # by site, then id
    bess = rows["bess-1"]
    assert (bess.name, bess.type, bess.max_discharge_w) == ("Barn battery", "battery", 6000)
    assert (bess.configured, bess.agent_id, bess.connected) == (True, "gw-1", True)
    assert (rows["meter"].configured, rows["meter"].site_name) == (False, "Farm (agent's name)")
    assert (rows["pv-9"].agent_id, rows["pv-9"].connected) == (None, False)
    assert registry.knows_site("far")
    assert registry.knows_site("farm")
    assert not registry.knows_site("moon")


def test_sessions_are_recorded_and_assets_follow_registrations() -> None:
    registry = SessionRegistry(clock=Clock())
    first = registry.open(registration("gw-1", AssetInfo("a"), AssetInfo("b")), "s1", "peer-1")
    registry.close(first, "link lost")
    assert not registry.connected("gw-1")
    assert registry.owner("a") == "gw-1"  # known, just not connected
    registry.open(registration("gw-1", AssetInfo("a")), "s2", "peer-2")
    assert registry.owner("b") is None
    [row] = registry.agents()
    assert (row.asset_id, row.peer, row.connected) == ("a", "peer-2", True)
    assert [(s.session_id, s.peer, s.end_reason) for s in row.sessions] == [
        ("s2", "peer-2", None),
        ("s1", "peer-1", "link lost"),
    ]
    ended = row.sessions[1].ended
    assert ended is not None
    assert ended > row.sessions[1].started
    polled = DeviceStatus("a", answering=True, polls=4, requests=9)
    stranger = DeviceStatus("b", answering=False)  # no longer registered by gw-1
    registry.seen("gw-1", buffered_batches=7, dropped=3, devices=[polled, stranger])
    [row] = registry.agents()
    assert (row.buffered_batches, row.dropped_points) == (7, 3)
    reported = registry.device_status("a")
    assert reported is not None
    assert reported.status == polled
    assert registry.device_status("b") is None
    assert row.as_dict()["sessions"][0]["session_id"] == "s2"


def test_agents_of_other_hubs_are_known_and_their_connections_told() -> None:
    registry = SessionRegistry(clock=Clock())
    far = registration("far-gw", AssetInfo("far-bess"))
    assert registry.set_remote([(far, False, "hub-b")]) == set()
    assert registry.set_remote([(far, True, "hub-b")]) == {far.site_id}  # it connected there
    assert registry.set_remote([(far, True, "hub-b")]) == set()  # still connected: nothing new
    assert registry.remote_site_registrations(far.site_id) == [far]
    assert registry.remote_owner("far-bess") == ("far-gw", "hub-b")
    # Once it connects here, this hub serves it.
    registry.open(far, "s1", "peer-1")
    assert registry.remote_owner("far-bess") is None


def test_history_is_bounded() -> None:
    registry = SessionRegistry(clock=Clock(), history=3)
    for n in range(5):
        record = registry.open(registration("gw-1", AssetInfo("a")), f"s{n}", "p")
        registry.close(record, "bye")
    [row] = registry.agents()
    assert [s.session_id for s in row.sessions] == ["s4", "s3", "s2"]


async def test_gateway_mode_rows_share_one_peer(hub: Hub, site_factory: SiteFactory) -> None:
    await site_factory(hub.address, devices=batteries(3))
    rows = hub.server.registry.agents()
    assert [r.asset_id for r in rows] == ["bess-1", "bess-2", "bess-3"]
    assert len({r.peer for r in rows}) == 1
    assert all(r.connected and r.agent_id == "agent-1" and r.site_name == "Farm" for r in rows)
    assets = {row.asset_id: row.as_dict() for row in hub.server.registry.assets()}
    assert assets["bess-3"]["capacity_wh"] == 30_000


async def test_a_session_writes_what_it_queued_before_it_ends() -> None:
    record = SessionRegistry(clock=Clock()).open(registration("gw-1"), "s1", "peer-1")
    session = _Session(record, registration("gw-1"), 0.0)
    writer = asyncio.create_task(session.next_message())
    await asyncio.sleep(0)  # the writer waits for the outbox
    assert not writer.done()
    ping = pb.HubMessage(ping=pb.Ping(nonce=1))
    session.send(ping)
    assert await asyncio.wait_for(writer, 1) == ping
    ack = pb.HubMessage(telemetry_ack=pb.TelemetryAck(durable_seq=4))
    session.send(ack)
    session.close(grpc.StatusCode.UNAVAILABLE, "no message for 95.0 s")
    session.send(ping)  # after the close: never written
    assert await session.next_message() == ack
    assert await session.next_message() is None
    assert session.end_status == (grpc.StatusCode.UNAVAILABLE, "no message for 95.0 s")
    other = _Session(record, registration("gw-1"), 0.0)
    ending = asyncio.create_task(other.next_message())
    await asyncio.sleep(0)
    assert other.wake is not None
    ending.cancel()  # a stream cancelled while its writer waits
    with pytest.raises(asyncio.CancelledError):
        await ending
    assert other.wake is None
    other.send(ping)  # nothing waits to be woken
    assert other.outbox == [ping]
