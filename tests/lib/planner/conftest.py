"""A local HTTP server answering as the price and forecast services do, from recorded
answers (built from the providers' documented formats) in ``data/recorded``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from ..bms.support import allow_loopback_sockets

RECORDED = Path(__file__).with_name("data") / "recorded"

type Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def recorded(name: str, status: int = 200, content_type: str | None = None) -> web.Response:
    """A recorded answer as the service sends it."""
    path = RECORDED / name
    kind = content_type or ("application/xml" if path.suffix == ".xml" else "application/json")
    return web.Response(body=path.read_bytes(), status=status, content_type=kind)


class Services:
    """The services' routes on one loopback server; ``calls`` lists the requests seen."""

    def __init__(self) -> None:
        self.calls: list[URL] = []
        self.app = web.Application()
        self.app.router.add_get("/{tail:.*}", self._dispatch)
        self.routes: dict[str, Handler] = {}

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.calls.append(request.rel_url)
        for prefix, handler in self.routes.items():
            if request.path.startswith(prefix):
                return await handler(request)
        return web.Response(status=404, text="not found")


@pytest.fixture
async def services() -> AsyncIterator[tuple[Services, URL]]:
    """The services, and the base URL that reaches them."""
    allow_loopback_sockets()
    fake = Services()
    server = TestServer(fake.app, host="127.0.0.1")
    await server.start_server()
    try:
        yield fake, URL(str(server.make_url("/")))
    finally:
        await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """The session the clients are given, as Home Assistant or the hub would give theirs."""
    async with aiohttp.ClientSession() as client:
        yield client
