"""Requests per poll for every catalog map, and RTU poll time against the wire's minimum.

Run: ``scripts/in-env python bench/modbus_poll.py``. For each map in the catalog it reports
the Modbus requests one poll of every readable point takes:

``naive``
    One request per point, plus one per scale-factor register the points need.
``ha_style``
    Home Assistant core's ``modbus`` integration, configured as well as its YAML allows.
    Every sensor entity polls on its own timer (``scan_interval``) and issues its own request
    for its ``count`` registers; entities sharing a scan interval are not batched together.
    The one way to cover several values with one request is ``virtual_count`` (formerly
    ``slave_count``): a sensor reading ``count * (virtual_count + 1)`` consecutive registers
    and handing them to virtual sibling entities, which all share the first one's data type,
    scale, offset and swap. So the model counts one request per run of back-to-back points
    (no gap) of the same space, type, length and scaling, within the device's largest read.
    HA has no SunSpec scale factors: each distinct scale-factor register is a sensor of its
    own that templates combine, one request more.
``ours``
    Counted on the server side while :class:`edge_ems.modbus.ModbusDevice` polls every
    group of the map from a live pymodbus server.
``minimum``
    The fewest requests the device's limits allow (largest read, bridgeable gap, refused
    ranges), by exhaustive dynamic programming over every partition of the sorted spans
    into consecutive runs, as in ``tests/lib/test_plan.py``.
``modbus_connection``
    What modbus-connection's own block planner (``modbus_connection.model._planning``)
    gives for the same spans and limits. Its ``max_gap`` counts the step from the last read
    address to the next span's first (``address - block_end <= max_gap``), so our limit of
    ``g`` unread registers is passed as ``g + 1``; refused ranges can only be given to it as
    readable ranges (their complement), inside which it ignores ``max_gap``.

``cap_50``
    Every catalog map polled on a simulated device that refuses reads of more than 50
    registers (exception 3), as many RS-485 gateways and loggers do: ``ours`` is the
    requests of one poll after the first (which learns the cap), ``minimum`` the fewest the
    map's limits allow with at most 50 registers a read, ``first_poll`` what learning cost,
    ``refused_after_first_poll`` the refused requests of three later polls (target 0).

``sunspec_discovery_requests``
    For the simulated SunSpec devices and the three real register dumps in
    ``tests/lib/sunspec/dumps/`` served by the simulator (refusing what the device refused,
    and anything past its end marker): ``ours`` is the requests of discovery (the chain
    walk), ``minimum`` the fewest 125-register reads that cover the chain from the marker to
    the end marker (target: ours <= minimum + 2), ``header_by_header`` what the walk needed
    before (the marker, each header, the end marker), ``connect`` the requests of a whole
    first connect (walk, identity, the first read of every model it polls: the SMA's model
    160 refuses 24 points, found one by one) and ``connect_learned`` of a restart that is
    handed what the first connect learned.

Then it times a Deye poll (the largest map if there is no Deye) over RTU at 9600 baud
through a socat pty pair between client and server. A pty moves bytes instantly, so the
simulated device answers after the wire time of the request and its answer plus the
3.5-character silence that ends a frame, as it would on RS-485. ``rtu_over_wire`` is the
median measured poll over the wire-time minimum: every planned frame's bytes at 11 bits per
character, plus 3.5 characters of silence per frame.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from itertools import pairwise
from pathlib import Path

from modbus_connection.model._planning import _plan_blocks

from _common import emit, median, progress
from edge_ems.modbus import LinkSettings, ModbusDevice, ModbusLink, SerialEndpoint, TcpEndpoint
from edge_ems.pointmap import PointMap, PollGroup, RegisterSpace, load_catalog, plan_reads
from edge_ems.pointmap.plan import Block, Limits, limits_of
from edge_ems.sim.modbus_server import (
    BITS_PER_CHARACTER,
    Fault,
    FaultKind,
    ModbusSimServer,
    UnitImage,
)
from edge_ems.sim.sunspec_dump import dump_image, read_dump
from edge_ems.sim.sunspec_image import hybrid_inverter
from edge_ems.sunspec import LinkUnit, SunSpecDevice, discover

BAUDRATE = 9600
POLLS = 9
CAP = 50
DUMPS = Path(__file__).parent.parent / "tests/lib/sunspec/dumps"
LATER_POLLS = 3
EVERY_GROUP = frozenset(PollGroup)
READ_FUNCTIONS = {3, 4}

type Spans = dict[RegisterSpace, list[tuple[int, int]]]


def spans_of(point_map: PointMap) -> Spans:
    """Inclusive register spans one poll of every readable point covers, scale factors too."""
    spans: Spans = {}
    for point in point_map.readable_points():
        spans.setdefault(point.space, []).append((point.address, point.end))
        if point.scale_factor is not None:
            spans[point.space].append((point.scale_factor, point.scale_factor))
    return spans


def scale_factor_registers(point_map: PointMap) -> int:
    return len({(p.space, p.scale_factor) for p in point_map.readable_points() if p.scale_factor})


def naive_requests(point_map: PointMap) -> int:
    return len(point_map.readable_points()) + scale_factor_registers(point_map)


def ha_style_requests(point_map: PointMap) -> int:
    """One request per run of back-to-back points that one ``virtual_count`` sensor covers."""
    runs = 0
    run_start = previous = None
    for point in point_map.readable_points():
        joins = (
            previous is not None
            and run_start is not None
            and point.space is previous.space
            and point.address == previous.end + 1
            and point.end - run_start + 1 <= point_map.device.max_block
            and (point.type, point.registers, point.scale, point.offset, point.scale_factor)
            == (previous.type, previous.registers, previous.scale, previous.offset,
                previous.scale_factor)
            and (point.word_order, point.byte_order) == (previous.word_order, previous.byte_order)
        )  # fmt: skip
        if not joins:
            runs += 1
            run_start = point.address
        previous = point
    return runs + scale_factor_registers(point_map)


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def minimum_requests(spans: list[tuple[int, int]], limits: Limits) -> int:
    """Dynamic programming over every partition of the sorted spans into runs."""
    spans = _merged(spans)

    def feasible(i: int, j: int) -> bool:
        run = spans[i : j + 1]
        if run[-1][1] - run[0][0] + 1 > limits.max_block:
            return False
        for (_, end), (start, _) in pairwise(run):
            if start - end - 1 > limits.max_gap:
                return False
            if any(first < start and last > end for first, last in limits.refused):
                return False
        return True

    best = [0] + [10**9] * len(spans)
    for j in range(len(spans)):
        for i in range(j + 1):
            if feasible(i, j):
                best[j + 1] = min(best[j + 1], best[i] + 1)
    return best[-1]


def modbus_connection_requests(spans: list[tuple[int, int]], limits: Limits) -> int:
    readable = None
    if limits.refused:
        readable, start = [], 0
        for first, last in sorted(limits.refused):
            if first > start:
                readable.append((start, first - 1))
            start = last + 1
        readable.append((start, 65535))
    blocks = _plan_blocks(
        [(start, end - start + 1) for start, end in spans],
        tuple(readable) if readable is not None else None,
        max_gap=limits.max_gap + 1,
        max_span=limits.max_block,
    )
    return len(blocks)


async def ours_requests(point_map: PointMap) -> int:
    """Poll every group once with ModbusDevice and count the reads the server saw."""
    async with ModbusSimServer(
        {point_map.device.default_unit_id: UnitImage.from_point_map(point_map)}
    ) as server:
        host, port = await server.start_tcp()
        link = ModbusLink(TcpEndpoint(host, port), LinkSettings(retries=0))
        device = ModbusDevice(link, point_map)
        readings = await device.read(groups=EVERY_GROUP)
        await link.close()
    if device.failed_blocks or len(readings) != len(point_map.readable_points()):
        raise RuntimeError(f"{point_map.device.id}: the poll did not read every point")
    return sum(1 for request in server.requests if request.function in READ_FUNCTIONS)


async def capped_requests(point_map: PointMap) -> dict[str, int]:
    """Poll every group on a device that refuses reads above :data:`CAP` registers."""
    image = UnitImage.from_point_map(point_map)
    async with ModbusSimServer({point_map.device.default_unit_id: image}) as server:
        cap = server.inject(Fault(FaultKind.CAP, limit=CAP))
        host, port = await server.start_tcp()
        link = ModbusLink(TcpEndpoint(host, port), LinkSettings(retries=0))
        device = ModbusDevice(link, point_map)
        await device.read(groups=EVERY_GROUP)
        first_poll, learning = len(server.requests), cap.hits
        polls = []
        for _ in range(LATER_POLLS):
            sent = len(server.requests)
            readings = await device.read(groups=EVERY_GROUP)
            polls.append(len(server.requests) - sent)
        await link.close()
    if len(readings) != len(point_map.readable_points()):
        raise RuntimeError(f"{point_map.device.id}: a capped poll did not read every point")
    if len(set(polls)) != 1:
        raise RuntimeError(f"{point_map.device.id}: polls after the first differ: {polls}")
    declared = limits_of(point_map)
    capped = Limits(min(CAP, declared.max_block), declared.max_gap, declared.refused)
    return {
        "ours": polls[0],
        "minimum": sum(minimum_requests(found, capped) for found in spans_of(point_map).values()),
        "first_poll": first_poll,
        "refused_in_first_poll": learning,
        "refused_after_first_poll": cap.hits - learning,
    }


def chain_end(registers: dict[int, int], base: int = 40000) -> tuple[int, int]:
    """The chain's models and the address of its end marker's length register."""
    header, models = base + 2, 0
    while registers[header] != 0xFFFF:
        header += registers[header + 1] + 2
        models += 1
    return models, header + 1


async def sunspec_requests(registers: dict[int, int]) -> dict[str, int]:
    """Requests of a chain walk, of a first connect and of a restart with what it learned."""
    models, end = chain_end(registers)
    figures = {"minimum": -(-(end - 40000 + 1) // 125), "header_by_header": models + 2}
    async with ModbusSimServer({1: dump_image(registers)}) as server:
        host, port = await server.start_tcp()
        link = ModbusLink(TcpEndpoint(host, port), LinkSettings(retries=0))
        unit = LinkUnit(link, 1)
        chain = await discover(unit)
        if chain.end != end:
            raise RuntimeError(f"the walk ended at {chain.end}, the chain at {end}")
        figures["ours"] = len(server.requests)
        server.reset_traffic()
        first = SunSpecDevice(unit)
        await first.connect()
        figures["connect"] = len(server.requests)
        server.reset_traffic()
        await SunSpecDevice(unit, learned=first.learned).connect()
        figures["connect_learned"] = len(server.requests)
        await link.close()
    return figures


def wire_minimum(blocks: list[Block]) -> float:
    """Seconds the frames of one poll need on the line: bytes plus 3.5 characters per frame."""
    characters = sum(8 + 5 + 2 * block.count + 2 * 3.5 for block in blocks)
    return characters * BITS_PER_CHARACTER / BAUDRATE


async def rtu_poll_times(point_map: PointMap) -> list[float]:
    """Time full polls over RTU at 9600 baud through a socat pty pair."""
    if shutil.which("socat") is None:
        raise RuntimeError("socat is needed for the RTU timing")
    with tempfile.TemporaryDirectory() as folder:
        server_end, client_end = Path(folder) / "server", Path(folder) / "client"
        socat = await asyncio.create_subprocess_exec(
            "socat", "-d", "-d",
            f"pty,raw,echo=0,link={server_end}", f"pty,raw,echo=0,link={client_end}",
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert socat.stderr is not None
        try:
            while b"starting data transfer loop" not in (line := await socat.stderr.readline()):
                if not line:
                    raise RuntimeError("socat exited")
            image = UnitImage.from_point_map(point_map)
            unit = point_map.device.default_unit_id
            async with ModbusSimServer({unit: image}, line_baudrate=BAUDRATE) as server:
                await server.start_serial(str(server_end), baudrate=BAUDRATE)
                # 8N2: 11 bits a character, as the minimum counts them (a pty refuses parity).
                endpoint = SerialEndpoint(str(client_end), baudrate=BAUDRATE, stopbits=2)
                link = ModbusLink(endpoint, LinkSettings(timeout=5.0, retries=0))
                device = ModbusDevice(link, point_map)
                await device.read()  # opens the port
                times = []
                for _ in range(POLLS):
                    started = time.perf_counter()
                    await device.read()
                    times.append(time.perf_counter() - started)
                await link.close()
            return times
        finally:
            socat.terminate()
            await socat.wait()


async def main() -> None:
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    catalog = load_catalog()
    progress(f"{len(catalog)} catalog maps")
    maps: dict[str, dict[str, int]] = {}
    for map_id, point_map in catalog.items():
        limits = limits_of(point_map)
        spans = spans_of(point_map)
        figures = {
            "naive": naive_requests(point_map),
            "ha_style": ha_style_requests(point_map),
            "ours": await ours_requests(point_map),
            "minimum": sum(minimum_requests(s, limits) for s in spans.values()),
            "modbus_connection": sum(modbus_connection_requests(s, limits) for s in spans.values()),
        }
        as_is = sum(
            len(_plan_blocks([(a, b - a + 1) for a, b in s], None, max_gap=limits.max_gap,
                             max_span=limits.max_block))
            for s in spans.values()
        )  # fmt: skip
        progress(f"{map_id}: {figures} (modbus_connection given max_gap unshifted: {as_is})")
        maps[map_id] = figures

    capped: dict[str, dict[str, int]] = {}
    for map_id, point_map in catalog.items():
        capped[map_id] = await capped_requests(point_map)
        progress(f"{map_id} capped at {CAP}: {capped[map_id]}")

    sunspec_devices = {
        "sim_hybrid": hybrid_inverter({}),
        "sim_hybrid_and_meter": hybrid_inverter({}, meter={}),
        **{path.stem: read_dump(path) for path in sorted(DUMPS.glob("*.txt"))},
    }
    discovery: dict[str, dict[str, int]] = {}
    for name, registers in sunspec_devices.items():
        discovery[name] = await sunspec_requests(registers)
        progress(f"SunSpec {name}: {discovery[name]}")

    deye = sorted(map_id for map_id in catalog if "deye" in map_id)
    timed = deye[0] if deye else max(catalog, key=lambda m: len(catalog[m].points))
    point_map = catalog[timed]
    polled = [m for m, p in point_map.points.items() if p.readable and p.poll is not PollGroup.ONCE]
    blocks = plan_reads(point_map, polled)
    minimum = wire_minimum(blocks)
    progress(f"timing {timed} over RTU at {BAUDRATE} baud: {len(blocks)} requests a poll")
    times = await rtu_poll_times(point_map)
    measured = median(times)
    ratio = measured / minimum
    progress(f"median poll {measured * 1000:.1f} ms, wire minimum {minimum * 1000:.1f} ms")
    emit(
        {
            "maps": maps,
            "rtu_over_wire": round(ratio, 4),
            "rtu_map": timed,
            "rtu_poll_s": round(measured, 4),
            "rtu_wire_minimum_s": round(minimum, 4),
            "rtu_requests": len(blocks),
            "rtu_polls": len(times),
            "ours_equals_minimum": all(f["ours"] == f["minimum"] for f in maps.values()),
            "modbus_connection_reaches_minimum": all(
                f["modbus_connection"] == f["minimum"] for f in maps.values()
            ),
            "cap_50": capped,
            "cap_50_ours_equals_minimum": all(f["ours"] == f["minimum"] for f in capped.values()),
            "cap_50_refused_after_first_poll": sum(
                f["refused_after_first_poll"] for f in capped.values()
            ),
            "sunspec_discovery_requests": discovery,
            "sunspec_discovery_within_minimum_plus_2": {
                name: f["ours"] <= f["minimum"] + 2 for name, f in discovery.items()
            },
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
