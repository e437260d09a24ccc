"""Battery management systems over MQTT bridges and over CAN (Pylontech/SMA-compatible)."""

from .can_device import CanBmsDevice
from .decoder import TopicMapDecoder
from .latest import DecodeStats, LatestReadings
from .mqtt_device import MqttBmsDevice
from .pylontech import BITS, FRAMES, CanFrameError, decode_frame, encode_frames
from .reporting import ReportingDevice, TopicMapDevice
from .topicmap import (
    Bridge,
    Keepalive,
    PayloadType,
    TopicMap,
    TopicPoint,
    catalog_paths,
    load_catalog,
    load_topic_map,
    parse_topic_map,
    validate_topic_map,
)

__all__ = [
    "BITS",
    "FRAMES",
    "Bridge",
    "CanBmsDevice",
    "CanFrameError",
    "DecodeStats",
    "Keepalive",
    "LatestReadings",
    "MqttBmsDevice",
    "PayloadType",
    "ReportingDevice",
    "TopicMap",
    "TopicMapDecoder",
    "TopicMapDevice",
    "TopicPoint",
    "catalog_paths",
    "decode_frame",
    "encode_frames",
    "load_catalog",
    "load_topic_map",
    "parse_topic_map",
    "validate_topic_map",
]
