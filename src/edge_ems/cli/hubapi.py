"""What the day-two commands share: where the hub's REST API is, its token, and one GET."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import aiohttp

from ..exceptions import ConfigError, EdgeEmsError

URL_VARIABLE = "EDGE_EMS_URL"
TOKEN_VARIABLE = "EDGE_EMS_API_TOKEN"  # noqa: S105 - a variable name, not a secret
DEFAULT_URL = "http://127.0.0.1:8099"


class HubApiError(EdgeEmsError):
    """The hub's API could not be reached or refused the request."""


def add_api_arguments(parser: argparse.ArgumentParser) -> None:
    """``--url``, ``--token`` and ``--token-file``."""
    parser.add_argument(
        "--url", default=None, help=f"the hub's REST API (default ${URL_VARIABLE} or {DEFAULT_URL})"
    )
    token = parser.add_mutually_exclusive_group()
    token.add_argument("--token", help=f"the API token (default ${TOKEN_VARIABLE})")
    token.add_argument("--token-file", type=Path, help="read the API token from this file")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")


def api_from_args(args: argparse.Namespace) -> tuple[str, str | None]:
    """The API's base URL and token (reads the token file: call before the loop)."""
    url = (args.url or os.environ.get(URL_VARIABLE) or DEFAULT_URL).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"--url: expected http(s)://host:port, not {url!r}")
    token = args.token or os.environ.get(TOKEN_VARIABLE)
    if args.token_file is not None:
        try:
            token = args.token_file.read_text(encoding="utf-8").strip()
        except OSError as err:
            raise ConfigError(f"--token-file: {err}") from None
    return url, token or None


class HubApi:
    """A small client of the hub's REST API."""

    def __init__(self, url: str, token: str | None, *, timeout: float = 30.0) -> None:
        self.url = url
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._session = aiohttp.ClientSession(
            headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
        )

    async def close(self) -> None:
        """Close the connection pool."""
        await self._session.close()

    async def get(self, path: str, params: Any = None) -> Any:
        """GET ``path`` and return its JSON; :class:`HubApiError` says what went wrong."""
        return await self.request("GET", path, params=params)

    async def request(self, method: str, path: str, *, body: Any = None, params: Any = None) -> Any:
        """One request with a JSON ``body`` (if any); its JSON answer."""
        text = await self.text(method, path, body=body, params=params)
        try:
            return json.loads(text)
        except ValueError:
            raise HubApiError(f"{path}: the hub did not answer with JSON") from None

    async def get_text(self, path: str, params: Any = None) -> str:
        """GET ``path`` and return its body."""
        return await self.text("GET", path, params=params)

    async def text(self, method: str, path: str, *, body: Any = None, params: Any = None) -> str:
        """One request; the body of a 2xx answer, else :class:`HubApiError` with the hub's
        message."""
        try:
            async with self._session.request(
                method, self.url + path, json=body, params=params
            ) as response:
                text = await response.text()
                if not 200 <= response.status < 300:
                    raise HubApiError(f"{method} {path}: HTTP {response.status}: {_message(text)}")
                return text
        except (aiohttp.ClientError, TimeoutError) as err:
            raise HubApiError(
                f"cannot reach the hub at {self.url}: {err or type(err).__name__}"
            ) from None


def _message(text: str) -> str:
    try:
        return str(json.loads(text)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return text[:200]
