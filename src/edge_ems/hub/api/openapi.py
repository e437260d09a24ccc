"""The API's OpenAPI 3.1 document, as data: every route, parameter, body and answer.

Kept beside the routes by hand and checked against them: schemathesis sends what this
document allows (and what it does not) to a live hub and validates every answer against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ... import __version__
from ...dispatch.audit import Outcome, Reason
from ..config import MAX_MEASUREMENT_POINTS
from ..planning import routes as planner
from .params import CURSOR_PATTERN, MAX_CURSOR, MAX_ID, MAX_POWER_W, MAX_TTL_S, RESOLUTIONS

type Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str) -> Schema:
    return {"type": [kind, "null"]}


def _object(properties: dict[str, Schema], *, extra: bool = False) -> Schema:
    return {
        "type": "object",
        "properties": properties,
        "required": sorted(properties),
        "additionalProperties": extra,
    }


_TEXT = {"type": "string"}
_NUMBER = {"type": "number"}
_INTEGER = {"type": "integer"}
_BOOLEAN = {"type": "boolean"}
_VALUE = {"type": ["number", "string", "boolean", "null"]}
_STATUS = {"type": ["object", "null"], "additionalProperties": True}
_HEALTH_STATUS = {"enum": ["ok", "degraded", "error"]}

SCHEMAS: dict[str, Schema] = {
    "Error": {
        "type": "object",
        "properties": {
            "error": _object({"status": _INTEGER, "code": _TEXT, "message": _TEXT}),
            "audit": _ref("AuditRecord"),
            "command_id": _TEXT,
            "points": {"type": "integer", "description": "Points asked for (too_many_points)"},
            "max_points": {"type": "integer", "description": "Most points one answer holds"},
        },
        "required": ["error"],
        "additionalProperties": False,
    },
    "HealthSummary": _object({"status": _HEALTH_STATUS, "version": _TEXT}),
    "HealthError": _object(
        {
            "status": {"const": "error"},
            "version": _TEXT,
            "problems": {"type": "array", "items": _TEXT},
            "error": {"type": "string", "description": "Why the hub is not running"},
            "uptime_s": _NUMBER,
        }
    ),
    "Health": _object(
        {
            "status": _HEALTH_STATUS,
            "problems": {"type": "array", "items": _TEXT},
            "version": _TEXT,
            "uptime_s": _NUMBER,
            "store": _STATUS,
            "gateway": {"type": "object", "additionalProperties": True},
            "audit": {"type": "object", "additionalProperties": True},
            "parquet": _STATUS,
            "uplink": _STATUS,
            "planner": {
                "type": ["object", "null"],
                "description": "Whether this hub leads, which hub does, the sites in trouble "
                "and each site's planner state (null without a planner).",
                "additionalProperties": True,
            },
            "tasks": {
                "type": "object",
                "description": "Background tasks by name: running, failing, failures, "
                "restarts, last_error, last_failure.",
                "additionalProperties": {"type": "object", "additionalProperties": True},
            },
        }
    ),
    "Asset": _object(
        {
            "asset_id": _TEXT,
            "name": _TEXT,
            "site_id": _TEXT,
            "site_name": _TEXT,
            "type": _TEXT,
            "capacity_wh": _NUMBER,
            "max_charge_w": _NUMBER,
            "max_discharge_w": _NUMBER,
            "configured": _BOOLEAN,
            "agent_id": _nullable("string"),
            "connected": _BOOLEAN,
        }
    ),
    "Session": _object(
        {
            "session_id": _TEXT,
            "agent_id": _TEXT,
            "peer": _TEXT,
            "started": _NUMBER,
            "ended": _nullable("number"),
            "end_reason": _nullable("string"),
        }
    ),
    "AgentRow": _object(
        {
            "asset_id": _TEXT,
            "asset_name": _TEXT,
            "site_id": _TEXT,
            "site_name": _TEXT,
            "agent_id": _nullable("string"),
            "peer": _nullable("string"),
            "connected": _BOOLEAN,
            "last_seen": _nullable("number"),
            "buffered_batches": _INTEGER,
            "dropped_points": _INTEGER,
            "sessions": {"type": "array", "items": _ref("Session")},
        }
    ),
    "Device": _object(
        {
            "asset_id": _TEXT,
            "site_id": _TEXT,
            "name": _TEXT,
            "type": _TEXT,
            "agent_id": _nullable("string"),
            "connected": _BOOLEAN,
            "last_sample_ms": _nullable("integer"),
            "metrics": {"type": "array", "items": _TEXT},
            "status": {
                "anyOf": [_ref("DeviceStatus"), {"type": "null"}],
                "description": "How the agent's polling of the device goes, from its "
                "heartbeats (null until the first, and for assets no agent serves here)",
            },
        }
    ),
    "DeviceStatus": _object(
        {
            "answering": {
                "type": ["boolean", "null"],
                "description": "The last poll succeeded (null before the first ended)",
            },
            "last_poll_ms": _nullable("integer"),
            "last_success_ms": _nullable("integer"),
            "last_error": _nullable("string"),
            "polls": _INTEGER,
            "failed_polls": _INTEGER,
            "requests": {
                "type": ["integer", "null"],
                "description": "Protocol requests sent (Modbus reads), where the device "
                "counts them",
            },
            "breaker": {
                "type": "string",
                "description": "The device's circuit breaker: closed, open or half_open",
            },
            "reported_ms": {"type": "integer", "description": "When the agent reported it"},
        }
    ),
    "Values": {
        "type": "object",
        "description": "The newest value of each metric, by metric name.",
        "additionalProperties": _object(
            {"value": _VALUE, "timestamp_ms": _INTEGER, "unit": _nullable("string")}
        ),
    },
    "Telemetry": _object(
        {
            "asset_id": _TEXT,
            "site_id": _TEXT,
            "connected": _BOOLEAN,
            "timestamp_ms": _nullable("integer"),
            "values": _ref("Values"),
        }
    ),
    "Measurements": _object(
        {
            "resolution": {"enum": ["1m", "5m", "1h"]},
            "from_ms": _INTEGER,
            "to_ms": _INTEGER,
            "columns": {"type": "array", "items": _TEXT},
            "series": {
                "type": "array",
                "items": _object(
                    {
                        "site_id": _TEXT,
                        "asset_id": _TEXT,
                        "metric": _TEXT,
                        "unit": _nullable("string"),
                        "points": {
                            "type": "array",
                            "description": "One bucket per row, in the order of columns.",
                            "items": {
                                "type": "array",
                                "items": _NUMBER,
                                "minItems": 6,
                                "maxItems": 6,
                            },
                        },
                    }
                ),
            },
        }
    ),
    "Snapshot": _object(
        {
            "generated_ms": _INTEGER,
            "assets": {
                "type": "array",
                "items": _object({"site_id": _TEXT, "asset_id": _TEXT, "values": _ref("Values")}),
            },
        }
    ),
    "RegisterMaps": _object(
        {
            "maps": {
                "type": "array",
                "items": _object(
                    {
                        "id": _TEXT,
                        "maker": _TEXT,
                        "model": _TEXT,
                        "kind": _TEXT,
                        "documentation": _TEXT,
                        "points": {
                            "type": "array",
                            "items": _object(
                                {
                                    "name": _TEXT,
                                    "metric": _TEXT,
                                    "address": _INTEGER,
                                    "type": _TEXT,
                                    "registers": _INTEGER,
                                    "space": _TEXT,
                                    "access": _TEXT,
                                    "unit": _nullable("string"),
                                    "allow_write": _BOOLEAN,
                                }
                            ),
                        },
                    }
                ),
            }
        }
    ),
    "AuditRecord": _object(
        {
            "id": _TEXT,
            "site_id": _TEXT,
            "device_id": _nullable("string"),
            "command": _TEXT,
            "requested": _VALUE,
            "applied": _VALUE,
            "read_back": _VALUE,
            "outcome": {"enum": [outcome.value for outcome in Outcome]},
            "reason": {"enum": [reason.value for reason in Reason]},
            "message": _TEXT,
            "requested_by": _TEXT,
            "source": _TEXT,
            "timestamp": _NUMBER,
            "ttl": _nullable("number"),
        }
    ),
    "AuditPage": _object(
        {
            "records": {"type": "array", "items": _ref("AuditRecord")},
            "next_cursor": _nullable("string"),
        }
    ),
    "DispatchRequest": {
        "type": "object",
        "description": "A battery power setpoint (positive discharges, negative charges) for "
        "an asset or a whole site; asset_id wins over site_id. Give power_w or mw (not "
        "both), or release: true to return the target to its safe mode.",
        "properties": {
            "asset_id": {"type": "string", "minLength": 1, "maxLength": MAX_ID},
            "site_id": {"type": "string", "minLength": 1, "maxLength": MAX_ID},
            "power_w": {"type": "number", "minimum": -MAX_POWER_W, "maximum": MAX_POWER_W},
            "mw": {"type": "number", "minimum": -MAX_POWER_W / 1e6, "maximum": MAX_POWER_W / 1e6},
            "ttl_s": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_TTL_S},
            "release": _BOOLEAN,
            "requested_by": {"type": "string", "minLength": 1, "maxLength": MAX_ID},
        },
        "allOf": [
            {"anyOf": [{"required": ["asset_id"]}, {"required": ["site_id"]}]},
            {
                "anyOf": [
                    {"required": ["power_w"]},
                    {"required": ["mw"]},
                    {"required": ["release"], "properties": {"release": {"const": True}}},
                ]
            },
            {"not": {"required": ["power_w", "mw"]}},
        ],
        "additionalProperties": False,
    },
    "DispatchResult": _object(
        {
            "command_id": _TEXT,
            "agent_id": _TEXT,
            "error": _nullable("string"),
            "applied": _BOOLEAN,
            "records": {"type": "array", "items": _ref("AuditRecord")},
        }
    ),
}


def _answer(description: str, schema: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _errors(*statuses: int) -> dict[str, Schema]:
    texts = {
        400: "Invalid parameters or body",
        401: "Missing or wrong bearer token",
        404: "Unknown target",
        409: "The target has no connected agent, or the site is ambiguous",
        413: "The body is too large",
        429: "Too many requests; see Retry-After",
        503: "The store cannot answer now",
        504: "The agent did not acknowledge in time",
    }
    answers = {str(status): _answer(texts[status], "Error") for status in statuses}
    if 429 in statuses:
        answers["429"]["headers"] = {
            "Retry-After": {"description": "Seconds to wait", "schema": {"type": "string"}}
        }
    return answers


def _query(name: str, description: str, schema: Schema, *, repeat: bool = False) -> Schema:
    if repeat:
        schema = {"type": "array", "items": schema}
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
        **({"style": "form", "explode": True} if repeat else {}),
    }


_ID = {"type": "string", "minLength": 1, "maxLength": MAX_ID}
_TIME = {
    "description": "An RFC 3339 date-time (ISO 8601; UTC if it has no offset) or ms since the "
    "epoch",
    "anyOf": [
        {"type": "string", "minLength": 1, "pattern": "^[0-9]{1,14}$"},
        {"type": "string", "minLength": 1, "format": "date-time"},
    ],
}
_IDS = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_ID,
    "description": "One id, or several separated by commas",
    "pattern": r"^[^,]*[^,\s][^,]*(,[^,]*[^,\s][^,]*)*$",
}


def _get(summary: str, schema: str, *, extra: tuple[int, ...] = (), **more: Any) -> Schema:
    return {
        "get": {
            "summary": summary,
            "responses": {"200": _answer(summary, schema), **_errors(400, 401, 429, *extra)},
            **more,
        }
    }


def _static(summary: str, media_type: str) -> Schema:
    return {
        "get": {
            "summary": summary,
            "description": "The dashboard's files hold no data: anyone may load them.",
            "security": [{}],
            "responses": {
                "200": {
                    "description": summary,
                    "headers": {"ETag": {"schema": {"type": "string"}}},
                    "content": {media_type: {"schema": {"type": "string"}}},
                },
                "304": {"description": "Not modified (If-None-Match gave its ETag)"},
                **_errors(400, 429),
            },
        }
    }


PATHS: dict[str, Schema] = {
    "/": _static("The dashboard (the app's web UI through ingress)", "text/html"),
    "/dashboard.js": _static("The dashboard's script", "text/javascript"),
    "/dashboard.css": _static("The dashboard's stylesheet", "text/css"),
    "/health": {
        "get": {
            "summary": "The hub's status and version to anyone; with the token, the state of "
            "the store, gateway, Parquet export, uplink and background tasks, or (status "
            "error) why the hub is not running",
            "security": [{}, {"bearer": []}],
            "responses": {
                "200": {
                    "description": "The hub's state",
                    "content": {
                        "application/json": {
                            "schema": {
                                "anyOf": [
                                    _ref("HealthSummary"),
                                    _ref("Health"),
                                    _ref("HealthError"),
                                ]
                            }
                        }
                    },
                },
                **_errors(429),
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics",
            "responses": {
                "200": {
                    "description": "Prometheus text exposition",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                **_errors(401, 429),
            },
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This document",
            "responses": {
                "200": {
                    "description": "The OpenAPI document",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                **_errors(400, 401, 429),
            },
        }
    },
    "/assets": _get("Configured and registered assets", "AssetList"),
    "/agents": _get("One row per asset with its agent, connection and sessions", "AgentList"),
    "/devices": _get("Assets with their newest sample and metrics", "DeviceList", extra=(503,)),
    "/telemetry/{asset_id}": _get(
        "The newest value of each metric of an asset",
        "Telemetry",
        extra=(404, 503),
        parameters=[
            {"name": "asset_id", "in": "path", "required": True, "schema": {"type": "string"}}
        ],
    ),
    "/export/snapshot": _get("The newest value of every series", "Snapshot", extra=(503,)),
    "/export/registermaps": _get("The point-map catalog", "RegisterMaps"),
    "/dispatch": {
        "post": {
            "summary": "Send a battery setpoint to the agent serving an asset or site",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": _ref("DispatchRequest"),
                        "examples": {
                            "charge": {
                                "summary": "Charge one battery at 3 kW for ten minutes",
                                "value": {"asset_id": "bess-1", "power_w": -3000, "ttl_s": 600},
                            },
                            "release": {
                                "summary": "Return a site's batteries to their safe mode",
                                "value": {"site_id": "farm", "release": True},
                            },
                        },
                    }
                },
            },
            "responses": {
                "200": _answer("The agent's answer with its audit records", "DispatchResult"),
                **_errors(400, 401, 404, 409, 413, 429, 504),
            },
        }
    },
    "/audit": _get(
        "Audit records, newest first",
        "AuditPage",
        extra=(503,),
        parameters=[
            _query("site_id", "Site id", _ID),
            _query("device_id", "Asset id", _ID),
            _query("command", "Command (metric) name", _ID),
            _query("outcome", "Outcome", {"enum": [outcome.value for outcome in Outcome]}),
            _query("reason", "Why it ended so", {"enum": [reason.value for reason in Reason]}),
            _query("since", "From (inclusive)", _TIME),
            _query("until", "To (exclusive)", _TIME),
            _query("limit", "Page size", {"type": "integer", "minimum": 1, "maximum": 1000}),
            _query(
                "cursor",
                "next_cursor of the previous page",
                {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_CURSOR,
                    "pattern": CURSOR_PATTERN,
                },
            ),
        ],
    ),
}

_LISTS = {"AssetList": ("assets", "Asset"), "AgentList": ("agents", "AgentRow"),
          "DeviceList": ("devices", "Device")}  # fmt: skip
for _name, (_key, _item) in _LISTS.items():
    SCHEMAS[_name] = _object({_key: {"type": "array", "items": _ref(_item)}})


def _measurements(max_points: int) -> Schema:
    return _get(
        "Stored buckets of the matching series",
        "Measurements",
        extra=(503,),
        description=f"One request returns at most {max_points:,} points (matching series times "
        "buckets overlapping the range, counted before the store is queried; the hub's "
        "max_measurement_points option). A larger one is refused with 400, code "
        "too_many_points, the points it asked for in points and the cap in max_points: ask "
        "for a coarser resolution, fewer series or a shorter range, or split the range.",
        parameters=[
            _query("site", "Site ids (repeat or comma-separate)", _IDS, repeat=True),
            _query("asset", "Asset ids (repeat or comma-separate)", _IDS, repeat=True),
            _query("metric", "Metric names (repeat or comma-separate)", _IDS, repeat=True),
            _query("from", "Start (inclusive); default one hour before to", _TIME),
            _query("to", "End (exclusive); default now", _TIME),
            _query("resolution", "Bucket size", {"enum": sorted(RESOLUTIONS)}),
        ],
    )


def document(
    *, max_points: int = MAX_MEASUREMENT_POINTS, planned_sites: Sequence[str] | None = None
) -> Schema:
    """The OpenAPI 3.1 document of an API that returns at most ``max_points`` points (and
    plans ``planned_sites``)."""
    planner_paths, planner_schemas = planner.openapi(planned_sites)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Edge EMS hub",
            "version": __version__,
            "description": "Telemetry, measurements, exports, guarded dispatch and the "
            "planner of the hub. Every route but /health and the dashboard's files needs "
            "`Authorization: Bearer <api_token>`. Every error the API gives is JSON (`Error`), "
            "with one exception: a request the HTTP server cannot parse at all (a request line "
            "or a header line over 8190 bytes, a malformed header) is answered `400 Bad "
            "Request` in `text/plain` before it reaches any route.",
        },
        "security": [{"bearer": []}],
        "paths": PATHS | {"/measurements": _measurements(max_points)} | planner_paths,
        "components": {
            "schemas": SCHEMAS | planner_schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
