"""Where a Modbus link goes: Modbus TCP, RTU on a serial line, or RTU over TCP."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

from modbus_connection import ModbusSerialParams, ModbusTcpParams


@dataclass(frozen=True, slots=True)
class TcpEndpoint:
    """Modbus TCP (MBAP framing) to a device or a gateway."""

    host: str
    port: int = 502

    @property
    def label(self) -> str:
        """A short name for logs and errors."""
        return f"tcp://{self.host}:{self.port}"

    @property
    def character_time(self) -> float:
        """Seconds one character takes on the wire; a socket has no line speed."""
        return 0.0

    def params(self) -> ModbusTcpParams:
        """modbus-connection's parameters for this endpoint."""
        return ModbusTcpParams(host=self.host, port=self.port)


@dataclass(frozen=True, slots=True)
class RtuOverTcpEndpoint:
    """RTU frames over a TCP socket, as transparent serial-to-Ethernet gateways carry them."""

    host: str
    port: int = 502

    @property
    def label(self) -> str:
        """A short name for logs and errors."""
        return f"rtu+tcp://{self.host}:{self.port}"

    @property
    def character_time(self) -> float:
        """The gateway paces its own serial line; the socket has no line speed."""
        return 0.0

    def params(self) -> ModbusTcpParams:
        """modbus-connection's parameters: a TCP client speaking RTU frames.

        modbus-connection deprecates this for a serial link on pyserial's ``socket://``
        device, but that device's ``close()`` sleeps 0.3 s on the event loop (Home
        Assistant's blocking-call detection catches it), so the TCP client stays.
        """
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", r"ModbusTcpParams\(framer='rtu'\)", category=DeprecationWarning
            )
            return ModbusTcpParams(host=self.host, port=self.port, framer="rtu")


@dataclass(frozen=True, slots=True)
class SerialEndpoint:
    """RTU on a local serial port (an RS-485 adapter, say)."""

    device: str
    baudrate: int = 9600
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1

    @property
    def label(self) -> str:
        """A short name for logs and errors."""
        return f"rtu://{self.device}@{self.baudrate}"

    @property
    def character_time(self) -> float:
        """Seconds one character takes on the wire: start, data, parity and stop bits."""
        bits = 1 + self.bytesize + (self.parity != "N") + self.stopbits
        return bits / self.baudrate

    def params(self) -> ModbusSerialParams:
        """modbus-connection's parameters for this endpoint."""
        return ModbusSerialParams(
            device=self.device,
            baudrate=self.baudrate,
            bytesize=self.bytesize,
            parity=self.parity,
            stopbits=self.stopbits,
            framer="rtu",
        )


type Endpoint = TcpEndpoint | RtuOverTcpEndpoint | SerialEndpoint
"""Any physical link a :class:`~edge_ems.modbus.link.ModbusLink` can run over."""


def frame_gap(endpoint: Endpoint) -> float:
    """The silence RTU needs between frames: 3.5 characters, at least 1.75 ms (the spec's
    fixed value above 19200 baud); none where no serial line is ours to pace."""
    character = endpoint.character_time
    return max(3.5 * character, 0.00175) if character else 0.0
