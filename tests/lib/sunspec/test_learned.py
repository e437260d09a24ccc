"""What a SunSpec device learns and keeps: the chain read in large blocks, a restart that only
checks the layout, a device down at boot that still knows its metrics, every device of a
chain, state names, register dumps with secrets redacted, and read caps."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from modbus_connection import ModbusUnit

from edge_ems.exceptions import DeviceConnectionError, DeviceExceptionError
from edge_ems.modbus import LinkSettings, ModbusLink, TcpEndpoint
from edge_ems.modbus.dump import REDACTED, dump_registers
from edge_ems.pointmap import RegisterSpace
from edge_ems.sim.modbus_server import Fault, FaultKind, ModbusSimServer, UnitImage
from edge_ems.sim.sunspec_dump import dump_image
from edge_ems.sim.sunspec_image import INVERTER_IDENTITY, METER_IDENTITY, hybrid_inverter
from edge_ems.sunspec import LinkUnit, SunSpecDevice, discover, survey
from edge_ems.sunspec.discovery import MARKER

from .conftest import RegisterServer, load_dump

HOLDING = RegisterSpace.HOLDING
STATES = ("off", "sleeping", "starting", "mppt", "throttled", "shutting_down", "fault", "standby")


def chain_minimum(registers: dict[int, int], base: int = 40000) -> int:
    """The fewest 125-register reads that cover the chain, marker to end marker."""
    header = base + 2
    while registers[header] != 0xFFFF:
        header += registers[header + 1] + 2
    return -(-(header + 2 - base) // 125)


@pytest_asyncio.fixture(loop_scope="session")
async def simulator() -> AsyncIterator[ModbusSimServer]:
    """A hybrid inverter and its meter served by the Modbus simulator, on a fresh port."""
    image = UnitImage({HOLDING: hybrid_inverter({"inverter_state": "mppt"}, meter={})})
    async with ModbusSimServer({1: image}) as server:
        await server.start_tcp()
        yield server


@pytest_asyncio.fixture(loop_scope="session")
async def link(simulator: ModbusSimServer) -> AsyncIterator[ModbusLink]:
    assert simulator.address is not None
    link = ModbusLink(TcpEndpoint(*simulator.address), LinkSettings(timeout=5.0))
    yield link
    await link.close()


def reads(server: ModbusSimServer) -> list[tuple[int, int]]:
    return [(r.address, r.count) for r in server.requests if r.function == 3]


async def test_the_chain_is_read_in_large_blocks(server: RegisterServer, unit: ModbusUnit) -> None:
    server.registers = hybrid_inverter({}, meter={})
    chain = await discover(unit)
    # Headers come inside the blocks; one more read finds where the chain ends.
    assert len(server.reads) <= chain_minimum(server.registers) + 1
    assert all(count <= 125 for _, count in server.reads)
    assert dict(chain.registers) == server.registers
    server.requests.clear()
    device = SunSpecDevice(unit)
    await device.connect()
    # Connecting reads nothing the walk read already.
    assert len(server.reads) <= chain_minimum(server.registers) + 1


async def test_a_chain_whose_bodies_the_device_refuses(
    server: RegisterServer, unit: ModbusUnit
) -> None:
    server.registers = load_dump("sma_sunnyboy36_20250410.txt")
    chain = await discover(unit)
    assert [m.address for m in chain.models][-4:] == [40555, 40621, 40751, 40813]
    assert chain.end == 40876
    # No more reads than a walk header by header: the marker, 17 models and the end.
    assert len(server.reads) <= 19


async def test_a_restart_with_what_was_learned_only_checks_the_layout(
    server: RegisterServer, unit: ModbusUnit
) -> None:
    server.registers = hybrid_inverter({}, meter={})
    first = SunSpecDevice(unit, name="first")
    await first.connect()
    server.requests.clear()
    await first.read()
    poll = len(server.reads)
    learned = json.loads(json.dumps(first.learned))  # as a config entry stores it
    assert learned["chain"]["base"] == 40000
    assert learned["identity"]["model"] == INVERTER_IDENTITY.model
    server.requests.clear()
    again = SunSpecDevice(unit, name="again", learned=learned)
    assert (await again.connect()) == INVERTER_IDENTITY
    # The common model joins the first poll's reads; the marker and headers come with them.
    assert len(server.reads) <= poll + 1
    assert (40000, 2) not in server.reads
    assert again.learned == learned


async def test_a_device_down_at_boot_knows_its_metrics_states_and_commands(
    server: RegisterServer, unit: ModbusUnit
) -> None:
    server.registers = hybrid_inverter({})
    first = SunSpecDevice(unit)
    await first.connect()
    learned = first.learned
    server.registers = {}  # the device answers nothing now
    device = SunSpecDevice(unit, learned=learned)
    assert device.declared_metrics == first.declared_metrics
    assert {"ac_power_w", "soc_pct", "battery_power_setpoint_w"} <= device.declared_metrics
    assert device.state_options("inverter_state") == STATES
    assert device.state_options("ac_power_w") is None
    assert set(device.commands) == set(first.commands)
    assert device.revert_timer == "control_revert_timeout_s"
    with pytest.raises(DeviceExceptionError):
        await device.connect()
    assert device.declared_metrics == first.declared_metrics  # still known
    with pytest.raises(DeviceConnectionError, match="not connected"):
        await device.read()


async def test_a_changed_map_is_walked_again(server: RegisterServer, unit: ModbusUnit) -> None:
    server.registers = hybrid_inverter({})
    first = SunSpecDevice(unit)
    await first.connect()
    server.registers = load_dump("solaredge_20191001.txt")  # another inverter at the address
    device = SunSpecDevice(unit, learned=first.learned)
    identity = await device.connect()
    assert identity.manufacturer == "SolarEdge"
    assert device.learned["chain"]["models"] == [[1, 40002, 65], [101, 40069, 50]]
    assert "soc_pct" not in device.declared_metrics


@pytest.mark.parametrize(
    "learned",
    [{"chain": {"base": 40000, "models": [[101, 40002, 50]]}}, {"chain": "nonsense"},
     {"chain": {"base": 40000, "models": [[1, 40002, 66]]}, "commands": {"x": ["a", 1]}}],
)  # fmt: skip
async def test_what_cannot_have_been_learned_is_ignored(
    server: RegisterServer, unit: ModbusUnit, learned: dict[str, Any]
) -> None:
    server.registers = hybrid_inverter({})
    device = SunSpecDevice(unit, learned=learned)
    assert device.declared_metrics == frozenset()
    assert (await device.connect()) == INVERTER_IDENTITY


async def test_every_device_of_a_chain(server: RegisterServer, unit: ModbusUnit) -> None:
    server.registers = hybrid_inverter({}, meter={"grid_power_w": -1200})
    chain, devices = await survey(unit)
    assert [device.identity for device in devices] == [INVERTER_IDENTITY, METER_IDENTITY]
    inverter, meter = devices
    assert [m.id for m in inverter.models][:2] == [1, 103]
    assert [m.id for m in meter.models] == [1, 203]
    assert inverter.last + 1 == meter.first
    assert meter.as_json()["index"] == 1
    assert meter.last + 3 == chain.end + 1
    device = SunSpecDevice(unit, device_index=1)
    assert (await device.connect()) == METER_IDENTITY
    assert (await device.read())["grid_power_w"].value == -1200
    assert "soc_pct" not in device.declared_metrics


async def test_states_are_named_as_read(server: RegisterServer, unit: ModbusUnit) -> None:
    server.registers = hybrid_inverter({"inverter_state": "throttled"})
    device = SunSpecDevice(unit)
    await device.connect()
    assert device.state_options("inverter_state") == STATES
    assert (await device.read())["inverter_state"].value == "throttled"
    assert device.state_options("battery_state") == (
        "off", "empty", "discharging", "charging", "full", "holding", "testing",
    )  # fmt: skip
    assert device.state_options("battery_power_control_enabled") is None  # a switch


async def test_a_register_dump_keeps_no_secret_and_replays(server: RegisterServer) -> None:
    registers = load_dump("sma_sunnyboy36_20250410.txt")
    image = dump_image(registers)
    async with ModbusSimServer({1: image}) as sim:
        link = ModbusLink(TcpEndpoint(*await sim.start_tcp()), LinkSettings(timeout=5.0))
        try:
            device = SunSpecDevice(LinkUnit(link, 1))
            await device.connect()
            original = await device.read()
            dump = json.loads(json.dumps(await device.register_dump()))
        finally:
            await link.close()
    dumped = dump_registers(dump)[HOLDING]
    assert (dump["base"], dump["device_index"]) == (40000, 0)
    assert (dumped[40000], dumped[40001]) == MARKER
    # 1.SN at 40052-40067; 11.MAC at 40075-40078; 12.Addr at 40096-40103.
    for first, last in ((40052, 40067), (40075, 40078), (40096, 40103)):
        assert all(dumped[a] == REDACTED for a in range(first, last + 1))
        assert any(f <= first and last <= t for f, t in dump["redacted"]["holding"])
    assert "3005067415" not in json.dumps(dump)
    differing = {a for a, value in registers.items() if dumped.get(a) != value}
    assert all(dumped.get(a) == REDACTED for a in differing), sorted(differing)[:20]

    async with ModbusSimServer({1: UnitImage.from_dump(dump)}) as replay:
        link = ModbusLink(TcpEndpoint(*await replay.start_tcp()), LinkSettings(timeout=5.0))
        try:
            again = SunSpecDevice(LinkUnit(link, 1), base_address=dump["base"])
            identity = await again.connect()
            readings = await again.read()
        finally:
            await link.close()
    assert identity.serial == "*" * 32
    shown = {m: r.value for m, r in original.items() if m != "device_serial"}
    assert {m: readings[m].value for m in shown} == shown


async def test_a_capped_device_is_learned_once_and_never_refused_after(
    simulator: ModbusSimServer, link: ModbusLink
) -> None:
    cap = simulator.inject(Fault(FaultKind.CAP, limit=50))
    device = SunSpecDevice(LinkUnit(link, 1))
    await device.connect()
    first = await device.read()
    assert first["inverter_state"].value == "mppt"
    assert device.learned["read_cap"]["smallest_refused"] == 51
    refused = cap.hits
    for _ in range(3):
        await device.read()
    assert cap.hits == refused
    assert max(count for _, count in reads(simulator)[-3:]) <= 50

    simulator.reset_traffic()
    again = SunSpecDevice(LinkUnit(link, 1), learned=device.learned)
    await again.connect()
    await again.read()
    await again.register_dump()
    assert cap.hits == refused  # a restart with the cap refuses nothing
    assert max(count for _, count in reads(simulator)) <= 50


async def test_a_capped_device_is_discovered_within_its_cap(
    simulator: ModbusSimServer, link: ModbusLink
) -> None:
    simulator.inject(Fault(FaultKind.CAP, limit=64, code=2))
    chain = await discover(LinkUnit(link, 1), size=64)
    assert [m.id for m in chain.models][-2:] == [1, 203]
    assert max(count for _, count in reads(simulator)) <= 64


@pytest.mark.parametrize(
    "fault",
    [Fault(FaultKind.DROP, addresses=(40150, 40300), times=1),
     Fault(FaultKind.GARBAGE, addresses=(40150, 40300), times=1),
     Fault(FaultKind.EXCEPTION, code=6, addresses=(40150, 40300), times=2)],
    ids=["drop", "garbled", "busy"],
)  # fmt: skip
async def test_one_bad_answer_while_connecting_costs_nothing(
    simulator: ModbusSimServer, fault: Fault
) -> None:
    assert simulator.address is not None
    settings = LinkSettings(timeout=2.0, retries=2, backoff_base=0.01, backoff_cap=0.05)
    link = ModbusLink(TcpEndpoint(*simulator.address), settings)
    try:
        simulator.inject(fault)
        device = SunSpecDevice(LinkUnit(link, 1))
        assert (await device.connect()) == INVERTER_IDENTITY
        assert fault.hits == fault.times
        assert (await device.read())["inverter_state"].value == "mppt"
    finally:
        await link.close()
