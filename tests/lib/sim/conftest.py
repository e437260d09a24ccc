"""Fixtures for the simulated site: an injected clock, and sites on free loopback ports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from edge_ems.modbus import LinkSettings
from edge_ems.sim.config import SiteConfig
from edge_ems.sim.site import SimulatedSite

from ..bms.support import allow_loopback_sockets

DAY = 86_400.0
# A Wednesday; the simulators take solar time as UTC.
MIDNIGHT = 1_700_006_400.0
NOON = MIDNIGHT + 12 * 3600
NIGHT = MIDNIGHT + 2 * 3600
PATIENT = LinkSettings(timeout=5.0, retries=1, backoff_base=0.01, backoff_cap=0.05)
MODBUS_ONLY = SiteConfig(
    bess=None, mqtt_bms=None, can_bms=False, ev_charger=None, heat_pump=None,
    battery_inverter=None, tick=3600.0,
)  # fmt: skip
"""The inverters and the meter alone, ticking only when a test steps them."""


@dataclass(slots=True)
class FakeClock:
    """Time that moves only when a test moves it."""

    now: float

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@pytest.fixture(autouse=True)
def _loopback_sockets() -> None:
    allow_loopback_sockets()


@pytest.fixture
def clock() -> FakeClock:
    """The plant's clock, at noon."""
    return FakeClock(NOON)


@pytest.fixture
def monotonic() -> FakeClock:
    """The clock of the SunSpec revert timers."""
    return FakeClock(1000.0)


@pytest.fixture
async def site(clock: FakeClock, monotonic: FakeClock) -> AsyncIterator[SimulatedSite]:
    """The Modbus devices of a simulated site, stepped by the test."""
    async with SimulatedSite(MODBUS_ONLY, clock=clock, monotonic=monotonic) as running:
        yield running
