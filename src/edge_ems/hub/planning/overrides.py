"""Overrides: someone holds an asset at a value for a while, and the plan is made around it.

An override names an asset of the site, a command and a value, and a window. While it is
active its value is what the asset is sent, whatever the plan says; and every plan made
while it lasts holds the asset there (:class:`~edge_ems.planner.problem.Hold`), as far as
the asset can, so everything else is planned around it. A battery's power, an EV's current
or permission to charge, a heat pump's power limit and a load's switch are planned around;
any other
command the asset takes is only sent. A deferrable load's switch (``load_enabled``) is planned
around too, unless the load runs as one block.

One command is never sent: ``ev_energy_needed_wh`` on a planned EV tells the planner what the
car's charging session needs by the override's end (its departure), in place of the
configured need and departure, for as long as the override lasts.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ...gateway.model import AssetInfo
from ...metrics import BATTERY_POWER
from ...planner.errors import PlanInputError
from ...planner.problem import Battery, Deferrable, Ev, HeatPump, Hold, Horizon
from ...readings import Value

EV_CURRENT = "ev_current_limit_a"
EV_ENABLED = "ev_charging_enabled"
HEAT_PUMP_LIMIT = "heat_pump_power_limit_w"
LOAD_ENABLED = "load_enabled"
EV_DEMAND = "ev_energy_needed_wh"
"""What an EV's session needs by the override's end: for the planner, never sent."""
PLANNED_COMMANDS = (BATTERY_POWER, EV_CURRENT, EV_ENABLED, HEAT_PUMP_LIMIT, LOAD_ENABLED)
"""Commands the plan is made around; others are only sent."""
PLANNER_COMMANDS = (*PLANNED_COMMANDS, EV_DEMAND)
"""Every command the planner itself understands."""
SWITCHES = (EV_ENABLED, LOAD_ENABLED)
"""Commands that take true or false."""
MAX_WINDOW_MS = 7 * 86_400_000
"""The longest an override may last, and how far ahead it may start."""
MAX_ABS_VALUE = 10_000_000.0


@dataclass(frozen=True, slots=True)
class Override:
    """One asset held at a value in ``[start_ms, end_ms)``."""

    site_id: str
    asset_id: str
    command: str
    value: Value
    start_ms: int
    end_ms: int
    requested_by: str
    created_ms: int
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def active(self, now_ms: int) -> bool:
        """Whether it holds at ``now_ms``."""
        return self.start_ms <= now_ms < self.end_ms

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (times also as RFC 3339)."""
        return {
            "id": self.id,
            "site_id": self.site_id,
            "asset_id": self.asset_id,
            "command": self.command,
            "value": self.value,
            "start": _iso(self.start_ms),
            "end": _iso(self.end_ms),
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "requested_by": self.requested_by,
            "created_ms": self.created_ms,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Override:
        """Back from :meth:`as_dict` (as stored)."""
        return cls(
            site_id=data["site_id"],
            asset_id=data["asset_id"],
            command=data["command"],
            value=data["value"],
            start_ms=int(data["start_ms"]),
            end_ms=int(data["end_ms"]),
            requested_by=data["requested_by"],
            created_ms=int(data["created_ms"]),
            id=data["id"],
        )


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def make_override(
    site_id: str,
    asset_id: str,
    command: str,
    value: Value,
    start_ms: int,
    end_ms: int,
    *,
    requested_by: str,
    now_ms: int,
    assets: Mapping[str, AssetInfo],
    planned: Iterable[str] = (),
    planned_evs: Iterable[str] = (),
) -> Override:
    """An override, checked against the site's assets (``assets``: what its agents
    registered; ``planned``: what the planner's configuration adds; ``planned_evs``: its
    EVs, which alone take an :data:`EV_DEMAND`). ``start_ms`` 0 is now.
    :class:`PlanInputError` says why one is refused."""
    start_ms = start_ms or now_ms
    where = f"override of {asset_id!r}"
    if command == EV_DEMAND:
        evs = set(planned_evs)
        if asset_id not in evs:
            known = ", ".join(sorted(evs)) or "none"
            raise PlanInputError(f"{where}: {EV_DEMAND} is for a planned EV (here: {known})")
        assets = {}  # asked of the planner, not of the charger
    info = assets.get(asset_id)
    if info is None and asset_id not in set(planned):
        known = ", ".join(sorted({*assets, *planned})) or "none"
        raise PlanInputError(f"{where}: site {site_id!r} has no such asset (it has: {known})")
    if info is not None and info.commands and command not in info.commands:
        raise PlanInputError(
            f"{where}: it does not take {command!r} (it takes: {', '.join(info.commands)})"
        )
    if info is None and command not in PLANNER_COMMANDS:
        raise PlanInputError(f"{where}: {command!r} is not a command the planner knows")
    value = _check_value(command, value, where)
    if not start_ms < end_ms:
        raise PlanInputError(f"{where}: it ends at or before it starts")
    if end_ms <= now_ms:
        raise PlanInputError(f"{where}: it ends at {_iso(end_ms)}, before now")
    if end_ms - start_ms > MAX_WINDOW_MS or start_ms - now_ms > MAX_WINDOW_MS:
        raise PlanInputError(f"{where}: at most 7 days long, starting within 7 days")
    return Override(
        site_id, asset_id, command, value, start_ms, end_ms, requested_by or "unknown", now_ms
    )


def _check_value(command: str, value: Value, where: str) -> Value:
    if command in SWITCHES:
        if not isinstance(value, bool):
            raise PlanInputError(f"{where}: {command} takes true or false, got {value!r}")
        return value
    if command in PLANNER_COMMANDS and (
        isinstance(value, bool) or not isinstance(value, int | float)
    ):
        raise PlanInputError(f"{where}: {command} takes a number, got {value!r}")
    if value is None:
        raise PlanInputError(f"{where}: it needs a value")
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        if not math.isfinite(number) or abs(number) > MAX_ABS_VALUE:
            raise PlanInputError(f"{where}: {value!r} is not a usable value")
        if command in (EV_CURRENT, HEAT_PUMP_LIMIT, EV_DEMAND) and number < 0:
            raise PlanInputError(f"{where}: {command} cannot be negative")
    return value


def holds(
    overrides: Iterable[Override],
    horizon: Horizon,
    *,
    batteries: Iterable[Battery] = (),
    evs: Iterable[Ev] = (),
    heat_pumps: Iterable[HeatPump] = (),
    loads: Iterable[Deferrable] = (),
) -> list[Hold]:
    """The holds ``overrides`` put on a plan over ``horizon`` of these assets."""
    step_ms = horizon.step_minutes * 60_000
    start_ms = round(horizon.start.timestamp() * 1000)
    battery_ids = {b.id for b in batteries}
    ev_by_id = {ev.id: ev for ev in evs}
    heat_pump_ids = {hp.id for hp in heat_pumps}
    # A single block runs once, whole: it cannot be held.
    switchable = {load.id: load for load in loads if not load.single_block}
    found = []
    for override in overrides:
        first = max(0, (override.start_ms - start_ms) // step_ms)
        last = min(horizon.n_steps, -(-(override.end_ms - start_ms) // step_ms))
        if first >= last:
            continue
        power = _power(override, battery_ids, ev_by_id, heat_pump_ids, switchable)
        if power is not None:
            found.append(Hold(override.asset_id, int(first), int(last), power))
    return found


def _power(
    override: Override,
    batteries: set[str],
    evs: Mapping[str, Ev],
    heat_pumps: set[str],
    loads: Mapping[str, Deferrable],
) -> float | None:
    """The power (site sign) an override holds its asset at, if the plan knows the asset."""
    value = override.value
    asset = override.asset_id
    if override.command == LOAD_ENABLED and asset in loads:
        return -loads[asset].power_w if value else 0.0
    if override.command == BATTERY_POWER and asset in batteries:
        return float(value)  # type: ignore[arg-type]
    if override.command == HEAT_PUMP_LIMIT and asset in heat_pumps:
        return -float(value)  # type: ignore[arg-type]
    ev = evs.get(asset)
    if ev is None:
        return None
    mode = ev.modes[0]
    if override.command == EV_CURRENT:
        current = float(value)  # type: ignore[arg-type]
        return -current * ev.voltage_v * mode.phases if current >= mode.min_current_a else 0.0
    if override.command == EV_ENABLED:
        return -ev.max_power_w if value else 0.0
    return None


def active(overrides: Iterable[Override], now_ms: int) -> dict[tuple[str, str], Value]:
    """What the active overrides hold, to be sent: (asset, command) to value; the newest
    wins."""
    return {
        key: override.value
        for key, override in _newest_active(overrides, now_ms).items()
        if override.command != EV_DEMAND
    }


def ev_demands(overrides: Iterable[Override], now_ms: int) -> dict[str, Override]:
    """Each EV's active :data:`EV_DEMAND`, the newest where there are several."""
    return {
        asset_id: override
        for (asset_id, command), override in _newest_active(overrides, now_ms).items()
        if command == EV_DEMAND
    }


def _newest_active(overrides: Iterable[Override], now_ms: int) -> dict[tuple[str, str], Override]:
    """The newest active override of each (asset, command)."""
    newest: dict[tuple[str, str], Override] = {}
    for override in overrides:
        if override.active(now_ms):
            key = (override.asset_id, override.command)
            held = newest.get(key)
            if held is None or override.created_ms >= held.created_ms:
                newest[key] = override
    return newest
