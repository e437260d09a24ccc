"""The one exception hierarchy of the library.

Callers catch :class:`EdgeEmsError` for anything this library raises on purpose; the
subclasses say whether retrying can help (:class:`DeviceError` and its children) or whether
the input itself is wrong (:class:`ConfigError`, :class:`WriteRefusedError`).
"""

from __future__ import annotations


class EdgeEmsError(Exception):
    """Base class of every error Edge EMS raises on purpose."""


class ConfigError(EdgeEmsError):
    """A configuration, point map or site file is invalid."""


class ConfigFileError(ConfigError):
    """A file of settings is invalid; names the file, the key path and the reason."""

    def __init__(self, reason: str, *, source: str = "<file>", path: str = "") -> None:
        self.reason = reason
        self.source = source
        self.path = path
        where = f"{source}: {path}" if path else source
        super().__init__(f"{where}: {reason}")


class PointMapError(ConfigFileError):
    """A point, topic or node map is invalid."""


class SiteFileError(ConfigFileError):
    """A site file is invalid."""


class DeviceError(EdgeEmsError):
    """Talking to a device failed; retrying later may succeed."""


class DeviceConnectionError(DeviceError):
    """The device (or the gateway in front of it) cannot be reached."""


class DeviceTimeoutError(DeviceConnectionError):
    """The device did not answer in time."""


class DeviceBusyError(DeviceError):
    """The device is busy and asks to be retried later."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeviceProtocolError(DeviceError):
    """The device answered with something that is not a valid reply."""


class DeviceExceptionError(DeviceError):
    """The device answered with a protocol exception (a Modbus exception code, say)."""

    def __init__(self, message: str, *, code: int) -> None:
        super().__init__(message)
        self.code = code


class DeviceAuthenticationError(DeviceError):
    """The device refused the user name, password or certificate it was given."""


class CircuitOpenError(DeviceError):
    """Requests are held back because the device failed repeatedly."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class IdentificationError(DeviceError):
    """The device does not match what it was configured as (wrong point map, say)."""


class WriteRefusedError(EdgeEmsError):
    """A write was refused before anything reached the device.

    ``reason`` is a stable machine-readable key (``not_writable``, ``not_allowed``,
    ``out_of_range``, ``unknown_command``, ...), used as a translation key upstream.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class ReadBackMismatchError(DeviceError):
    """A write reached the device but reading it back gave a different value."""

    def __init__(self, message: str, *, expected: object, actual: object) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual
