"""One GET against a price or forecast service, its failures sorted into the planner's
source errors (frenck's style: an injected ``aiohttp.ClientSession``, a timeout, one
exception hierarchy)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping

import aiohttp
from yarl import URL

from ..errors import SourceAuthError, SourceConnectionError, SourceDataError, SourceRateLimitError

MAX_BODY = 4 * 1024 * 1024
"""No price or forecast answer is anywhere near this; more is not one."""
DEFAULT_TIMEOUT = 30.0


async def fetch(
    session: aiohttp.ClientSession,
    url: URL,
    *,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT,
    name: str,
    secret: str | None = None,
) -> tuple[int, bytes]:
    """GET ``url``; its status (2xx) and body, or the error that says what went wrong.

    ``name`` names the service in messages; ``secret`` (an API key in the path) never
    appears in them. 401/403 are :class:`SourceAuthError`, 429 is
    :class:`SourceRateLimitError` (with ``Retry-After``), other statuses from 400 up are
    :class:`SourceConnectionError` for 5xx (try later) and :class:`SourceDataError` for 4xx.
    """
    # A token in the query or the path must never reach a message.
    shown = str(url.with_query(None))
    if secret:
        shown = shown.replace(secret, "***")
    try:
        async with asyncio.timeout(timeout_s):
            async with session.get(url, params=params, headers=headers) as response:
                body = await response.content.read(MAX_BODY + 1)
                status = response.status
                retry_after = response.headers.get("Retry-After")
    except TimeoutError as err:
        raise SourceConnectionError(f"{name} did not answer within {timeout_s:g} s") from err
    except (aiohttp.ClientError, socket.gaierror, OSError) as err:
        raise SourceConnectionError(f"{name} cannot be reached at {shown}: {err}") from err
    if len(body) > MAX_BODY:
        raise SourceDataError(f"{name} answered with more than {MAX_BODY} bytes")
    if status in (401, 403):
        raise SourceAuthError(f"{name} refused the request ({status}): check the API token")
    if status == 429:
        seconds = _seconds(retry_after)
        raise SourceRateLimitError(
            f"{name} asks to be called less often (429)", retry_after=seconds
        )
    if status >= 500:
        raise SourceConnectionError(f"{name} answered {status}: {_snippet(body)}")
    if status >= 400:
        raise SourceDataError(f"{name} refused the request ({status}): {_snippet(body)}")
    return status, body


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _snippet(body: bytes) -> str:
    text = body[:200].decode("utf-8", errors="replace").strip()
    return " ".join(text.split()) or "(no body)"
