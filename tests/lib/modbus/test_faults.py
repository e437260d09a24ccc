"""Faults from a live server: each gives one clear error, the breaker trips and recovers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from edge_ems.exceptions import (
    CircuitOpenError,
    DeviceBusyError,
    DeviceConnectionError,
    DeviceExceptionError,
    DeviceProtocolError,
    DeviceTimeoutError,
)
from edge_ems.modbus import LinkSettings, ModbusDevice, ModbusLink, TcpEndpoint
from edge_ems.pointmap import PointMap, PollGroup
from edge_ems.resilience import BreakerState, CircuitBreaker
from edge_ems.sim.modbus_server import Fault, FaultKind, ModbusSimServer

from .conftest import HASTY, hybrid_image, tcp_endpoint

FAST = [PollGroup.FAST]  # holding 20-24 and input 10-12


@pytest.fixture
async def hasty_link(server: ModbusSimServer) -> AsyncIterator[ModbusLink]:
    link = ModbusLink(tcp_endpoint(server), HASTY)
    yield link
    await link.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (1, "illegal function"),
        (2, "illegal data address"),
        (3, "illegal data value"),
        (4, "server device failure"),
    ],
)
async def test_exception_codes(
    hasty_link: ModbusLink, hybrid_map: PointMap, server: ModbusSimServer, code: int, name: str
) -> None:
    device = ModbusDevice(hasty_link, hybrid_map, name="hybrid")
    server.inject(Fault(FaultKind.EXCEPTION, code=code))
    with pytest.raises(DeviceExceptionError) as caught:
        await device.read(groups=FAST)
    assert caught.value.code == code
    assert str(caught.value) == f"hybrid (unit 1) reading holding 20-24: exception {code} ({name})"


async def test_exception_code_with_partial_read(
    hasty_link: ModbusLink, hybrid_map: PointMap, server: ModbusSimServer
) -> None:
    device = ModbusDevice(hasty_link, hybrid_map, name="hybrid")
    server.inject(Fault(FaultKind.EXCEPTION, code=3, addresses=(20, 24)))
    readings = await device.read(groups=FAST)
    assert set(readings) == {"soc_pct", "battery_power_w"}
    server.inject(Fault(FaultKind.EXCEPTION, code=3, addresses=(10, 12)))
    with pytest.raises(DeviceExceptionError, match="exception 3"):
        await device.read(groups=FAST)


async def test_busy_device_asks_to_retry_later(
    server: ModbusSimServer, hybrid_map: PointMap
) -> None:
    settings = LinkSettings(timeout=5.0, retries=2, backoff_base=0.01, backoff_cap=0.02)
    link = ModbusLink(tcp_endpoint(server), settings)
    device = ModbusDevice(link, hybrid_map, name="hybrid")
    busy = server.inject(Fault(FaultKind.EXCEPTION, code=6, times=2))
    readings = await device.read(groups=FAST)  # two busy answers, the third try gets through
    assert readings["soc_pct"].value == 55
    assert busy.hits == 2

    server.inject(Fault(FaultKind.EXCEPTION, code=6))
    with pytest.raises(DeviceBusyError, match="exception 6, server device busy") as caught:
        await device.read(groups=FAST)
    assert caught.value.retry_after is not None
    assert 0 <= caught.value.retry_after <= 0.02
    await link.close()


async def test_slow_answer_times_out(
    hasty_link: ModbusLink, hybrid_map: PointMap, server: ModbusSimServer
) -> None:
    device = ModbusDevice(hasty_link, hybrid_map, name="hybrid")
    server.inject(Fault(FaultKind.DELAY, delay=4.0, addresses=(20, 24), times=1))
    with pytest.raises(DeviceTimeoutError, match=r"reading holding 20-24: no answer in time"):
        await device.read(groups=FAST)
    # The link was recycled, so the late answer cannot be taken for the next request's.
    assert (await device.read(groups=FAST))["ac_power_w"].value == -1234.5


async def test_connection_dropped_mid_read(
    hasty_link: ModbusLink, hybrid_map: PointMap, server: ModbusSimServer
) -> None:
    device = ModbusDevice(hasty_link, hybrid_map, name="hybrid")
    server.inject(Fault(FaultKind.DROP, addresses=(10, 12), times=1))
    with pytest.raises(DeviceConnectionError, match="reading input 10-12: connection lost"):
        await device.read(groups=FAST)
    assert (await device.read(groups=FAST))["soc_pct"].value == 55  # reconnected


async def test_drop_is_retried_transparently(server: ModbusSimServer, hybrid_map: PointMap) -> None:
    settings = LinkSettings(timeout=5.0, retries=1, backoff_base=0.01, backoff_cap=0.02)
    link = ModbusLink(tcp_endpoint(server), settings)
    device = ModbusDevice(link, hybrid_map, name="hybrid")
    drop = server.inject(Fault(FaultKind.DROP, addresses=(10, 12), times=1))
    assert (await device.read(groups=FAST))["soc_pct"].value == 55
    assert drop.hits == 1
    await link.close()


async def test_garbage_answer(
    hasty_link: ModbusLink, hybrid_map: PointMap, server: ModbusSimServer
) -> None:
    device = ModbusDevice(hasty_link, hybrid_map, name="hybrid")
    server.inject(Fault(FaultKind.GARBAGE, addresses=(20, 24), times=1))
    with pytest.raises(DeviceProtocolError, match="answer is no valid Modbus frame"):
        await device.read(groups=FAST)
    assert (await device.read(groups=FAST))["grid_power_w"].value == -800


async def test_breaker_opens_and_closes(
    hasty_link: ModbusLink, hybrid_map: PointMap, server: ModbusSimServer
) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("hybrid", failure_threshold=3, reset_timeout=30.0, clock=clock)
    device = ModbusDevice(hasty_link, hybrid_map, name="hybrid", breaker=breaker)
    server.inject(Fault(FaultKind.EXCEPTION, code=4))
    for _ in range(3):
        with pytest.raises(DeviceExceptionError):
            await device.read(groups=FAST)
    assert device.health.breaker is BreakerState.OPEN
    assert device.health.error_streak == 3

    sent = len(server.requests)
    with pytest.raises(CircuitOpenError) as caught:
        await device.read(groups=FAST)
    assert caught.value.retry_after == pytest.approx(30.0)
    assert len(server.requests) == sent  # nothing reached the device

    clock.now += 29.0
    with pytest.raises(CircuitOpenError):
        await device.read(groups=FAST)

    server.clear_faults()  # the device is back
    clock.now += 1.0
    readings = await device.read(groups=FAST)  # the half-open trial goes through
    assert readings["soc_pct"].value == 55
    health = device.health
    assert (health.breaker, health.error_streak, health.last_error) == (
        BreakerState.CLOSED, 0, None,
    )  # fmt: skip


async def test_reading_resumes_when_the_device_returns(hybrid_map: PointMap) -> None:
    async with ModbusSimServer({1: hybrid_image(hybrid_map)}) as first:
        host, port = await first.start_tcp()
        link = ModbusLink(TcpEndpoint(host, port), HASTY)
        device = ModbusDevice(link, hybrid_map, name="hybrid")
        assert (await device.read(groups=FAST))["soc_pct"].value == 55
    with pytest.raises(DeviceConnectionError):  # the device is gone
        await device.read(groups=FAST)
    assert device.health.error_streak == 1
    async with ModbusSimServer({1: hybrid_image(hybrid_map, soc_pct=56)}) as second:
        await second.start_tcp(host, port)
        assert (await device.read(groups=FAST))["soc_pct"].value == 56
    assert device.health.error_streak == 0
    await link.close()
