"""Conversions between the wire (``proto/gateway.proto``) and the library's own types.

Decoding checks structure (ids present, columns of equal length, known enum keys) and raises
:class:`ProtocolViolationError`; what an agent may send (its own assets, known metrics) is the
hub's policy, not decoding's.
"""

from __future__ import annotations

import json
import math

from ..dispatch import AuditRecord, Outcome, Reason
from ..readings import Quality, Reading, Value
from .errors import ProtocolViolationError
from .model import (
    PLAN_INPUTS,
    AssetInfo,
    DeviceStatus,
    PlanInputs,
    PlanRequest,
    PlanUpdate,
    Registration,
    SeriesSamples,
    TelemetryBatch,
    TextSample,
)
from .proto import gateway_pb2 as pb

_INT64 = range(-(2**63), 2**63)


def value_to_proto(value: Value) -> pb.Value:
    """Encode a reading value; ``None`` is the empty message."""
    if value is None:
        return pb.Value()
    if isinstance(value, bool):
        return pb.Value(flag=value)
    if isinstance(value, int):
        return pb.Value(integer=value) if value in _INT64 else pb.Value(number=float(value))
    if isinstance(value, float):
        return pb.Value(number=value)
    return pb.Value(text=value)


def value_from_proto(message: pb.Value) -> Value:
    """Decode a reading value."""
    kind = message.WhichOneof("kind")
    if kind is None:
        return None
    value: Value = getattr(message, kind)
    return value


def audit_to_proto(record: AuditRecord) -> pb.AuditRecord:
    """Encode an audit record."""
    message = pb.AuditRecord(
        id=record.id,
        site_id=record.site_id,
        command=record.command,
        requested=value_to_proto(record.requested),
        applied=value_to_proto(record.applied),
        outcome=record.outcome.value,
        reason=record.reason.value,
        message=record.message,
        requested_by=record.requested_by,
        source=record.source,
        timestamp=record.timestamp,
        read_back=value_to_proto(record.read_back),
    )
    if record.device_id is not None:
        message.device_id = record.device_id
    if record.ttl is not None:
        message.ttl_s = record.ttl
    return message


def audit_from_proto(message: pb.AuditRecord) -> AuditRecord:
    """Decode an audit record; unknown outcome or reason keys are a protocol violation."""
    try:
        outcome, reason = Outcome(message.outcome), Reason(message.reason)
    except ValueError as err:
        raise ProtocolViolationError(f"audit record {message.id!r}: {err}") from None
    if not message.id or not message.site_id:
        raise ProtocolViolationError("audit record without id or site id")
    return AuditRecord(
        site_id=message.site_id,
        device_id=message.device_id if message.HasField("device_id") else None,
        command=message.command,
        requested=value_from_proto(message.requested),
        applied=value_from_proto(message.applied),
        outcome=outcome,
        reason=reason,
        message=message.message,
        requested_by=message.requested_by,
        source=message.source,
        timestamp=message.timestamp,
        read_back=value_from_proto(message.read_back),
        ttl=message.ttl_s if message.HasField("ttl_s") else None,
        id=message.id,
    )


def registration_to_proto(registration: Registration) -> pb.Register:
    """Encode what an agent registers."""
    return pb.Register(
        protocol_version=registration.protocol_version,
        agent_id=registration.agent_id,
        site_id=registration.site_id,
        site_name=registration.site_name,
        gateway_id=registration.gateway_id,
        software=registration.software,
        assets=[
            pb.Asset(
                asset_id=asset.asset_id,
                name=asset.name,
                type=asset.type,
                capacity_wh=asset.capacity_wh,
                max_charge_w=asset.max_charge_w,
                max_discharge_w=asset.max_discharge_w,
                commands=asset.commands,
            )
            for asset in registration.assets
        ],
    )


def registration_from_proto(message: pb.Register) -> Registration:
    """Decode a registration: ids present, asset ids unique, limits finite and not negative."""
    if not message.agent_id or not message.site_id:
        raise ProtocolViolationError("a registration needs an agent id and a site id")
    assets: list[AssetInfo] = []
    seen: set[str] = set()
    for asset in message.assets:
        if not asset.asset_id or asset.asset_id in seen:
            raise ProtocolViolationError(f"asset id {asset.asset_id!r} is empty or repeated")
        limits = (asset.capacity_wh, asset.max_charge_w, asset.max_discharge_w)
        if not all(math.isfinite(limit) and limit >= 0 for limit in limits):
            raise ProtocolViolationError(f"asset {asset.asset_id!r} has invalid limits {limits}")
        seen.add(asset.asset_id)
        assets.append(
            AssetInfo(
                asset_id=asset.asset_id,
                name=asset.name,
                type=asset.type,
                capacity_wh=asset.capacity_wh,
                max_charge_w=asset.max_charge_w,
                max_discharge_w=asset.max_discharge_w,
                commands=tuple(asset.commands),
            )
        )
    return Registration(
        agent_id=message.agent_id,
        site_id=message.site_id,
        site_name=message.site_name,
        gateway_id=message.gateway_id,
        assets=tuple(assets),
        software=message.software,
        protocol_version=message.protocol_version,
    )


def batch_to_proto(batch: TelemetryBatch) -> pb.Telemetry:
    """Encode a telemetry batch (agent and site travel with the session, not the batch)."""
    return pb.Telemetry(
        seq=batch.seq,
        series=[
            pb.Series(
                asset_id=series.asset_id,
                metric=series.metric,
                timestamps_ms=series.timestamps_ms,
                values=series.values,
            )
            for series in batch.series
        ],
        texts=[
            pb.TextSample(
                asset_id=text.asset_id,
                metric=text.metric,
                timestamp_ms=text.timestamp_ms,
                value=text.value,
            )
            for text in batch.texts
        ],
    )


def batch_from_proto(message: pb.Telemetry, *, agent_id: str, site_id: str) -> TelemetryBatch:
    """Decode a telemetry batch of ``agent_id``.

    The sample columns are handed on as the message's own containers, without copying:
    this is the gateway's hot path.
    """
    if message.seq <= 0:
        raise ProtocolViolationError("telemetry seq starts at 1")
    series = []
    for column in message.series:
        if not column.asset_id or not column.metric:
            raise ProtocolViolationError(f"batch {message.seq}: a series without asset or metric")
        if len(column.timestamps_ms) != len(column.values):
            raise ProtocolViolationError(
                f"batch {message.seq}: {column.asset_id}/{column.metric} has "
                f"{len(column.timestamps_ms)} timestamps for {len(column.values)} values"
            )
        series.append(
            SeriesSamples(column.asset_id, column.metric, column.timestamps_ms, column.values)
        )
    texts = []
    for text in message.texts:
        if not text.asset_id or not text.metric:
            raise ProtocolViolationError(f"batch {message.seq}: a text without asset or metric")
        texts.append(TextSample(text.asset_id, text.metric, text.timestamp_ms, text.value))
    encoded = message.SerializeToString()
    return TelemetryBatch(agent_id, site_id, message.seq, series, texts, encoded)


def reading_sample(reading: Reading) -> float | str | None:
    """The sample a reading contributes: a number, a text, or nothing.

    Only good readings are sent: a stale value is an old sample already sent, an invalid
    one is not a measurement. Flags travel as 1.0 and 0.0.
    """
    value = reading.value
    if reading.quality is not Quality.GOOD or value is None:
        return None
    if isinstance(value, str):
        return value
    number = float(value)
    return number if math.isfinite(number) else None


def plan_request_to_proto(request: PlanRequest) -> pb.PlanRequest:
    """Encode a request to the planner."""
    message = pb.PlanRequest(request_id=request.request_id, requested_by=request.requested_by)
    if request.kind == "replan":
        message.replan.CopyFrom(pb.Replan(reason=request.reason))
    elif request.kind == "override":
        message.override.CopyFrom(
            pb.Override(
                asset_id=request.asset_id,
                command=request.command,
                value=value_to_proto(request.value),
                start_ms=request.start_ms,
                end_ms=request.end_ms,
            )
        )
    elif request.kind == "clear_override":
        message.clear_override.CopyFrom(pb.ClearOverride(asset_id=request.asset_id))
    else:
        raise ValueError(f"not a plan request: {request.kind!r}")
    return message


def plan_request_from_proto(message: pb.PlanRequest) -> PlanRequest:
    """Decode a request to the planner; an override needs its asset, command and end."""
    kind = message.WhichOneof("kind")
    if not message.request_id or kind is None:
        raise ProtocolViolationError("a PlanRequest needs a request_id and a kind")
    if kind == "replan":
        return PlanRequest(
            message.request_id, kind, message.requested_by, reason=message.replan.reason
        )
    if kind == "override":
        held = message.override
        if not held.asset_id or not held.command or held.end_ms <= held.start_ms:
            raise ProtocolViolationError("an Override needs an asset, a command and its end")
        return PlanRequest(
            message.request_id, kind, message.requested_by, asset_id=held.asset_id,
            command=held.command, value=value_from_proto(held.value),
            start_ms=held.start_ms, end_ms=held.end_ms,
        )  # fmt: skip
    return PlanRequest(
        message.request_id, kind, message.requested_by, asset_id=message.clear_override.asset_id
    )


def plan_inputs_to_proto(inputs: PlanInputs) -> pb.PlanInputs:
    """Encode a series for the planner."""
    return pb.PlanInputs(
        kind=inputs.kind, start_ms=inputs.start_ms, step_s=inputs.step_s,
        values=list(inputs.values), unit=inputs.unit, source=inputs.source,
    )  # fmt: skip


def plan_inputs_from_proto(message: pb.PlanInputs) -> PlanInputs:
    """Decode a series for the planner: a known kind, a step, finite values."""
    if message.kind not in PLAN_INPUTS:
        raise ProtocolViolationError(f"PlanInputs: unknown kind {message.kind!r}")
    if message.step_s <= 0 or not message.values:
        raise ProtocolViolationError("PlanInputs needs a step and values")
    if not all(math.isfinite(value) for value in message.values):
        raise ProtocolViolationError("PlanInputs values must be finite")
    return PlanInputs(
        message.kind, message.start_ms, message.step_s, tuple(message.values),
        message.unit, message.source,
    )  # fmt: skip


def plan_update_to_proto(update: PlanUpdate) -> pb.PlanUpdate:
    """Encode a plan for the site."""
    return pb.PlanUpdate(
        version=update.version, made_at_ms=update.made_at_ms,
        plan_json=json.dumps(update.plan, separators=(",", ":"), allow_nan=False),
    )  # fmt: skip


def plan_update_from_proto(message: pb.PlanUpdate) -> PlanUpdate:
    """Decode a plan; its JSON must be an object."""
    try:
        plan = json.loads(message.plan_json)
    except ValueError as err:
        raise ProtocolViolationError(f"PlanUpdate: the plan is not JSON: {err}") from None
    if not isinstance(plan, dict):
        raise ProtocolViolationError("PlanUpdate: the plan is not a JSON object")
    return PlanUpdate(message.version, message.made_at_ms, plan)


_MAX_ERROR = 500
"""Characters of a device's last error carried to the hub (a traceback is not a status)."""


def status_to_proto(status: DeviceStatus) -> pb.DeviceStatus:
    """A device's polling status on the wire."""
    message = pb.DeviceStatus(
        asset_id=status.asset_id,
        polled=status.answering is not None,
        answering=bool(status.answering),
        last_poll_ms=status.last_poll_ms or 0,
        last_success_ms=status.last_success_ms or 0,
        last_error=(status.last_error or "")[:_MAX_ERROR],
        polls=status.polls,
        failed_polls=status.failed_polls,
        breaker=status.breaker,
    )
    if status.requests is not None:
        message.requests = status.requests
    return message


def status_from_proto(message: pb.DeviceStatus) -> DeviceStatus:
    """A device's polling status from the wire."""
    if not message.asset_id:
        raise ProtocolViolationError("a device status without an asset id")
    return DeviceStatus(
        asset_id=message.asset_id,
        answering=message.answering if message.polled else None,
        last_poll_ms=message.last_poll_ms or None,
        last_success_ms=message.last_success_ms or None,
        last_error=message.last_error[:_MAX_ERROR] or None,
        polls=message.polls,
        failed_polls=message.failed_polls,
        requests=message.requests if message.HasField("requests") else None,
        breaker=message.breaker[:16] or "closed",
    )
