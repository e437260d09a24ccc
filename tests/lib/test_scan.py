"""The scanner finds the simulated devices, suggests their maps, paces itself and never writes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from edge_ems.exceptions import ConfigError, DeviceConnectionError, WriteRefusedError
from edge_ems.modbus import ModbusLink, RtuOverTcpEndpoint, TcpEndpoint
from edge_ems.pointmap import PointMap, RegisterSpace, load_catalog
from edge_ems.scan import (
    RateLimiter,
    ReadOnlyModbus,
    ReadOnlyUnit,
    Scanner,
    UnitReport,
    parse_target,
    parse_units,
)
from edge_ems.sim.config import SiteConfig
from edge_ems.sim.modbus_server import Fault, FaultKind, ModbusSimServer, UnitImage
from edge_ems.sim.site import SimulatedSite
from edge_ems.sim.sunspec_image import hybrid_inverter

from .bms.support import allow_loopback_sockets, free_port

READS = frozenset({3, 4})
MODBUS_ONLY = SiteConfig(bess=None, mqtt_bms=None, can_bms=False, tick=3600.0)
FAST = 1000.0
"""Requests per second: pacing is tested on its own, with a clock that does not wait."""


@pytest.fixture(autouse=True)
def _loopback_sockets() -> None:
    allow_loopback_sockets()


@pytest.fixture(scope="module")
def catalog() -> dict[str, PointMap]:
    return load_catalog()


@pytest.fixture
async def site() -> AsyncIterator[SimulatedSite]:
    async with SimulatedSite(MODBUS_ONLY) as running:
        yield running


class ManualTime:
    """A monotonic clock that only ``sleep`` moves, recording every wait."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def best(report: UnitReport) -> str:
    assert report.suggestions, report
    return report.suggestions[0].map_id


def test_targets_and_unit_ranges_parse() -> None:
    assert parse_target("10.0.0.7") == ("10.0.0.7", 502)
    assert parse_target("gw.local:5020") == ("gw.local", 5020)
    assert parse_target("[fe80::1]:1502") == ("fe80::1", 1502)
    assert parse_units("1-3,7,2") == [1, 2, 3, 7]
    for bad in ("host:0", "host:x", "[::1"):
        with pytest.raises(ConfigError):
            parse_target(bad)
    for bad in ("3-1", "0-248", "a"):
        with pytest.raises(ConfigError):
            parse_units(bad)


async def test_the_rate_limiter_spaces_requests() -> None:
    time = ManualTime()
    limiter = RateLimiter(4.0, clock=time, sleep=time.sleep)
    for _ in range(5):
        await limiter.wait()
    assert time.waits == [0.25] * 4
    time.now += 10  # idle time is not saved up for a burst
    await limiter.wait()
    await limiter.wait()
    assert time.waits[-1] == 0.25


async def test_the_gateway_scan_finds_the_deye_and_the_sdm630_and_never_writes(
    site: SimulatedSite, catalog: dict[str, PointMap]
) -> None:
    assert site.modbus_gateway is not None
    endpoints = site.endpoints
    scanner = Scanner(
        TcpEndpoint(endpoints.host, endpoints.modbus_gateway_port), catalog, rate=FAST
    )
    report = await scanner.scan(range(1, 4))
    deye, meter, nobody = report.units
    assert best(deye) == "deye_sun_sg_hybrid"
    assert deye.suggestions[0].identified is True
    # Same addresses, other identity: the HV map ranks below, its identify failing.
    hv = next(fit for fit in deye.fits if fit.map_id == "deye_sun_sg_hybrid_hv")
    assert hv.identified is False
    assert best(meter) == "eastron_sdm630"
    assert meter.suggestions[0].score > meter.suggestions[1].score
    assert (deye.sunspec, meter.sunspec) == (None, None)
    assert not nobody.present
    assert nobody.fits == ()
    assert report.requests == len(site.modbus_gateway.requests)
    assert {request.function for request in site.modbus_gateway.requests} <= READS
    assert report.writes == 0


async def test_the_scan_detects_sunspec_and_names_every_device_of_the_chain(
    site: SimulatedSite, catalog: dict[str, PointMap]
) -> None:
    endpoints = site.endpoints
    assert endpoints.sunspec_port is not None
    assert site.sunspec_server is not None
    scanner = Scanner(TcpEndpoint(endpoints.host, endpoints.sunspec_port), catalog, rate=FAST)
    (unit,) = (await scanner.scan([endpoints.sunspec_unit or 1])).units
    assert unit.sunspec is not None
    assert unit.sunspec.base == 40000
    assert unit.sunspec.models[:3] == (1, 103, 120)
    assert 124 in unit.sunspec.models
    assert [d.identity.model for d in unit.sunspec.devices if d.identity] == [
        "Simulated hybrid inverter",
        "Simulated grid meter",
    ]
    assert [(d.index, d.models[0].id) for d in unit.sunspec.devices] == [(0, 1), (1, 1)]
    assert unit.suggestions == ()  # no point map describes a SunSpec device
    assert {request.function for request in site.sunspec_server.requests} <= READS


async def test_the_scan_speaks_rtu_over_tcp(
    site: SimulatedSite, catalog: dict[str, PointMap]
) -> None:
    endpoints = site.endpoints
    scanner = Scanner(
        RtuOverTcpEndpoint(endpoints.host, endpoints.meter_rtu_port), catalog, rate=FAST
    )
    (unit,) = (await scanner.scan([endpoints.meter_unit])).units
    assert best(unit) == "eastron_sdm630"


async def test_the_scan_paces_every_request(
    site: SimulatedSite, catalog: dict[str, PointMap]
) -> None:
    time = ManualTime()
    endpoints = site.endpoints
    scanner = Scanner(
        TcpEndpoint(endpoints.host, endpoints.modbus_gateway_port),
        catalog,
        rate=5.0,
        clock=time,
        sleep=time.sleep,
    )
    report = await scanner.scan([2])
    assert report.requests > 10
    assert time.waits == [pytest.approx(0.2)] * (report.requests - 1)


async def test_timeouts_garbage_and_exceptions_on_probes_do_not_stop_the_scan(
    catalog: dict[str, PointMap],
) -> None:
    deye_map = catalog["deye_sun_sg_hybrid"]
    image = UnitImage.from_point_map(deye_map, {"device_model": "LV three-phase hybrid inverter"})
    async with ModbusSimServer({1: image}) as server:
        host, port = await server.start_tcp()
        server.inject(Fault(FaultKind.DELAY, delay=2.0, addresses=(500, 560)))
        server.inject(Fault(FaultKind.GARBAGE, addresses=(580, 600), times=1))
        server.inject(Fault(FaultKind.EXCEPTION, code=6, addresses=(620, 660)))
        server.inject(Fault(FaultKind.DROP, addresses=(670, 690), times=1))
        scanner = Scanner(TcpEndpoint(host, port), catalog, rate=FAST, timeout=0.3)
        (unit,) = (await scanner.scan([1])).units
        assert unit.present
        assert best(unit) == "deye_sun_sg_hybrid"
        assert unit.suggestions[0].answered < unit.suggestions[0].probed
        assert {request.function for request in server.requests} <= READS


async def test_nothing_listening_is_an_error_of_the_scan(catalog: dict[str, PointMap]) -> None:
    scanner = Scanner(TcpEndpoint("127.0.0.1", free_port()), catalog, rate=FAST, timeout=0.5)
    with pytest.raises(DeviceConnectionError):
        await scanner.scan([1])


async def test_the_scanners_way_to_a_device_cannot_write(site: SimulatedSite) -> None:
    assert site.modbus_gateway is not None
    endpoints = site.endpoints
    link = ModbusLink(TcpEndpoint(endpoints.host, endpoints.modbus_gateway_port))
    try:
        modbus = ReadOnlyModbus(link, RateLimiter(FAST))
        assert not any("write" in name for name in dir(modbus))
        site.modbus_gateway.reset_traffic()
        with pytest.raises(WriteRefusedError):
            await ReadOnlyUnit(modbus, 1).write_registers(40000, [1])
        assert site.modbus_gateway.requests == []
    finally:
        await link.close()


def sunspec_image(base: int = 40000) -> UnitImage:
    return UnitImage({RegisterSpace.HOLDING: hybrid_inverter({}, meter={}, base=base)})


@pytest.mark.parametrize(
    "fault",
    [Fault(FaultKind.DROP, addresses=(40200, 40400), times=1),
     Fault(FaultKind.GARBAGE, addresses=(40200, 40400), times=1),
     Fault(FaultKind.EXCEPTION, code=6, addresses=(40200, 40400), times=2)],
    ids=["drop", "garbled", "busy"],
)  # fmt: skip
async def test_one_bad_answer_while_walking_the_chain_costs_nothing(
    catalog: dict[str, PointMap], fault: Fault
) -> None:
    async with ModbusSimServer({1: sunspec_image()}) as server:
        host, port = await server.start_tcp()
        server.inject(fault)
        scanner = Scanner(TcpEndpoint(host, port), catalog, rate=FAST, timeout=1.0)
        (unit,) = (await scanner.scan([1])).units
        assert fault.hits == fault.times
        assert unit.sunspec is not None
        assert unit.sunspec.error is None
        assert unit.sunspec.models[-2:] == (1, 203)
        assert all(device.identity is not None for device in unit.sunspec.devices)
        assert {request.function for request in server.requests} <= READS


async def test_a_capped_gateway_is_scanned_whole(catalog: dict[str, PointMap]) -> None:
    deye_map = catalog["deye_sun_sg_hybrid"]
    deye = UnitImage.from_point_map(deye_map, {"device_model": "LV three-phase hybrid inverter"})
    async with ModbusSimServer({1: sunspec_image(), 2: deye}) as server:
        host, port = await server.start_tcp()
        cap = server.inject(Fault(FaultKind.CAP, limit=50))
        scanner = Scanner(TcpEndpoint(host, port), catalog, rate=FAST)
        inverter, hybrid = (await scanner.scan([1, 2])).units
        assert inverter.sunspec is not None
        assert [d.identity is not None for d in inverter.sunspec.devices] == [True, True]
        assert best(hybrid) == "deye_sun_sg_hybrid"
        assert hybrid.suggestions[0].answered == hybrid.suggestions[0].probed
        assert cap.hits > 0
        assert {request.function for request in server.requests} <= READS


async def test_point_maps_rank_below_a_sunspec_chain(catalog: dict[str, PointMap]) -> None:
    # A SunSpec map at register 0, where small point maps (an irradiance sensor's) also read.
    async with ModbusSimServer({3: sunspec_image(base=0)}) as server:
        host, port = await server.start_tcp()
        scanner = Scanner(TcpEndpoint(host, port), catalog, rate=FAST)
        report = await scanner.scan([3])
    found = report.found()
    assert [(f["kind"], f["unit_id"], f["base_address"], f["device_index"]) for f in found[:2]] == [
        ("sunspec", 3, 0, 0), ("sunspec", 3, 0, 1),
    ]  # fmt: skip
    assert found[0]["identity"]["model"] == "Simulated hybrid inverter"
    assert all(f["kind"] == "modbus" and f["fit"] <= 1 for f in found[2:])
    assert report.as_json()["found"] == found
