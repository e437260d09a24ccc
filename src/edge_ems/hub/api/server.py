"""The aiohttp application and the server that listens for it.

A request aiohttp cannot parse (a request line or header over 8 KiB, a malformed header) is
answered by aiohttp itself, before any route or middleware: ``400`` in ``text/plain``, as
the OpenAPI document says. aiohttp logs each with a traceback; here each becomes one
warning line per client address and minute, without the request's bytes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ...exceptions import ConfigError
from ..config import MAX_MEASUREMENT_POINTS
from ..logs import RefusalLog
from ..planning.routes import PLANNER
from ..planning.routes import routes as planner_routes
from .auth import auth_middleware, rate_limit_middleware
from .errors import error_middleware
from .metrics import ApiMetrics
from .openapi import document
from .ratelimit import RateLimiter
from .routes import MAX_POINTS, OPENAPI, SERVICES, routes
from .services import HubServices

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """Who may call, how often, and how much they may send."""

    token: str
    trust_ingress: bool = False
    rate_limit: float = 20.0
    rate_burst: int = 40
    max_body_bytes: int = 64 * 1024
    max_points: int = MAX_MEASUREMENT_POINTS
    """Most buckets (series times buckets in the range) one ``/measurements`` answer may hold."""

    def __post_init__(self) -> None:
        if self.max_points < 1:
            raise ConfigError("max_points must be at least 1")


def create_app(services: HubServices, settings: ApiSettings) -> web.Application:
    """The API as an aiohttp application (middlewares run outermost first)."""
    metrics = ApiMetrics(services)
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            metrics.middleware(),
            error_middleware,
            rate_limit_middleware(
                RateLimiter(settings.rate_limit, settings.rate_burst),
                RateLimiter(settings.rate_limit, settings.rate_burst),
            ),
            auth_middleware(settings.token, trust_ingress=settings.trust_ingress),
        ],
    )
    app[SERVICES] = services
    app[MAX_POINTS] = settings.max_points
    planned = None if services.planner is None else sorted(services.planner.sites)
    app[OPENAPI] = document(max_points=settings.max_points, planned_sites=planned)
    app.add_routes(routes)
    app.add_routes(planner_routes)
    if services.planner is not None:
        app[PLANNER] = services.planner
    app.router.add_get("/metrics", metrics.handler)
    return app


class _MalformedRequests(logging.Filter):
    """Turns aiohttp's traceback for a request it could not parse into a throttled line."""

    def __init__(self) -> None:
        super().__init__()
        self._log = RefusalLog(_LOGGER, "a malformed HTTP request")

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError) or not 400 <= error.code < 500:
            return True
        # The first words only: the rest quotes the request's bytes (a token, perhaps).
        reason = (
            error.message.splitlines()[0].split(": ", 1)[0].rstrip(":") if error.message else ""
        )
        address = record.args[0] if isinstance(record.args, tuple) and record.args else None
        self._log.note(str(address or "an unknown address"), reason or type(error).__name__)
        return False


class ApiServer:
    """Serves the API on a TCP port until stopped."""

    def __init__(self, app: web.Application) -> None:
        self._malformed = _MalformedRequests()
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self.port: int | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0 picks a port); return the port."""
        await self._runner.setup()
        logging.getLogger("aiohttp.server").addFilter(self._malformed)
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError as err:
            await self.stop()
            raise ConfigError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
        self.port = int(self._runner.addresses[0][1])
        _LOGGER.info("REST API listening on %s:%d", host, self.port)
        return self.port

    async def stop(self) -> None:
        """Finish answering and stop listening."""
        await self._runner.cleanup()
        logging.getLogger("aiohttp.server").removeFilter(self._malformed)
