"""MQTT topic maps: which topic (and which JSON path in its payload) carries which metric.

A topic map describes one kind of MQTT bridge in front of a battery management system, such
as ESPHome's JK-BMS component or Venus OS. It is YAML, validated here; every error names the
file, the key path and the reason::

    bridge:
      name: ESPHome JK-BMS
      maker: JK
      model: JK-BMS (esphome-jk-bms)
      documentation: where the topics come from
      variables:            # placeholders in topics, with defaults; "+" matches any level
        topic_prefix: jk-bms
      keepalive:            # optional: published to keep the bridge publishing
        topic: R/{portal_id}/keepalive
        payload: ""
        interval: 30
    points:
      soc_pct:
        topic: "{topic_prefix}/sensor/jk-bms_state_of_charge/state"
      battery_current_a:
        topic: "N/{portal_id}/battery/{instance}/Dc/0/Current"
        path: value         # JSON path into the payload; without it the payload is the value
        scale: -1           # the bridge counts charging as positive; we count discharging
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

import voluptuous as vol

from ..exceptions import PointMapError
from ..metrics import METRICS, MetricKind
from ..pointmap.loader import bundled_paths, load_bundled, parse_yaml, read_map_file
from ..pointmap.validators import (
    TEXT,
    apply_schema,
    metric_name,
    number,
    number_pair,
)

type PathPart = str | int
"""One step of a JSON path: an object key or an array index."""


class PayloadType(StrEnum):
    """What a value in a payload is."""

    NUMBER = "number"
    INTEGER = "integer"
    TEXT = "text"
    BOOL = "bool"


# A payload's type follows from the metric unless the map says otherwise.
_KIND_TYPES: Mapping[MetricKind, PayloadType] = MappingProxyType(
    {
        MetricKind.FLAGS: PayloadType.INTEGER,
        MetricKind.FLAG: PayloadType.BOOL,
        MetricKind.IDENTITY: PayloadType.TEXT,
        MetricKind.TEXT: PayloadType.TEXT,
    }
)


@dataclass(frozen=True, slots=True)
class TopicPoint:
    """Where one metric arrives and how to turn the payload into its value."""

    metric: str
    topic: str
    """Topic filter with ``{variable}`` placeholders."""
    path: tuple[PathPart, ...] | None = None
    """JSON path to the value; ``None`` when the whole payload is the value."""
    type: PayloadType = PayloadType.NUMBER
    scale: float = 1.0
    valid_range: tuple[float, float] | None = None
    """Values outside this range are read with quality ``invalid``."""


@dataclass(frozen=True, slots=True)
class Keepalive:
    """A message the bridge needs, periodically, to keep publishing."""

    topic: str
    payload: str
    interval: float
    initial_payload: str | None = None
    """Sent once after subscribing, instead of ``payload``, to ask for every value."""


@dataclass(frozen=True, slots=True)
class Bridge:
    """What a topic map says about the bridge as a whole."""

    id: str
    """Catalog identifier, the map's file name without extension."""
    name: str
    maker: str
    model: str
    documentation: str
    variables: Mapping[str, str]
    """Topic placeholders and their defaults."""
    keepalive: Keepalive | None = None


@dataclass(frozen=True, slots=True)
class TopicMap:
    """A bridge and its points, keyed by metric."""

    bridge: Bridge
    points: Mapping[str, TopicPoint]
    source: str = "<memory>"


_NAME = vol.All(str, vol.Match(r"^[a-z][a-z0-9_]*$", msg="use lower-case letters, digits and _"))
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_JSON_PATH = re.compile(r"(?:[^.\[\]]+|\[\d+\])(?:\.[^.\[\]]+|\[\d+\])*")


def _json_path(value: Any) -> tuple[PathPart, ...]:
    """Parse ``a.b[0].c`` into ``("a", "b", 0, "c")``."""
    if not isinstance(value, str) or not _JSON_PATH.fullmatch(value):
        raise vol.Invalid(f"not a JSON path such as value or data.cells[0]: {value!r}")
    return tuple(int(index) if index else key for key, index in _PATH_PART.findall(value))


def _topic(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise vol.Invalid("expected a topic")
    for name in _PLACEHOLDER.findall(value):
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise vol.Invalid(f"placeholder {{{name}}} is not a variable name")
    return value


KEEPALIVE_SCHEMA = vol.Schema(
    {
        vol.Required("topic"): _topic,
        vol.Required("payload"): str,
        vol.Required("interval"): vol.All(number, vol.Range(min=1.0, max=3600.0)),
        vol.Optional("initial_payload"): str,
    }
)

BRIDGE_SCHEMA = vol.Schema(
    {
        vol.Required("name"): TEXT,
        vol.Required("maker"): TEXT,
        vol.Required("model"): TEXT,
        vol.Required("documentation"): TEXT,
        vol.Optional("variables", default=dict): vol.Schema({_NAME: TEXT}),
        vol.Optional("keepalive"): KEEPALIVE_SCHEMA,
    }
)

POINT_SCHEMA = vol.Schema(
    {
        vol.Required("topic"): _topic,
        vol.Optional("path"): _json_path,
        vol.Optional("type"): vol.All(str, vol.In([kind.value for kind in PayloadType])),
        vol.Optional("scale", default=1.0): vol.All(number, vol.NotIn([0.0], msg="scale is 0")),
        vol.Optional("valid_range"): number_pair,
    }
)

TOPIC_MAP_SCHEMA = vol.Schema(
    {
        vol.Required("bridge"): BRIDGE_SCHEMA,
        vol.Required("points"): vol.All(
            vol.Schema({metric_name: POINT_SCHEMA}), vol.Length(min=1, msg="no points")
        ),
    }
)


def validate_topic_map(data: Any, *, source: str, map_id: str) -> TopicMap:
    """Validate parsed YAML and build a :class:`TopicMap`; raise :class:`PointMapError`."""
    checked = apply_schema(TOPIC_MAP_SCHEMA, data, source=source, expected="'bridge' and 'points'")
    spec = checked["bridge"]
    variables = MappingProxyType(dict(spec["variables"]))
    keepalive = _keepalive(spec.get("keepalive"))
    bridge = Bridge(
        id=map_id, name=spec["name"], maker=spec["maker"], model=spec["model"],
        documentation=spec["documentation"], variables=variables, keepalive=keepalive,
    )  # fmt: skip
    if keepalive is not None:
        _check_placeholders(keepalive.topic, variables, source, "bridge.keepalive.topic")
    points = {}
    for metric, point in checked["points"].items():
        _check_placeholders(point["topic"], variables, source, f"points.{metric}.topic")
        points[metric] = TopicPoint(
            metric=metric,
            topic=point["topic"],
            path=point.get("path"),
            type=PayloadType(point.get("type") or _default_type(metric)),
            scale=point["scale"],
            valid_range=point.get("valid_range"),
        )
    return TopicMap(bridge, MappingProxyType(points), source)


def _keepalive(spec: dict[str, Any] | None) -> Keepalive | None:
    if spec is None:
        return None
    return Keepalive(
        topic=spec["topic"], payload=spec["payload"], interval=spec["interval"],
        initial_payload=spec.get("initial_payload"),
    )  # fmt: skip


def _default_type(metric: str) -> PayloadType:
    return _KIND_TYPES.get(METRICS[metric].kind, PayloadType.NUMBER)


def _check_placeholders(topic: str, variables: Mapping[str, str], source: str, path: str) -> None:
    for name in _PLACEHOLDER.findall(topic):
        if name not in variables:
            raise PointMapError(
                f"placeholder {{{name}}} is not one of bridge.variables", source=source, path=path
            )


def parse_topic_map(text: str, *, source: str, map_id: str) -> TopicMap:
    """Parse and validate topic-map YAML text."""
    return validate_topic_map(parse_yaml(text, source=source), source=source, map_id=map_id)


def load_topic_map(path: str | Path) -> TopicMap:
    """Load and validate one topic-map file (blocking I/O: keep it off event loops)."""
    path = Path(path)
    return parse_topic_map(read_map_file(path), source=str(path), map_id=path.stem)


def catalog_paths() -> dict[str, Path]:
    """The bundled topic maps by catalog id."""
    return bundled_paths("edge_ems.bms", "maps")


def load_catalog() -> dict[str, TopicMap]:
    """Load every bundled topic map (blocking I/O)."""
    return load_bundled(catalog_paths(), load_topic_map)
