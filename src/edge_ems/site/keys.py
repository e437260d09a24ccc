"""The keys of a device's settings: one vocabulary for site files and Home Assistant.

A device is described by its kind and a flat mapping of settings. ``edge-ems agent`` reads
them from a site file; the integration keeps the same keys in each device's config
subentry, so one factory builds the device either way.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, Literal


class DeviceKind(StrEnum):
    """What kind of device a site holds, which decides how it is built."""

    SUNSPEC = "sunspec"
    """A SunSpec device over Modbus TCP; its models are discovered."""
    MODBUS = "modbus"
    """A device described by a point map, over Modbus TCP, RTU or RTU over TCP."""
    MQTT_BMS = "mqtt_bms"
    """A battery management system whose bridge publishes over MQTT (a topic map)."""
    CAN_BMS = "can_bms"
    """A Pylontech/SMA-compatible battery on a CAN bus."""
    OPCUA = "opcua"
    """A device on an OPC UA server, read and written through a node map."""
    SIM_BESS = "sim_bess"
    """A simulated battery inside the agent (commissioning, demos, fleet tests)."""


# Where a device is reached.
HOST: Final = "host"
PORT: Final = "port"
UNIT_ID: Final = "unit_id"
TRANSPORT: Final = "transport"
SERIAL_PORT: Final = "serial_port"
BAUDRATE: Final = "baudrate"
PARITY: Final = "parity"
URL: Final = "url"
INTERFACE: Final = "interface"
CHANNEL: Final = "channel"

# What describes it.
BASE_ADDRESS: Final = "base_address"
"""SunSpec base address; absent means detect it."""
DEVICE_INDEX: Final = "device_index"
"""Which device of a SunSpec chain (0 the first, each introduced by its own model 1)."""
POINT_MAP: Final = "point_map"
TOPIC_MAP: Final = "topic_map"
VARIABLES: Final = "variables"
"""MQTT topic-map placeholders (topic prefix, portal id...)."""
NODE_MAP: Final = "node_map"

# How it is logged in to.
USERNAME: Final = "username"
PASSWORD: Final = "password"  # noqa: S105 - the setting's key, not a password
SECURITY: Final = "security"
"""OPC UA message security: ``none`` or ``<policy>_<mode>``."""
CERTIFICATE: Final = "certificate"
PRIVATE_KEY: Final = "private_key"
APPLICATION_URI: Final = "application_uri"
BROKER: Final = "broker"
"""An MQTT BMS's broker when the agent connects itself (Home Assistant uses its own)."""

# A simulated battery's size and start.
CAPACITY_WH: Final = "capacity_wh"
MAX_CHARGE_W: Final = "max_charge_w"
MAX_DISCHARGE_W: Final = "max_discharge_w"
SOC_PCT: Final = "soc_pct"
MIRROR: Final = "mirror"
"""A simulated battery's OPC UA server to write its telemetry to (seed 002's
``telemetry_write_sim``): ``url``, ``node_map``, ``username``, ``password``."""

TRANSPORT_TCP: Final = "tcp"
TRANSPORT_RTU: Final = "rtu"
TRANSPORT_RTU_OVER_TCP: Final = "rtu_over_tcp"
SECURITY_NONE: Final = "none"
PARITIES: Final[dict[str, Literal["N", "E", "O"]]] = {"none": "N", "even": "E", "odd": "O"}
"""Serial parity as settings name it, and as the serial port takes it."""
BAUDRATES: Final = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
