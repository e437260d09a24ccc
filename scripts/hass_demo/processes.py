"""Home Assistant and the hub as child processes, each in a folder of its own."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
INTEGRATION = REPO / "custom_components" / "edge_ems"
BLUEPRINTS = REPO / "blueprints"
DOMAIN = "edge_ems"
STOP_TIMEOUT = 60.0
HUB_AGENT = "homeassistant"
"""The agent the hub lists for Home Assistant; each site connects as ``homeassistant/<site>``."""
LOOPBACK = "127.0.0.1"
"""The hub's gateway listens here: only Home Assistant, on this machine, connects to it."""

CONFIGURATION = """\
homeassistant:
  name: Edge EMS demo
  latitude: 50.08
  longitude: 14.42
  elevation: 200
  unit_system: metric
  time_zone: UTC
  currency: EUR
  country: CZ
frontend:
config:
api:
history:
logbook:
energy:
automation: []
script: {}
logger:
  default: warning
"""


class DemoError(Exception):
    """The demo cannot go on; the message says why."""


def shown_host(host: str) -> str:
    """Where a client on this machine reaches a server listening on ``host``."""
    return "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104


def http_storage(host: str, port: int) -> dict[str, Any]:
    """Home Assistant's stored HTTP settings: ``host:port``, everything else its defaults."""
    stable = {
        "server_host": [host],
        "server_port": port,
        "cors_allowed_origins": ["https://cast.home-assistant.io"],
        "login_attempts_threshold": -1,
        "ip_ban_enabled": True,
        "ssl_profile": "modern",
        "use_x_frame_options": True,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "error": None,
        "error_message": None,
    }
    data = {"stable": stable, "pending": None, "yaml_migration_done": True}
    return {"version": 2, "minor_version": 2, "key": "http", "data": data}


class ChildProcess:
    """A server the demo runs in a child process, stopped with SIGTERM (the hub flushes its
    store on it) and killed if it does not stop in time."""

    process: asyncio.subprocess.Process | None = None

    def exited(self) -> bool:
        """The process stopped on its own."""
        return self.process is not None and self.process.returncode is not None

    async def stop(self) -> None:
        """Ask the process to stop, and make sure it does."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


class HomeAssistantProcess(ChildProcess):
    """``hass`` in a child process, with a fresh configuration folder.

    ``integration`` is linked into ``custom_components`` (the checkout's, by default) or,
    with ``copy``, copied there as an installation from HACS or by hand would. ``env`` replaces
    the environment ``hass`` gets; ``skip_pip=False`` lets it install requirements itself.
    """

    def __init__(
        self,
        config_dir: Path,
        host: str,
        port: int,
        *,
        hass: str = "hass",
        integration: Path = INTEGRATION,
        copy: bool = False,
        env: Mapping[str, str] | None = None,
        skip_pip: bool = True,
    ) -> None:
        self.config_dir = config_dir
        self.host = host
        self.port = port
        self._hass = hass
        self._integration = integration
        self._copy = copy
        self._env = env
        self._skip_pip = skip_pip
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        """Where the frontend answers."""
        return f"http://{shown_host(self.host)}:{self.port}"

    def prepare(self) -> None:
        """Write the configuration and put the integration in (blocking; before the loop)."""
        target = self.config_dir / "custom_components" / DOMAIN
        target.parent.mkdir(parents=True, exist_ok=True)
        if self._copy:
            shutil.copytree(self._integration, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.symlink_to(self._integration)
        # The bundled blueprints, as if imported: they show under Settings > Blueprints.
        shutil.copytree(BLUEPRINTS, self.config_dir / "blueprints", dirs_exist_ok=True)
        (self.config_dir / "configuration.yaml").write_text(CONFIGURATION, encoding="utf-8")
        # Home Assistant keeps its HTTP settings in storage; settings from YAML would be a
        # trial that reverts unless confirmed in the UI within five minutes.
        storage = self.config_dir / ".storage"
        storage.mkdir()
        (storage / "http").write_text(json.dumps(http_storage(self.host, self.port)), "utf-8")

    async def start(self) -> None:
        """Start ``hass``; its log goes to ``home-assistant.log`` in the folder."""
        hass = shutil.which(self._hass)
        if hass is None:
            raise DemoError(f"{self._hass} is not installed here; run through scripts/in-env")
        skip = ["--skip-pip"] if self._skip_pip else []
        self.process = await asyncio.create_subprocess_exec(
            hass,
            "-c",
            str(self.config_dir),
            *skip,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env=None if self._env is None else dict(self._env),
            start_new_session=True,  # Ctrl-C reaches us; we stop hass in order
        )

    def log_text(self) -> str:
        """Home Assistant's log so far (blocking)."""
        try:
            return (self.config_dir / "home-assistant.log").read_text(
                encoding="utf-8", errors="replace"
            )
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        """The end of Home Assistant's log, for errors (blocking)."""
        text = self.log_text()
        return "\n".join(text.splitlines()[-lines:]) if text else "(no log)"


class HubProcess(ChildProcess):
    """The hub (``python -m edge_ems.hub``) in a child process, with a folder of its own for
    its configuration, store and log, and tokens made for this run."""

    def __init__(
        self,
        folder: Path,
        host: str,
        api_port: int,
        grpc_port: int,
        planner: Mapping[str, Any] | None = None,
    ) -> None:
        self.folder = folder
        self.planner = planner
        self.host = host
        self.api_port = api_port
        self.grpc_port = grpc_port
        self.api_token = secrets.token_urlsafe(24)
        self.agent_token = secrets.token_urlsafe(24)
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        """Where the REST API answers."""
        return f"http://{shown_host(self.host)}:{self.api_port}"

    @property
    def gateway(self) -> str:
        """The gateway's address for the integration's options (Home Assistant runs here)."""
        return f"{LOOPBACK}:{self.grpc_port}"

    @property
    def log(self) -> Path:
        """The hub's log (plain text)."""
        return self.folder / "hub.log"

    def prepare(self) -> None:
        """Write the hub's configuration (blocking; before the loop)."""
        self.folder.mkdir(parents=True)
        config = {
            "api_host": self.host,
            "api_port": self.api_port,
            "api_token": self.api_token,
            "grpc_host": LOOPBACK,
            "grpc_port": self.grpc_port,
            "agents": [{"id": HUB_AGENT, "token": self.agent_token}],
            "store_path": str(self.folder / "store.sqlite"),
            "parquet_dir": str(self.folder / "parquet"),
            "log_format": "text",
        }
        if self.planner is not None:
            config["planner"] = dict(self.planner)
        path = self.folder / "hub.yaml"
        path.touch(mode=0o600)  # it holds the tokens
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")

    async def start(self) -> None:
        """Start the hub; its log goes to ``hub.log`` in its folder."""
        # The demo's hub is configured by its file alone: the caller's EDGE_EMS_* variables
        # or DATABASE_URL would point it elsewhere.
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("EDGE_EMS_") and key != "DATABASE_URL"
        }
        log = await asyncio.to_thread(self.log.open, "ab")
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "edge_ems.hub", "--config", str(self.folder / "hub.yaml"),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log,
                env=env,
                start_new_session=True,  # Ctrl-C reaches us; we stop the hub after HA
            )  # fmt: skip
        finally:
            await asyncio.to_thread(log.close)

    def log_tail(self) -> str:
        """The last line of the hub's log: why it stopped (blocking)."""
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return next((line for line in reversed(text.splitlines()) if line.strip()), "(no log)")


@contextlib.asynccontextmanager
async def home_assistant(
    host: str, port: int, folder: Path, **options: Any
) -> AsyncIterator[HomeAssistantProcess]:
    """Home Assistant configured in ``folder``, stopped on the way out."""
    hass = HomeAssistantProcess(folder, host, port, **options)
    try:
        await asyncio.to_thread(hass.prepare)
        await hass.start()
        yield hass
    finally:
        await hass.stop()


@contextlib.asynccontextmanager
async def hub_process(
    folder: Path,
    host: str,
    api_port: int,
    grpc_port: int,
    planner: Mapping[str, Any] | None = None,
) -> AsyncIterator[HubProcess]:
    """The hub configured in ``folder`` (with ``planner`` as its planner), stopped on the way
    out."""
    hub = HubProcess(folder, host, api_port, grpc_port, planner)
    try:
        await asyncio.to_thread(hub.prepare)
        await hub.start()
        yield hub
    finally:
        await hub.stop()
