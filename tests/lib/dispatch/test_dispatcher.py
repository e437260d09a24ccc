"""Every guard branch of the dispatcher, leases and safe-mode return.

The device here is an in-memory register store implementing the dispatch contract; the
Modbus, SunSpec and Home Assistant tests run the same dispatcher against live simulators.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from edge_ems.device import Command, WriteResult
from edge_ems.dispatch import (
    AssetLimits,
    AuditRecord,
    ControlPolicy,
    Dispatcher,
    Outcome,
    Reason,
)
from edge_ems.exceptions import DeviceConnectionError, ReadBackMismatchError, WriteRefusedError
from edge_ems.metrics import BATTERY_POWER
from edge_ems.readings import Reading, Value

LIVE = ControlPolicy(enable_control=True, dry_run=False)


@dataclass
class MemoryDevice:
    name: str = "battery"
    commands: Mapping[str, Command] = field(
        default_factory=lambda: {
            BATTERY_POWER: Command(BATTERY_POWER, -10_000, 10_000, allow_write=True, eeprom=False),
            "grid_export_limit_w": Command("grid_export_limit_w", 0, 8000, allow_write=True),
            "work_mode": Command(
                "work_mode", options={0: "selling_first", 1: "zero_export"}, allow_write=True
            ),
            "soc_min_pct": Command("soc_min_pct", 0, 100, allow_write=False),
            "control_revert_timeout_s": Command(
                "control_revert_timeout_s", 0, 3600, allow_write=True, eeprom=False
            ),
        }
    )
    safe_mode: Mapping[str, Value] = field(default_factory=lambda: {BATTERY_POWER: 0})
    revert_timer: str | None = None
    values: dict[str, Value] = field(default_factory=dict)
    writes: list[tuple[str, Value]] = field(default_factory=list)
    fail: Exception | None = None
    corrupt: bool = False

    async def write(self, metric: str, value: Value) -> WriteResult:
        if self.fail is not None:
            raise self.fail
        self.writes.append((metric, value))
        self.values[metric] = value
        if self.corrupt:
            raise ReadBackMismatchError("read back 0", expected=value, actual=0)
        return WriteResult(metric, value, value, value, time.time())


def make(
    policy: ControlPolicy = LIVE, **device: object
) -> tuple[Dispatcher, MemoryDevice, list[AuditRecord]]:
    records: list[AuditRecord] = []
    dispatcher = Dispatcher("home", policy, records.append)
    battery = MemoryDevice(**device)  # type: ignore[arg-type]
    dispatcher.add_device("battery", battery, AssetLimits(5000, 4000, 10_000))
    return dispatcher, battery, records


async def write(
    dispatcher: Dispatcher, metric: str, value: Value, device: str = "battery"
) -> AuditRecord:
    return await dispatcher.write(device, metric, value, requested_by="user:test", source="test")


async def test_controls_are_off_by_default() -> None:
    dispatcher, battery, records = make(ControlPolicy())
    record = await write(dispatcher, "grid_export_limit_w", 100)
    assert (record.outcome, record.reason) == (Outcome.REFUSED, Reason.CONTROL_DISABLED)
    assert records == [record]
    assert battery.writes == []


async def test_control_off_is_the_answer_before_any_other() -> None:
    records: list[AuditRecord] = []
    # No battery takes site power here, and the device is unknown: control off comes first.
    dispatcher = Dispatcher("home", ControlPolicy(), records.append)
    [site] = await dispatcher.dispatch(-1000, requested_by="t", source="t")
    [unknown] = await dispatcher.dispatch(-1000, requested_by="t", source="t", asset_id="x")
    written = await dispatcher.write("x", "grid_export_limit_w", 1, requested_by="t", source="t")
    [released] = await dispatcher.release(requested_by="t", source="t", asset_id="x")
    for record in (site, unknown, written, released):
        assert (record.outcome, record.reason) == (Outcome.REFUSED, Reason.CONTROL_DISABLED)
        assert record.message == "control is not enabled"
    assert (site.device_id, unknown.device_id) == (None, "x")
    assert records == [site, unknown, written, released]


async def test_dry_run_writes_nothing_and_records_what_it_would_have() -> None:
    dispatcher, battery, _ = make(ControlPolicy(enable_control=True))
    record = await write(dispatcher, "grid_export_limit_w", 9000)
    assert (record.outcome, record.reason) == (Outcome.DRY_RUN, Reason.DRY_RUN)
    assert (record.requested, record.applied) == (9000, 8000)  # clamped, as it would be
    assert record.message == "dry run: would write 8000"
    [power] = await dispatcher.dispatch(-7000, requested_by="t", source="t")
    assert (power.outcome, power.applied) == (Outcome.DRY_RUN, -5000)
    # A dry run still says what is wrong with a request.
    refused = await write(dispatcher, "soc_min_pct", 20)
    assert (refused.outcome, refused.reason) == (Outcome.REFUSED, Reason.NOT_ALLOWED)
    assert battery.writes == []
    assert dispatcher.leases() == {}


async def test_a_release_shows_modes_by_name_and_a_dry_run_what_it_would_write() -> None:
    safe = {"work_mode": 1, BATTERY_POWER: 0}
    dispatcher, battery, _ = make(ControlPolicy(enable_control=True), safe_mode=safe)
    records = await dispatcher.release(requested_by="t", source="t", asset_id="battery")
    assert [(r.outcome, r.command, r.applied) for r in records] == [
        (Outcome.DRY_RUN, "work_mode", "zero_export"),
        (Outcome.DRY_RUN, BATTERY_POWER, 0),
    ]
    assert records[0].message == "dry run: would return to safe mode with work_mode = zero_export"
    assert battery.writes == []
    await dispatcher.set_policy(LIVE)
    records = await dispatcher.release(requested_by="t", source="t", asset_id="battery")
    assert [(r.outcome, r.command, r.applied) for r in records] == [
        (Outcome.RELEASED, "work_mode", "zero_export"),
        (Outcome.RELEASED, BATTERY_POWER, 0),
    ]
    assert battery.writes == [("work_mode", 1), (BATTERY_POWER, 0)]


@pytest.mark.parametrize(
    ("metric", "value", "reason"),
    [
        ("nonexistent", 1, Reason.UNKNOWN_COMMAND),
        ("soc_min_pct", 20, Reason.NOT_ALLOWED),
        ("work_mode", "party", Reason.INVALID_VALUE),
        ("grid_export_limit_w", float("nan"), Reason.INVALID_VALUE),
        ("grid_export_limit_w", "a lot", Reason.INVALID_VALUE),
    ],
)
async def test_refusals_before_the_device(metric: str, value: Value, reason: Reason) -> None:
    dispatcher, battery, _ = make()
    record = await write(dispatcher, metric, value)
    assert (record.outcome, record.reason) == (Outcome.REFUSED, reason)
    assert battery.writes == []


async def test_unknown_device() -> None:
    dispatcher, _, _ = make()
    record = await write(dispatcher, "grid_export_limit_w", 1, device="nope")
    assert record.reason is Reason.UNKNOWN_DEVICE


async def test_values_are_clamped_and_audited() -> None:
    dispatcher, battery, records = make()
    record = await write(dispatcher, "grid_export_limit_w", 12_000)
    assert (record.outcome, record.reason, record.applied) == (
        Outcome.APPLIED,
        Reason.CLAMPED,
        8000,
    )
    assert record.requested == 12_000
    assert record.read_back == 8000
    assert record.requested_by == "user:test"
    assert battery.writes == [("grid_export_limit_w", 8000)]
    assert AuditRecord.from_dict(records[0].as_dict()) == record


async def test_enum_codes_and_labels_both_work() -> None:
    dispatcher, battery, _ = make()
    assert (await write(dispatcher, "work_mode", 1)).applied == "zero_export"
    assert (await write(dispatcher, "work_mode", "selling_first")).applied == "selling_first"
    assert battery.writes == [("work_mode", "zero_export"), ("work_mode", "selling_first")]


async def test_eeprom_writes_only_on_change_and_within_budget() -> None:
    dispatcher, battery, _ = make(
        ControlPolicy(enable_control=True, dry_run=False, eeprom_daily_writes=2)
    )
    dispatcher.observe("battery", {"grid_export_limit_w": Reading("grid_export_limit_w", 500, 0.0)})
    unchanged = await write(dispatcher, "grid_export_limit_w", 500)
    assert unchanged.outcome is Outcome.UNCHANGED
    assert (await write(dispatcher, "grid_export_limit_w", 600)).outcome is Outcome.APPLIED
    assert (await write(dispatcher, "grid_export_limit_w", 700)).outcome is Outcome.APPLIED
    refused = await write(dispatcher, "grid_export_limit_w", 800)
    assert (refused.outcome, refused.reason) == (Outcome.REFUSED, Reason.BUDGET_EXHAUSTED)
    # Volatile registers do not spend the EEPROM budget.
    assert (await write(dispatcher, "control_revert_timeout_s", 60)).outcome is Outcome.APPLIED
    assert len(battery.writes) == 3


async def test_write_rate_is_bounded() -> None:
    dispatcher, _, _ = make(ControlPolicy(enable_control=True, dry_run=False, writes_per_minute=2))
    assert (await write(dispatcher, "control_revert_timeout_s", 1)).outcome is Outcome.APPLIED
    assert (await write(dispatcher, "control_revert_timeout_s", 2)).outcome is Outcome.APPLIED
    assert (await write(dispatcher, "control_revert_timeout_s", 3)).reason is Reason.RATE_LIMITED


async def test_device_failures_are_audited() -> None:
    dispatcher, battery, records = make()
    battery.fail = DeviceConnectionError("battery: connection refused")
    record = await write(dispatcher, "grid_export_limit_w", 100)
    assert (record.outcome, record.reason) == (Outcome.FAILED, Reason.DEVICE_ERROR)
    assert "connection refused" in record.message
    battery.fail = WriteRefusedError("no", reason="out_of_range")
    assert (await write(dispatcher, "grid_export_limit_w", 100)).reason is Reason.OUT_OF_RANGE
    battery.fail = None
    battery.corrupt = True
    mismatch = await write(dispatcher, "grid_export_limit_w", 100)
    assert (mismatch.outcome, mismatch.reason, mismatch.read_back) == (
        Outcome.FAILED,
        Reason.READ_BACK_MISMATCH,
        0,
    )
    assert len(records) == 3


async def test_power_is_clamped_to_asset_limits() -> None:
    dispatcher, _, _ = make()
    [discharge] = await dispatcher.dispatch(
        9000, asset_id="battery", requested_by="t", source="t", ttl=30
    )
    assert discharge.applied == 4000
    [charge] = await dispatcher.dispatch(
        -9000, asset_id="battery", requested_by="t", source="t", ttl=30
    )
    assert charge.applied == -5000
    await dispatcher.close()


async def test_unknown_limits_mean_zero_watts() -> None:
    records: list[AuditRecord] = []
    dispatcher = Dispatcher("home", LIVE, records.append)
    dispatcher.add_device("battery", MemoryDevice())
    [record] = await dispatcher.dispatch(3000, asset_id="battery", requested_by="t", source="t")
    assert (record.applied, record.reason) == (0, Reason.CLAMPED)
    await dispatcher.close()


async def test_site_dispatch_splits_and_asset_wins_over_site() -> None:
    records: list[AuditRecord] = []
    dispatcher = Dispatcher("home", LIVE, records.append)
    big, small = MemoryDevice("big"), MemoryDevice("small")
    dispatcher.add_device("big", big, AssetLimits(6000, 6000, 15_000))
    dispatcher.add_device("small", small, AssetLimits(6000, 6000, 5_000))
    dispatcher.add_device("meter", MemoryDevice("meter", commands={}))
    site = await dispatcher.dispatch(4000, site_id="home", requested_by="t", source="t")
    assert [(r.device_id, r.applied) for r in site] == [("big", 3000.0), ("small", 1000.0)]
    only = await dispatcher.dispatch(
        500, asset_id="small", site_id="home", requested_by="t", source="t"
    )
    assert [(r.device_id, r.applied) for r in only] == [("small", 500)]
    [other] = await dispatcher.dispatch(1, site_id="elsewhere", requested_by="t", source="t")
    assert other.reason is Reason.UNKNOWN_SITE
    await dispatcher.close()


async def test_site_without_batteries() -> None:
    dispatcher = Dispatcher("home", LIVE, lambda record: None)
    [record] = await dispatcher.dispatch(1000, site_id="home", requested_by="t", source="t")
    assert record.reason is Reason.NO_BATTERIES


async def wait_for(condition: object, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_lease_refreshes_volatile_setpoint_then_returns_to_safe_mode() -> None:
    dispatcher, battery, records = make()
    await dispatcher.dispatch(2000, asset_id="battery", requested_by="planner", source="t", ttl=0.6)
    await wait_for(lambda: battery.writes.count((BATTERY_POWER, 2000)) >= 2)
    await wait_for(lambda: not dispatcher.leases())
    assert battery.values[BATTERY_POWER] == 0
    released = [r for r in records if r.outcome is Outcome.RELEASED]
    assert [(r.reason, r.requested_by) for r in released] == [(Reason.LEASE_EXPIRED, "planner")]


async def test_a_power_setpoint_written_by_name_is_a_lease_too() -> None:
    dispatcher, battery, _ = make()
    record = await write(dispatcher, BATTERY_POWER, 1200)
    assert (record.outcome, record.applied, record.ttl) == (Outcome.APPLIED, 1200, LIVE.lease_ttl)
    assert dispatcher.leases()["battery"][0] == 1200
    await dispatcher.close()
    assert battery.values[BATTERY_POWER] == 0


async def test_lease_renewal_extends_it() -> None:
    dispatcher, _, _ = make()
    await dispatcher.dispatch(1000, asset_id="battery", requested_by="t", source="t", ttl=30)
    first = dispatcher.leases()["battery"][1]
    await dispatcher.dispatch(1500, asset_id="battery", requested_by="t", source="t", ttl=60)
    value, left = dispatcher.leases()["battery"]
    assert value == 1500
    assert left > first
    await dispatcher.close()


async def test_revert_timer_is_armed_and_refreshed_instead_of_the_setpoint() -> None:
    dispatcher, battery, _ = make(revert_timer="control_revert_timeout_s")
    await dispatcher.dispatch(1000, asset_id="battery", requested_by="t", source="t", ttl=0.6)
    await wait_for(lambda: battery.writes.count(("control_revert_timeout_s", 1)) >= 2)
    assert battery.writes.count((BATTERY_POWER, 1000)) == 1
    await dispatcher.close()


async def test_release_and_disabling_control_return_to_safe_mode() -> None:
    dispatcher, battery, _ = make()
    await dispatcher.dispatch(1000, asset_id="battery", requested_by="t", source="t", ttl=60)
    released = await dispatcher.release(asset_id="battery", requested_by="user:x", source="t")
    assert [(r.outcome, r.reason) for r in released] == [
        (Outcome.RELEASED, Reason.RELEASE_REQUESTED)
    ]
    assert battery.values[BATTERY_POWER] == 0
    assert not dispatcher.leases()
    await dispatcher.dispatch(1000, asset_id="battery", requested_by="t", source="t", ttl=60)
    ended = await dispatcher.set_policy(ControlPolicy(enable_control=True, dry_run=True))
    assert [r.reason for r in ended] == [Reason.CONTROL_DISABLED]
    assert not dispatcher.leases()
    [dry] = await dispatcher.release(requested_by="t", source="t")
    assert dry.outcome is Outcome.DRY_RUN


async def test_release_refusals() -> None:
    dispatcher, _, _ = make(ControlPolicy())
    [record] = await dispatcher.release(requested_by="t", source="t")
    assert record.reason is Reason.CONTROL_DISABLED
    await dispatcher.set_policy(LIVE)
    [unknown] = await dispatcher.release(asset_id="nope", requested_by="t", source="t")
    assert unknown.reason is Reason.UNKNOWN_DEVICE


async def test_failed_safe_mode_return_is_audited() -> None:
    dispatcher, battery, _ = make()
    await dispatcher.dispatch(1000, asset_id="battery", requested_by="t", source="t", ttl=60)
    battery.fail = DeviceConnectionError("gone")
    [record] = await dispatcher.release(asset_id="battery", requested_by="t", source="t")
    assert (record.outcome, record.reason) == (Outcome.FAILED, Reason.DEVICE_ERROR)


def charger(**device: object) -> tuple[Dispatcher, MemoryDevice, list[AuditRecord]]:
    """A charger whose current limit is leased and falls back to 6 A."""
    limit = Command("ev_current_limit_a", 0, 32, allow_write=True, eeprom=False, lease=True)
    commands = {
        "ev_current_limit_a": limit,
        "ev_phases": Command("ev_phases", 1, 3, allow_write=True),
        "control_revert_timeout_s": Command(
            "control_revert_timeout_s", 0, 3600, allow_write=True, eeprom=False
        ),
    }
    records: list[AuditRecord] = []
    dispatcher = Dispatcher("home", LIVE, records.append)
    device = MemoryDevice("charger", commands, {"ev_current_limit_a": 6}, **device)  # type: ignore[arg-type]
    dispatcher.add_device("charger", device)
    return dispatcher, device, records


async def test_a_leased_command_lapses_to_its_safe_value() -> None:
    dispatcher, device, records = charger()
    record = await dispatcher.write(
        "charger", "ev_current_limit_a", 16, requested_by="planner", source="t", ttl=0.6
    )
    assert (record.outcome, record.applied, record.ttl) == (Outcome.APPLIED, 16, 0.6)
    assert dispatcher.leases("ev_current_limit_a") == {"charger": (16, pytest.approx(0.6, abs=0.1))}
    assert dispatcher.leases() == {}  # no battery power lease
    # A volatile register without a revert timer is written again while the lease holds.
    await wait_for(lambda: device.writes.count(("ev_current_limit_a", 16)) >= 2)
    await wait_for(lambda: not dispatcher.all_leases())
    assert device.values["ev_current_limit_a"] == 6
    released = [r for r in records if r.outcome is Outcome.RELEASED]
    assert [(r.command, r.reason, r.requested_by) for r in released] == [
        ("ev_current_limit_a", Reason.LEASE_EXPIRED, "planner")
    ]


async def test_a_leased_command_refreshes_the_revert_timer_instead() -> None:
    dispatcher, device, _ = charger(revert_timer="control_revert_timeout_s")
    await dispatcher.write(
        "charger", "ev_current_limit_a", 10, requested_by="t", source="t", ttl=0.6
    )
    await wait_for(lambda: device.writes.count(("control_revert_timeout_s", 1)) >= 2)
    assert device.writes.count(("ev_current_limit_a", 10)) == 1
    await dispatcher.close()
    assert device.values["ev_current_limit_a"] == 6


async def test_settings_that_are_not_leased_hold_without_a_lease() -> None:
    dispatcher, device, _ = charger()
    record = await dispatcher.write("charger", "ev_phases", 1, requested_by="t", source="t")
    assert (record.outcome, record.ttl) == (Outcome.APPLIED, None)
    assert dispatcher.all_leases() == {}
    assert device.values["ev_phases"] == 1


async def test_leases_are_per_device_and_command() -> None:
    records: list[AuditRecord] = []
    dispatcher = Dispatcher("home", LIVE, records.append)
    commands = {
        **MemoryDevice().commands,
        "heat_pump_sg_ready": Command(
            "heat_pump_sg_ready", options={1: "normal", 2: "boost"}, allow_write=True,
            eeprom=False, lease=True,
        ),
    }  # fmt: skip
    device = MemoryDevice("hybrid", commands, {BATTERY_POWER: 0, "heat_pump_sg_ready": "normal"})
    dispatcher.add_device("hybrid", device, AssetLimits(5000, 5000, 10_000))
    await dispatcher.dispatch(1000, asset_id="hybrid", requested_by="t", source="t", ttl=60)
    await dispatcher.write(
        "hybrid", "heat_pump_sg_ready", "boost", requested_by="t", source="t", ttl=0.3
    )
    assert dispatcher.all_leases()["hybrid"].keys() == {BATTERY_POWER, "heat_pump_sg_ready"}
    # The boost lapses alone: the battery's lease still holds, so only the boost goes back.
    await wait_for(lambda: "heat_pump_sg_ready" not in dispatcher.all_leases()["hybrid"])
    assert device.values == {BATTERY_POWER: 1000, "heat_pump_sg_ready": "normal"}
    released = await dispatcher.release(asset_id="hybrid", requested_by="t", source="t")
    assert [r.command for r in released] == [BATTERY_POWER, "heat_pump_sg_ready"]
    assert dispatcher.all_leases() == {}


async def test_messages_name_what_a_command_drives_when_it_is_not_the_device() -> None:
    """A command carried by another integration's entity says which, in every message."""
    relay = Command("load_enabled", 0, 1, allow_write=True, eeprom=False, target="switch.boiler")
    commands = {"load_enabled": relay}
    dispatcher, _, _ = make(ControlPolicy(enable_control=True), commands=commands,
                            safe_mode={"load_enabled": 0})  # fmt: skip
    assert (await write(dispatcher, "load_enabled", 1)).message == (
        "dry run: would write 1 on switch.boiler"
    )
    [dry] = await dispatcher.release(requested_by="t", source="t", asset_id="battery")
    assert dry.message == (
        "dry run: would return to safe mode with load_enabled = 0 on switch.boiler"
    )
    await dispatcher.set_policy(LIVE)
    assert (await write(dispatcher, "load_enabled", 1)).message == "wrote 1 on switch.boiler"
    assert (await write(dispatcher, "load_enabled", 7)).message == "clamped 7 to 1 on switch.boiler"
    [released] = await dispatcher.release(requested_by="t", source="t", asset_id="battery")
    assert released.message == "returned to safe mode on switch.boiler"
