"""The aiohttp application and the server that listens for it."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web

from ...exceptions import ConfigError
from ..config import MAX_MEASUREMENT_POINTS
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
    app[OPENAPI] = document(max_points=settings.max_points)
    app.add_routes(routes)
    app.router.add_get("/metrics", metrics.handler)
    return app


class ApiServer:
    """Serves the API on a TCP port until stopped."""

    def __init__(self, app: web.Application) -> None:
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self.port: int | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0 picks a port); return the port."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError as err:
            await self._runner.cleanup()
            raise ConfigError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
        self.port = int(self._runner.addresses[0][1])
        _LOGGER.info("REST API listening on %s:%d", host, self.port)
        return self.port

    async def stop(self) -> None:
        """Finish answering and stop listening."""
        await self._runner.cleanup()
