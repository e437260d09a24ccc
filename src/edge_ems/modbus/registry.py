"""One :class:`ModbusLink` per physical link, shared by every device behind it."""

from __future__ import annotations

import asyncio
import random

from ..exceptions import ConfigError
from .endpoints import Endpoint
from .link import LinkSettings, ModbusLink


class LinkRegistry:
    """The Modbus links of one owner (an integration entry, an agent).

    Devices on the same TCP endpoint or serial line get the same link, so their requests
    share one connection, one at a time. Not global state: each owner keeps its registry and
    closes it when done.
    """

    def __init__(self, *, rng: random.Random | None = None) -> None:
        self._rng = rng
        self._links: dict[tuple[str, ...], ModbusLink] = {}

    def link(self, endpoint: Endpoint, settings: LinkSettings | None = None) -> ModbusLink:
        """The link to ``endpoint``, created on first use.

        Raises :class:`ConfigError` if the link is already open with other line or link
        settings: one serial port cannot run at two baud rates.
        """
        key = tuple(str(part) for part in endpoint.params().endpoint)
        link = self._links.get(key)
        if link is None:
            link = self._links[key] = ModbusLink(endpoint, settings, rng=self._rng)
            return link
        if link.endpoint != endpoint or (settings is not None and settings != link.settings):
            raise ConfigError(
                f"{endpoint.label}: the link is already open as {link.endpoint.label} "
                f"with {link.settings}; devices sharing a link must agree on its settings"
            )
        return link

    async def close(self) -> None:
        """Close every link."""
        links, self._links = list(self._links.values()), {}
        await asyncio.gather(*(link.close() for link in links))
