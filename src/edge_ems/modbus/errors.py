"""Map modbus-connection's errors onto the library's own exception hierarchy."""

from __future__ import annotations

from modbus_connection import (
    AcknowledgeError,
    ModbusConnectionError,
    ModbusError,
    ModbusExceptionError,
    ModbusProtocolError,
    ModbusTimeoutError,
    ServerDeviceBusyError,
)

from ..exceptions import (
    DeviceBusyError,
    DeviceConnectionError,
    DeviceError,
    DeviceExceptionError,
    DeviceProtocolError,
    DeviceTimeoutError,
)

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
"""Modbus exception codes by their names in the Modbus application protocol specification."""


def translate(
    error: ModbusError, where: str, *, answer: bytes = b"", retry_after: float | None = None
) -> DeviceError:
    """The :class:`DeviceError` for ``error``, its message starting with ``where``.

    ``answer`` holds bytes that arrived without forming a valid reply; a timeout with such
    bytes is a garbled answer rather than silence.
    """
    if isinstance(error, ServerDeviceBusyError | AcknowledgeError):
        code = int(error.exception_code or 0)
        return DeviceBusyError(
            f"{where}: device busy (exception {code}, {EXCEPTION_NAMES[code]})",
            retry_after=retry_after,
        )
    if isinstance(error, ModbusExceptionError):
        code = int(error.exception_code or 0)
        name = EXCEPTION_NAMES.get(code, "non-standard code")
        return DeviceExceptionError(f"{where}: exception {code} ({name})", code=code)
    if isinstance(error, ModbusTimeoutError):
        if answer:
            return DeviceProtocolError(
                f"{where}: answer is no valid Modbus frame ({len(answer)} bytes: "
                f"{answer[:16].hex(' ')})"
            )
        return DeviceTimeoutError(f"{where}: no answer in time")
    if isinstance(error, ModbusConnectionError):
        return DeviceConnectionError(f"{where}: {error}")
    if isinstance(error, ModbusProtocolError):
        return DeviceProtocolError(f"{where}: {error}")
    return DeviceProtocolError(f"{where}: unusable answer ({error})")
