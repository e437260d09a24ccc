"""Who may call the API: a bearer token, or Home Assistant's ingress proxy.

Every route but ``/health`` and the dashboard's files needs ``Authorization: Bearer <token>``,
compared in constant time; ``/health`` answers anyone, with its details only to those who
could call the rest (:data:`AUTHENTICATED` tells the handler). The dashboard's page, script
and stylesheet hold no data and no secret: anyone may load them, and the page then asks for
the token (kept in the browser's tab, never put in the page) unless it came through ingress.
With ``trust_ingress`` (the app sets it) a request is also let in when it comes from the
Supervisor's ingress proxy as the Supervisor documents it: from ``172.30.32.2`` and carrying
``X-Ingress-Path``. Home Assistant authenticated the user before proxying, and no other
container can send from that address.

Rate limits are per client address; the public paths have buckets of their own, so
monitoring still gets answers while the same address is being limited for guessing at the
rest.
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
PUBLIC_PATHS = frozenset({"/health", "/", "/dashboard.js", "/dashboard.css"})
AUTHENTICATED = web.RequestKey("authenticated", bool)
"""Set on every request the auth middleware lets through: whether it showed the token (or
came through ingress), which public routes use to decide how much they tell."""

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

    def valid(request: web.Request) -> bool:
        if trust_ingress and from_ingress(request):
            return True
        given = bearer(request.headers.get("Authorization", ""))
        # compare_digest takes as long for any wrong token of a given length.
        return given is not None and hmac.compare_digest(expected, given.encode())

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        request[AUTHENTICATED] = valid(request)
        if not request[AUTHENTICATED] and request.path not in public:
            raise ApiError(401, "a valid bearer token is required", headers=_UNAUTHORIZED)
        return await handler(request)

    return authenticate


def rate_limit_middleware(
    limiter: RateLimiter, public: RateLimiter, public_paths: Collection[str] = PUBLIC_PATHS
) -> Middleware:
    """A middleware answering 429 with ``Retry-After`` once a client exceeds its rate;
    requests for ``public_paths`` draw on the ``public`` limiter's buckets instead."""

    @web.middleware
    async def limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        buckets = public if request.path in public_paths else limiter
        wait = buckets.take(request.remote or "unknown")
        if wait > 0:
            raise ApiError(
                429,
                f"too many requests; retry in {wait:.1f} s",
                headers={"Retry-After": retry_after(wait)},
            )
        return await handler(request)

    return limit
