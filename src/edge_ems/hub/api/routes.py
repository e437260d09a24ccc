"""The REST routes: health, inventory, telemetry, measurements, exports, dispatch, audit."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from aiohttp import web

from ...dispatch import AuditRecord, Outcome, Reason
from ...gateway.errors import GatewayError, RoutingError, SetpointTimeoutError
from ...metrics import BATTERY_POWER, METRICS
from ...pointmap import PointMap
from ..sessions import SessionRecord
from ..store.errors import QueryError, StoreError
from ..store.model import Latest, SeriesFilter
from .auth import AUTHENTICATED
from .dashboard import DASHBOARD
from .errors import ApiError, dumps
from .measurements import check_points, count_points, encode
from .params import (
    DispatchRequest,
    audit_query,
    dispatch_request,
    json_body,
    measurement_query,
    only_known,
)
from .services import HubServices, health_report

_LOGGER = logging.getLogger(__name__)

SERVICES = web.AppKey("services", HubServices)
OPENAPI = web.AppKey("openapi", dict)

MAX_POINTS = web.AppKey("max_points", int)
"""Most buckets (series times buckets in the range) one ``/measurements`` answer may hold."""
SESSIONS = 10
"""Recent sessions shown per asset in ``/agents``."""
LARGE_ANSWER = 2_000
"""Answers with more buckets than this (a few ms of encoding) are encoded off the loop."""

# Routing failures: the status and the audit reason of each.
_ROUTING = {
    "unknown_asset": (404, Reason.UNKNOWN_DEVICE),
    "unknown_site": (404, Reason.UNKNOWN_SITE),
    "not_connected": (409, Reason.DEVICE_ERROR),
    "ambiguous_site": (409, Reason.UNKNOWN_SITE),
    "disconnected": (409, Reason.DEVICE_ERROR),
    "no_target": (400, Reason.INVALID_VALUE),
}

_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}

routes = web.RouteTableDef()


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=dumps)


def _now_ms() -> int:
    return round(time.time() * 1000)


def _unit(metric: str) -> str | None:
    known = METRICS.get(metric)
    return None if known is None else known.unit


def _no_parameters(request: web.Request) -> None:
    only_known(request.query, set())


def _store_failed(err: StoreError) -> ApiError:
    return ApiError(503, f"the store cannot answer now: {err}", code="store_unavailable")


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    """The hub's state: to anyone its status and version, with the token every part's."""
    report = health_report(request.app[SERVICES])
    if not request[AUTHENTICATED]:
        return _json({"status": report["status"], "version": report["version"]})
    return _json(report)


@routes.get("/assets")
async def assets(request: web.Request) -> web.Response:
    """Every configured or registered asset."""
    _no_parameters(request)
    rows = request.app[SERVICES].gateway.registry.assets()
    return _json({"assets": [row.as_dict() for row in rows]})


@routes.get("/agents")
async def agents(request: web.Request) -> web.Response:
    """One row per asset: its agent, peer, connection and recent sessions (with the ones
    earlier runs of the hub stored)."""
    _no_parameters(request)
    services = request.app[SERVICES]
    rows = services.gateway.registry.agents()
    stored: dict[str, list[SessionRecord]] = {}
    try:
        for agent_id in sorted({row.agent_id for row in rows if row.agent_id}):
            stored[agent_id] = await services.store.backend.sessions(agent_id, SESSIONS)
    except StoreError as err:
        raise _store_failed(err) from None
    answer = []
    for row in rows:
        merged = {record.session_id: record for record in stored.get(row.agent_id or "", [])}
        merged |= {record.session_id: record for record in row.sessions}
        recent = sorted(merged.values(), key=lambda record: record.started, reverse=True)
        answer.append(row.as_dict() | {"sessions": [asdict(r) for r in recent[:SESSIONS]]})
    return _json({"agents": answer})


async def _latest(services: HubServices, selection: SeriesFilter) -> list[Latest]:
    try:
        return await services.store.latest(selection)
    except StoreError as err:
        raise _store_failed(err) from None


@routes.get("/devices")
async def devices(request: web.Request) -> web.Response:
    """Every asset with its newest sample, the metrics it reports and how its agent's polling
    of it goes (``status``, from the agent's heartbeats; ``null`` until the first)."""
    _no_parameters(request)
    services = request.app[SERVICES]
    newest: dict[str, list[Latest]] = defaultdict(list)
    for latest in await _latest(services, SeriesFilter()):
        newest[latest.key.asset_id].append(latest)
    rows = []
    registry = services.gateway.registry
    for asset in registry.assets():
        found = newest.pop(asset.asset_id, [])
        rows.append(_device(asset.asset_id, asset.site_id, asset.name, asset.type, found))
        reported = registry.device_status(asset.asset_id)
        status = None
        if reported is not None:
            status = reported.status.as_dict() | {"reported_ms": round(reported.reported * 1000)}
        rows[-1] |= {"agent_id": asset.agent_id, "connected": asset.connected, "status": status}
    for asset_id, found in sorted(newest.items()):  # stored, but no longer served
        rows.append(_device(asset_id, found[0].key.site_id, "", "", found))
        rows[-1] |= {"agent_id": None, "connected": False, "status": None}
    return _json({"devices": rows})


def _device(
    asset_id: str, site_id: str, name: str, kind: str, found: list[Latest]
) -> dict[str, Any]:
    return {
        "asset_id": asset_id,
        "site_id": site_id,
        "name": name,
        "type": kind,
        "last_sample_ms": max((latest.timestamp_ms for latest in found), default=None),
        "metrics": sorted(latest.key.metric for latest in found),
    }


def _values(found: list[Latest]) -> dict[str, Any]:
    return {
        latest.key.metric: {
            "value": latest.value,
            "timestamp_ms": latest.timestamp_ms,
            "unit": _unit(latest.key.metric),
        }
        for latest in found
    }


@routes.get("/telemetry/{asset_id}")
async def telemetry(request: web.Request) -> web.Response:
    """The newest value of each metric of one asset."""
    _no_parameters(request)
    services = request.app[SERVICES]
    asset_id = request.match_info["asset_id"]
    found = await _latest(services, SeriesFilter(assets=frozenset({asset_id})))
    registry = services.gateway.registry
    if not found and not registry.knows_asset(asset_id):
        raise ApiError(404, f"no asset {asset_id!r}")
    row = next((row for row in registry.assets() if row.asset_id == asset_id), None)
    site_id = row.site_id if row is not None else found[0].key.site_id
    return _json(
        {
            "asset_id": asset_id,
            "site_id": site_id,
            "connected": row is not None and row.connected,
            "timestamp_ms": max((latest.timestamp_ms for latest in found), default=None),
            "values": _values(found),
        }
    )


@routes.get("/measurements")
async def measurements(request: web.Request) -> web.StreamResponse:
    """Buckets of the matching series in a time range at a resolution."""
    services = request.app[SERVICES]
    query = measurement_query(request.query, _now_ms())
    try:
        # Counting the series is cheap; refuse an oversized request before querying.
        series = await services.store.series(query.selection)
        check_points(query, len(series), request.app[MAX_POINTS])
        found = (
            await services.store.query(
                query.selection, query.start_ms, query.end_ms, query.resolution
            )
            if series
            else []
        )
    except QueryError as err:
        raise ApiError(400, str(err)) from None
    except StoreError as err:
        raise _store_failed(err) from None
    if count_points(found) > LARGE_ANSWER:
        chunks = await asyncio.to_thread(encode, query, found)
    else:
        chunks = encode(query, found)
    response = web.StreamResponse(headers={"Content-Type": "application/json; charset=utf-8"})
    response.content_length = sum(len(chunk) for chunk in chunks)
    try:
        await response.prepare(request)
        for chunk in chunks:  # written as encoded, never copied into one body
            await response.write(chunk)
        await response.write_eof()
    except ConnectionResetError:
        _LOGGER.debug("The client left before its measurements were sent")
    return response


@routes.get("/export/snapshot")
async def snapshot(request: web.Request) -> web.Response:
    """The newest value of every series, by asset."""
    _no_parameters(request)
    grouped: dict[tuple[str, str], list[Latest]] = defaultdict(list)
    for latest in await _latest(request.app[SERVICES], SeriesFilter()):
        grouped[latest.key.site_id, latest.key.asset_id].append(latest)
    return _json(
        {
            "generated_ms": _now_ms(),
            "assets": [
                {"site_id": site_id, "asset_id": asset_id, "values": _values(found)}
                for (site_id, asset_id), found in sorted(grouped.items())
            ],
        }
    )


def _point_map(point_map: PointMap) -> dict[str, Any]:
    device = point_map.device
    return {
        "id": device.id,
        "maker": device.maker,
        "model": device.model,
        "kind": str(device.kind),
        "documentation": device.documentation,
        "points": [
            {
                "name": name,
                "metric": point.metric,
                "address": point.address,
                "type": str(point.type),
                "registers": point.registers,
                "space": str(point.space),
                "access": str(point.access),
                "unit": _unit(point.metric),
                "allow_write": point.write is not None and point.write.allow_write,
            }
            for name, point in point_map.points.items()
        ],
    }


@routes.get("/export/registermaps")
async def registermaps(request: web.Request) -> web.Response:
    """The point-map catalog the hub knows."""
    _no_parameters(request)
    maps = request.app[SERVICES].registermaps
    return _json({"maps": [_point_map(point_map) for point_map in maps]})


@routes.post("/dispatch")
async def dispatch(request: web.Request) -> web.Response:
    """Route a battery setpoint to the agent serving the asset or site; audit it."""
    services = request.app[SERVICES]
    asked = dispatch_request(await json_body(request))
    gateway = services.gateway
    try:
        result = await gateway.dispatch(
            asked.power_w,
            issued_by=asked.requested_by,
            asset_id=asked.asset_id,
            site_id=None if asked.asset_id else asked.site_id,
            ttl=asked.ttl_s,
            release=asked.release,
            ack_timeout=None,
        )
    except RoutingError as err:
        status, reason = _ROUTING.get(err.reason, (409, Reason.DEVICE_ERROR))
        record = _refusal(services, asked, Outcome.REFUSED, reason, str(err))
        await _audit(services, [record])
        raise ApiError(
            status, str(err), code=err.reason, extra={"audit": record.as_dict()}
        ) from None
    except SetpointTimeoutError as err:
        record = _refusal(services, asked, Outcome.FAILED, Reason.DEVICE_ERROR, str(err))
        await _audit(services, [record])
        raise ApiError(
            504, str(err), extra={"command_id": err.command_id, "audit": record.as_dict()}
        ) from None
    except GatewayError as err:
        raise ApiError(400, str(err)) from None
    await _audit(services, ())  # the gateway queued the agent's records before it answered
    _LOGGER.info(
        "Dispatch %s to %s by %s: %s",
        "release" if asked.release else f"{asked.power_w:g} W",
        asked.asset_id or f"site {asked.site_id}",
        asked.requested_by,
        ", ".join(f"{r.device_id} {r.outcome}" for r in result.records) or result.error,
        extra={"command_id": result.command_id, "agent_id": result.agent_id},
    )
    return _json(
        {
            "command_id": result.command_id,
            "agent_id": result.agent_id,
            "error": result.error,
            "applied": bool(result.records)
            and all(r.outcome in (Outcome.APPLIED, Outcome.UNCHANGED) for r in result.records),
            "records": [record.as_dict() for record in result.records],
        }
    )


def _refusal(
    services: HubServices, asked: DispatchRequest, outcome: Outcome, reason: Reason, message: str
) -> AuditRecord:
    """The hub's own record of an attempt no agent answered."""
    site_id = asked.site_id or ""
    if asked.asset_id:
        row = next(
            (a for a in services.gateway.registry.assets() if a.asset_id == asked.asset_id), None
        )
        site_id = row.site_id if row is not None else site_id
    value = None if asked.release else asked.power_w
    return AuditRecord(
        site_id=site_id,
        device_id=asked.asset_id,
        command=BATTERY_POWER,
        requested=value,
        applied=None,
        outcome=outcome,
        reason=reason,
        message=message,
        requested_by=asked.requested_by,
        source="hub_api",
        timestamp=time.time(),
        ttl=asked.ttl_s,
    )


async def _audit(services: HubServices, records: Sequence[AuditRecord]) -> None:
    """Queue and write records, so ``/audit`` shows them when the answer arrives."""
    if records:
        services.audit.add(records)
    try:
        await services.audit.flush()
    except StoreError:  # the trail keeps them and retries; the answer still carries them
        services.audit.start()


@routes.get("/audit")
async def audit(request: web.Request) -> web.Response:
    """Audit records, newest first, a page at a time."""
    query = audit_query(request.query)
    try:
        page = await request.app[SERVICES].store.backend.audit(query)
    except QueryError as err:
        raise ApiError(400, str(err)) from None
    except StoreError as err:
        raise _store_failed(err) from None
    return _json(
        {"records": [record.as_dict() for record in page.records], "next_cursor": page.next_cursor}
    )


@routes.get("/")
@routes.get("/dashboard.js")
@routes.get("/dashboard.css")
async def dashboard(request: web.Request) -> web.Response:
    """The dashboard (the app's web UI through ingress): its page, script and stylesheet,
    revalidated by their digest (``ETag``)."""
    _no_parameters(request)
    asset = DASHBOARD[request.path]
    headers = _PAGE_HEADERS | {"ETag": asset.etag}
    if asset.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(
        body=asset.body, content_type=asset.content_type, charset="utf-8", headers=headers
    )


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    """This API's OpenAPI 3.1 document."""
    _no_parameters(request)
    return _json(request.app[OPENAPI])
