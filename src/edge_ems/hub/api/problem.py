"""What the API serves when the hub cannot start: ``/health`` with status ``error`` and,
to those who may see details, why; every other route answers 503 saying the same.

The app runs the hub this way after a configuration error, so the Supervisor's watchdog sees
a process that answers and the user sees the reason, instead of an app restarting over and
over (see ``python -m edge_ems.hub --app``).
"""

from __future__ import annotations

import secrets
import time

from aiohttp import web

from ... import __version__
from .auth import AUTHENTICATED, auth_middleware, rate_limit_middleware
from .errors import ApiError, dumps, error_middleware
from .ratelimit import RateLimiter

PROBLEM = web.AppKey("problem", str)
STARTED = web.AppKey("started", float)


def create_problem_app(
    problem: str,
    *,
    token: str | None,
    trust_ingress: bool,
    rate_limit: float = 20.0,
    rate_burst: int = 40,
) -> web.Application:
    """An API that reports ``problem``. Without a usable ``token``, details go through
    ingress only (when trusted)."""
    app = web.Application(
        middlewares=[
            error_middleware,
            rate_limit_middleware(
                RateLimiter(rate_limit, rate_burst), RateLimiter(rate_limit, rate_burst)
            ),
            auth_middleware(token or secrets.token_urlsafe(32), trust_ingress=trust_ingress),
        ]
    )
    app[PROBLEM] = problem
    app[STARTED] = time.time()
    app.router.add_get("/health", _health)
    app.router.add_route("*", "/{path:.*}", _unavailable)
    return app


async def _health(request: web.Request) -> web.Response:
    body: dict[str, object] = {"status": "error", "version": __version__}
    if request[AUTHENTICATED]:
        body |= {
            "problems": ["configuration"],
            "error": request.app[PROBLEM],
            "uptime_s": round(time.time() - request.app[STARTED], 3),
        }
    return web.json_response(body, dumps=dumps)


async def _unavailable(request: web.Request) -> web.Response:
    raise ApiError(
        503,
        f"the hub is not running: {request.app[PROBLEM]}",
        code="hub_not_running",
    )
