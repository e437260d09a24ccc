"""Edge EMS: energy management for homes and small sites."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("edge-ems")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
