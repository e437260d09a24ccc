"""Turn MQTT messages into readings by a topic map, and readings back into messages.

The decoder knows nothing of MQTT clients: it takes a topic and payload bytes, so the Home
Assistant integration can feed it from Home Assistant's own MQTT connection, and
:class:`~edge_ems.bms.mqtt_device.MqttBmsDevice` from its own.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..exceptions import ConfigError, DeviceProtocolError
from ..readings import Quality, Reading, Readings, Value
from .topicmap import Keepalive, PathPart, PayloadType, TopicMap, TopicPoint

_PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]*)\}")
_TRUE = frozenset({"on", "true", "1", "yes"})
_FALSE = frozenset({"off", "false", "0", "no"})
_MISSING = object()


@dataclass(frozen=True, slots=True)
class _Route:
    """Points that share one topic filter."""

    levels: tuple[str, ...]
    points: tuple[TopicPoint, ...]

    @property
    def wildcard(self) -> bool:
        return "+" in self.levels


class TopicMapDecoder:
    """Decodes (and, for simulators, encodes) one bridge's MQTT messages.

    ``variables`` override the map's defaults for its topic placeholders (a Venus OS portal
    id, an ESPHome topic prefix); a value of ``+`` matches any topic level.
    """

    def __init__(self, topic_map: TopicMap, variables: Mapping[str, str] | None = None) -> None:
        self.topic_map = topic_map
        values = dict(topic_map.bridge.variables)
        for name, value in (variables or {}).items():
            if name not in values:
                raise ConfigError(
                    f"{topic_map.source}: unknown topic variable {name!r}; "
                    f"the map has {', '.join(sorted(values)) or 'none'}"
                )
            values[name] = value
        self.variables: Mapping[str, str] = values
        grouped: dict[str, list[TopicPoint]] = defaultdict(list)
        for point in topic_map.points.values():
            grouped[self._render(point.topic, f"points.{point.metric}.topic")].append(point)
        self._routes = {topic: _Route(tuple(topic.split("/")), tuple(points))
                        for topic, points in grouped.items()}  # fmt: skip

    @property
    def filters(self) -> tuple[str, ...]:
        """The topic filters to subscribe to."""
        return tuple(self._routes)

    def keepalive(self) -> Keepalive | None:
        """The bridge's keepalive with its topic filled in, or ``None`` if it needs none."""
        keepalive = self.topic_map.bridge.keepalive
        if keepalive is None:
            return None
        topic = self._render(keepalive.topic, "bridge.keepalive.topic")
        if "+" in topic.split("/"):
            raise ConfigError(
                f"{self.topic_map.source}: the keepalive topic {topic!r} needs concrete values "
                f"for its variables ({', '.join(_PLACEHOLDER.findall(keepalive.topic))})"
            )
        return Keepalive(topic, keepalive.payload, keepalive.interval, keepalive.initial_payload)

    def matches(self, topic: str) -> bool:
        """The topic carries something this map decodes."""
        return bool(self._points_for(topic))

    def decode(self, topic: str, payload: bytes, timestamp: float) -> Readings:
        """Readings carried by one message; empty when the topic is not this map's.

        Raises :class:`DeviceProtocolError`, naming the topic, for a payload that is not what
        the map expects (not JSON, not a number, none of the mapped JSON paths present).
        """
        points = self._points_for(topic)
        if not points:
            return {}
        document: Any = _MISSING
        if any(point.path is not None for point in points):
            document = _parse_json(topic, payload)
        readings: Readings = {}
        for point in points:
            if point.path is None:
                raw: Any = _plain_text(topic, payload)
            else:
                raw = _lookup(document, point.path)
                if raw is _MISSING:
                    continue
            value, quality = _to_value(point, raw, topic)
            readings[point.metric] = Reading(point.metric, value, timestamp, quality)
        if not readings:
            paths = ", ".join(_dotted(point.path) for point in points if point.path is not None)
            raise DeviceProtocolError(f"{topic}: none of the mapped JSON paths ({paths}) is there")
        return readings

    def encode(self, values: Mapping[str, Value]) -> list[tuple[str, bytes]]:
        """Messages that carry ``values`` (by metric), as the bridge would publish them."""
        messages = []
        for topic, route in self._routes.items():
            present = [point for point in route.points if point.metric in values]
            if not present:
                continue
            if route.wildcard:
                raise ConfigError(f"{topic}: set the topic variables to publish to it")
            plain = [point for point in present if point.path is None]
            if plain:
                payload = _format_plain(plain[0], values[plain[0].metric])
            else:
                document: Any = None
                for point in present:
                    assert point.path is not None
                    raw = _from_value(point, values[point.metric])
                    document = _place(document, point.path, raw)
                payload = json.dumps(document, separators=(",", ":"))
            messages.append((topic, payload.encode()))
        return messages

    def _render(self, template: str, where: str) -> str:
        topic = _PLACEHOLDER.sub(lambda match: self.variables[match.group(1)], template)
        problem = _filter_problem(topic)
        if problem is not None:
            raise ConfigError(f"{self.topic_map.source}: {where}: {topic!r} {problem}")
        return topic

    def _points_for(self, topic: str) -> tuple[TopicPoint, ...]:
        exact = self._routes.get(topic)
        if exact is not None and not exact.wildcard:
            return exact.points
        levels = topic.split("/")
        matched: list[TopicPoint] = []
        for route in self._routes.values():
            if route.wildcard and _matches(route.levels, levels):
                matched.extend(route.points)
        return tuple(matched)


def _filter_problem(topic: str) -> str | None:
    """Why ``topic`` is not a filter this decoder can use, or ``None`` if it is."""
    if not topic or "\x00" in topic:
        return "is empty or holds a NUL character"
    for level in topic.split("/"):
        if "#" in level:
            return "uses '#'; a point needs one topic per metric, use '+' for a level"
        if "+" in level and level != "+":
            return "uses '+' inside a level; '+' must stand for a whole level"
    return None


def _matches(filter_levels: Sequence[str], topic_levels: Sequence[str]) -> bool:
    return len(filter_levels) == len(topic_levels) and all(
        wanted in ("+", level) for wanted, level in zip(filter_levels, topic_levels, strict=True)
    )


def _dotted(path: Sequence[PathPart]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _parse_json(topic: str, payload: bytes) -> Any:
    if not payload.strip():
        raise DeviceProtocolError(f"{topic}: empty payload where JSON was expected")
    try:
        return json.loads(payload)
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError alike
        raise DeviceProtocolError(f"{topic}: payload is not JSON: {err}") from None
    except RecursionError:
        raise DeviceProtocolError(f"{topic}: payload JSON is nested too deeply") from None


def _plain_text(topic: str, payload: bytes) -> str:
    try:
        return payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise DeviceProtocolError(f"{topic}: payload is not UTF-8 text") from None


def _lookup(document: Any, path: Sequence[PathPart]) -> Any:
    node = document
    for part in path:
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                return _MISSING
        elif not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _to_value(point: TopicPoint, raw: Any, topic: str) -> tuple[Value, Quality]:
    if raw is None:  # JSON null: the bridge has no value (Venus OS: not available)
        return None, Quality.GOOD
    if point.type is PayloadType.TEXT:
        return (raw if isinstance(raw, str) else json.dumps(raw)), Quality.GOOD
    if point.type is PayloadType.BOOL:
        return _to_bool(raw, topic), Quality.GOOD
    number = _to_number(raw, topic)
    if not math.isfinite(number):
        return None, Quality.INVALID
    scaled = number * point.scale
    if point.type is PayloadType.INTEGER:
        if abs(scaled - round(scaled)) > 1e-9:
            raise DeviceProtocolError(f"{topic}: {raw!r} is not an integer")
        value: float | int = round(scaled)
    else:
        value = round(scaled, 6) + 0.0  # + 0.0 turns -0.0 into 0.0
    if point.valid_range is not None and not point.valid_range[0] <= value <= point.valid_range[1]:
        return value, Quality.INVALID
    return value, Quality.GOOD


def _to_number(raw: Any, topic: str) -> float:
    if isinstance(raw, bool):
        raise DeviceProtocolError(f"{topic}: {raw!r} is not a number")
    if isinstance(raw, int | float):
        return float(raw)
    if isinstance(raw, str):
        if not raw:
            raise DeviceProtocolError(f"{topic}: empty payload where a number was expected")
        try:
            return float(raw)
        except ValueError:
            pass
    raise DeviceProtocolError(f"{topic}: {_shorten(raw)} is not a number")


def _to_bool(raw: Any, topic: str) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int | float) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str) and raw.lower() in _TRUE | _FALSE:
        return raw.lower() in _TRUE
    raise DeviceProtocolError(f"{topic}: {_shorten(raw)} is not on/off")


def _shorten(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 40 else text[:37] + "..."


def _from_value(point: TopicPoint, value: Value) -> Any:
    """The payload value for ``value``: unscaled, in the payload's type."""
    if value is None or point.type is PayloadType.TEXT:
        return value if value is None else str(value)
    if point.type is PayloadType.BOOL:
        return bool(value)
    if isinstance(value, str):
        raise ValueError(f"{point.metric}: {value!r} is not a number")
    raw = float(value) / point.scale
    return round(raw) if point.type is PayloadType.INTEGER else round(raw, 6) + 0.0


def _format_plain(point: TopicPoint, value: Value) -> str:
    raw = _from_value(point, value)
    if raw is None:
        return ""
    if isinstance(raw, bool):
        return "ON" if raw else "OFF"
    return str(raw)


def _place(node: Any, path: Sequence[PathPart], value: Any) -> Any:
    """``node`` with ``value`` set at ``path``, creating objects and arrays on the way."""
    if not path:
        return value
    part, rest = path[0], path[1:]
    if isinstance(part, int):
        items = node if isinstance(node, list) else []
        items.extend([None] * (part + 1 - len(items)))
        items[part] = _place(items[part], rest, value)
        return items
    members = node if isinstance(node, dict) else {}
    members[part] = _place(members.get(part), rest, value)
    return members
