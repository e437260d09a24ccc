"""What the API serves from: the hub's parts, handed in by the app (or a test)."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ... import __version__
from ...pointmap import PointMap
from ..gateway import GatewayServer
from ..store.minute_store import MinuteStore
from ..tasks import TaskStatus
from ..tls import GatewayCertificate
from .audit_trail import AuditTrail

if TYPE_CHECKING:
    from ..planning.service import PlannerService


class StatusSource(Protocol):
    """A part that reports its state for ``/health`` and ``/metrics`` (Parquet, uplink)."""

    def status(self) -> Any:
        """A dataclass (or mapping) of plain values."""


class TaskSource(Protocol):
    """The hub's background tasks (:class:`~edge_ems.hub.tasks.Supervisor`)."""

    def status(self) -> Mapping[str, TaskStatus]:
        """Each task's state, by name."""


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
    tasks: TaskSource | None = None
    gateway_tls: GatewayCertificate | None = None
    planner: PlannerService | None = None
    started: float = field(default_factory=time.time)


def health_report(services: HubServices) -> dict[str, Any]:
    """Every part's state; ``status`` is ``degraded`` while any part reports an error or a
    background task is failing (the parts named in ``problems``)."""
    store = status_dict(services.store)
    parquet, uplink = status_dict(services.parquet), status_dict(services.uplink)
    tasks = {
        name: plain_status(task)
        for name, task in (services.tasks.status() if services.tasks else {}).items()
    }
    problems = [
        name
        for name, part in (("store", store), ("parquet", parquet), ("uplink", uplink))
        if part is not None and part.get("last_error")
    ]
    if services.audit.last_error:
        problems.append("audit")
    planner = None if services.planner is None else services.planner.health()
    if planner is not None and planner["problems"]:
        problems.append("planner")
    problems += [name for name, task in tasks.items() if task["failing"] and name not in problems]
    return {
        "status": "degraded" if problems else "ok",
        "problems": problems,
        "version": __version__,
        "uptime_s": round(time.time() - services.started, 3),
        "store": store,
        "gateway": {
            "port": services.grpc_port,
            "internal_port": services.gateway.internal_port,
            "tls": _tls(services.gateway_tls),
            "connected_agents": len(services.gateway.connected_agents()),
            **plain_status(services.gateway.stats()),
        },
        "audit": {
            "written": services.audit.written,
            "dropped": services.audit.dropped,
            "last_error": services.audit.last_error,
        },
        "parquet": parquet,
        "uplink": uplink,
        "tasks": tasks,
        "planner": planner,
    }


def _tls(certificate: GatewayCertificate | None) -> dict[str, Any] | None:
    if certificate is None:
        return None
    return {
        "self_signed": certificate.self_signed,
        "fingerprint_sha256": certificate.fingerprint,
        "names": list(certificate.names),
        "not_after": certificate.not_after,
        "client_certificates": certificate.tls.client_ca is not None,
    }


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
