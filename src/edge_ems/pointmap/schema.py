"""The point-map schema (voluptuous) and the checks that span several keys."""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any

import voluptuous as vol

from ..device import AssetType
from ..exceptions import PointMapError
from ..metrics import BATTERY_POWER, LEASED_METRICS, METRICS, MetricKind
from .model import (
    TYPE_REGISTERS,
    Access,
    DeviceInfo,
    Order,
    Point,
    PointMap,
    PointType,
    PollGroup,
    RegisterSpace,
    VersionFormat,
    WriteFunction,
    WriteSpec,
)
from .validators import apply_schema, enum_of, integer, metric_name, number, number_pair

_ADDRESS = vol.All(integer, vol.Range(min=0, max=65535))
ALWAYS_PRIVATE = frozenset({"device_serial"})
"""Metrics that carry identity wherever they occur: private whether a map says so or not."""
_VERSION_TYPES = frozenset({PointType.U16, PointType.U32, PointType.U64})
_NAME = vol.All(str, vol.Match(r"^[a-z0-9_]+$", msg="use lower-case letters, digits and _"))


def _range_pair(value: Any) -> tuple[int, int]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise vol.Invalid("expected [first, last]")
    first, last = (_ADDRESS(item) for item in value)
    if first > last:
        raise vol.Invalid(f"first address {first} is after last address {last}")
    return (first, last)


_LABELS = vol.Schema({vol.All(integer, vol.Range(min=0)): vol.All(str, vol.Length(min=1))})

WRITE_SCHEMA = vol.Schema(
    {
        vol.Required("allow_write"): bool,
        vol.Optional("min"): number,
        vol.Optional("max"): number,
        vol.Optional("eeprom", default=True): bool,
        vol.Optional("function"): enum_of(WriteFunction),
        vol.Optional("not_between"): number_pair,
        vol.Optional("lease", default=False): bool,
    }
)

POINT_SCHEMA = vol.Schema(
    {
        vol.Required("address"): _ADDRESS,
        vol.Required("type"): enum_of(PointType),
        vol.Optional("length"): vol.All(integer, vol.Range(min=1, max=125)),
        vol.Optional("space"): enum_of(RegisterSpace),
        vol.Optional("access", default="r"): enum_of(Access),
        vol.Optional("scale", default=1.0): vol.All(number, vol.NotIn([0.0], msg="scale is 0")),
        vol.Optional("offset", default=0.0): number,
        vol.Optional("scale_factor"): _ADDRESS,
        vol.Optional("word_order"): enum_of(Order),
        vol.Optional("byte_order"): enum_of(Order),
        vol.Optional("unimplemented"): vol.All(integer, vol.Range(min=0)),
        vol.Optional("valid_range"): number_pair,
        vol.Optional("options"): _LABELS,
        vol.Optional("bits"): vol.Schema({vol.All(integer, vol.Range(min=0, max=63)): _NAME}),
        vol.Optional("poll", default="normal"): enum_of(PollGroup),
        vol.Optional("write"): WRITE_SCHEMA,
        vol.Optional("private"): bool,
        vol.Optional("version"): enum_of(VersionFormat),
    }
)

DEVICE_SCHEMA = vol.Schema(
    {
        vol.Required("maker"): vol.All(str, vol.Length(min=1)),
        vol.Required("model"): vol.All(str, vol.Length(min=1)),
        vol.Required("kind"): enum_of(AssetType),
        vol.Required("documentation"): vol.All(str, vol.Length(min=1)),
        # Modbus TCP reaches 248-255 too (KEBA answers on 255 only).
        vol.Optional("default_unit_id", default=1): vol.All(integer, vol.Range(min=0, max=255)),
        vol.Optional("space", default="holding"): enum_of(RegisterSpace),
        vol.Optional("word_order", default="big"): enum_of(Order),
        vol.Optional("byte_order", default="big"): enum_of(Order),
        vol.Optional("max_block", default=125): vol.All(integer, vol.Range(min=1, max=125)),
        vol.Optional("max_gap", default=0): vol.All(integer, vol.Range(min=0, max=124)),
        vol.Optional("refused", default=list): [_range_pair],
        vol.Optional("write_function", default="fc16"): enum_of(WriteFunction),
        vol.Optional("safe_mode", default=dict): vol.Schema({metric_name: number}),
        vol.Optional("revert_timer"): metric_name,
        vol.Optional("identify", default=dict): vol.Schema({metric_name: str}),
    }
)

POINT_MAP_SCHEMA = vol.Schema(
    {
        vol.Required("device"): DEVICE_SCHEMA,
        vol.Required("points"): vol.All(
            vol.Schema({metric_name: POINT_SCHEMA}), vol.Length(min=1, msg="no points")
        ),
    }
)


def validate(data: Any, *, source: str, map_id: str) -> PointMap:
    """Validate parsed YAML and build a :class:`PointMap`; raise :class:`PointMapError`."""
    checked = apply_schema(POINT_MAP_SCHEMA, data, source=source, expected="'device' and 'points'")
    device = _device(checked["device"], map_id)
    points = {
        metric: _point(metric, spec, device, source) for metric, spec in checked["points"].items()
    }
    point_map = PointMap(device, MappingProxyType(points), source)
    _check_device_references(point_map)
    return point_map


def _device(spec: dict[str, Any], map_id: str) -> DeviceInfo:
    return DeviceInfo(
        id=map_id,
        maker=spec["maker"],
        model=spec["model"],
        kind=spec["kind"],
        documentation=spec["documentation"],
        default_unit_id=spec["default_unit_id"],
        space=spec["space"],
        word_order=spec["word_order"],
        byte_order=spec["byte_order"],
        max_block=spec["max_block"],
        max_gap=spec["max_gap"],
        refused=tuple(spec["refused"]),
        write_function=spec["write_function"],
        safe_mode=MappingProxyType(dict(spec["safe_mode"])),
        revert_timer=spec.get("revert_timer"),
        identify=MappingProxyType(dict(spec["identify"])),
    )


def _point(metric: str, spec: dict[str, Any], device: DeviceInfo, source: str) -> Point:
    def fail(reason: str, key: str | None = None) -> PointMapError:
        path = f"points.{metric}" + (f".{key}" if key else "")
        return PointMapError(reason, source=source, path=path)

    kind = spec["type"]
    registers = _registers(kind, spec, fail)
    space = spec.get("space", device.space)
    access = spec["access"]
    write = spec.get("write")
    if access is Access.READ and write is not None:
        raise fail("a read-only point has no 'write' section (set access: rw)", "write")
    if access is not Access.READ:
        if write is None:
            raise fail("a writable point needs a 'write' section with allow_write", "write")
        if space is RegisterSpace.INPUT:
            raise fail("input registers cannot be written", "access")
    write_spec = _write_spec(write, registers, fail) if write is not None else None
    if kind is PointType.ENUM and not spec.get("options"):
        raise fail("an enum needs 'options' naming its values", "options")
    if kind is PointType.BITFIELD and not spec.get("bits"):
        raise fail("a bitfield needs 'bits' naming its bits", "bits")
    if kind is PointType.BITFIELD and max(spec["bits"]) >= registers * 16:
        raise fail(f"bit {max(spec['bits'])} is beyond the field's {registers * 16} bits", "bits")
    if metric in ALWAYS_PRIVATE and spec.get("private") is False:
        raise fail(f"{metric} carries identity and is always private", "private")
    if "version" in spec and (kind not in _VERSION_TYPES or access is not Access.READ):
        raise fail("a version is read from a read-only u16, u32 or u64", "version")
    point = Point(
        metric=metric,
        address=spec["address"],
        type=kind,
        registers=registers,
        space=space,
        access=access,
        scale=spec["scale"],
        offset=spec["offset"],
        scale_factor=spec.get("scale_factor"),
        word_order=spec.get("word_order"),
        byte_order=spec.get("byte_order"),
        unimplemented=spec.get("unimplemented"),
        valid_range=spec.get("valid_range"),
        options=MappingProxyType(spec["options"]) if "options" in spec else None,
        bits=MappingProxyType(spec["bits"]) if "bits" in spec else None,
        poll=PollGroup.ONCE if METRICS[metric].kind is MetricKind.IDENTITY else spec["poll"],
        write=write_spec,
        private=spec.get("private", metric in ALWAYS_PRIVATE),
        version=spec.get("version"),
    )
    _check_placement(point, device, fail)
    return point


def _registers(kind: PointType, spec: dict[str, Any], fail: Any) -> int:
    if kind is PointType.STRING:
        if "length" not in spec:
            raise fail("a string needs 'length' (registers)", "length")
        return int(spec["length"])
    if kind in (PointType.ENUM, PointType.BITFIELD):
        length = spec.get("length", 1)
        if length not in (1, 2, 4):
            raise fail(f"{kind} length must be 1, 2 or 4 registers", "length")
        return int(length)
    if "length" in spec:
        raise fail(f"{kind} has a fixed length; remove 'length'", "length")
    return TYPE_REGISTERS[kind]


def _write_spec(write: dict[str, Any], registers: int, fail: Any) -> WriteSpec:
    low, high = write.get("min"), write.get("max")
    if low is not None and high is not None and low > high:
        raise fail(f"min {low} is above max {high}", "write")
    function = write.get("function")
    if function is WriteFunction.FC06 and registers != 1:
        raise fail("function fc06 writes one register; this point spans more", "write.function")
    gap = write.get("not_between")
    if gap is not None and (gap[0] >= gap[1] or (low is not None and gap[0] < low)
                            or (high is not None and gap[1] > high)):  # fmt: skip
        raise fail(f"not_between {list(gap)} is no gap inside [{low}, {high}]", "write.not_between")
    if write["lease"] and not write["allow_write"]:
        raise fail("a leased point must allow writing", "write.lease")
    return WriteSpec(
        allow_write=write["allow_write"], minimum=low, maximum=high, eeprom=write["eeprom"],
        function=function, not_between=gap, lease=write["lease"],
    )  # fmt: skip


def _check_placement(point: Point, device: DeviceInfo, fail: Any) -> None:
    if point.end > 65535:
        raise fail(f"spans past register 65535 ({point.registers} registers)", "address")
    if point.registers > device.max_block:
        raise fail(
            f"spans {point.registers} registers; the device reads at most {device.max_block}"
        )
    for first, last in device.refused:
        for start, end in ((point.address, point.end), (point.scale_factor, point.scale_factor)):
            if start is not None and end is not None and start <= last and end >= first:
                raise fail(
                    f"registers {start}-{end} fall in refused range {first}-{last}", "address"
                )


def _check_device_references(point_map: PointMap) -> None:
    device, points = point_map.device, point_map.points
    for metric in device.safe_mode:
        point = points.get(metric)
        if point is None or point.write is None or not point.write.allow_write:
            raise PointMapError(
                f"{metric} is not a point with allow_write: true",
                source=point_map.source, path=f"device.safe_mode.{metric}",
            )  # fmt: skip
    for point in points.values():
        if (
            point.write is not None
            and point.write.allow_write
            and not point.write.lease
            and (point.metric in LEASED_METRICS)
        ):
            raise PointMapError(
                f"{point.metric} is only ever written as a lease: give it lease: true",
                source=point_map.source, path=f"points.{point.metric}.write.lease",
            )  # fmt: skip
        # A battery setpoint without a safe value of its own is handed back by a zero one.
        implicit = point.metric == BATTERY_POWER
        if (
            point.write is not None
            and point.write.lease
            and point.metric not in device.safe_mode
            and not implicit
        ):
            raise PointMapError(
                f"{point.metric} is leased: device.safe_mode must say what a lapse writes",
                source=point_map.source, path=f"points.{point.metric}.write.lease",
            )  # fmt: skip
    if device.revert_timer is not None:
        point = points.get(device.revert_timer)
        if point is None or point.write is None:
            raise PointMapError(
                f"{device.revert_timer} is not a writable point",
                source=point_map.source, path="device.revert_timer",
            )  # fmt: skip
    for metric, pattern in device.identify.items():
        if metric not in points:
            raise PointMapError(
                f"{metric} is not a point of this map", source=point_map.source,
                path=f"device.identify.{metric}",
            )  # fmt: skip
        try:
            re.compile(pattern)
        except (re.error, OverflowError, RecursionError) as err:  # a{99999999999} overflows
            raise PointMapError(
                f"not a regular expression: {err}",
                source=point_map.source,
                path=f"device.identify.{metric}",
            ) from None
