"""The audit trail: bus events with the caller's context, the logbook, the stored log, texts."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from custom_components.edge_ems.audit import SAVE_DELAY, AuditLog, storage_key
from custom_components.edge_ems.const import DOMAIN, EVENT_AUDIT
from custom_components.edge_ems.logbook import async_describe_events, describe_record
from custom_components.edge_ems.services import ATTR_RECORDS
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import Context, Event, HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import device_registry as dr
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockUser,
    async_capture_events,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from edge_ems.dispatch import AuditRecord, Outcome, Reason
from edge_ems.sim.site import SimulatedSite

from .support import (
    BESS,
    DEYE,
    LIVE,
    SUNSPEC,
    call,
    ha_device_id,
    setup_battery_site,
)

pytestmark = pytest.mark.ha

INTEGRATION = Path(__file__).parents[2] / "custom_components" / DOMAIN
EXPORT_LIMIT = "grid_export_limit_w"


@pytest.fixture(name="_custom_integrations")
def fixture_recorder_before_hass() -> None:
    """Replaces the package's autouse fixture, which sets up hass before the recorder could be
    (the logbook test needs it first); ``sim_site`` enables the integration itself."""


def record(requested: float, outcome: Outcome = Outcome.APPLIED, **changes: Any) -> AuditRecord:
    """A record as the dispatcher makes them."""
    values: dict[str, Any] = {
        "site_id": "home",
        "device_id": "battery",
        "command": "battery_power_setpoint_w",
        "requested": requested,
        "applied": requested,
        "outcome": outcome,
        "reason": Reason.WRITTEN,
        "message": f"wrote {requested}",
        "requested_by": "user:abc (Ann)",
        "source": "ha_action",
        "timestamp": time.time(),
        "read_back": requested,
    }
    return AuditRecord(**(values | changes))


async def save_now(hass: HomeAssistant, freezer: FrozenDateTimeFactory) -> None:
    """Let the delayed save of the audit log happen."""
    freezer.tick(timedelta(seconds=SAVE_DELAY + 1))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()


async def test_every_attempt_is_an_event_in_the_callers_context(
    hass: HomeAssistant, sim_site: SimulatedSite, hass_admin_user: MockUser
) -> None:
    entry = await setup_battery_site(hass, sim_site, options=LIVE)
    device_id = ha_device_id(hass, entry, DEYE)
    events = async_capture_events(hass, EVENT_AUDIT)
    context = Context(user_id=hass_admin_user.id)
    response = await call(hass, "write_point", context=context, device_id=device_id,
                          command=EXPORT_LIMIT, value=1234)  # fmt: skip
    with pytest.raises(ServiceValidationError):
        await call(hass, "write_point", context=context, device_id=device_id,
                   command="tou_slot1_start", value=1200)  # fmt: skip
    assert [event.data["record"]["outcome"] for event in events] == ["applied", "refused"]
    for event in events:
        assert event.context.id == context.id
        assert event.data["config_entry_id"] == entry.entry_id
        assert event.data["device_id"] == device_id
    assert events[0].data["record"] == response[ATTR_RECORDS][0]
    refused = events[1].data["record"]
    assert (refused["reason"], refused["requested"], refused["applied"]) == (
        "not_allowed",
        1200,
        None,
    )
    json.dumps([event.data for event in events])  # JSON-ready, as the recorder needs


async def test_the_log_is_saved_when_the_site_unloads_and_comes_back(
    hass_storage: dict[str, Any], hass: HomeAssistant, sim_site: SimulatedSite
) -> None:
    entry = await setup_battery_site(
        hass, sim_site, options={"enable_control": True, "dry_run": True}
    )
    context = Context()
    await call(hass, "dispatch", context=context, power_w=500)
    assert await hass.config_entries.async_unload(entry.entry_id)
    stored = hass_storage[storage_key(entry.entry_id)]["data"]
    assert sorted((item["device_id"], item["outcome"], item["requested"]) for item in stored) == [
        (BESS, "dry_run", 400),
        (SUNSPEC, "dry_run", 100),
    ]
    assert {item["context_id"] for item in stored} == {context.id}
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.runtime_data.audit.records() == stored


async def test_the_log_keeps_the_newest_records(
    hass_storage: dict[str, Any], hass: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    log = AuditLog(hass, "site", max_records=3)
    await log.async_load()
    for value in range(5):
        log.record(record(value))
    assert [item["requested"] for item in log.records()] == [2, 3, 4]
    await save_now(hass, freezer)
    assert [item["requested"] for item in hass_storage[storage_key("site")]["data"]] == [2, 3, 4]

    again = AuditLog(hass, "site", max_records=3)
    await again.async_load()
    again.record(record(5))
    assert [item["requested"] for item in again.records()] == [3, 4, 5]
    await again.async_remove()
    assert storage_key("site") not in hass_storage
    assert again.records() == []


async def test_a_record_without_a_call_gets_a_context_of_its_own(hass: HomeAssistant) -> None:
    events = async_capture_events(hass, EVENT_AUDIT)
    log = AuditLog(hass, "site")
    log.record(record(0, Outcome.RELEASED, reason=Reason.LEASE_EXPIRED, source="lease"))
    await hass.async_block_till_done()
    (event,) = events
    assert event.context.user_id is None
    assert event.data["device_id"] is None  # no such site is loaded
    assert log.records()[0]["context_id"] == event.context.id


async def test_the_logbook_says_who_did_what(
    recorder_mock: Any,
    hass: HomeAssistant,
    sim_site: SimulatedSite,
    hass_ws_client: WebSocketGenerator,
    hass_admin_user: MockUser,
) -> None:
    assert await async_setup_component(hass, "logbook", {})
    entry = await setup_battery_site(hass, sim_site, options=LIVE)
    device_id = ha_device_id(hass, entry, DEYE)
    start = dt_util.utcnow()
    await call(hass, "write_point", context=Context(user_id=hass_admin_user.id),
               device_id=device_id, command=EXPORT_LIMIT, value=4321)  # fmt: skip
    await async_wait_recording_done(hass)
    client = await hass_ws_client()
    await client.send_json_auto_id(
        {
            "type": "logbook/get_events",
            "start_time": start.isoformat(),
            "end_time": dt_util.utcnow().isoformat(),
            "device_ids": [device_id],
        }
    )
    response = await client.receive_json()
    assert response["success"], response
    (found,) = [item for item in response["result"] if item.get("domain") == DOMAIN]
    device = dr.async_get(hass).async_get(device_id)
    assert device is not None
    assert found["name"] == device.name
    assert found["message"] == (
        f"set {EXPORT_LIMIT} to 4321, read back 4321; "
        f"asked by user:{hass_admin_user.id} ({hass_admin_user.name})"
    )
    assert found["context_user_id"] == hass_admin_user.id


async def test_site_records_are_named_after_the_site(
    hass: HomeAssistant, sim_site: SimulatedSite
) -> None:
    await setup_battery_site(hass, sim_site, options={})
    events = async_capture_events(hass, EVENT_AUDIT)
    with pytest.raises(ServiceValidationError):
        await call(hass, "release")
    described: dict[str, Callable[[Event], dict[str, str]]] = {}

    def register(domain: str, event_type: str, describe: Callable[[Event], dict[str, str]]) -> None:
        assert domain == DOMAIN
        described[event_type] = describe

    async_describe_events(hass, register)
    (event,) = events
    assert event.data["device_id"] is None
    assert described[EVENT_AUDIT](event) == {
        "name": "Home",
        "message": "refused release: control is not enabled; asked by home_assistant",
    }


@pytest.mark.parametrize(
    ("made", "text"),
    [
        (record(-3000), "set battery_power_setpoint_w to -3000, read back -3000"),
        (
            record(-9000, applied=-5000, read_back=-5000, reason=Reason.CLAMPED),
            "set battery_power_setpoint_w to -5000 (clamped from -9000), read back -5000",
        ),
        (
            record(10, Outcome.UNCHANGED, reason=Reason.UNCHANGED),
            "left battery_power_setpoint_w at 10: the device already held it",
        ),
        (
            record(10, Outcome.DRY_RUN, reason=Reason.DRY_RUN),
            "dry run: would have set battery_power_setpoint_w to 10",
        ),
        (
            record(10, Outcome.REFUSED, reason=Reason.RATE_LIMITED, message="too many"),
            "refused battery_power_setpoint_w = 10: too many",
        ),
        (
            record(10, Outcome.FAILED, reason=Reason.DEVICE_ERROR, message="timed out"),
            "failed to set battery_power_setpoint_w: timed out",
        ),
        (
            record(0, Outcome.RELEASED, reason=Reason.LEASE_EXPIRED),
            "returned to safe mode (battery_power_setpoint_w = 0), its setpoint lapsed",
        ),
        (
            record(0, Outcome.RELEASED, reason=Reason.RELEASE_REQUESTED),
            "returned to safe mode (battery_power_setpoint_w = 0), released on request",
        ),
    ],
)
def test_logbook_lines(made: AuditRecord, text: str) -> None:
    data = made.as_dict()
    assert describe_record(data) == f"{text}; asked by user:abc (Ann)"


def test_every_refusal_and_failure_has_a_translated_error() -> None:
    strings = json.loads((INTEGRATION / "translations" / "en.json").read_text(encoding="utf-8"))
    exceptions = strings["exceptions"]
    # Any reason can come back refused: devices name their own (see _reason in the dispatcher).
    wanted = {f"refused_{reason.value}" for reason in Reason} - {
        f"refused_{reason.value}"
        for reason in (
            Reason.WRITTEN,
            Reason.CLAMPED,
            Reason.DRY_RUN,
            Reason.UNCHANGED,
            Reason.DEVICE_ERROR,
            Reason.READ_BACK_MISMATCH,
            Reason.LEASE_EXPIRED,
            Reason.RELEASE_REQUESTED,
        )
    }
    wanted |= {"failed_device_error", "failed_read_back_mismatch"}
    wanted |= {"unknown_device", "site_not_loaded"}
    assert wanted <= exceptions.keys()
    for key in wanted:
        assert exceptions[key]["message"].strip()


def test_every_action_and_field_is_described_and_translated() -> None:
    described = yaml.safe_load((INTEGRATION / "services.yaml").read_text(encoding="utf-8"))
    strings = json.loads((INTEGRATION / "translations" / "en.json").read_text(encoding="utf-8"))
    services = strings["services"]
    assert described.keys() == services.keys()
    for name, action in described.items():
        assert services[name]["name"]
        assert services[name]["description"]
        assert action["fields"].keys() == services[name]["fields"].keys()
        for field in services[name]["fields"].values():
            assert field["name"]
            assert field["description"]
