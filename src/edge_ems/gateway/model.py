"""The gateway's plain data: what an agent registers, the telemetry it sends (columnar per
series, in numbered batches) and what a setpoint came back with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..dispatch import AssetLimits, AuditRecord
from ..readings import Value


@dataclass(frozen=True, slots=True)
class AssetInfo:
    """One asset an agent serves, as it registers it."""

    asset_id: str
    name: str = ""
    type: str = ""
    """What the asset is (:class:`edge_ems.device.AssetType`: ``inverter``, ``meter``,
    ``ev_charger``, ...); ``battery`` for a battery its site may drive."""
    capacity_wh: float = 0.0
    max_charge_w: float = 0.0
    max_discharge_w: float = 0.0
    commands: tuple[str, ...] = ()
    """Writable metrics on the asset's allowlist."""

    @property
    def limits(self) -> AssetLimits:
        """The limits site dispatch splits and clamps by."""
        return AssetLimits(self.max_charge_w, self.max_discharge_w, self.capacity_wh)


@dataclass(frozen=True, slots=True)
class Registration:
    """What an agent says about itself when it connects."""

    agent_id: str
    site_id: str
    site_name: str = ""
    gateway_id: str = ""
    """Set in gateway mode: the agent serves every asset of its site over one stream."""
    assets: tuple[AssetInfo, ...] = ()
    software: str = ""
    protocol_version: int = 1

    @property
    def asset_ids(self) -> frozenset[str]:
        """The ids of the registered assets."""
        return frozenset(asset.asset_id for asset in self.assets)


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """How an agent's polling of one asset goes: sent with every heartbeat, shown on the
    hub's dashboard. Times in ms since the epoch; counts since the agent started."""

    asset_id: str
    answering: bool | None
    """Whether the last poll succeeded; ``None`` before the first ended."""
    last_poll_ms: int | None = None
    last_success_ms: int | None = None
    last_error: str | None = None
    polls: int = 0
    failed_polls: int = 0
    requests: int | None = None
    """Protocol requests sent (Modbus reads), where the device counts them."""
    breaker: str = "closed"

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "answering": self.answering,
            "last_poll_ms": self.last_poll_ms,
            "last_success_ms": self.last_success_ms,
            "last_error": self.last_error,
            "polls": self.polls,
            "failed_polls": self.failed_polls,
            "requests": self.requests,
            "breaker": self.breaker,
        }


@dataclass(frozen=True, slots=True)
class SetpointResult:
    """What an agent answered to a setpoint: the audit record of every attempt it caused."""

    command_id: str
    agent_id: str
    records: tuple[AuditRecord, ...] = ()
    error: str | None = field(default=None)
    """Set when the agent could not execute the command at all."""


@dataclass(frozen=True, slots=True)
class SeriesSamples:
    """Numeric samples of one metric of one asset, oldest first."""

    asset_id: str
    metric: str
    timestamps_ms: Sequence[int]
    values: Sequence[float]


@dataclass(frozen=True, slots=True)
class TextSample:
    """A non-numeric reading (a mode, a state): kept as the latest value, not aggregated."""

    asset_id: str
    metric: str
    timestamp_ms: int
    value: str


@dataclass(frozen=True, slots=True)
class TelemetryBatch:
    """One batch from one agent."""

    agent_id: str
    site_id: str
    seq: int
    series: Sequence[SeriesSamples]
    texts: Sequence[TextSample] = field(default=())
    encoded: bytes | None = field(default=None, compare=False, repr=False)
    """The batch as the gateway's protobuf ``Telemetry`` when it came in as one, so the hub's
    journal stores it without encoding it again; ``None`` for a batch built otherwise (a
    batch changed on its way is a new one, without it)."""

    @property
    def points(self) -> int:
        """Samples in the batch."""
        return sum(len(series.values) for series in self.series) + len(self.texts)


PLAN_REQUESTS = ("replan", "override", "clear_override")
"""What a site may ask the hub's planner."""
PLAN_INPUTS = ("spot_price", "import_price", "export_price", "pv_forecast")
"""The series a site may give the hub's planner."""


@dataclass(frozen=True, slots=True)
class PlanRequest:
    """A site asks the hub's planner: plan again, hold an asset at a value, or let it go."""

    request_id: str
    kind: str
    """One of :data:`PLAN_REQUESTS`."""
    requested_by: str = ""
    reason: str = ""
    """Why a replan is asked for."""
    asset_id: str = ""
    """The asset an override holds (or lets go; empty: every one of the site)."""
    command: str = ""
    value: Value = None
    start_ms: int = 0
    """When the override starts, ms since the epoch; 0 means now."""
    end_ms: int = 0


@dataclass(frozen=True, slots=True)
class PlanInputs:
    """A series the planner should use for the site instead of its own source."""

    kind: str
    """One of :data:`PLAN_INPUTS`."""
    start_ms: int
    step_s: int
    values: tuple[float, ...]
    unit: str = ""
    source: str = ""


@dataclass(frozen=True, slots=True)
class PlanUpdate:
    """A site's current plan, as the planner made it (``Plan.as_dict()`` and its prices)."""

    version: int
    made_at_ms: int
    plan: Mapping[str, Any]
