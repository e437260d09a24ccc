"""Point maps: YAML device descriptions, their schema, codec and read planner."""

from .codec import decode_raw, encode_raw, from_value, to_value
from .loader import catalog_paths, load_catalog, load_point_map, parse_point_map
from .model import (
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
from .plan import Block, Limits, plan_reads, plan_space

__all__ = [
    "Access",
    "Block",
    "DeviceInfo",
    "Limits",
    "Order",
    "Point",
    "PointMap",
    "PointType",
    "PollGroup",
    "RegisterSpace",
    "VersionFormat",
    "WriteFunction",
    "WriteSpec",
    "catalog_paths",
    "decode_raw",
    "encode_raw",
    "from_value",
    "load_catalog",
    "load_point_map",
    "parse_point_map",
    "plan_reads",
    "plan_space",
    "to_value",
]
