"""Read-back verification: a leased command another master overwrites shows as a deviation."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.client import AsyncModbusTcpClient

from edge_ems.dispatch import Outcome
from edge_ems.readings import Quality, Reading
from edge_ems.sim.config import SiteConfig
from edge_ems.sim.site import SimulatedSite
from edge_ems.site.follow import Deviation, deviations, holds

from ..bms.support import allow_loopback_sockets
from .test_site import live, make_site

EV_ONLY = SiteConfig(
    sunspec=None, bess=None, mqtt_bms=None, can_bms=False, heat_pump=None,
    battery_inverter=None, tick=0.2,
)  # fmt: skip
LIMIT = "ev_current_limit_a"


@pytest.fixture(autouse=True)
def _loopback_sockets() -> None:
    allow_loopback_sockets()


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedSite]:
    async with SimulatedSite(EV_ONLY) as running:
        yield running


def ev_only(data: dict[str, Any]) -> dict[str, Any]:
    return live({**data, "devices": [d for d in data["devices"] if d["id"] == "ev-charger"]})


async def test_a_current_another_master_overwrites_is_a_deviation(sim: SimulatedSite) -> None:
    site = await make_site(ev_only(sim.site_file()))
    await site.start(poll=False)
    try:
        (record,) = [
            await site.dispatcher.write("ev-charger", LIMIT, 10, requested_by="t", source="t")
        ]
        assert record.outcome is Outcome.APPLIED
        await site.poll("ev-charger")
        assert site.deviations() == []
        # A second controller writes 16 A to the same register (Alfen's 1210, a float).
        ends = sim.endpoints
        client = AsyncModbusTcpClient(ends.host, port=ends.ev_charger_port)
        await client.connect()
        try:
            words = list(struct.unpack(">HH", struct.pack(">f", 16.0)))
            await client.write_registers(1210, words, device_id=ends.ev_charger_unit)
        finally:
            client.close()
        await site.poll("ev-charger")
        assert site.deviations() == [Deviation("ev-charger", LIMIT, 10.0, 16.0)]
    finally:
        await site.stop()


def reading(value: Any, quality: Quality = Quality.GOOD) -> dict[str, Reading]:
    return {LIMIT: Reading(LIMIT, value, 0.0, quality)}


def test_what_tells_nothing_is_left_out() -> None:
    leases = {"ev": {LIMIT: (10.0, 30.0)}, "gone": {LIMIT: (6.0, 30.0)}}
    assert deviations(leases, {"ev": reading(16.0, Quality.STALE)}) == []
    assert deviations(leases, {"ev": {}}) == []
    assert deviations(leases, {"ev": reading(10.3)}) == []
    assert deviations(leases, {"ev": reading(11.0)}) == [Deviation("ev", LIMIT, 10.0, 11.0)]


@pytest.mark.parametrize(
    ("expected", "actual", "held"),
    [
        (3000.0, 2980, True),
        (3000.0, 2900, False),
        (0.0, 0.4, True),
        (True, True, True),
        (True, 1, False),
        ("zero_export_to_ct", "selling_first", False),
    ],
)
def test_holds(expected: Any, actual: Any, held: bool) -> None:
    assert holds(expected, actual) is held


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6))
def test_a_value_holds_itself(value: float) -> None:
    assert holds(value, value)
