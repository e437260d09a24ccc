"""CPU time of one coordinator update of the Home Assistant integration, per device kind.

Run: ``scripts/in-env python bench/ha_coordinator.py``. The simulated site runs in a child
process (``edge-ems sim``), so the CPU time measured here is the integration's side alone:
what :class:`custom_components.edge_ems.coordinator.EdgeEmsCoordinator` does on each update
(:meth:`edge_ems.site.Site.poll`: the device's coalesced read over a real socket, decoding,
``Dispatcher.observe``, what the device learned) plus every entity's ``value_fn`` on the new
readings, as the entities evaluate them when the coordinator notifies them. Home Assistant's
own scheduling and state-machine writes are not included: they are the same for any
integration.

Reported per device: median process CPU milliseconds per update over ``UPDATES`` updates,
the wall-clock median, and the entity count. Without Home Assistant installed (the Python 3.13
venv) it reports the read, decode and observe part only.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import emit, median, progress
from edge_ems.sim.site import free_port
from edge_ems.site import DeviceSpec, Site, SiteDescription, SiteDevice, load_catalog

UPDATES = 200
WARMUP = 10
STARTUP = 60.0


def _value_fns(member: SiteDevice) -> list[Any]:
    try:
        from custom_components.edge_ems.descriptions import describe
    except ImportError:  # no Home Assistant here
        return []
    described = describe(member)
    return [
        description.value_fn
        for group in (described.sensors, described.binary_sensors, described.numbers,
                      described.selects, described.switches)
        for description in group
    ]  # fmt: skip


async def _measure(site: Site, device_id: str) -> dict[str, Any]:
    readings = await site.poll(device_id)
    value_fns = _value_fns(site.devices[device_id])
    cpu, wall = [], []
    for index in range(WARMUP + UPDATES):
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        readings = await site.poll(device_id)
        for value_fn in value_fns:
            value_fn(readings)
        if index >= WARMUP:
            cpu.append(time.process_time() - cpu_start)
            wall.append(time.perf_counter() - wall_start)
    figures = {
        "cpu_ms_per_update": round(median(cpu) * 1000, 3),
        "wall_ms_per_update": round(median(wall) * 1000, 3),
        "metrics": len(readings),
        "entities": len(value_fns),
    }
    progress(f"{device_id}: {figures}")
    return figures


async def _wait_for_port(port: int) -> None:
    deadline = time.monotonic() + STARTUP
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
            continue
        writer.close()
        await writer.wait_closed()
        return


async def _bench(gateway: int, sunspec: int) -> dict[str, Any]:
    await _wait_for_port(gateway)
    await _wait_for_port(sunspec)
    description = SiteDescription(
        "bench",
        "Bench",
        (
            DeviceSpec("deye_modbus", "deye", "modbus", {
                "point_map": "deye_sun_sg_hybrid", "host": "127.0.0.1", "port": gateway,
                "unit_id": 1,
            }),
            DeviceSpec("sunspec_hybrid", "sunspec", "sunspec", {
                "host": "127.0.0.1", "port": sunspec, "unit_id": 1,
            }),
        ),
    )  # fmt: skip
    site = Site(description, await asyncio.to_thread(load_catalog))
    await site.start(poll=False)
    try:
        return {device_id: await _measure(site, device_id) for device_id in site.devices}
    finally:
        await site.stop()


def main() -> None:
    base = free_port()
    progress(f"starting edge-ems sim on ports {base}+")
    sim = subprocess.Popen(
        [sys.executable, "-m", "edge_ems.cli", "sim", "--base-port", str(base)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        results = asyncio.run(_bench(gateway=base, sunspec=base + 2))
    finally:
        os.killpg(sim.pid, signal.SIGINT)
        try:
            sim.wait(timeout=STARTUP)
        except subprocess.TimeoutExpired:
            os.killpg(sim.pid, signal.SIGKILL)
            sim.wait()
    emit({"bench": "ha_coordinator", "updates": UPDATES, **results})


if __name__ == "__main__":
    main()
