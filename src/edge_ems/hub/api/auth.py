"""Who may call the API: a bearer token, or Home Assistant's ingress proxy.

Every route but ``/health`` needs ``Authorization: Bearer <token>``, compared in constant
time. With ``trust_ingress`` (the app sets it) a request is also let in when it comes from
the Supervisor's ingress proxy as the Supervisor documents it: from ``172.30.32.2`` and
carrying ``X-Ingress-Path``. Home Assistant authenticated the user before proxying, and no
other container can send from that address.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection

from aiohttp import web
from aiohttp.typedefs import Middleware

from .errors import ApiError, Handler
from .ratelimit import RateLimiter, retry_after

INGRESS_PROXY = "172.30.32.2"
INGRESS_HEADER = "X-Ingress-Path"
PUBLIC_PATHS = frozenset({"/health"})

_UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="edge-ems"'}


def bearer(header: str) -> str | None:
    """The token of an ``Authorization: Bearer`` header."""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def from_ingress(request: web.Request) -> bool:
    """Whether the request came through the Supervisor's ingress proxy."""
    return request.remote == INGRESS_PROXY and INGRESS_HEADER in request.headers


def auth_middleware(
    token: str, *, trust_ingress: bool, public: Collection[str] = PUBLIC_PATHS
) -> Middleware:
    """A middleware refusing requests without the token (or ingress, when trusted)."""
    expected = token.encode()

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in public or (trust_ingress and from_ingress(request)):
            return await handler(request)
        given = bearer(request.headers.get("Authorization", ""))
        # compare_digest takes as long for any wrong token of a given length.
        if given is None or not hmac.compare_digest(expected, given.encode()):
            raise ApiError(401, "a valid bearer token is required", headers=_UNAUTHORIZED)
        return await handler(request)

    return authenticate


def rate_limit_middleware(limiter: RateLimiter) -> Middleware:
    """A middleware answering 429 with ``Retry-After`` once a client exceeds its rate."""

    @web.middleware
    async def limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        wait = limiter.take(request.remote or "unknown")
        if wait > 0:
            raise ApiError(
                429,
                f"too many requests; retry in {wait:.1f} s",
                headers={"Retry-After": retry_after(wait)},
            )
        return await handler(request)

    return limit
