"""Writable SunSpec points as commands: limits from the model, values to registers.

Only points on :data:`~edge_ems.sunspec.mapping.CONTROLS` are ever written. A command's
limits come from the model: what the point's type can hold at the device's current scale
factor, narrowed by what the point means (a percentage stays within 0..100).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..device import Command
from ..exceptions import WriteRefusedError
from ..metrics import LEASED_METRICS
from ..readings import Value
from .codec import SF_RANGE, GroupValues, raw_range, scaled, unscaled
from .layout import ModelLayout
from .mapping import (
    CONTROLS,
    FAN_OUT,
    STORAGE_BASE,
    STORAGE_BOTH_LIMITS,
    STORAGE_CHARGE,
    STORAGE_DISCHARGE,
    STORAGE_MODE,
    STORAGE_SETPOINT,
    ControlPoint,
)
from .models import PointDef
from .readout import is_flag

_STORAGE_POINTS = frozenset({STORAGE_DISCHARGE, STORAGE_CHARGE, STORAGE_MODE})

type Values = Mapping[int, GroupValues]
"""Decoded models by the address of their header."""


@dataclass(frozen=True, slots=True)
class Target:
    """An allowlisted point found on the device."""

    control: ControlPoint
    layout: ModelLayout
    point: PointDef

    @property
    def address(self) -> int:
        """Address of the point's first register."""
        return self.layout.root.points[self.point.name]


@dataclass(frozen=True, slots=True)
class Assignment:
    """A raw value to write to a target."""

    target: Target
    raw: int


def bind_controls(layouts: Sequence[ModelLayout]) -> dict[str, tuple[Target, ...]]:
    """The points each command writes: the first allowlisted one, or all for fan-outs."""
    by_model: dict[int, ModelLayout] = {}
    for layout in layouts:
        by_model.setdefault(layout.model.id, layout)
    targets: dict[str, list[Target]] = {}
    for control in CONTROLS:
        model = by_model.get(control.model)
        point = None if model is None else model.model.group.point(control.point)
        if model is None or point is None or point.name not in model.root.points:
            continue
        found = targets.setdefault(control.metric, [])
        if control.metric in FAN_OUT or not found:
            found.append(Target(control, model, point))
    window = {target.point.name for target in targets.get(STORAGE_SETPOINT, ())}
    if window and window != _STORAGE_POINTS:
        del targets[STORAGE_SETPOINT]  # the window needs both rates and the mode
    return {metric: tuple(found) for metric, found in targets.items()}


def _top(target: Target, values: Values) -> GroupValues | None:
    return values.get(target.layout.address)


def usable(metric: str, targets: Sequence[Target], values: Values) -> tuple[Target, ...]:
    """The targets the device implements now: a point reading "not implemented" is left
    alone. The storage window needs all of its points, or none is usable."""
    found = tuple(target for target in targets if _held(target, values) is not None)
    if metric == STORAGE_SETPOINT and len(found) < len(targets):
        return ()
    return found


def _held(target: Target, values: Values) -> Value:
    """The target's decoded value now."""
    top = _top(target, values)
    return None if top is None else top.values.get(target.point.name)


def _exponent(target: Target, values: Values) -> int | None:
    """The point's scale-factor exponent now; 0 for an unscaled point."""
    if target.point.sf is None:
        return 0
    if isinstance(target.point.sf, int):
        return target.point.sf
    top = _top(target, values)
    exponent = None if top is None else top.values.get(target.point.sf)
    if isinstance(exponent, int) and SF_RANGE[0] <= exponent <= SF_RANGE[1]:
        return exponent
    return None


def _switch(target: Target) -> bool:
    """Whether the target is written as on or off: an enable point, or a bitfield whose
    control names the raw value for on."""
    return is_flag(target.point) or target.control.on is not None


def _range(target: Target, values: Values) -> tuple[float, float] | None:
    if _switch(target):
        return 0, 1
    exponent = _exponent(target, values)
    if exponent is None:
        return None
    low, high = (scaled(raw, exponent) for raw in raw_range(target.point))
    if target.control.limits is not None:
        low, high = max(low, target.control.limits[0]), min(high, target.control.limits[1])
    return low, high


def _storage_base(targets: Sequence[Target], values: Values) -> float | None:
    """``WChaMax`` in watts, the base of 124's percentage rates."""
    top = _top(targets[0], values)
    base = None if top is None else top.values.get(STORAGE_BASE)
    return float(base) if isinstance(base, int | float) and base > 0 else None


def limits(metric: str, targets: Sequence[Target], values: Values) -> tuple[float, float] | None:
    """What the command accepts now, or ``None`` when the device's state forbids writing."""
    targets = usable(metric, targets, values)
    if not targets:
        return None
    if metric == STORAGE_SETPOINT:
        base = _storage_base(targets, values)
        return None if base is None or _range(targets[0], values) is None else (-base, base)
    ranges = [_range(target, values) for target in targets]
    if any(found is None for found in ranges):
        return None
    lows, highs = zip(*(found for found in ranges if found is not None), strict=True)
    return max(lows), min(highs)


def command(metric: str, targets: Sequence[Target], values: Values) -> Command | None:
    """The command as the device offers it now, ``None`` if it cannot be written now."""
    found = limits(metric, targets, values)
    if found is None:
        return None
    # SunSpec immediate controls are meant for frequent dispatch and revert on their own; the
    # storage window must lapse back to the inverter's own control.
    leased = metric in LEASED_METRICS
    return Command(
        metric, minimum=found[0], maximum=found[1], allow_write=True, eeprom=False, lease=leased
    )


def _refuse(metric: str, message: str, reason: str) -> WriteRefusedError:
    return WriteRefusedError(f"{metric}: {message}", reason=reason)


def _number(metric: str, value: Value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _refuse(metric, f"{value!r} is not a finite number", "out_of_range")
    return float(value)


def _raw(metric: str, target: Target, value: Value, values: Values) -> int:
    found = _range(target, values)
    if found is None:
        raise _refuse(metric, "the device reports no usable scale factor", "not_writable")
    if _switch(target):
        if value not in (True, False, 0, 1) or isinstance(value, float):
            raise _refuse(metric, f"{value!r} is neither on nor off", "out_of_range")
        return (target.control.on or 1) if value else 0
    number = _number(metric, value)
    if not found[0] <= number <= found[1]:
        raise _refuse(metric, f"{number} is outside {found[0]}..{found[1]}", "out_of_range")
    exponent = _exponent(target, values)
    assert exponent is not None
    return unscaled(number, exponent)


def _by_point(targets: Sequence[Target]) -> dict[str, Target]:
    return {target.point.name: target for target in targets}


def assignments(
    metric: str, targets: Sequence[Target], value: Value, values: Values
) -> list[Assignment]:
    """The raw values that carry out ``metric = value``, in the order they must be written.

    Raises :class:`~edge_ems.exceptions.WriteRefusedError` (``out_of_range``,
    ``not_writable``) before anything is written.
    """
    targets = usable(metric, targets, values)
    if not targets:
        raise _refuse(metric, "the device reports the point not implemented", "not_writable")
    if metric != STORAGE_SETPOINT:
        return [Assignment(target, _raw(metric, target, value, values)) for target in targets]
    base = _storage_base(targets, values)
    if base is None:
        raise _refuse(metric, f"the device reports no {STORAGE_BASE}", "not_writable")
    power = _number(metric, value)
    if abs(power) > base:
        raise _refuse(metric, f"{power} W exceeds {STORAGE_BASE} of {base} W", "out_of_range")
    points = _by_point(targets)
    rate = 100.0 * power / base
    # Rates first: the mode switches the window on only once it is in place.
    discharge, charge = points[STORAGE_DISCHARGE], points[STORAGE_CHARGE]
    return [
        Assignment(discharge, _raw(metric, discharge, rate, values)),
        Assignment(charge, _raw(metric, charge, -rate, values)),
        Assignment(points[STORAGE_MODE], STORAGE_BOTH_LIMITS),
    ]


def current(metric: str, targets: Sequence[Target], values: Values) -> Value:
    """The command's value as the device holds it now.

    For the storage window: the setpoint it pins, ``None`` when the window is not pinned.
    """
    if metric != STORAGE_SETPOINT:
        found = usable(metric, targets, values) or targets
        value = _held(found[0], values)
        if value is None or not _switch(found[0]):
            return value
        return value != 0 if found[0].control.on is not None else value == 1
    top = _top(targets[0], values)
    base = _storage_base(targets, values)
    if top is None or base is None:
        return None
    out_rate, in_rate = top.values.get(STORAGE_DISCHARGE), top.values.get(STORAGE_CHARGE)
    if (
        top.values.get(STORAGE_MODE) != STORAGE_BOTH_LIMITS
        or not isinstance(out_rate, int | float)
        or in_rate != -out_rate
    ):
        return None
    return round(out_rate * base / 100.0, 6)


def written(
    metric: str, targets: Sequence[Target], plan: Sequence[Assignment], values: Values
) -> Value:
    """The value the device holds once ``plan`` is written: the request at its resolution."""
    first = plan[0]
    if _switch(first.target):
        return bool(first.raw)
    exponent = _exponent(first.target, values)
    assert exponent is not None  # checked when the plan was made
    value = scaled(first.raw, exponent)
    if metric != STORAGE_SETPOINT:
        return value
    base = _storage_base(targets, values)
    assert base is not None
    return round(value * base / 100.0, 6)
