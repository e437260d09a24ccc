"""Modbus TCP, RTU and RTU over TCP devices, on shared links built on modbus-connection."""

from .device import POLLED_GROUPS, ModbusDevice
from .endpoints import Endpoint, RtuOverTcpEndpoint, SerialEndpoint, TcpEndpoint, frame_gap
from .link import LinkSettings, ModbusLink
from .registry import LinkRegistry

__all__ = [
    "POLLED_GROUPS",
    "Endpoint",
    "LinkRegistry",
    "LinkSettings",
    "ModbusDevice",
    "ModbusLink",
    "RtuOverTcpEndpoint",
    "SerialEndpoint",
    "TcpEndpoint",
    "frame_gap",
]
