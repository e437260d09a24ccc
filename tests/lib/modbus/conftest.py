"""Fixtures for the Modbus layer: a hybrid-inverter point map served by a live pymodbus server.

Timeouts are generous wherever a test waits for an answer; only tests that provoke a timeout
use a short one, and the faults they inject outlast it by a wide margin.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge_ems.modbus import LinkSettings, ModbusDevice, ModbusLink, TcpEndpoint
from edge_ems.pointmap import PointMap, parse_point_map
from edge_ems.sim.modbus_server import ModbusSimServer, UnitImage

HYBRID_MAP = """
device:
  maker: Test
  model: Hybrid T1
  kind: hybrid_inverter
  documentation: test fixture
  max_gap: 2
  refused: [[60, 69]]
  identify:
    device_model: "^T1-"
points:
  device_model: {address: 0, type: string, length: 4}
  device_serial: {address: 4, type: string, length: 5}
  ac_power_w: {address: 20, type: i32, scale_factor: 22, poll: fast}
  ac_voltage_l1_v: {address: 23, type: u16, scale: 0.1, poll: fast}
  grid_power_w: {address: 24, type: i16, poll: fast}
  pv_energy_wh: {address: 40, type: u32, poll: slow}
  inverter_state: {address: 42, type: enum, options: {0: standby, 1: running, 2: fault}}
  battery_power_setpoint_w:
    address: 70
    type: i16
    access: rw
    write: {allow_write: true, min: -5000, max: 5000, function: fc06, lease: true}
  grid_export_limit_w:
    address: 72
    type: u32
    access: rw
    write: {allow_write: true, min: 0, max: 10000}
  active_power_limit_pct:
    address: 74
    type: u16
    access: rw
    write: {allow_write: false}
  work_mode:
    address: 75
    type: enum
    access: rw
    options: {0: self_use, 1: feed_in, 2: backup}
    write: {allow_write: true}
  soc_min_pct:
    address: 76
    type: u16
    access: rw
    write: {allow_write: true, min: 0, max: 100}
  soc_pct: {address: 10, type: u16, space: input, poll: fast}
  battery_power_w: {address: 12, type: i16, space: input, poll: fast}
"""

VALUES = {
    "device_model": "T1-8K",
    "device_serial": "SN0042",
    "ac_power_w": -1234.5,
    "ac_voltage_l1_v": 231.7,
    "grid_power_w": -800,
    "pv_energy_wh": 1_234_567,
    "inverter_state": "running",
    "battery_power_setpoint_w": 0,
    "grid_export_limit_w": 5000,
    "active_power_limit_pct": 100,
    "work_mode": "self_use",
    "soc_min_pct": 10,
    "soc_pct": 55,
    "battery_power_w": 1500,
}
SCALE_FACTORS = {22: -1}
"""ac_power_w is read in tenths of a watt."""

PATIENT = LinkSettings(timeout=5.0, retries=1, backoff_base=0.01, backoff_cap=0.05)
"""For exchanges that should succeed: long timeouts, short retry waits."""
HASTY = LinkSettings(timeout=1.0, retries=0)
"""For tests that provoke timeouts: no retries, so each fault gives one clear error."""


@pytest.fixture
def hybrid_map() -> PointMap:
    return parse_point_map(HYBRID_MAP, source="test", map_id="test_hybrid")


def hybrid_image(point_map: PointMap, **values: object) -> UnitImage:
    return UnitImage.from_point_map(
        point_map,
        {**VALUES, **values},  # type: ignore[dict-item]
        scale_factors=SCALE_FACTORS,
    )


@pytest.fixture
async def server(hybrid_map: PointMap) -> AsyncIterator[ModbusSimServer]:
    async with ModbusSimServer({1: hybrid_image(hybrid_map)}) as sim:
        await sim.start_tcp()
        yield sim


def tcp_endpoint(server: ModbusSimServer) -> TcpEndpoint:
    assert server.address is not None
    return TcpEndpoint(*server.address)


@pytest.fixture
async def link(server: ModbusSimServer) -> AsyncIterator[ModbusLink]:
    link = ModbusLink(tcp_endpoint(server), PATIENT)
    yield link
    await link.close()


@pytest.fixture
async def device(link: ModbusLink, hybrid_map: PointMap) -> AsyncIterator[ModbusDevice]:
    device = ModbusDevice(link, hybrid_map, name="hybrid")
    yield device
    await device.close()


@pytest.fixture
async def pty_pair(tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """Two ptys joined by socat, like the two ends of a null-modem cable."""
    if shutil.which("socat") is None:
        pytest.skip("socat is not installed")
    server_end, client_end = tmp_path / "server", tmp_path / "client"
    process = await asyncio.create_subprocess_exec(
        "socat",
        "-d",
        "-d",
        f"pty,raw,echo=0,link={server_end}",
        f"pty,raw,echo=0,link={client_end}",
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    try:
        # With -d -d socat reports when both ptys are open and it starts relaying.
        async with asyncio.timeout(20):
            while b"starting data transfer loop" not in (line := await process.stderr.readline()):
                if not line:
                    raise RuntimeError(f"socat exited with {await process.wait()}")
        yield str(server_end), str(client_end)
    finally:
        process.terminate()
        await process.wait()
