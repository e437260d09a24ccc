"""The Edge EMS actions.

``dispatch``, ``write_point`` and ``release`` go through the site's Dispatcher: every call
is audited by the library's guarded path, refused ones included; the audit records come
back as response data. A call the guards refuse, or that fails at the device, raises a
translated error after it has been audited, so automations see it fail.

``replan``, ``get_plan``, ``override`` and ``clear_override`` talk to the hub's planner
through the site's link; the hub audits what it is asked.
"""

from __future__ import annotations

import math
import uuid
from datetime import timedelta
from typing import Any, cast

import probatio
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import ATTR_CONFIG_ENTRY_ID, ATTR_DEVICE_ID
from homeassistant.core import (
    Context,
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.service import async_get_config_entry
from homeassistant.helpers.trace import trace_id_get
from homeassistant.helpers.typing import VolDictType
from homeassistant.util import dt as dt_util

from edge_ems.dispatch import AuditRecord, Outcome
from edge_ems.gateway.errors import GatewayError
from edge_ems.gateway.model import PlanRequest
from edge_ems.metrics import BATTERY_POWER
from edge_ems.readings import Value

from .audit import SOURCE_HA_ACTION, call_context, record_dict, stopped_error
from .const import DOMAIN
from .models import EdgeEmsConfigEntry
from .plan import PlanCoordinator

SERVICE_DISPATCH = "dispatch"
SERVICE_WRITE_POINT = "write_point"
SERVICE_RELEASE = "release"
SERVICE_REPLAN = "replan"
SERVICE_GET_PLAN = "get_plan"
SERVICE_OVERRIDE = "override"
SERVICE_CLEAR_OVERRIDE = "clear_override"

ATTR_POWER_W = "power_w"
ATTR_TTL = "ttl"
ATTR_COMMAND = "command"
ATTR_VALUE = "value"
ATTR_RECORDS = "records"
ATTR_REASON = "reason"
ATTR_START = "start"
ATTR_END = "end"
ATTR_DURATION = "duration"

MAX_OVERRIDE = timedelta(days=7)
"""The longest hold: past a week the planner's horizon has long moved on."""

MAX_POWER_W = 1_000_000.0
"""Far beyond any home or small site; anything larger is a typo, not a setpoint."""
MIN_TTL = 3.0
MAX_TTL = 86_400.0

_TARGET: VolDictType = {
    probatio.Optional(ATTR_CONFIG_ENTRY_ID): cv.string,
    probatio.Optional(ATTR_DEVICE_ID): cv.string,
}
DISPATCH_SCHEMA = probatio.Schema(
    {
        **_TARGET,
        probatio.Required(ATTR_POWER_W): probatio.All(
            probatio.Coerce(float), probatio.Range(min=-MAX_POWER_W, max=MAX_POWER_W)
        ),
        probatio.Optional(ATTR_TTL): probatio.All(
            probatio.Coerce(float), probatio.Range(min=MIN_TTL, max=MAX_TTL)
        ),
    }
)
WRITE_POINT_SCHEMA = probatio.Schema(
    {
        probatio.Optional(ATTR_CONFIG_ENTRY_ID): cv.string,
        probatio.Required(ATTR_DEVICE_ID): cv.string,
        probatio.Required(ATTR_COMMAND): cv.string,
        probatio.Required(ATTR_VALUE): probatio.Any(bool, int, float, cv.string),
    }
)
RELEASE_SCHEMA = probatio.Schema(_TARGET)
REPLAN_SCHEMA = probatio.Schema(
    {
        probatio.Optional(ATTR_CONFIG_ENTRY_ID): cv.string,
        probatio.Optional(ATTR_REASON): probatio.All(cv.string, probatio.Length(max=200)),
    }
)
GET_PLAN_SCHEMA = probatio.Schema({probatio.Optional(ATTR_CONFIG_ENTRY_ID): cv.string})
OVERRIDE_SCHEMA = probatio.All(
    probatio.Schema(
        {
            probatio.Optional(ATTR_CONFIG_ENTRY_ID): cv.string,
            probatio.Required(ATTR_DEVICE_ID): cv.string,
            probatio.Optional(ATTR_COMMAND, default=BATTERY_POWER): cv.string,
            probatio.Required(ATTR_VALUE): probatio.Any(bool, int, float, cv.string),
            probatio.Optional(ATTR_START): cv.datetime,
            probatio.Exclusive(ATTR_END, "until"): cv.datetime,
            probatio.Exclusive(ATTR_DURATION, "until"): cv.positive_time_period,
        }
    ),
    cv.has_at_least_one_key(ATTR_END, ATTR_DURATION),
)
CLEAR_OVERRIDE_SCHEMA = probatio.Schema(_TARGET)

_FAILED = frozenset({Outcome.REFUSED, Outcome.FAILED})


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the Edge EMS actions."""

    async def dispatch(call: ServiceCall) -> ServiceResponse:
        entry, device_id = _target(hass, call)
        requested_by = await _requested_by(hass, call.context)
        with call_context(call.context):
            records = await entry.runtime_data.dispatcher.dispatch(
                call.data[ATTR_POWER_W],
                requested_by=requested_by,
                source=SOURCE_HA_ACTION,
                asset_id=device_id,
                ttl=call.data.get(ATTR_TTL),
            )
        return _response(entry, records)

    async def write_point(call: ServiceCall) -> ServiceResponse:
        entry, device_id = _target(hass, call)
        assert device_id is not None  # the schema requires a device
        requested_by = await _requested_by(hass, call.context)
        with call_context(call.context):
            record = await entry.runtime_data.dispatcher.write(
                device_id,
                call.data[ATTR_COMMAND],
                _value(call.data[ATTR_VALUE]),
                requested_by=requested_by,
                source=SOURCE_HA_ACTION,
            )
        return _response(entry, [record])

    async def release(call: ServiceCall) -> ServiceResponse:
        entry, device_id = _target(hass, call)
        requested_by = await _requested_by(hass, call.context)
        with call_context(call.context):
            records = await entry.runtime_data.dispatcher.release(
                requested_by=requested_by, source=SOURCE_HA_ACTION, asset_id=device_id
            )
        return _response(entry, records)

    async def replan(call: ServiceCall) -> None:
        entry, _ = _target(hass, call)
        await _ask_planner(
            entry,
            PlanRequest(
                request_id=uuid.uuid4().hex,
                kind="replan",
                requested_by=await _requested_by(hass, call.context),
                reason=call.data.get(ATTR_REASON, ""),
            ),
        )

    async def get_plan(call: ServiceCall) -> ServiceResponse:
        entry, _ = _target(hass, call)
        plan = _planner(entry).data
        if plan is None:  # the hub has not planned yet: a plan to wait for, not an error
            return {"site_id": entry.runtime_data.site_id, "version": None, "plan": None}
        return cast(ServiceResponse, dict(plan.document))

    async def override(call: ServiceCall) -> None:
        entry, device_id = _target(hass, call)
        assert device_id is not None  # the schema requires a device
        # A time without a zone is the home's local time (HA's as_utc takes it so).
        start = dt_util.as_utc(call.data.get(ATTR_START) or dt_util.utcnow())
        end = dt_util.as_utc(call.data.get(ATTR_END) or start + call.data[ATTR_DURATION])
        if not start < end <= start + MAX_OVERRIDE or end <= dt_util.utcnow():
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="override_window",
                translation_placeholders={"days": str(MAX_OVERRIDE.days)},
            )
        await _ask_planner(
            entry,
            PlanRequest(
                request_id=uuid.uuid4().hex,
                kind="override",
                requested_by=await _requested_by(hass, call.context),
                asset_id=device_id,
                command=call.data[ATTR_COMMAND],
                value=_value(call.data[ATTR_VALUE]),
                start_ms=int(start.timestamp() * 1000),
                end_ms=int(end.timestamp() * 1000),
            ),
        )

    async def clear_override(call: ServiceCall) -> None:
        entry, device_id = _target(hass, call)
        await _ask_planner(
            entry,
            PlanRequest(
                request_id=uuid.uuid4().hex,
                kind="clear_override",
                requested_by=await _requested_by(hass, call.context),
                asset_id=device_id or "",
            ),
        )

    for name, handler, schema in (
        (SERVICE_DISPATCH, dispatch, DISPATCH_SCHEMA),
        (SERVICE_WRITE_POINT, write_point, WRITE_POINT_SCHEMA),
        (SERVICE_RELEASE, release, RELEASE_SCHEMA),
    ):
        hass.services.async_register(
            DOMAIN, name, handler, schema=schema, supports_response=SupportsResponse.OPTIONAL
        )
    hass.services.async_register(DOMAIN, SERVICE_REPLAN, replan, schema=REPLAN_SCHEMA)
    hass.services.async_register(DOMAIN, SERVICE_OVERRIDE, override, schema=OVERRIDE_SCHEMA)
    hass.services.async_register(
        DOMAIN, SERVICE_CLEAR_OVERRIDE, clear_override, schema=CLEAR_OVERRIDE_SCHEMA
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_GET_PLAN,
        get_plan,
        schema=GET_PLAN_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )


def _planner(entry: EdgeEmsConfigEntry) -> PlanCoordinator:
    """The site's plan; a site without a hub has none, and only the hub plans."""
    if (plan := entry.runtime_data.plan) is None:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="no_planner",
            translation_placeholders={"site": entry.title},
        )
    return plan


async def _ask_planner(entry: EdgeEmsConfigEntry, request: PlanRequest) -> None:
    """Ask the hub's planner; a site without a hub, a link that is down or a refusal is an
    error the caller sees."""
    _planner(entry)
    try:
        await entry.runtime_data.site.ask_planner(request)
    except GatewayError as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="planner_refused",
            translation_placeholders={"site": entry.title, "error": str(err)},
        ) from err


def _target(hass: HomeAssistant, call: ServiceCall) -> tuple[EdgeEmsConfigEntry, str | None]:
    """The site entry a call addresses, and the site's device id if it names a device.

    A device names its site; without either, the only loaded site is meant.
    """
    entry_id: str | None = call.data.get(ATTR_CONFIG_ENTRY_ID)
    ha_device_id: str | None = call.data.get(ATTR_DEVICE_ID)
    if ha_device_id is None:
        entry = cast(EdgeEmsConfigEntry, async_get_config_entry(hass, DOMAIN, entry_id))
        return entry, None
    device = dr.async_get(hass).async_get(ha_device_id)
    candidate = (
        None if device is None else hass.config_entries.async_get_entry(device.config_entry_id)
    )
    if (
        device is not None
        and candidate is not None
        and candidate.domain == DOMAIN
        and entry_id in (None, candidate.entry_id)
    ):
        if candidate.state is not ConfigEntryState.LOADED:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="site_not_loaded",
                translation_placeholders={"site": candidate.title},
            )
        site = cast(EdgeEmsConfigEntry, candidate)
        for known in site.runtime_data.devices.values():
            if known.subentry_id == device.config_subentry_id:
                return site, known.device_id
    raise ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key="unknown_device",
        translation_placeholders={"device_id": ha_device_id},
    )


async def _requested_by(hass: HomeAssistant, context: Context) -> str:
    """Who asked, from the call's context: an HA user, or the automation or script running."""
    if context.user_id is not None:
        user = await hass.auth.async_get_user(context.user_id)
        name = user.name if user is not None and user.name else "unknown"
        return f"user:{context.user_id} ({name})"
    running = trace_id_get()
    if running is not None:
        # The trace key is "<domain>.<item id>"; the registry gives the entity id for it.
        domain, _, item_id = running[0].partition(".")
        entity_id = er.async_get(hass).async_get_entity_id(domain, domain, item_id)
        return f"{domain}:{entity_id or item_id}"
    return "home_assistant"


def _value(raw: Any) -> Value:
    """A value as typed in the UI: numbers and true/false from their text, option names as
    they are."""
    if not isinstance(raw, str):
        return cast(Value, raw)
    text = raw.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for number in (int, float):
        try:
            parsed = number(text)
        except ValueError:
            continue
        if isinstance(parsed, float) and not math.isfinite(parsed):
            return text
        return parsed
    return text


def _response(entry: EdgeEmsConfigEntry, records: list[AuditRecord]) -> ServiceResponse:
    """The audit records, or the reason as an error when nothing got through."""
    if records and all(record.outcome in _FAILED for record in records):
        first = records[0]
        error = stopped_error(first, site=entry.title, device=_device_name(entry, first.device_id))
        assert error is not None
        raise error
    return {ATTR_RECORDS: [record_dict(record) for record in records]}


def _device_name(entry: EdgeEmsConfigEntry, device_id: str | None) -> str:
    device = entry.runtime_data.devices.get(device_id or "")
    return device.name if device is not None else entry.title
