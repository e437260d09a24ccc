"""The planner's REST routes and their part of the OpenAPI document.

``GET /plan`` (the site's plan document, ``edge-ems-site-plan/1``, with its version),
``POST /plan/run``, ``GET /plan/audit``, ``GET /prices``, ``GET /forecasts``, and
``GET``/``POST``/``DELETE /overrides``. A site is named with ``site_id``; it may be left out
when the hub plans one site. Without a ``planner:`` section every route answers 404
``planner_off``. Routes that change something answer 409 on a hub that stands by.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web
from multidict import MultiMapping

from ...metrics import BATTERY_POWER
from ...planner.errors import PlanInputError
from ..api.errors import ApiError, dumps
from ..api.params import MAX_ID, json_body, only_known, single, timestamp_ms
from ..store.errors import StoreError
from .errors import NotLeaderError, UnknownSiteError

if TYPE_CHECKING:
    from .service import PlannerService

PLANNER: web.AppKey[PlannerService] = web.AppKey("planner")
"""The planner, when the hub has one (the service and its solver load only then)."""
MAX_TEXT = 256
MAX_DURATION_S = 7 * 86_400
MAX_AUDIT_DAYS = 31

routes = web.RouteTableDef()

type Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _guarded(handler: Handler) -> Handler:
    """A database that cannot answer is a 503, not a 500."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except StoreError as err:
            raise ApiError(
                503, f"the database cannot answer now: {err}", code="store_unavailable"
            ) from None

    return guarded


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=dumps)


def _planner(request: web.Request) -> PlannerService:
    planner = request.app.get(PLANNER)
    if planner is None:
        raise ApiError(404, "the planner is off (no planner section)", code="planner_off")
    return planner


def _site(planner: PlannerService, query: MultiMapping[str] | dict[str, Any]) -> str:
    if isinstance(query, dict):
        given = query.get("site_id")
        if "site_id" in query and given is None:
            raise ApiError(400, f"site_id: a string of 1 to {MAX_ID} characters")
    else:
        given = single(query, "site_id")
    if given is None:
        if len(planner.sites) == 1:
            return next(iter(planner.sites))
        raise ApiError(400, f"site_id: one of {', '.join(sorted(planner.sites))}")
    if not isinstance(given, str) or not 0 < len(given) <= MAX_ID:
        raise ApiError(400, f"site_id: a string of 1 to {MAX_ID} characters")
    if given not in planner.sites:
        raise ApiError(404, f"site {given!r} is not planned by this hub", code="unknown_site")
    return given


def _refused(err: Exception) -> ApiError:
    if isinstance(err, NotLeaderError):
        return ApiError(409, str(err), code="standby")
    if isinstance(err, UnknownSiteError):
        return ApiError(404, str(err), code="unknown_site")
    return ApiError(400, str(err))


@routes.get("/plan")
@_guarded
async def plan(request: web.Request) -> web.Response:
    """The site's current plan document."""
    planner = _planner(request)
    only_known(request.query, {"site_id"})
    site_id = _site(planner, request.query)
    document = await planner.document(site_id)
    if document is None:
        status = planner.status(site_id)
        why = status["last_error"] or "the first plan is not made yet"
        raise ApiError(404, f"no plan for site {site_id!r}: {why}", code="no_plan")
    return _json(document)


def _body(raw: Any, known: set[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ApiError(400, "the body must be a JSON object")
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ApiError(400, f"unknown field {unknown[0]!r}")
    return raw


def _text(body: dict[str, Any], name: str, longest: int = MAX_ID) -> str | None:
    if name not in body:
        return None
    value = body[name]
    if not isinstance(value, str) or not 0 < len(value) <= longest:
        raise ApiError(400, f"{name}: a string of 1 to {longest} characters")
    return value


@routes.post("/plan/run")
@_guarded
async def run(request: web.Request) -> web.Response:
    """Plan now: one site, or every site without ``site_id``."""
    planner = _planner(request)
    only_known(request.query, set())
    body = _body(await json_body(request) if request.body_exists else {}, {"site_id", "reason"})
    site_id = _site(planner, body) if "site_id" in body else None
    reason = _text(body, "reason", MAX_TEXT) or "asked through the REST API"
    try:
        results = await planner.run_now(site_id, reason)
    except (NotLeaderError, UnknownSiteError) as err:
        raise _refused(err) from None
    return _json({"results": [result.as_dict() for result in results]})


@routes.get("/plan/audit")
@_guarded
async def plan_audit(request: web.Request) -> web.Response:
    """Planned against actual, per step, and each day's cost and savings."""
    planner = _planner(request)
    only_known(request.query, {"site_id", "from", "to"})
    site_id = _site(planner, request.query)
    now_ms = round(time.time() * 1000)
    given_to, given_from = single(request.query, "to"), single(request.query, "from")
    end = timestamp_ms(given_to, "to") if given_to is not None else now_ms
    start = timestamp_ms(given_from, "from") if given_from is not None else end - 86_400_000
    if start >= end:
        raise ApiError(400, "from must be before to")
    if end - start > MAX_AUDIT_DAYS * 86_400_000:
        raise ApiError(400, f"the range may span at most {MAX_AUDIT_DAYS} days")
    return _json(await planner.audit_view(site_id, start, end))


@routes.get("/prices")
@_guarded
async def prices(request: web.Request) -> web.Response:
    """The prices the site's plans use: spot, the site's own, the plan's per step."""
    planner = _planner(request)
    only_known(request.query, {"site_id"})
    return _json(await planner.price_view(_site(planner, request.query)))


@routes.get("/forecasts")
@_guarded
async def forecasts(request: web.Request) -> web.Response:
    """The PV forecast and load the site's plans use."""
    planner = _planner(request)
    only_known(request.query, {"site_id"})
    return _json(await planner.forecast_view(_site(planner, request.query)))


@routes.get("/overrides")
@_guarded
async def overrides(request: web.Request) -> web.Response:
    """The overrides not yet over (of one site, or of every site)."""
    planner = _planner(request)
    only_known(request.query, {"site_id"})
    site_id = _site(planner, request.query) if "site_id" in request.query else None
    return _json({"overrides": await planner.overrides_view(site_id)})


_OVERRIDE_KEYS = {
    "site_id", "asset_id", "command", "value", "start", "end", "duration_s", "requested_by",
}  # fmt: skip


def _moment(body: dict[str, Any], name: str) -> int | None:
    if name not in body:
        return None
    value = body[name]
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        raise ApiError(400, f"{name}: an RFC 3339 time")
    return timestamp_ms(value, name)


@routes.post("/overrides")
@_guarded
async def add_override(request: web.Request) -> web.Response:
    """Hold an asset at a value for a while; the site is planned again around it."""
    planner = _planner(request)
    only_known(request.query, set())
    body = _body(await json_body(request), _OVERRIDE_KEYS)
    site_id = _site(planner, body)
    asset_id = _text(body, "asset_id")
    if asset_id is None:
        raise ApiError(400, "asset_id: required")
    command = _text(body, "command") or BATTERY_POWER
    if "value" not in body:
        raise ApiError(400, "value: required")
    value = body["value"]
    if isinstance(value, float) and not math.isfinite(value):
        raise ApiError(400, "value: a finite number")
    if not isinstance(value, bool | int | float | str) or (
        isinstance(value, str) and not 0 < len(value) <= MAX_ID
    ):
        raise ApiError(400, "value: a number, true or false, or a short text")
    now_ms = round(time.time() * 1000)
    start = _moment(body, "start") or now_ms
    end = _moment(body, "end")
    duration = body.get("duration_s")
    if (end is None) == ("duration_s" not in body):
        raise ApiError(400, "give end or duration_s (one of them)")
    if "duration_s" in body:
        if isinstance(duration, bool) or not isinstance(duration, int | float):
            raise ApiError(400, "duration_s: a number of seconds")
        if not 0 < duration <= MAX_DURATION_S:
            raise ApiError(400, f"duration_s: more than 0 and at most {MAX_DURATION_S}")
        end = start + round(duration * 1000)
    assert end is not None
    requested_by = _text(body, "requested_by") or "hub_api"
    try:
        override = await planner.add_override(
            site_id, asset_id, command, value, start, end, requested_by=requested_by
        )
    except (NotLeaderError, UnknownSiteError, PlanInputError) as err:
        raise _refused(err) from None
    return _json(override.as_dict(), status=201)


@routes.delete("/overrides")
@_guarded
async def remove_overrides(request: web.Request) -> web.Response:
    """Let assets go: one override (``id``), or a site's (``site_id``, maybe ``asset_id``)."""
    planner = _planner(request)
    only_known(request.query, {"id", "site_id", "asset_id"})
    override_id = single(request.query, "id")
    asset_id = single(request.query, "asset_id")
    for name, value in (("id", override_id), ("asset_id", asset_id)):
        if value is not None and not 0 < len(value) <= MAX_ID:
            raise ApiError(400, f"{name}: 1 to {MAX_ID} characters")
    site_id = _site(planner, request.query) if "site_id" in request.query else None
    if override_id is None and site_id is None:
        raise ApiError(400, "give id, or site_id (and asset_id)")
    try:
        removed = await planner.remove_overrides(site_id, asset_id=asset_id, id=override_id)
    except (NotLeaderError, UnknownSiteError) as err:
        raise _refused(err) from None
    return _json({"removed": [override.as_dict() for override in removed]})


# The OpenAPI document's part.

type Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


_ID = {"type": "string", "minLength": 1, "maxLength": MAX_ID}
_SITE = {"type": "string", "minLength": 1, "maxLength": MAX_ID, "description": "A planned site"}
"""Where a site id goes; :func:`openapi` names the hub's planned sites there."""
_TEXT = {"type": "string"}
_NULL_TEXT = {"type": ["string", "null"]}
_NUMBER = {"type": "number"}
_NULL_NUMBER = {"type": ["number", "null"]}
_TIME_PARAM = {
    "description": "An RFC 3339 date-time (UTC if it has no offset) or ms since the epoch",
    "anyOf": [
        {"type": "string", "minLength": 1, "pattern": "^[0-9]{1,14}$"},
        {"type": "string", "minLength": 1, "format": "date-time"},
    ],
}
_TIME_BODY = {"type": "string", "minLength": 1, "maxLength": 64, "format": "date-time"}
_SERIES = {
    "type": ["object", "null"],
    "properties": {
        "start": _TEXT,
        "step_s": {"type": "integer"},
        "unit": _TEXT,
        "source": _TEXT,
        "values": {"type": "array", "items": _NUMBER},
    },
    "required": ["start", "step_s", "unit", "source", "values"],
    "additionalProperties": False,
}
_OVERRIDE_PROPERTIES: Schema = {
    "id": _TEXT,
    "site_id": _TEXT,
    "asset_id": _TEXT,
    "command": _TEXT,
    "value": {"type": ["number", "boolean", "string"]},
    "start": _TEXT,
    "end": _TEXT,
    "start_ms": {"type": "integer"},
    "end_ms": {"type": "integer"},
    "requested_by": _TEXT,
    "created_ms": {"type": "integer"},
}
_OVERRIDE = {
    "type": "object",
    "properties": _OVERRIDE_PROPERTIES,
    "required": sorted(_OVERRIDE_PROPERTIES),
    "additionalProperties": False,
}
_DAY = {
    "type": "object",
    "properties": {
        "day": _TEXT,
        "actual_cost": _NUMBER,
        "until": _TEXT,
        "savings_vs_self_consumption": _NUMBER,
        "savings_vs_no_battery": _NUMBER,
    },
    "required": [
        "day", "actual_cost", "until", "savings_vs_self_consumption", "savings_vs_no_battery",
    ],
    "additionalProperties": False,
}  # fmt: skip

SCHEMAS: dict[str, Schema] = {
    "SitePlan": {
        "type": "object",
        "description": "The site's plan (edge-ems-site-plan/1): the plan, its prices and "
        "step costs, the days' measured costs and savings, and what went into it (inputs).",
        "properties": {
            "schema": {"const": "edge-ems-site-plan/1"},
            "site_id": _TEXT,
            "version": {"type": "integer", "minimum": 1},
            "made_at": _TEXT,
            "time_zone": _TEXT,
            "plan": {"type": "object"},
            "prices": {"type": "object"},
            "step_cost": {"type": "array", "items": _NUMBER},
            "days": {"type": "array", "items": _DAY},
            "inputs": {"type": "object"},
        },
        "required": [
            "schema",
            "site_id",
            "version",
            "made_at",
            "time_zone",
            "plan",
            "prices",
            "step_cost",
            "days",
        ],
        "additionalProperties": True,
    },
    "RunRequest": {
        "type": "object",
        "properties": {
            "site_id": _SITE,
            "reason": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT},
        },
        "additionalProperties": False,
    },
    "RunResults": {
        "type": "object",
        "properties": {
            "results": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "site_id": _TEXT,
                        "version": {"type": ["integer", "null"]},
                        "status": _NULL_TEXT,
                        "cost": _NULL_NUMBER,
                        "solve_ms": _NULL_NUMBER,
                        "error": _NULL_TEXT,
                    },
                    "required": ["site_id", "version", "status", "cost", "solve_ms", "error"],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["results"],
        "additionalProperties": False,
    },
    "PlanAudit": {
        "type": "object",
        "properties": {
            "site_id": _TEXT,
            "steps": {
                "type": "array",
                "description": "One record per audited step: measured means, prices, and the "
                "report (planned and actual energy per asset, the reason of each deviation).",
                "items": {"type": "object"},
            },
            "days": {"type": "array", "items": _DAY},
        },
        "required": ["site_id", "steps", "days"],
        "additionalProperties": False,
    },
    "Prices": {
        "type": "object",
        "properties": {
            "site_id": _TEXT,
            "spot_currency": _TEXT,
            "currency": _TEXT,
            "tariff": _NULL_TEXT,
            "source": _NULL_TEXT,
            "fetched_at": _NULL_TEXT,
            "last_error": _NULL_TEXT,
            "spot": _SERIES,
            "site_import": _SERIES,
            "site_export": _SERIES,
            "plan": {"type": ["object", "null"]},
        },
        "required": [
            "site_id",
            "spot_currency",
            "currency",
            "tariff",
            "source",
            "fetched_at",
            "last_error",
            "spot",
            "site_import",
            "site_export",
            "plan",
        ],
        "additionalProperties": False,
    },
    "Forecasts": {
        "type": "object",
        "properties": {
            "site_id": _TEXT,
            "pv_source": _NULL_TEXT,
            "pv_fetched_at": _NULL_TEXT,
            "pv_error": _NULL_TEXT,
            "pv": _SERIES,
            "site_pv": _SERIES,
            "baseline_samples": {"type": ["integer", "null"]},
            "plan": {"type": ["object", "null"]},
        },
        "required": [
            "site_id",
            "pv_source",
            "pv_fetched_at",
            "pv_error",
            "pv",
            "site_pv",
            "baseline_samples",
            "plan",
        ],
        "additionalProperties": False,
    },
    "Override": _OVERRIDE,
    "OverrideList": {
        "type": "object",
        "properties": {"overrides": {"type": "array", "items": _ref("Override")}},
        "required": ["overrides"],
        "additionalProperties": False,
    },
    "RemovedOverrides": {
        "type": "object",
        "properties": {"removed": {"type": "array", "items": _ref("Override")}},
        "required": ["removed"],
        "additionalProperties": False,
    },
    "OverrideRequest": {
        "type": "object",
        "description": "Hold asset_id at value (command: battery_power_setpoint_w by default, "
        "+ discharges) from start (default now) to end, or for duration_s. The planner plans "
        "around it and sends the value while it lasts.",
        "properties": {
            "site_id": _SITE,
            "asset_id": _ID,
            "command": _ID,
            "value": {
                "oneOf": [
                    {"type": "number"},
                    {"type": "boolean"},
                    {"type": "string", "minLength": 1, "maxLength": MAX_ID},
                ]
            },
            "start": _TIME_BODY,
            "end": _TIME_BODY,
            "duration_s": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_DURATION_S},
            "requested_by": _ID,
        },
        "required": ["asset_id", "value"],
        "oneOf": [{"required": ["end"]}, {"required": ["duration_s"]}],
        "additionalProperties": False,
    },
}


def _answer(description: str, schema: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _errors(*statuses: int) -> dict[str, Schema]:
    texts = {
        400: "Invalid parameters or body",
        401: "Missing or wrong bearer token",
        404: "The planner is off, the site is not planned, or it has no plan yet",
        409: "This hub stands by: another hub plans",
        413: "The body is too large",
        429: "Too many requests; see Retry-After",
        503: "The database cannot answer now",
    }
    return {str(status): _answer(texts[status], "Error") for status in statuses}


def _site_param() -> Schema:
    return {
        "name": "site_id",
        "in": "query",
        "required": False,
        "description": "The site (may be left out when the hub plans one)",
        "schema": _SITE,
    }


def _get(summary: str, schema: str, *parameters: Schema) -> Schema:
    return {
        "get": {
            "summary": summary,
            "parameters": [_site_param(), *parameters],
            "responses": {"200": _answer(summary, schema), **_errors(400, 401, 404, 429, 503)},
        }
    }


PATHS: dict[str, Schema] = {
    "/plan": _get("The site's current plan document and its version", "SitePlan"),
    "/plan/run": {
        "post": {
            "summary": "Plan now (one site, or every site) and dispatch the result",
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": _ref("RunRequest")}},
            },
            "responses": {
                "200": _answer("What each re-plan came to", "RunResults"),
                **_errors(400, 401, 404, 409, 413, 429, 503),
            },
        }
    },
    "/plan/audit": _get(
        "Planned against actual per step, and the days' costs and savings",
        "PlanAudit",
        {
            "name": "from",
            "in": "query",
            "required": False,
            "schema": _TIME_PARAM,
            "description": "Steps from (inclusive); default a day before to",
        },
        {
            "name": "to",
            "in": "query",
            "required": False,
            "schema": _TIME_PARAM,
            "description": "Steps to (exclusive); default now",
        },
    ),
    "/prices": _get("The prices the site's plans use", "Prices"),
    "/forecasts": _get("The PV forecast and load the site's plans use", "Forecasts"),
    "/overrides": {
        **_get("The overrides not yet over", "OverrideList"),
        "post": {
            "summary": "Hold an asset at a value for a while",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("OverrideRequest")}},
            },
            "responses": {
                "201": _answer("The override", "Override"),
                **_errors(400, 401, 404, 409, 413, 429, 503),
            },
        },
        "delete": {
            "summary": "Let assets go: one override by id, or a site's (or one asset's)",
            "parameters": [
                {"name": "id", "in": "query", "required": False, "schema": _ID},
                _site_param(),
                {"name": "asset_id", "in": "query", "required": False, "schema": _ID},
            ],
            "responses": {
                "200": _answer("The overrides removed", "RemovedOverrides"),
                **_errors(400, 401, 404, 409, 429, 503),
            },
        },
    },
}


def openapi(sites: Sequence[str] | None) -> tuple[dict[str, Schema], dict[str, Schema]]:
    """The planner's paths and schemas, with ``sites`` (the planned sites) as the values a
    site id may take (any id without a planner)."""
    named: Schema = (
        {"enum": sorted(sites), "description": "A site the hub plans"} if sites else dict(_SITE)
    )

    def named_sites(value: Any) -> Any:
        if value is _SITE or value == _SITE:
            return dict(named)
        if isinstance(value, dict):
            return {key: named_sites(item) for key, item in value.items()}
        if isinstance(value, list):
            return [named_sites(item) for item in value]
        return value

    return named_sites(PATHS), named_sites(SCHEMAS)
