"""The simulated BESS: a Device that dispatch drives, with physics and a revert timer."""

from __future__ import annotations

import pytest

from edge_ems.device import Device
from edge_ems.dispatch import ControlPolicy, Dispatcher, Outcome
from edge_ems.exceptions import DeviceConnectionError, WriteRefusedError
from edge_ems.metrics import BATTERY_POWER
from edge_ems.sim.bess import REVERT_TIMER, SimulatedBess
from edge_ems.sim.physics import Battery


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def make() -> tuple[SimulatedBess, Clock]:
    clock = Clock()
    battery = Battery(capacity_wh=10_000, max_charge_w=4000, max_discharge_w=5000, soc_pct=50)
    return SimulatedBess("bess-1", battery, name="Battery 1", clock=clock), clock


async def test_is_a_device_with_identity_and_readings() -> None:
    bess, _ = make()
    assert isinstance(bess, Device)
    identity = await bess.connect()
    assert (identity.model, identity.serial) == ("Simulated BESS", "bess-1")
    readings = await bess.read()
    assert readings["soc_pct"].value == 50.0
    assert readings["battery_state"].value == "idle"
    assert bess.health.connected
    assert bess.limits.max_discharge_w == 5000
    assert bess.limits.capacity_wh == 10_000


async def test_power_integrates_into_state_of_charge() -> None:
    bess, clock = make()
    await bess.connect()
    result = await bess.write(BATTERY_POWER, 5000)
    assert result.read_back == 5000
    clock.now += 1800
    readings = await bess.read()
    assert readings["battery_power_w"].value == 5000
    assert readings["battery_state"].value == "discharging"
    assert readings["soc_pct"].value == pytest.approx(50 - 100 * 2500 / 0.95 / 10_000, abs=0.01)


async def test_revert_timer_returns_the_battery_to_idle() -> None:
    bess, clock = make()
    await bess.write(BATTERY_POWER, -4000)
    await bess.write(REVERT_TIMER, 90)
    clock.now += 60
    assert (await bess.read())["battery_power_w"].value == -4000
    clock.now += 60
    readings = await bess.read()
    assert readings["battery_power_w"].value == 0
    assert readings["battery_state"].value == "idle"


@pytest.mark.parametrize(
    ("metric", "value", "reason"),
    [
        ("soc_pct", 10, "not_writable"),
        (BATTERY_POWER, 5001, "out_of_range"),
        (BATTERY_POWER, -4001, "out_of_range"),
        (BATTERY_POWER, "full", "invalid_value"),
        (BATTERY_POWER, True, "invalid_value"),
        (REVERT_TIMER, 3601, "out_of_range"),
    ],
)
async def test_refused_writes(metric: str, value: object, reason: str) -> None:
    bess, _ = make()
    with pytest.raises(WriteRefusedError) as raised:
        await bess.write(metric, value)  # type: ignore[arg-type]
    assert raised.value.reason == reason


async def test_offline_device_fails_and_is_reported() -> None:
    bess, _ = make()
    bess.online = False
    with pytest.raises(DeviceConnectionError):
        await bess.read()
    assert bess.health.error_streak == 1


async def test_dispatch_arms_the_revert_timer_and_releases_to_safe_mode() -> None:
    bess, _ = make()
    records = []
    dispatcher = Dispatcher(
        "home", ControlPolicy(enable_control=True, dry_run=False), records.append
    )
    dispatcher.add_device("bess-1", bess, bess.limits)
    [applied] = await dispatcher.dispatch(9000, requested_by="test", source="test", ttl=60)
    assert (applied.outcome, applied.applied) == (Outcome.APPLIED, 5000)
    assert (await bess.read())[REVERT_TIMER].value == 90
    [released] = await dispatcher.release(requested_by="test", source="test")
    assert released.outcome is Outcome.RELEASED
    assert bess.battery.command_w == 0
    await dispatcher.close()
