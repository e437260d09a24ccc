"""What a site's devices learned about themselves, kept from one start to the next.

A device that refused large reads, the models of a SunSpec chain, who the device said it was
and which metrics it reported: with these the next start begins right, and a device that is
away at boot still has its entities. Home Assistant keeps them in its own storage; the agent
in a JSON file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

_LOGGER = logging.getLogger(__name__)

type Learned = dict[str, dict[str, Any]]
"""By device id: JSON-ready facts about the device."""


class LearnedStore(Protocol):
    """Where a site keeps what its devices learned."""

    async def load(self) -> Learned:
        """Everything kept; empty when nothing was."""

    async def save(self, learned: Mapping[str, Mapping[str, Any]]) -> None:
        """Keep ``learned`` in place of what was kept before."""


class JsonFileStore:
    """A :class:`LearnedStore` in one JSON file, replaced atomically on every save."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = asyncio.Lock()

    async def load(self) -> Learned:
        """The file's content; a missing or unreadable file is nothing learned yet."""
        return await asyncio.to_thread(self._read)

    async def save(self, learned: Mapping[str, Mapping[str, Any]]) -> None:
        """Write the file next to itself, then move it into place."""
        text = json.dumps(learned, indent=1, sort_keys=True)
        async with self._lock:  # one writer of the file and its partial at a time
            await asyncio.to_thread(self._write, text)

    def _read(self) -> Learned:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as err:
            _LOGGER.warning("%s: starting without what devices learned before: %s", self.path, err)
            return {}
        if not isinstance(data, dict):
            return {}
        return {key: value for key, value in data.items() if isinstance(value, dict)}

    def _write(self, text: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        with partial.open("w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        partial.replace(self.path)
