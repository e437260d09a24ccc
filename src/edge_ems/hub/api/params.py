"""Query parameters and request bodies, validated into plain values or a clear 400."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from ...dispatch.audit import Outcome, Reason
from ..store.model import AuditQuery, Resolution, SeriesFilter
from .errors import ApiError

MAX_ID = 128
MAX_CURSOR = 256
FIRST_MS = round(dt.datetime(1, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)
LAST_MS = round(dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC).timestamp() * 1000)
CURSOR_PATTERN = r"^-?[0-9]{1,200}(\.[0-9]{1,20})?([eE][-+]?[0-9]{1,2})?~.+$"
"""What :func:`..store.backend.encode_cursor` makes: a (finite) timestamp, ``~``, a record
id."""
MAX_POWER_W = 1e9
MAX_TTL_S = 86_400.0

RESOLUTIONS = {
    "minute": Resolution.MINUTE,
    "1m": Resolution.MINUTE,
    "5m": Resolution.FIVE_MINUTES,
    "1h": Resolution.HOUR,
    "hour": Resolution.HOUR,
}


def _bad(message: str) -> ApiError:
    return ApiError(400, message)


def only_known(query: MultiMapping[str], known: set[str]) -> None:
    """Refuse parameters the route does not take (a typo would otherwise widen a query)."""
    unknown = sorted(set(query) - known)
    if unknown:
        raise _bad(f"unknown parameter {unknown[0]!r}; this route takes {', '.join(sorted(known))}")


def ids(query: MultiMapping[str], name: str) -> list[str]:
    """A repeatable, comma-separated list of ids."""
    found = []
    for value in query.getall(name, []):
        for item in value.split(","):
            stripped = item.strip()
            if not stripped or len(stripped) > MAX_ID:
                raise _bad(f"{name}: ids are 1 to {MAX_ID} characters")
            found.append(stripped)
    return found


def single(query: MultiMapping[str], name: str) -> str | None:
    """A parameter given at most once."""
    values = query.getall(name, [])
    if len(values) > 1:
        raise _bad(f"{name}: give it once")
    return values[0] if values else None


def timestamp_ms(value: str, name: str) -> int:
    """Milliseconds since the epoch, from digits (ms) or ISO 8601 (naive means UTC)."""
    text = value.strip()
    try:
        if text.lstrip("-").isdigit():
            number = int(text)
        else:
            if text[-1:] in ("Z", "z"):  # RFC 3339 UTC, either case
                text = text[:-1] + "+00:00"
            moment = dt.datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.UTC)
            number = round(moment.timestamp() * 1000)
    except (ValueError, OverflowError):
        raise _bad(f"{name}: expected ISO 8601 or milliseconds since the epoch") from None
    if not FIRST_MS <= number <= LAST_MS:  # the years 1 to 9999
        raise _bad(f"{name}: out of range")
    return number


@dataclass(frozen=True, slots=True)
class MeasurementQuery:
    """What ``/measurements`` asks for."""

    selection: SeriesFilter
    start_ms: int
    end_ms: int
    resolution: Resolution


def measurement_query(query: MultiMapping[str], now_ms: int) -> MeasurementQuery:
    """Validate ``/measurements``' parameters: ``site``, ``asset``, ``metric`` (repeatable),
    ``from``/``to`` (default the last hour) and ``resolution``."""
    only_known(query, {"site", "asset", "metric", "from", "to", "resolution"})
    selection = SeriesFilter(
        sites=frozenset(ids(query, "site")),
        assets=frozenset(ids(query, "asset")),
        metrics=frozenset(ids(query, "metric")),
    )
    given_to = single(query, "to")
    end = timestamp_ms(given_to, "to") if given_to is not None else now_ms
    given_from = single(query, "from")
    start = timestamp_ms(given_from, "from") if given_from is not None else end - 3_600_000
    if start >= end:
        raise _bad("from must be before to")
    name = single(query, "resolution") or "minute"
    resolution = RESOLUTIONS.get(name.strip().lower())
    if resolution is None:
        raise _bad(f"resolution: one of {', '.join(RESOLUTIONS)}")
    return MeasurementQuery(selection, start, end, resolution)


def audit_query(query: MultiMapping[str]) -> AuditQuery:
    """Validate ``/audit``'s filters and paging."""
    only_known(
        query,
        {"site_id", "device_id", "command", "outcome", "reason", "since", "until", "limit",
         "cursor"},
    )  # fmt: skip
    texts = {}
    for name, longest in (("site_id", MAX_ID), ("device_id", MAX_ID), ("command", MAX_ID),
                          ("cursor", MAX_CURSOR)):  # fmt: skip
        value = single(query, name)
        if value is not None and not 0 < len(value) <= longest:
            raise _bad(f"{name}: 1 to {longest} characters")
        texts[name] = value
    outcome_text = single(query, "outcome")
    outcome = None
    if outcome_text is not None:
        try:
            outcome = Outcome(outcome_text)
        except ValueError:
            raise _bad(f"outcome: one of {', '.join(o.value for o in Outcome)}") from None
    reason_text = single(query, "reason")
    reason = None
    if reason_text is not None:
        try:
            reason = Reason(reason_text)
        except ValueError:
            raise _bad(f"reason: one of {', '.join(r.value for r in Reason)}") from None
    since, until = (single(query, name) for name in ("since", "until"))
    limit_text = single(query, "limit") or "100"
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= 1000:
        raise _bad("limit: a whole number from 1 to 1000")
    return AuditQuery(
        site_id=texts["site_id"],
        device_id=texts["device_id"],
        command=texts["command"],
        outcome=outcome,
        reason=reason,
        since=None if since is None else timestamp_ms(since, "since") / 1000,
        until=None if until is None else timestamp_ms(until, "until") / 1000,
        limit=int(limit_text),
        cursor=texts["cursor"],
    )


@dataclass(frozen=True, slots=True)
class DispatchRequest:
    """A validated ``POST /dispatch`` body."""

    asset_id: str | None
    site_id: str | None
    power_w: float
    ttl_s: float | None
    release: bool
    requested_by: str


_DISPATCH_KEYS = {"asset_id", "site_id", "power_w", "mw", "ttl_s", "release", "requested_by"}


async def json_body(request: web.Request) -> Any:
    """The request's JSON body (aiohttp refuses one over the size limit with 413)."""
    if request.content_type != "application/json":
        raise _bad("send the body as application/json")
    raw = await request.read()
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise _bad("the body is not valid JSON") from None


def _number(body: Mapping[str, Any], name: str, limit: float) -> float | None:
    if name not in body:
        return None
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(f"{name}: expected a number")
    number = float(value)
    if not math.isfinite(number) or abs(number) > limit:
        raise _bad(f"{name}: must be finite and at most {limit:g} in size")
    return number


def _text(body: Mapping[str, Any], name: str) -> str | None:
    if name not in body:
        return None
    value = body[name]
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID:
        raise _bad(f"{name}: a string of 1 to {MAX_ID} characters")
    return value


def dispatch_request(body: Any) -> DispatchRequest:
    """Validate a dispatch body: a target (``asset_id`` wins over ``site_id``), a power in
    watts (``power_w``, or ``mw`` in megawatts as seed 002 sends it) unless ``release``."""
    if not isinstance(body, dict):
        raise _bad("the body must be a JSON object")
    unknown = sorted(set(body) - _DISPATCH_KEYS)
    if unknown:
        raise _bad(f"unknown field {unknown[0]!r}")
    asset_id, site_id = _text(body, "asset_id"), _text(body, "site_id")
    if asset_id is None and site_id is None:
        raise _bad("give asset_id or site_id")
    release = body.get("release", False)
    if not isinstance(release, bool):
        raise _bad("release: expected true or false")
    power = _number(body, "power_w", MAX_POWER_W)
    megawatts = _number(body, "mw", MAX_POWER_W / 1e6)
    if power is not None and megawatts is not None:
        raise _bad("give power_w or mw, not both")
    if megawatts is not None:
        power = megawatts * 1e6
    if power is None and not release:
        raise _bad("give power_w (or mw), or release: true")
    ttl = _number(body, "ttl_s", MAX_TTL_S)
    if ttl is not None and ttl <= 0:
        raise _bad("ttl_s: must be positive")
    requested_by = _text(body, "requested_by") or "hub_api"
    return DispatchRequest(asset_id, site_id, power or 0.0, ttl, release, requested_by)
