"""Error answers: every refusal is JSON ``{"error": {"status", "code", "message"}}``.

Handlers raise :class:`ApiError`; the error middleware turns it, aiohttp's own HTTP errors
(404, 405, 413) and anything unexpected into that shape, so a client never sees an HTML
page or a traceback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

_LOGGER = logging.getLogger(__name__)

type Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal_error",
    504: "agent_timeout",
}


class ApiError(Exception):
    """A refusal with its HTTP status, a stable code and a message for people."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _CODES.get(status, "error")
        self.message = message
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})


def error_response(error: ApiError) -> web.Response:
    """The JSON answer for ``error``."""
    body = {"error": {"status": error.status, "code": error.code, "message": error.message}}
    body.update(error.extra)
    return web.json_response(body, status=error.status, headers=error.headers, dumps=dumps)


def dumps(value: Any) -> str:
    """Compact JSON; non-finite numbers never reach it (the store refuses them)."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into a JSON error answer."""
    try:
        return await handler(request)
    except ApiError as err:
        return error_response(err)
    except web.HTTPException as err:
        if err.status < 400:
            raise
        headers = {key: value for key, value in err.headers.items() if key == "Allow"}
        message = err.reason if err.status != 413 else "the request body is too large"
        return error_response(ApiError(err.status, message, headers=headers))
    except Exception:
        _LOGGER.exception("Unexpected error answering %s %s", request.method, request.path)
        return error_response(ApiError(500, "internal error; see the hub's log"))
