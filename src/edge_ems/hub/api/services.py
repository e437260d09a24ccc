"""What the API serves from: the hub's parts, handed in by the app (or a test)."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ...pointmap import PointMap
from ..gateway import GatewayServer
from ..store.minute_store import MinuteStore
from .audit_trail import AuditTrail


class StatusSource(Protocol):
    """A part that reports its state for ``/health`` and ``/metrics`` (Parquet, uplink)."""

    def status(self) -> Any:
        """A dataclass (or mapping) of plain values."""


@dataclass(slots=True)
class HubServices:
    """The running hub's parts."""

    gateway: GatewayServer
    store: MinuteStore
    audit: AuditTrail
    grpc_port: int
    registermaps: Sequence[PointMap] = ()
    parquet: StatusSource | None = None
    uplink: StatusSource | None = None
    started: float = field(default_factory=time.time)


def status_dict(source: StatusSource | None) -> dict[str, Any] | None:
    """A part's status as a JSON-ready dict (``None`` when the part is off)."""
    return None if source is None else plain_status(source.status())


def plain_status(status: Any) -> dict[str, Any]:
    """A status (a dataclass or a mapping) as a JSON-ready dict."""
    if dataclasses.is_dataclass(status) and not isinstance(status, type):
        return dict(_plain(dataclasses.asdict(status)))
    if isinstance(status, Mapping):
        return dict(_plain(dict(status)))
    return {"state": str(status)}


def _plain(value: Any) -> Any:
    """Values JSON can carry: enums and paths become strings, non-finite floats ``None``."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
