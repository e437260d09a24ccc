"""A plan through the guarded Dispatcher onto a simulated battery, in simulated time."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from edge_ems.dispatch import AuditRecord, ControlPolicy, Dispatcher, Outcome
from edge_ems.metrics import BATTERY_POWER
from edge_ems.planner.execute import PlanExecutor, dither, setpoints
from edge_ems.planner.problem import ChargeMode, Deferrable, Ev, HeatPump, series
from edge_ems.planner.solver import solve
from edge_ems.sim.bess import SimulatedBess
from edge_ems.sim.physics import Battery as PhysicalBattery

from .support import START, battery, problem


class SimClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_a_plan_drives_a_simulated_battery_and_a_silent_planner_leaves_it_idle() -> None:
    clock = SimClock(START.timestamp())
    bess = SimulatedBess(
        "bess-1", PhysicalBattery(capacity_wh=10_000, soc_pct=50.0, efficiency=0.95), clock=clock
    )
    records: list[AuditRecord] = []
    policy = ControlPolicy(enable_control=True, dry_run=False, lease_ttl=1800.0)
    dispatcher = Dispatcher("home", policy, records.append, clock=clock, monotonic=clock)
    dispatcher.add_device("bess-1", bess, bess.limits)
    await bess.connect()
    plan = solve(problem(buy=[0.1] * 4 + [0.5] * 4, batteries=[battery(soc_final=0.5)]))
    executor = PlanExecutor(dispatcher, {"battery": "bess-1"}, lease_s=1800.0)
    try:
        for step in range(4):
            applied = await executor.apply(plan, plan.horizon.time(step) + timedelta(minutes=1))
            assert [r.outcome for r in applied] == [Outcome.APPLIED]
            assert bess.battery.command_w == pytest.approx(plan.batteries[0].power_w[step], abs=0.1)
            clock.now += 3600
            await bess.read()
        assert bess.battery.soc_pct > 50.0  # it charged in the cheap hours, as planned
        # The planner stops: the battery's own revert timer (1.5 x the lease) returns it to idle.
        clock.now += 2 * 3600
        await bess.read()
        assert bess.battery.command_w == 0.0
        assert await executor.apply(plan, plan.horizon.end + timedelta(hours=1)) == []
    finally:
        await dispatcher.close()
    planned = [r for r in records if r.outcome is Outcome.APPLIED and r.command == BATTERY_POWER]
    assert len(planned) == 4
    assert {(r.requested_by, r.source, r.ttl) for r in planned} == {("planner", "planner", 1800.0)}


def test_setpoints_name_commands_of_the_vocabulary() -> None:
    n = 4
    ev = Ev("car", energy_needed_wh=5000.0, depart_step=4, modes=(ChargeMode(3, 6, 16),))
    hp = HeatPump("hp", 2000.0, series(3.0, n, "cop"), series(5.0, n, "t"), series(20.0, n, "lo"),
                  series(22.0, n, "hi"), indoor_temp_c=19.0)  # fmt: skip
    boiler = Deferrable("boiler", 2000.0, required_steps=1, single_block=True)
    plan = solve(
        problem(n=n, buy=[0.1, 0.5, 0.5, 0.5], evs=[ev], heat_pumps=[hp], deferrables=[boiler])
    )
    commands = {(s.asset_id, s.command): s.value for s in setpoints(plan, 0)}
    assert commands[("boiler", "load_enabled")] is True  # the cheap hour
    assert {s.value for s in setpoints(plan, 1) if s.asset_id == "boiler"} == {False}
    assert commands[("car", "ev_charging_enabled")] is True
    assert commands[("car", "ev_phases")] == 3
    assert 6 <= float(commands[("car", "ev_current_limit_a")]) <= 16
    assert commands[("hp", "heat_pump_power_limit_w")] == pytest.approx(2000.0)


@pytest.mark.parametrize(("mean", "step"), [(10.4, 1.0), (6.0, 1.0), (13.75, 0.5), (7.2, 2.0)])
def test_dither_realises_a_mean_current(mean: float, step: float) -> None:
    parts = dither(mean, step, 900.0)
    bounds = [start for start, _ in parts] + [900.0]
    realised = sum(amps * (b - a) for (a, amps), b in zip(parts, bounds[1:], strict=True)) / 900.0
    assert realised == pytest.approx(mean)
    assert all(np.isclose(amps / step, round(amps / step)) for _, amps in parts)
