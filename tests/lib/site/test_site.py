"""A Site on the simulators: every kind of device read, dispatch across its batteries, a
device that is away at start, what devices learned kept from one start to the next, the
audit handed to every sink, and one log line per outage."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edge_ems.dispatch import AuditRecord, Outcome
from edge_ems.exceptions import ConfigError, DeviceConnectionError
from edge_ems.sim.config import SiteConfig
from edge_ems.sim.opcua_server import OpcUaBessSimulator
from edge_ems.sim.site import SimulatedSite
from edge_ems.site import JsonFileStore, Site, catalog_for, parse_site_file

from ..bms.support import allow_loopback_sockets, free_port

WAIT = 30.0


@pytest.fixture(autouse=True)
def _loopback_sockets() -> None:
    allow_loopback_sockets()


@pytest.fixture(scope="module")
def address_space(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("opcua") / "address-space"


@pytest.fixture
async def sim(address_space: Path) -> AsyncIterator[SimulatedSite]:
    """Every simulated device: Modbus (a point-map battery among them), SunSpec, OPC UA, MQTT
    and CAN batteries."""
    async with SimulatedSite(SiteConfig(tick=0.2), opcua_cache=address_space) as running:
        yield running


def live(data: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A site file's data with control on and fast polls."""
    return {
        **data,
        "poll_interval": 0.2,
        "control": {"enable_control": True, "dry_run": False},
        **changes,
    }


async def make_site(data: dict[str, Any], **options: Any) -> Site:
    description = parse_site_file(data).description
    catalog = await asyncio.to_thread(catalog_for, description)
    return Site(description, catalog, **options)


async def poll_until(site: Site, device_id: str, metric: str) -> Any:
    """Poll until the device reports ``metric`` (push devices need a message first)."""
    async with asyncio.timeout(WAIT):
        while True:
            readings = await site.poll(device_id)
            if metric in readings:
                return readings[metric].value
            await asyncio.sleep(0.1)


async def test_every_kind_is_read_and_batteries_take_site_power(sim: SimulatedSite) -> None:
    records: list[AuditRecord] = []
    site = await make_site(live(sim.site_file()), audit_sinks=[records.append])
    await site.start(poll=False)
    try:
        assert set(site.devices) == {
            "deye", "meter", "sunspec", "bess", "mqtt-bms", "can-bms", "ev-charger", "heat-pump",
            "battery-inverter",
        }  # fmt: skip
        assert await poll_until(site, "deye", "soc_pct") is not None
        assert await poll_until(site, "meter", "grid_power_w") is not None
        assert await poll_until(site, "sunspec", "ac_power_w") is not None
        assert await poll_until(site, "bess", "soc_pct") is not None
        assert await poll_until(site, "mqtt-bms", "soc_pct") is not None
        assert await poll_until(site, "can-bms", "soc_pct") is not None
        assert await poll_until(site, "ev-charger", "ev_state") is not None
        assert await poll_until(site, "heat-pump", "outdoor_temperature_c") is not None
        assert await poll_until(site, "battery-inverter", "soc_pct") is not None
        # Every device declares what it reports; the registry learns who it is.
        for member in site.devices.values():
            assert member.metrics, member.device_id
            assert member.identity is not None, member.device_id
        # The hub hears what each device is; a battery the site drives is a "battery".
        assert {info.asset_id: info.type for info in site.asset_infos()} == {
            "deye": "hybrid_inverter",
            "meter": "meter",
            "sunspec": "battery",
            "bess": "battery",
            "mqtt-bms": "bms",
            "can-bms": "bms",
            "ev-charger": "ev_charger",
            "heat-pump": "heat_pump",
            "battery-inverter": "battery",
        }
        answered = await site.dispatcher.dispatch(-3500, requested_by="test", source="test")
        # Capacity-weighted: the 20 kWh BESS takes four times the 5 kWh SunSpec inverter's
        # share, the 10 kWh point-map battery twice.
        assert {r.device_id: (r.outcome, r.applied) for r in answered} == {
            "bess": (Outcome.APPLIED, -2000.0),
            "sunspec": (Outcome.APPLIED, -500.0),
            "battery-inverter": (Outcome.APPLIED, -1000.0),
        }
        assert records == answered
        # How polling goes, as the agent tells the hub: Modbus and SunSpec devices count
        # their requests, the others do not.
        statuses = {status.asset_id: status for status in site.device_statuses()}
        assert set(statuses) == set(site.devices)
        for status in statuses.values():
            assert (status.answering, status.breaker) == (True, "closed"), status
            assert status.polls >= 1
        assert statuses["deye"].requests
        assert statuses["sunspec"].requests
        assert statuses["bess"].requests is None
        # The point-map battery reads its setpoint back and charges at it.
        readings = await site.poll("battery-inverter")
        assert readings["battery_power_setpoint_w"].value == -1000
        assert sim.step().battery_inverter_w == -1000
    finally:
        await site.stop()
    # Stopping hands every leased battery back, and says so.
    released = [r for r in records if r.outcome is Outcome.RELEASED]
    assert {r.device_id for r in released} == {"bess", "sunspec", "battery-inverter"}


async def test_a_device_away_at_start_joins_when_it_answers(address_space: Path) -> None:
    port = free_port()
    url = f"opc.tcp://127.0.0.1:{port}/edge-ems/bess"
    data = live(
        {
            "site": {"id": "home"},
            "devices": [
                {"id": "spare", "kind": "sim_bess"},
                {"id": "bess", "kind": "opcua", "url": url, "node_map": "sim_bess"},
            ],
        }
    )
    site = await make_site(data)
    await site.start(poll=False)
    try:
        assert (await site.poll("spare"))["soc_pct"].value == 50
        with pytest.raises(DeviceConnectionError):
            await site.poll("bess")
        assert site.devices["bess"].answering is False
        [status] = [s for s in site.device_statuses() if s.asset_id == "bess"]
        assert (status.answering, status.polls, status.failed_polls) == (False, 1, 1)
        assert status.last_error
        assert status.last_poll_ms
        assert status.last_success_ms is None
        async with OpcUaBessSimulator(port=port, interval=0.1, address_space_cache=address_space):
            # The very next poll after the server answers reads it.
            readings = await site.poll("bess")
        assert readings["soc_pct"].value is not None
        assert site.devices["bess"].answering is True
        status = {s.asset_id: s for s in site.device_statuses()}["bess"]
        assert (status.answering, status.polls, status.failed_polls) == (True, 2, 1)
        assert status.last_error is None
        assert status.last_poll_ms == status.last_success_ms
    finally:
        await site.stop()


async def test_what_devices_learned_outlives_a_restart(sim: SimulatedSite, tmp_path: Path) -> None:
    store = JsonFileStore(tmp_path / "learned.json")
    data = live(sim.site_file())
    data["devices"] = [d for d in data["devices"] if d["id"] in ("deye", "sunspec")]
    site = await make_site(data, learned_store=store)
    await site.start(poll=False)
    try:
        await site.poll("deye")
        await site.poll("sunspec")
        reported = site.devices["sunspec"].reported
    finally:
        await site.stop()
    kept = json.loads((tmp_path / "learned.json").read_text())
    assert kept["deye"]["identity"]["manufacturer"] == "Deye"
    assert set(kept["sunspec"]["metrics"]) == reported
    # The next start, with the devices away: who they are and what they report is known.
    for device in data["devices"]:
        device["port"] = free_port()
    again = await make_site(data, learned_store=store)
    await again.start(poll=False)
    try:
        member = again.devices["sunspec"]
        assert member.identity is not None
        assert member.identity.manufacturer == kept["sunspec"]["identity"]["manufacturer"]
        assert member.metrics >= reported
        # The chain's layout came back too: the inverter's storage controls are known, so
        # the hub hears of a battery even while the inverter is away.
        assert "battery_power_setpoint_w" in member.device.commands
        assert {a.asset_id for a in again.asset_infos() if a.type == "battery"} >= {"sunspec"}
        assert again.devices["deye"].metrics >= set(kept["deye"]["metrics"])
    finally:
        await again.stop()


async def test_a_broken_sink_keeps_no_record_from_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kept: list[AuditRecord] = []

    def broken(record: AuditRecord) -> None:
        raise RuntimeError("disk full")

    data = live({"site": {"id": "home"}, "devices": [{"id": "b", "kind": "sim_bess"}]})
    site = await make_site(data, audit_sinks=[broken, kept.append])
    later: list[AuditRecord] = []
    stop_later = site.add_audit_sink(later.append)
    await site.start(poll=False)
    try:
        await site.dispatcher.dispatch(1000, requested_by="test", source="test")
        stop_later()
        await site.dispatcher.release(requested_by="test", source="test")
    finally:
        await site.stop()
    assert [r.outcome for r in kept] == [Outcome.APPLIED, Outcome.RELEASED]
    assert [r.outcome for r in later] == [Outcome.APPLIED]
    assert "Audit sink" in caplog.text
    assert "disk full" in caplog.text


async def test_the_poll_loop_logs_an_outage_once(caplog: pytest.LogCaptureFixture) -> None:
    data = live({"site": {"id": "home"}, "devices": [{"id": "b", "kind": "sim_bess"}]})
    site = await make_site(data)
    await site.start(poll=True)
    device = site.devices["b"].device
    try:
        with caplog.at_level(logging.INFO, logger="edge_ems.site"):
            await asyncio.sleep(0.3)
            device.online = False  # type: ignore[attr-defined]
            await asyncio.sleep(1.2)  # about six polls
            device.online = True  # type: ignore[attr-defined]
            await asyncio.sleep(0.5)
    finally:
        await site.stop()
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("edge_ems.site")]
    assert lines == ["b does not answer: b does not answer", "b answers again"]


async def test_a_device_that_cannot_be_built_stops_the_start() -> None:
    data = live(
        {
            "site": {"id": "home"},
            "devices": [
                {"id": "b", "kind": "sim_bess"},
                {"id": "m", "kind": "modbus", "point_map": "no_such_map", "host": "h"},
            ],
        }
    )
    site = await make_site(data)
    with pytest.raises(ConfigError, match="no point map 'no_such_map'"):
        await site.start(poll=False)
    assert site.devices == {}
