"""A private mosquitto broker for a simulated site that was given none.

Runs ``mosquitto`` on a loopback port with a configuration of its own in a temporary
folder: anonymous, no persistence, nothing shared with a broker the machine may run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from ..exceptions import ConfigError, DeviceConnectionError

_CANDIDATES = ("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def find_mosquitto() -> str | None:
    """The mosquitto binary, or ``None`` if it is not installed."""
    for candidate in _CANDIDATES:
        found = shutil.which(candidate)
        if found is not None:
            return found
    return None


class Mosquitto:
    """A mosquitto process serving ``host:port`` until :meth:`stop`."""

    def __init__(self, host: str, port: int, *, startup_timeout: float = 15.0) -> None:
        self.host, self.port = host, port
        self._startup_timeout = startup_timeout
        self._process: asyncio.subprocess.Process | None = None
        self._folder: tempfile.TemporaryDirectory[str] | None = None

    async def start(self) -> None:
        """Start the broker and wait until it accepts connections."""
        binary = find_mosquitto()
        if binary is None:
            raise ConfigError("mosquitto is not installed; pass the address of a broker instead")
        self._folder = tempfile.TemporaryDirectory(prefix="edge-ems-mosquitto-")
        folder = Path(self._folder.name)
        lines = [
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            "persistence false",
            f"log_dest file {folder / 'mosquitto.log'}",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to a "mosquitto" user that may not exist
        config = folder / "mosquitto.conf"
        await asyncio.to_thread(config.write_text, "\n".join(lines) + "\n", encoding="utf-8")
        self._process = await asyncio.create_subprocess_exec(
            binary,
            "-c",
            str(config),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            await self._wait_listening(folder)
        except BaseException:
            await self.stop()
            raise

    async def _wait_listening(self, folder: Path) -> None:
        deadline = time.monotonic() + self._startup_timeout
        while True:
            process = self._process
            assert process is not None
            if process.returncode is not None:
                log = await asyncio.to_thread(_tail, folder / "mosquitto.log")
                raise DeviceConnectionError(f"mosquitto exited with {process.returncode}: {log}")
            try:
                _, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                if time.monotonic() > deadline:
                    raise DeviceConnectionError(
                        f"mosquitto did not listen on {self.host}:{self.port}"
                    ) from None
                await asyncio.sleep(0.05)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return

    async def stop(self) -> None:
        """Stop the broker and remove its folder."""
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(self._startup_timeout):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        folder, self._folder = self._folder, None
        if folder is not None:
            await asyncio.to_thread(folder.cleanup)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


def _tail(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-400:].strip()
    except OSError:
        return "no log"
