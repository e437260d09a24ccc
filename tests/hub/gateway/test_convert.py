"""Wire conversions: every library type survives the round trip, broken messages are refused."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_ems.dispatch import AuditRecord, Outcome, Reason
from edge_ems.gateway import AssetInfo, ProtocolViolationError, Registration
from edge_ems.gateway.convert import (
    audit_from_proto,
    audit_to_proto,
    batch_from_proto,
    batch_to_proto,
    plan_inputs_from_proto,
    plan_inputs_to_proto,
    plan_request_from_proto,
    plan_request_to_proto,
    plan_update_from_proto,
    plan_update_to_proto,
    reading_sample,
    registration_from_proto,
    registration_to_proto,
    status_from_proto,
    status_to_proto,
    value_from_proto,
    value_to_proto,
)
from edge_ems.gateway.model import (
    DeviceStatus,
    PlanInputs,
    PlanRequest,
    PlanUpdate,
    SeriesSamples,
    TelemetryBatch,
    TextSample,
)
from edge_ems.gateway.proto import gateway_pb2 as pb
from edge_ems.readings import Quality, Reading, Value


@pytest.mark.parametrize("value", [None, True, False, 0, -7, 2**62, 1.5, -0.25, "", "eco"])
def test_values_round_trip_with_their_type(value: Value) -> None:
    decoded = value_from_proto(pb.Value.FromString(value_to_proto(value).SerializeToString()))
    assert decoded == value
    assert type(decoded) is type(value)


def test_integers_beyond_64_bits_travel_as_numbers() -> None:
    assert value_from_proto(value_to_proto(2**70)) == float(2**70)


def record(**changes: object) -> AuditRecord:
    values: dict[str, object] = {
        "site_id": "home",
        "device_id": "bess-1",
        "command": "battery_power_setpoint_w",
        "requested": 6000.0,
        "applied": 5000,
        "outcome": Outcome.APPLIED,
        "reason": Reason.CLAMPED,
        "message": "clamped 6000.0 to 5000",
        "requested_by": "hub:ops",
        "source": "hub",
        "timestamp": 1_700_000_000.25,
        "read_back": 5000,
        "ttl": 60.0,
    }
    values.update(changes)
    return AuditRecord(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "audit", [record(), record(device_id=None, ttl=None, read_back=None, requested="x")]
)
def test_audit_records_round_trip(audit: AuditRecord) -> None:
    wire = pb.AuditRecord.FromString(audit_to_proto(audit).SerializeToString())
    assert audit_from_proto(wire) == audit


@pytest.mark.parametrize(("field", "value"), [("outcome", "exploded"), ("reason", "because")])
def test_unknown_audit_keys_are_a_protocol_violation(field: str, value: str) -> None:
    wire = audit_to_proto(record())
    setattr(wire, field, value)
    with pytest.raises(ProtocolViolationError, match=value):
        audit_from_proto(wire)


def test_registration_round_trip() -> None:
    registration = Registration(
        agent_id="gw-1",
        site_id="farm",
        site_name="Farm",
        gateway_id="gw-1",
        assets=(
            AssetInfo("bess-1", "Battery 1", "battery", 20_000, 5000, 6000, ("a", "b")),
            AssetInfo("meter", "Grid meter", "meter"),
        ),
        software="edge-ems test",
    )
    wire = pb.Register.FromString(registration_to_proto(registration).SerializeToString())
    assert registration_from_proto(wire) == registration


@pytest.mark.parametrize(
    "register",
    [
        pb.Register(site_id="farm"),
        pb.Register(agent_id="gw"),
        pb.Register(agent_id="gw", site_id="farm", assets=[pb.Asset(asset_id="")]),
        pb.Register(
            agent_id="gw", site_id="farm", assets=[pb.Asset(asset_id="a"), pb.Asset(asset_id="a")]
        ),
        pb.Register(
            agent_id="gw", site_id="farm", assets=[pb.Asset(asset_id="a", max_charge_w=-1)]
        ),
        pb.Register(
            agent_id="gw", site_id="farm", assets=[pb.Asset(asset_id="a", capacity_wh=math.nan)]
        ),
    ],
)
def test_broken_registrations_are_refused(register: pb.Register) -> None:
    with pytest.raises(ProtocolViolationError):
        registration_from_proto(register)


def test_batches_round_trip_columnar() -> None:
    batch = TelemetryBatch(
        agent_id="gw-1",
        site_id="farm",
        seq=7,
        series=[
            SeriesSamples("bess-1", "soc_pct", [1000, 2000], [50.0, 50.5]),
            SeriesSamples("bess-1", "battery_power_w", [1000], [-2500.0]),
        ],
        texts=[TextSample("bess-1", "battery_state", 1000, "charging")],
    )
    wire = pb.Telemetry.FromString(batch_to_proto(batch).SerializeToString())
    decoded = batch_from_proto(wire, agent_id="gw-1", site_id="farm")
    assert decoded.seq == 7
    assert decoded.points == batch.points == 4
    assert [
        (s.asset_id, s.metric, list(s.timestamps_ms), list(s.values)) for s in decoded.series
    ] == [(s.asset_id, s.metric, list(s.timestamps_ms), list(s.values)) for s in batch.series]
    assert list(decoded.texts) == list(batch.texts)


@pytest.mark.parametrize(
    "telemetry",
    [
        pb.Telemetry(seq=0),
        pb.Telemetry(seq=1, series=[pb.Series(asset_id="a", metric="soc_pct", values=[1.0])]),
        pb.Telemetry(seq=1, series=[pb.Series(metric="soc_pct")]),
        pb.Telemetry(seq=1, texts=[pb.TextSample(asset_id="a")]),
    ],
)
def test_broken_batches_are_refused(telemetry: pb.Telemetry) -> None:
    with pytest.raises(ProtocolViolationError):
        batch_from_proto(telemetry, agent_id="gw", site_id="farm")


@pytest.mark.parametrize(
    ("reading", "sample"),
    [
        (Reading("soc_pct", 50, 0.0), 50.0),
        (Reading("grid_relay_closed", True, 0.0), 1.0),
        (Reading("battery_state", "idle", 0.0), "idle"),
        (Reading("soc_pct", None, 0.0), None),
        (Reading("soc_pct", math.inf, 0.0), None),
        (Reading("soc_pct", 50, 0.0, Quality.STALE), None),
        (Reading("soc_pct", 50, 0.0, Quality.INVALID), None),
    ],
)
def test_only_good_readings_become_samples(reading: Reading, sample: float | str | None) -> None:
    assert reading_sample(reading) == sample


@pytest.mark.parametrize(
    "request_",
    [
        PlanRequest("r-1", "replan", "user:ops", reason="the forecast changed"),
        PlanRequest("r-2", "override", "ha", asset_id="bess", command="battery_power_setpoint_w",
                    value=-2500.0, start_ms=1_000, end_ms=3_601_000),
        PlanRequest("r-3", "clear_override", "ha", asset_id="bess"),
        PlanRequest("r-4", "clear_override", "ha"),
    ],
)  # fmt: skip
def test_plan_requests_round_trip(request_: PlanRequest) -> None:
    assert plan_request_from_proto(plan_request_to_proto(request_)) == request_


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (pb.PlanRequest(replan=pb.Replan()), "request_id"),
        (pb.PlanRequest(request_id="r"), "kind"),
        (pb.PlanRequest(request_id="r", override=pb.Override(command="x", end_ms=5)), "asset"),
        (pb.PlanRequest(request_id="r", override=pb.Override(asset_id="a", command="x",
                                                              start_ms=9, end_ms=5)), "end"),
    ],
)  # fmt: skip
def test_bad_plan_requests_are_refused(message: pb.PlanRequest, error: str) -> None:
    with pytest.raises(ProtocolViolationError, match=error):
        plan_request_from_proto(message)


def test_plan_inputs_and_updates_round_trip() -> None:
    prices = PlanInputs("import_price", 1_000, 900, (0.1, -0.02, 0.3), "EUR/kWh", "sensor.x")
    assert plan_inputs_from_proto(plan_inputs_to_proto(prices)) == prices
    update = PlanUpdate(7, 1_700_000_000_000, {"n_steps": 2, "batteries": [{"id": "b"}]})
    assert plan_update_from_proto(plan_update_to_proto(update)) == update
    with pytest.raises(ValueError, match=r"(?i)out of range float"):
        plan_update_to_proto(PlanUpdate(1, 0, {"cost": math.nan}))


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (pb.PlanInputs(kind="weather", step_s=900, values=[1.0]), "unknown kind"),
        (pb.PlanInputs(kind="pv_forecast", step_s=0, values=[1.0]), "step"),
        (pb.PlanInputs(kind="pv_forecast", step_s=900), "values"),
        (pb.PlanInputs(kind="pv_forecast", step_s=900, values=[math.inf]), "finite"),
    ],
)
def test_bad_plan_inputs_are_refused(message: pb.PlanInputs, error: str) -> None:
    with pytest.raises(ProtocolViolationError, match=error):
        plan_inputs_from_proto(message)


@pytest.mark.parametrize("text", ["not json", "[1, 2]", "null"])
def test_a_plan_that_is_no_json_object_is_refused(text: str) -> None:
    with pytest.raises(ProtocolViolationError, match="plan"):
        plan_update_from_proto(pb.PlanUpdate(version=1, plan_json=text))


_MS = st.one_of(st.none(), st.integers(min_value=1, max_value=2**62))
_COUNT = st.integers(min_value=0, max_value=2**63)


@given(
    status=st.builds(
        DeviceStatus,
        asset_id=st.text(min_size=1, max_size=40),
        answering=st.one_of(st.none(), st.booleans()),
        last_poll_ms=_MS,
        last_success_ms=_MS,
        last_error=st.one_of(st.none(), st.text(min_size=1, max_size=500)),
        polls=_COUNT,
        failed_polls=_COUNT,
        requests=st.one_of(st.none(), _COUNT),
        breaker=st.sampled_from(["closed", "open", "half_open"]),
    )
)
def test_device_statuses_round_trip(status: DeviceStatus) -> None:
    wire = pb.DeviceStatus.FromString(status_to_proto(status).SerializeToString())
    assert status_from_proto(wire) == status


def test_a_device_status_without_an_asset_is_refused_and_long_errors_are_cut() -> None:
    with pytest.raises(ProtocolViolationError, match="without an asset id"):
        status_from_proto(pb.DeviceStatus(polled=True))
    long = status_from_proto(pb.DeviceStatus(asset_id="a", last_error="x" * 10_000))
    assert long.last_error is not None
    assert len(long.last_error) == 500
    assert long.answering is None  # not polled yet
