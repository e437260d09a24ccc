"""From a plan to setpoints, and setpoints through the guarded :class:`Dispatcher`.

This is where phase 2 plugs in: the hub's planner service calls :meth:`PlanExecutor.apply`
every step (or more often) with the plan in force, for a ``Dispatcher`` of the site's own
devices, or of the devices an HA actuator subentry maps; overrides, read-back verification
and the audit schedule wrap around it there. Every battery setpoint is a lease: a planner
that stops leaves each battery to return to its safe mode when the lease lapses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime

from ..dispatch import AuditRecord, Dispatcher
from ..metrics import BATTERY_POWER
from .commands import EvStep, Setpoint, step_setpoints
from .plan import Plan

REQUESTED_BY = "planner"
SOURCE = "planner"


def setpoints(plan: Plan, step: int) -> list[Setpoint]:
    """The commands of ``step`` (:func:`.commands.step_setpoints`)."""
    return step_setpoints(
        {battery.id: float(battery.power_w[step]) for battery in plan.batteries},
        {
            ev.id: EvStep(float(ev.power_w[step]), float(ev.current_a[step]), int(ev.phases[step]))
            for ev in plan.evs
        },
        {heat_pump.id: float(heat_pump.power_w[step]) for heat_pump in plan.heat_pumps},
        {load.id: float(load.power_w[step]) for load in plan.deferrables},
    )


def dither(mean_a: float, step_a: float, seconds: float) -> list[tuple[float, float]]:
    """A mean current a charger with ``step_a`` settings can only approximate, as the two
    nearest settings in turn: (seconds from the step's start, current) pairs whose time-
    weighted mean is ``mean_a``."""
    low = math.floor(mean_a / step_a + 1e-9) * step_a
    if mean_a - low < 1e-9:
        return [(0.0, low)]
    high = low + step_a
    share = (mean_a - low) / step_a
    return [(0.0, high), (share * seconds, low)]


class PlanExecutor:
    """Sends a plan's setpoints through a site's dispatcher, battery power as leases."""

    def __init__(
        self, dispatcher: Dispatcher, devices: Mapping[str, str], *, lease_s: float
    ) -> None:
        """``devices`` maps the plan's asset ids to the dispatcher's device ids; a lease
        lasts ``lease_s`` seconds unless the next step renews it."""
        self._dispatcher = dispatcher
        self._devices = dict(devices)
        self._lease_s = lease_s

    async def apply(self, plan: Plan, now: datetime) -> list[AuditRecord]:
        """Dispatch the step ``now`` falls in; nothing outside the plan's horizon."""
        step = plan.step_at(now)
        if step is None:
            return []
        records: list[AuditRecord] = []
        for setpoint in setpoints(plan, step):
            device = self._devices.get(setpoint.asset_id)
            if device is None:
                continue
            if setpoint.command == BATTERY_POWER:
                records += await self._dispatcher.dispatch(
                    float(setpoint.value),
                    requested_by=REQUESTED_BY,
                    source=SOURCE,
                    asset_id=device,
                    ttl=self._lease_s,
                )
                continue
            record = await self._dispatcher.write(
                device, setpoint.command, setpoint.value, requested_by=REQUESTED_BY, source=SOURCE
            )
            records.append(record)
        return records
