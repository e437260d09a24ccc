"""SunSpec model definitions, read from pysunspec2's JSON files at run time.

SunSpec publishes its information models as JSON (github.com/sunspec/models); pysunspec2
ships them in ``sunspec2/models/json``. They are the one source for every point's name,
type, size, scale-factor reference, access and symbols here: nothing is copied by hand.

Why pysunspec2's definitions rather than modbus-connection's SunSpec helpers: the helpers'
``generate`` turns the same JSON into Python source once, offline, so using them would mean
committing generated (that is, copied) model code; and their ``scan`` probes one base
address, raises its own exception type and applies no bound to a model's length or to the
address space. What serves here is the data itself (pysunspec2) and a chain walk of our own
(:mod:`.discovery`) that speaks the library's exception hierarchy over any
``modbus_connection.ModbusUnit``.

Loading is blocking file I/O. :func:`model_definition` caches each model for the life of
the process; call it from a worker thread (``asyncio.to_thread``) the first time, as
:class:`~edge_ems.sunspec.device.SunSpecDevice` does when it connects.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

SUPPORTED_MODELS: frozenset[int] = frozenset(
    {1, 101, 102, 103, 111, 112, 113, 120, 121, 122, 123, 124, 160}
    | {201, 202, 203, 204, 701, 702, 703, 704, 705, 802, 803, 804}
)
"""The models this package decodes (issue #2: common, inverter, meter, storage, DER)."""

TYPE_SIZES: Mapping[str, int] = MappingProxyType(
    {
        "int16": 1, "uint16": 1, "count": 1, "acc16": 1, "enum16": 1, "bitfield16": 1,
        "pad": 1, "sunssf": 1, "int32": 2, "uint32": 2, "acc32": 2, "enum32": 2,
        "bitfield32": 2, "float32": 2, "int64": 4, "uint64": 4, "acc64": 4, "float64": 4,
    }
)  # fmt: skip
"""Registers per point type; strings take their size from the definition."""
NETWORK_TYPE_SIZES: Mapping[str, int] = MappingProxyType({"ipaddr": 2, "eui48": 4, "ipv6addr": 8})
"""Registers of the network address types, which occur in none of :data:`SUPPORTED_MODELS`
and are never decoded: sized only so the communication models' private points can be placed
(and redacted)."""


@dataclass(frozen=True, slots=True)
class PointDef:
    """One point of a group, as its model definition describes it."""

    name: str
    type: str
    size: int
    """Registers the point spans."""
    offset: int
    """Registers from the start of its group instance."""
    sf: str | int | None = None
    """Scale factor: the name of a ``sunssf`` point, a fixed exponent, or none."""
    units: str | None = None
    writable: bool = False
    mandatory: bool = False
    symbols: Mapping[int, str] = MappingProxyType({})
    """Names of enum values, or of bitfield bits (bit 0 the least significant)."""


@dataclass(frozen=True, slots=True)
class GroupDef:
    """A group of points, possibly with groups of its own."""

    name: str
    points: tuple[PointDef, ...]
    groups: tuple[GroupDef, ...] = ()
    count: int | str | None = None
    """Instances: ``None`` once; ``0`` as many as the model length holds; a point name:
    that point's value."""

    @property
    def size(self) -> int:
        """Registers of the group's own points, subgroups excluded."""
        return sum(point.size for point in self.points)

    def point(self, name: str) -> PointDef | None:
        """The point called ``name`` in this group, if any."""
        return next((point for point in self.points if point.name == name), None)


@dataclass(frozen=True, slots=True)
class ModelDef:
    """A SunSpec information model."""

    id: int
    label: str
    group: GroupDef


def _symbols(raw: Iterable[Mapping[str, Any]]) -> Mapping[int, str]:
    return MappingProxyType({int(symbol["value"]): str(symbol["name"]) for symbol in raw})


def _group(raw: Mapping[str, Any], model_id: int) -> GroupDef:
    points: list[PointDef] = []
    offset = 0
    for point in raw["points"]:
        kind = str(point["type"])
        size = (
            int(point["size"])
            if kind == "string"
            else TYPE_SIZES.get(kind) or NETWORK_TYPE_SIZES.get(kind, 0)
        )
        if size <= 0:
            raise ConfigError(f"model {model_id}: point {point['name']} has type {kind!r}")
        sf = point.get("sf")
        points.append(
            PointDef(
                name=str(point["name"]),
                type=kind,
                size=size,
                offset=offset,
                sf=sf if isinstance(sf, str | int) else None,
                units=point.get("units"),
                writable=point.get("access") == "RW",
                mandatory=point.get("mandatory") == "M",
                symbols=_symbols(point.get("symbols", ())),
            )
        )
        offset += size
    count = raw.get("count")
    if isinstance(count, str) and count.isdigit():
        count = int(count)
    return GroupDef(
        name=str(raw["name"]),
        points=tuple(points),
        groups=tuple(_group(child, model_id) for child in raw.get("groups", ())),
        count=count if isinstance(count, int | str) else None,
    )


@functools.cache
def model_definition(model_id: int) -> ModelDef:
    """The definition of ``model_id`` from pysunspec2's JSON files (blocking, then cached).

    Raises :class:`~edge_ems.exceptions.ConfigError` for a model pysunspec2 does not
    define or whose definition uses a point type this package cannot decode.
    """
    source = resources.files("sunspec2").joinpath("models", "json", f"model_{model_id}.json")
    try:
        raw = json.loads(source.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError(f"no SunSpec definition for model {model_id}: {err}") from err
    group = raw["group"]
    return ModelDef(
        id=int(raw["id"]),
        label=str(group.get("label") or group["name"]),
        group=_group(group, model_id),
    )


def supported_definitions(model_ids: Iterable[int]) -> dict[int, ModelDef]:
    """Definitions of those of ``model_ids`` this package decodes (blocking, cached)."""
    return {
        model_id: model_definition(model_id)
        for model_id in sorted(set(model_ids) & SUPPORTED_MODELS)
    }
