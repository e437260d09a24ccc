"""OPC UA node maps: which node carries which metric, how to read it, whether it may be written.

YAML, validated here; every error names the file, the key path and the reason::

    device:
      maker: Edge EMS
      model: Simulated BESS
      kind: battery                # what it is (edge_ems.device.AssetType)
      documentation: where the node ids come from
      subscription_interval: 1.0   # seconds between data-change notifications
    points:
      soc_pct:
        node: "nsu=urn:edge-ems:sim:bess;s=BESS.Soc"   # or ns=2;s=..., i=2258, ...
        mode: subscribe            # poll (the default) reads it on every read()
      battery_power_setpoint_w:
        node: "nsu=urn:edge-ems:sim:bess;s=BESS.PowerSetpoint"
        access: rw
        write: {allow_write: true, min: -5000, max: 5000}

Namespace indexes may change when a server restarts; ``nsu=<namespace uri>`` node ids are
resolved when connecting and stay right.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

import voluptuous as vol
from asyncua import ua
from asyncua.ua.uaerrors import UaStringParsingError

from ..device import AssetType
from ..exceptions import PointMapError
from ..pointmap.loader import bundled_paths, load_bundled, parse_yaml, read_map_file
from ..pointmap.model import Access
from ..pointmap.validators import (
    TEXT,
    apply_schema,
    enum_of,
    metric_name,
    number,
    number_pair,
)


class ReadMode(StrEnum):
    """How a point's value is obtained."""

    POLL = "poll"  # read in the batch of every read()
    SUBSCRIBE = "subscribe"  # pushed by the server when it changes


@dataclass(frozen=True, slots=True)
class NodeWrite:
    """How a writable point may be written."""

    allow_write: bool
    """Writing must be allowed explicitly, point by point."""
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True, slots=True)
class NodePoint:
    """Where one metric lives on the server and how to turn the node's value into it."""

    metric: str
    node: str
    """Node id in OPC UA's string form (``ns=2;s=...``, ``nsu=urn:...;s=...``, ``i=2258``)."""
    access: Access = Access.READ
    mode: ReadMode = ReadMode.POLL
    scale: float = 1.0
    """value = node value * scale, for numbers."""
    valid_range: tuple[float, float] | None = None
    write: NodeWrite | None = None

    @property
    def readable(self) -> bool:
        """The point can be read."""
        return self.access is not Access.WRITE


@dataclass(frozen=True, slots=True)
class NodeDevice:
    """What a node map says about the device as a whole."""

    id: str
    """Catalog identifier, the map's file name without extension."""
    maker: str
    model: str
    kind: AssetType
    documentation: str
    subscription_interval: float = 1.0
    """Seconds between data-change notifications of subscribed points."""


@dataclass(frozen=True, slots=True)
class NodeMap:
    """A device and its points, keyed by metric."""

    device: NodeDevice
    points: Mapping[str, NodePoint]
    source: str = "<memory>"


def _node_id(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise vol.Invalid("expected a node id such as ns=2;s=Name or i=2258")
    try:
        ua.NodeId.from_string(value)
    except (UaStringParsingError, ValueError) as err:
        raise vol.Invalid(f"not a node id: {value!r} ({err})") from None
    return value


WRITE_SCHEMA = vol.Schema(
    {
        vol.Required("allow_write"): bool,
        vol.Optional("min"): number,
        vol.Optional("max"): number,
    }
)

POINT_SCHEMA = vol.Schema(
    {
        vol.Required("node"): _node_id,
        vol.Optional("access", default="r"): enum_of(Access),
        vol.Optional("mode", default="poll"): enum_of(ReadMode),
        vol.Optional("scale", default=1.0): vol.All(number, vol.NotIn([0.0], msg="scale is 0")),
        vol.Optional("valid_range"): number_pair,
        vol.Optional("write"): WRITE_SCHEMA,
    }
)

DEVICE_SCHEMA = vol.Schema(
    {
        vol.Required("maker"): TEXT,
        vol.Required("model"): TEXT,
        vol.Required("kind"): enum_of(AssetType),
        vol.Required("documentation"): TEXT,
        vol.Optional("subscription_interval", default=1.0): vol.All(
            number, vol.Range(min=0.05, max=3600.0)
        ),
    }
)

NODE_MAP_SCHEMA = vol.Schema(
    {
        vol.Required("device"): DEVICE_SCHEMA,
        vol.Required("points"): vol.All(
            vol.Schema({metric_name: POINT_SCHEMA}), vol.Length(min=1, msg="no points")
        ),
    }
)


def validate_node_map(data: Any, *, source: str, map_id: str) -> NodeMap:
    """Validate parsed YAML and build a :class:`NodeMap`; raise :class:`PointMapError`."""
    checked = apply_schema(NODE_MAP_SCHEMA, data, source=source, expected="'device' and 'points'")
    spec = checked["device"]
    device = NodeDevice(
        id=map_id, maker=spec["maker"], model=spec["model"], kind=spec["kind"],
        documentation=spec["documentation"],
        subscription_interval=spec["subscription_interval"],
    )  # fmt: skip
    points = {metric: _point(metric, point, source) for metric, point in checked["points"].items()}
    return NodeMap(device, MappingProxyType(points), source)


def _point(metric: str, spec: dict[str, Any], source: str) -> NodePoint:
    def fail(reason: str, key: str) -> PointMapError:
        return PointMapError(reason, source=source, path=f"points.{metric}.{key}")

    access, write = spec["access"], spec.get("write")
    if access is Access.READ and write is not None:
        raise fail("a read-only point has no 'write' section (set access: rw)", "write")
    if access is not Access.READ and write is None:
        raise fail("a writable point needs a 'write' section with allow_write", "write")
    if access is Access.WRITE and spec["mode"] is ReadMode.SUBSCRIBE:
        raise fail("a write-only point cannot be subscribed to", "mode")
    node_write = None
    if write is not None:
        low, high = write.get("min"), write.get("max")
        if low is not None and high is not None and low > high:
            raise fail(f"min {low} is above max {high}", "write")
        node_write = NodeWrite(allow_write=write["allow_write"], minimum=low, maximum=high)
    return NodePoint(
        metric=metric, node=spec["node"], access=access, mode=spec["mode"], scale=spec["scale"],
        valid_range=spec.get("valid_range"), write=node_write,
    )  # fmt: skip


def parse_node_map(text: str, *, source: str, map_id: str) -> NodeMap:
    """Parse and validate node-map YAML text."""
    return validate_node_map(parse_yaml(text, source=source), source=source, map_id=map_id)


def load_node_map(path: str | Path) -> NodeMap:
    """Load and validate one node-map file (blocking I/O: keep it off event loops)."""
    path = Path(path)
    return parse_node_map(read_map_file(path), source=str(path), map_id=path.stem)


def catalog_paths() -> dict[str, Path]:
    """The bundled node maps by catalog id."""
    return bundled_paths("edge_ems.opcua", "maps")


def load_catalog() -> dict[str, NodeMap]:
    """Load every bundled node map (blocking I/O)."""
    return load_bundled(catalog_paths(), load_node_map)
