"""Decoded SunSpec points to canonical metrics: binding the mapping table to a device."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType

from ..readings import Quality, Value
from .codec import GroupValues
from .layout import GroupLayout, ModelLayout
from .mapping import ReadingPoint
from .models import PointDef, model_definition

ENUM_TYPES = frozenset({"enum16", "enum32"})
FLAG_SYMBOLS: Mapping[int, str] = MappingProxyType({0: "DISABLED", 1: "ENABLED"})
"""An enum with exactly these values is an on/off switch and reads as a bool."""


@dataclass(frozen=True, slots=True)
class Binding:
    """A mapped point found on the device."""

    reading: ReadingPoint
    layout: ModelLayout
    point: PointDef
    symbols: Mapping[int, str]
    """Names of the point's enum values."""


def option_name(label: str) -> str:
    """An enum label as a state name: snake case, fit for a translation key (MPPT: mppt)."""
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


def state_names(binding: Binding) -> tuple[str, ...] | None:
    """The states a mapped enum point reads as; ``None`` for any other point (a flag too)."""
    if binding.point.type not in ENUM_TYPES or is_flag(binding.point) or binding.reading.any_bit:
        return None
    return tuple(dict.fromkeys(option_name(label) for label in binding.symbols.values()))


def reading_states(reading: ReadingPoint) -> tuple[str, ...] | None:
    """Every state a mapped point can read as, by its model's definition (blocking, cached);
    ``None`` for a point that is no enum: what a device of any chain may report."""
    group = model_definition(reading.model).group
    if reading.group is not None:
        group = next((sub for sub in group.groups if sub.name == reading.group), group)
    point = group.point(reading.point)
    if point is None or point.type not in ENUM_TYPES or is_flag(point) or reading.any_bit:
        return None
    return tuple(dict.fromkeys(option_name(label) for label in _symbols(reading, point).values()))


def label_models(readings: Iterable[ReadingPoint]) -> set[int]:
    """Models whose definitions name other models' enum values."""
    return {reading.symbols_from for reading in readings if reading.symbols_from is not None}


def is_flag(point: PointDef) -> bool:
    """Whether ``point`` is a DISABLED/ENABLED switch."""
    return point.type in ENUM_TYPES and dict(point.symbols) == FLAG_SYMBOLS


def instance_layout(layout: ModelLayout, group: str | None, index: int) -> GroupLayout | None:
    """The layout of ``group``'s instance ``index`` (the model's top for ``None``)."""
    if group is None:
        return layout.root
    instances = layout.root.groups.get(group, ())
    return instances[index] if index < len(instances) else None


def instance_values(values: GroupValues, group: str | None, index: int) -> GroupValues | None:
    """The decoded values of ``group``'s instance ``index`` (the model's top for ``None``)."""
    if group is None:
        return values
    instances = values.groups.get(group, ())
    return instances[index] if index < len(instances) else None


def _symbols(reading: ReadingPoint, point: PointDef) -> Mapping[int, str]:
    if reading.symbols_from is None:
        return point.symbols
    named = model_definition(reading.symbols_from).group.point(reading.point)
    return point.symbols if named is None else named.symbols


def bind(layouts: Sequence[ModelLayout], readings: Iterable[ReadingPoint]) -> dict[str, Binding]:
    """The point each metric is read from: the first mapped point the device has.

    Loads the definitions :attr:`ReadingPoint.symbols_from` names (blocking, cached);
    :func:`label_models` lists them for loading ahead.
    """
    by_model: dict[int, ModelLayout] = {}
    for layout in layouts:
        by_model.setdefault(layout.model.id, layout)
    bindings: dict[str, Binding] = {}
    for reading in readings:
        model = by_model.get(reading.model)
        if reading.metric in bindings or model is None:
            continue
        instance = instance_layout(model, reading.group, reading.index)
        point = None if instance is None else instance.group.point(reading.point)
        if point is not None and instance is not None and point.name in instance.points:
            bindings[reading.metric] = Binding(reading, model, point, _symbols(reading, point))
    return bindings


def _fraction(value: int | float) -> float:
    """A power factor as a fraction, whether the device sent percent or a fraction."""
    return float(Decimal(repr(value)).scaleb(-2)) if abs(value) > 1 else float(value)


def convert(binding: Binding, values: GroupValues, *, meter_sign: int = 1) -> tuple[Value, Quality]:
    """The metric's value and quality from the decoded model ``binding`` points into."""
    reading, point = binding.reading, binding.point
    instance = instance_values(values, reading.group, reading.index)
    if instance is None:
        return None, Quality.GOOD
    value = instance.values.get(point.name)
    quality = Quality.INVALID if point.name in instance.invalid else Quality.GOOD
    if value is None or isinstance(value, str | bool):
        return value, quality
    if reading.any_bit:
        return value != 0, quality
    if point.type in ENUM_TYPES:
        if is_flag(point):
            return (value == 1, quality) if value in FLAG_SYMBOLS else (None, Quality.INVALID)
        label = binding.symbols.get(int(value))
        return (option_name(label), quality) if label is not None else (None, Quality.INVALID)
    if reading.pf_percent:
        return _fraction(value), quality
    return (meter_sign * value if reading.meter_power else value), quality
