"""Where each point of a discovered model lives: its definition placed at an address.

A model's definition fixes the order and size of its points; the device fixes the rest: the
model's address, its length (older revisions are shorter, vendors may append registers)
and how many instances its repeating groups have, given either by a count point (705's
``NCrv``) or by the model length (160's modules).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from ..exceptions import DeviceProtocolError
from .models import GroupDef, ModelDef


@dataclass(frozen=True, slots=True)
class GroupLayout:
    """One instance of a group placed at an address."""

    group: GroupDef
    address: int
    points: Mapping[str, int]
    """Absolute address of every point that lies within the model."""
    groups: Mapping[str, tuple[GroupLayout, ...]]
    """The instances of each subgroup, in order."""

    def spans(self) -> Iterator[tuple[int, int]]:
        """Inclusive register span of every placed point, subgroups included."""
        for name, address in self.points.items():
            point = self.group.point(name)
            assert point is not None
            yield address, address + point.size - 1
        for instances in self.groups.values():
            for instance in instances:
                yield from instance.spans()


@dataclass(frozen=True, slots=True)
class ModelLayout:
    """A discovered model with every point placed."""

    model: ModelDef
    address: int
    """Address of the model's ID register."""
    length: int
    """The model's length register: registers after the ID and length."""
    root: GroupLayout

    @property
    def end(self) -> int:
        """Last register of the model."""
        return self.address + self.length + 1


def count_points(model: ModelDef) -> tuple[str, ...]:
    """Top-level points whose values give repeating-group counts (705's ``NPt``, ``NCrv``)."""
    names: list[str] = []

    def visit(group: GroupDef) -> None:
        for child in group.groups:
            if isinstance(child.count, str) and child.count not in names:
                names.append(child.count)
            visit(child)

    visit(model.group)
    return tuple(names)


def _instance_size(group: GroupDef, counts: Mapping[str, int]) -> int:
    size = group.size
    for child in group.groups:
        if child.count == 0:
            raise DeviceProtocolError(f"group {child.name}: nested length-filled groups")
        size += _instances_by_count(child, counts) * _instance_size(child, counts)
    return size


def _instances_by_count(group: GroupDef, counts: Mapping[str, int]) -> int:
    if group.count is None:
        return 1
    if isinstance(group.count, int):
        return group.count
    count = counts.get(group.count)
    if count is None:
        raise DeviceProtocolError(f"group {group.name}: count point {group.count} unreadable")
    return count


def _instances(group: GroupDef, cursor: int, end: int, counts: Mapping[str, int]) -> int:
    """How many instances of ``group`` start at ``cursor`` in a model ending before ``end``."""
    size = _instance_size(group, counts)
    room = end - cursor
    if group.count == 0:
        if room <= 0:
            return 0
        instances, rest = divmod(room, size)
        if rest:
            raise DeviceProtocolError(
                f"group {group.name}: {room} registers left is no whole number of "
                f"{size}-register instances"
            )
        return instances
    instances = _instances_by_count(group, counts)
    if group.count is not None and instances * size > max(room, 0):
        raise DeviceProtocolError(
            f"group {group.name}: {instances} instances of {size} registers do not fit "
            f"the {max(room, 0)} registers left in the model"
        )
    return instances


def _place(
    group: GroupDef, address: int, end: int, counts: Mapping[str, int]
) -> tuple[GroupLayout, int]:
    points = {
        point.name: address + point.offset
        for point in group.points
        if address + point.offset + point.size <= end
    }
    cursor = address + group.size
    groups: dict[str, tuple[GroupLayout, ...]] = {}
    for child in group.groups:
        instances: list[GroupLayout] = []
        for _ in range(_instances(child, cursor, end, counts)):
            instance, cursor = _place(child, cursor, end, counts)
            instances.append(instance)
        groups[child.name] = tuple(instances)
    return GroupLayout(group, address, points, groups), cursor


def model_layout(
    model: ModelDef, address: int, length: int, counts: Mapping[str, int] | None = None
) -> ModelLayout:
    """Place ``model`` at ``address`` with ``length`` registers after its header.

    ``counts`` gives the values of the model's :func:`count_points`. Points beyond the
    model's end are left out (an older, shorter revision); registers beyond the
    definition are ignored (a vendor extension). Raises
    :class:`~edge_ems.exceptions.DeviceProtocolError` when repeating groups cannot fit
    the length the device reports.
    """
    end = address + 2 + length
    root, _ = _place(model.group, address, end, counts or {})
    return ModelLayout(model, address, length, root)
