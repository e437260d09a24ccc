"""Helpers for tests that talk to real peers: free ports, a mosquitto broker, waiting, time.

Self-contained (the broker needs only the mosquitto binary), so other test packages can use
them and they can move to a shared place later.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

STARTUP_TIMEOUT = 15.0  # seconds; generous for a loaded two-core machine


def allow_loopback_sockets() -> None:
    """Let tests open sockets: they talk to live peers on the loopback interface.

    The Home Assistant test plugin (installed in the Python 3.14 environment only) blocks
    sockets when each test is set up; call this after that, from a fixture.
    """
    try:
        import pytest_socket
    except ImportError:
        return
    pytest_socket.enable_socket()


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    allow_loopback_sockets()  # session fixtures call this before any test's own fixtures
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Mosquitto:
    """A mosquitto broker on a loopback port that tests may stop and start again."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.host = "127.0.0.1"
        self.port = port
        self._workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            pytest.fail("mosquitto is not installed (apt-get install mosquitto)")
        self._binary = binary

    def start(self) -> None:
        """Start the broker and wait until it accepts connections (blocking)."""
        allow_loopback_sockets()
        config = self._workdir / "mosquitto.conf"
        lines = [
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            "persistence false",
            f"log_dest file {self._workdir / 'mosquitto.log'}",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # otherwise it drops to a 'mosquitto' user
        config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self._process = subprocess.Popen(
            [self._binary, "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                log = (self._workdir / "mosquitto.log").read_text(errors="replace")
                pytest.fail(f"mosquitto exited with {self._process.returncode}:\n{log}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
            except OSError:
                time.sleep(0.05)
                continue
            return
        self.stop()
        pytest.fail(f"mosquitto did not listen on {self.host}:{self.port}")

    def stop(self) -> None:
        """Stop the broker (blocking); clients see the connection drop."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STARTUP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def eventually[T](
    probe: Callable[[], Awaitable[T]], check: Callable[[T], bool], *, within: float = 20.0
) -> T:
    """Await ``probe`` until ``check`` accepts its result; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = await probe()
        if check(result):
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {within} s; last result: {result!r}")
        await asyncio.sleep(0.05)


def fast_clock(speed: float) -> Callable[[], float]:
    """Simulated time that runs ``speed`` times faster than the wall clock."""
    start, origin = time.time(), time.monotonic()
    return lambda: start + speed * (time.monotonic() - origin)
