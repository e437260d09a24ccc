"""The Home Assistant demo: a real Home Assistant with Edge EMS, the simulated site and the hub.

What ``make demo`` runs inside ``scripts/in-env``:

1. the simulated site starts in this process (Deye and SDM630 behind a Modbus TCP gateway,
   the SunSpec hybrid inverter, the OPC UA BESS), on free loopback ports;
2. the hub (``python -m edge_ems.hub``) starts beside it with a configuration written here:
   its REST API (default port 8099), its gRPC gateway (default 50051), a store of its own,
   and an API token and an agent token made for this run;
3. ``hass -c CONFIG`` starts from a fresh configuration folder with the integration linked
   into ``custom_components`` and its blueprints in ``blueprints``;
4. onboarding is done over HA's own API with a demo user, then the site and its devices are
   added through the integration's config flow and subentry flows, as a person would in the
   UI (every step connects to the simulated device before it creates anything); the options
   flow switches control on and links the site to the hub;
5. once the entities report live values and the hub hears the site, the URL and the login
   are printed, and the hub's URL, token and two curl commands to try; Ctrl-C stops Home
   Assistant, the hub and the site and removes the folder.

``--once`` prints the live entities, charges the site's batteries for a minute through
``edge_ems.dispatch``, discharges them through the hub's ``/dispatch``, waits for the hub's
first stored minute in ``/measurements`` and stops instead of waiting (a smoke test);
``--screenshot FILE`` saves the integration's page as headless chromium shows it to the demo
user.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import secrets
import shlex
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from edge_ems.cli.sim import SERVER_LOGGERS, opcua_cache, quiet_libraries, wait_for_stop
from edge_ems.sim.config import SiteConfig
from edge_ems.sim.site import SimulatedSite, SiteEndpoints, free_port

REPO = Path(__file__).resolve().parent.parent
INTEGRATION = REPO / "custom_components" / "edge_ems"
BLUEPRINTS = REPO / "blueprints"
DOMAIN = "edge_ems"
USER = "demo"
PASSWORD = "edge-ems-demo"  # noqa: S105 - a throwaway login for a local demo, printed anyway
START_TIMEOUT = 300.0
"""Home Assistant's first start installs nothing (``--skip-pip``) but still takes a while on a
small machine."""
LIVE_TIMEOUT = 180.0
STOP_TIMEOUT = 60.0
HUB_AGENT = "homeassistant"
"""The agent the hub lists for Home Assistant; each site connects as ``homeassistant/<site>``."""
MEASURED_TIMEOUT = 240.0
"""The hub's store writes a minute once it has closed (10 s after it ends), so the first one
shows in ``/measurements`` about a minute after the site's first telemetry."""
HUB_DISPATCH = {"power_w": 2000, "ttl_s": 60}
"""What ``--once`` asks of the site through the hub: discharge 2 kW for a minute."""
CHROMIUM = "/usr/bin/chromium"
LOOPBACK = "127.0.0.1"
"""The hub's gateway listens here: only Home Assistant, on this machine, connects to it."""
SITE = SiteConfig(can_bms=False, mqtt_bms=None)
"""The CAN BMS runs on python-can's in-process virtual bus, which Home Assistant, another
process, cannot reach; the MQTT BMS needs HA's MQTT integration set up against the site's
broker, which the demo leaves out to stay small."""

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

_LOGGER = logging.getLogger("demo_ha")


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


class DemoError(Exception):
    """The demo cannot go on; the message says why."""


type Answer = Mapping[str, Any] | Callable[[Mapping[str, Any]], Mapping[str, Any]]
"""What to answer in a step: fixed values, or values made from the form HA shows."""


@dataclass(frozen=True, slots=True)
class Device:
    """One device of the simulated site as the demo adds it: its subentry flow's answers."""

    kind: str
    steps: Mapping[str, Answer]
    limits: Mapping[str, float] | None = None
    """A battery's limits and capacity, for the site's options."""


SITE_ID = "demo_home"
"""The site id as the config flow keeps it (it slugifies what is typed)."""
SITE_STEPS: Mapping[str, Answer] = {"user": {"site_name": "Demo home", "site_id": SITE_ID}}
CONTROL = {"enable_control": True, "dry_run": False, "lease_ttl": 60, "eeprom_daily_writes": 100}
"""The demo's site may be controlled: its devices are simulated. A real site starts with
control off and dry run on."""


def site_devices(endpoints: SiteEndpoints) -> list[Device]:
    """The devices of the simulated site the demo adds, each as a person would in the UI."""
    host, sunspec, bess = endpoints.host, SITE.sunspec, SITE.bess
    devices = [
        Device("modbus", {
            "user": {"point_map": "deye_sun_sg_hybrid", "transport": "tcp"},
            "network": {"host": host, "port": endpoints.gateway_port,
                        "unit_id": endpoints.deye_unit},
        }),
        Device("modbus", {
            "user": {"point_map": "eastron_sdm630", "transport": "tcp"},
            "network": {"host": host, "port": endpoints.gateway_port,
                        "unit_id": endpoints.meter_unit},
        }),
    ]  # fmt: skip
    if endpoints.sunspec_port is not None and sunspec is not None:
        steps = {"user": {"host": host, "port": endpoints.sunspec_port,
                          "unit_id": endpoints.sunspec_unit}}  # fmt: skip
        limits = {"max_charge_w": sunspec.max_power_w, "max_discharge_w": sunspec.max_power_w,
                  "capacity_wh": sunspec.capacity_wh}  # fmt: skip
        devices.append(Device("sunspec", steps, limits))
    if endpoints.opcua_url is not None and bess is not None:
        steps = {"user": {"url": endpoints.opcua_url, "node_map": "sim_bess"}}
        limits = {"max_charge_w": bess.max_power_w, "max_discharge_w": bess.max_power_w,
                  "capacity_wh": bess.capacity_wh}  # fmt: skip
        devices.append(Device("opcua", steps, limits))
    return devices


def shown_host(host: str) -> str:
    """Where a client on this machine reaches a server listening on ``host``."""
    return "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104


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
    """``hass`` in a child process, with a fresh configuration folder."""

    def __init__(self, config_dir: Path, host: str, port: int) -> None:
        self.config_dir = config_dir
        self.host = host
        self.port = port
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        """Where the frontend answers."""
        return f"http://{shown_host(self.host)}:{self.port}"

    def prepare(self) -> None:
        """Write the configuration and link the integration in (blocking; before the loop)."""
        (self.config_dir / "custom_components").mkdir(parents=True, exist_ok=True)
        (self.config_dir / "custom_components" / DOMAIN).symlink_to(INTEGRATION)
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
        hass = shutil.which("hass")
        if hass is None:
            raise DemoError("hass is not installed here; run the demo through scripts/in-env")
        self.process = await asyncio.create_subprocess_exec(
            hass,
            "-c",
            str(self.config_dir),
            "--skip-pip",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches us; we stop hass in order
        )

    def log_tail(self, lines: int = 30) -> str:
        """The end of Home Assistant's log, for errors."""
        log = self.config_dir / "home-assistant.log"
        try:
            text = log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


class HomeAssistantApi:
    """Home Assistant's HTTP API, as the frontend uses it."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self._session = session
        self.url = url
        self.client_id = f"{url}/"
        self._token: str | None = None

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        """One JSON request; a refusal becomes a :class:`DemoError` with HA's message."""
        async with self._session.request(
            method, f"{self.url}{path}", json=body, headers=self._headers
        ) as response:
            text = await response.text()
            if response.status >= 400:
                raise DemoError(f"{method} {path}: {response.status} {text[:500]}")
            return json.loads(text) if text else None

    async def wait_until_up(self, hass: HomeAssistantProcess) -> None:
        """Until the onboarding API answers."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if hass.exited():
                log = await asyncio.to_thread(hass.log_tail)
                raise DemoError(f"Home Assistant stopped while starting:\n{log}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, DemoError):
                await self.request("GET", "/api/onboarding")
                return
            await asyncio.sleep(1.0)
        raise DemoError(f"Home Assistant did not answer in {START_TIMEOUT:.0f} s")

    async def onboard(self) -> None:
        """Create the demo user and finish onboarding, keeping the user's token."""
        created = await self.request(
            "POST",
            "/api/onboarding/users",
            {
                "client_id": self.client_id,
                "name": "Demo",
                "username": USER,
                "password": PASSWORD,
                "language": "en",
            },
        )
        form = {
            "grant_type": "authorization_code",
            "code": created["auth_code"],
            "client_id": self.client_id,
        }
        async with self._session.post(f"{self.url}/auth/token", data=form) as response:
            if response.status != 200:
                raise DemoError(f"login failed: {response.status} {await response.text()}")
            self._token = (await response.json())["access_token"]
        await self.request("POST", "/api/onboarding/core_config")
        await self.request("POST", "/api/onboarding/analytics")
        await self.request(
            "POST",
            "/api/onboarding/integration",
            {"client_id": self.client_id, "redirect_uri": f"{self.url}/?auth_callback=1"},
        )

    async def run_flow(
        self, index: str, start: Mapping[str, Any], steps: Mapping[str, Answer]
    ) -> Any:
        """Walk a config, subentry or options flow to its end with ``steps``' answers."""
        result = await self.request("POST", index, dict(start))
        while result.get("type") == "form":
            step_id = result["step_id"]
            if result.get("errors"):
                raise DemoError(f"{start}: step {step_id} refused: {result['errors']}")
            answer = steps.get(step_id)
            if answer is None:
                raise DemoError(f"{start}: the flow asks for step {step_id!r}, which the demo "
                                f"does not know; fields: {result.get('data_schema')}")  # fmt: skip
            values = answer(result) if callable(answer) else answer
            result = await self.request("POST", f"{index}/{result['flow_id']}", dict(values))
        if result.get("type") != "create_entry":
            raise DemoError(f"{start}: the flow ended with {result}")
        return result

    async def wait_loaded(self, entry_id: str) -> None:
        """Until the config entry is set up."""
        deadline = time.monotonic() + LIVE_TIMEOUT
        state = "unknown"
        while time.monotonic() < deadline:
            entries = await self.request("GET", "/api/config/config_entries/entry")
            state = next((e["state"] for e in entries if e["entry_id"] == entry_id), "missing")
            if state == "loaded":
                return
            await asyncio.sleep(1.0)
        raise DemoError(f"the site did not load in {LIVE_TIMEOUT:.0f} s (state {state})")

    async def websocket(self, command: Mapping[str, Any]) -> Any:
        """One command over the websocket API, as the frontend sends it."""
        async with self._session.ws_connect(f"{self.url}/api/websocket") as ws:
            await ws.receive_json()  # auth_required
            await ws.send_json({"type": "auth", "access_token": self._token})
            if (await ws.receive_json()).get("type") != "auth_ok":
                raise DemoError("the websocket API refused the demo user's token")
            await ws.send_json({"id": 1, **command})
            reply = await ws.receive_json()
        if not reply.get("success"):
            raise DemoError(f"{command['type']}: {reply.get('error')}")
        return reply["result"]

    async def template(self, template: str) -> Any:
        """Render a template in Home Assistant and decode its JSON result."""
        async with self._session.post(
            f"{self.url}/api/template", json={"template": template}, headers=self._headers
        ) as response:
            text = await response.text()
            if response.status != 200:
                raise DemoError(f"template: {response.status} {text[:300]}")
            return json.loads(text)


class HubProcess(ChildProcess):
    """The hub (``python -m edge_ems.hub``) in a child process, with a folder of its own for
    its configuration, store and log, and tokens made for this run."""

    def __init__(self, folder: Path, host: str, api_port: int, grpc_port: int) -> None:
        self.folder = folder
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
        """The last line of the hub's log: why it stopped."""
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return next((line for line in reversed(text.splitlines()) if line.strip()), "(no log)")


class HubApi:
    """The hub's REST API with the run's API token."""

    def __init__(self, session: aiohttp.ClientSession, hub: HubProcess) -> None:
        self._session = session
        self._hub = hub
        self._headers = {"Authorization": f"Bearer {hub.api_token}"}

    async def request(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        """One JSON request; a refusal becomes a :class:`DemoError` with the hub's message."""
        async with self._session.request(
            method, f"{self._hub.url}{path}", json=body, params=params, headers=self._headers
        ) as response:
            text = await response.text()
            if response.status >= 400:
                raise DemoError(f"hub: {method} {path}: {response.status} {text[:500]}")
            return json.loads(text)

    async def until[T](self, probe: Callable[[], Awaitable[T]], what: str, seconds: float) -> T:
        """Poll ``probe`` until it returns something true; the hub stopping, or the timeout,
        is an error that says what the hub last answered."""
        deadline = time.monotonic() + seconds
        last = ""
        while time.monotonic() < deadline:
            if self._hub.exited():
                log = await asyncio.to_thread(self._hub.log_tail)
                raise DemoError(f"the hub stopped: {log}")
            try:
                if found := await probe():
                    return found
            except (aiohttp.ClientError, TimeoutError, DemoError) as err:
                last = f" (last answer: {err})" if str(err) else ""
            await asyncio.sleep(1.0)
        raise DemoError(f"the hub did not {what} in {seconds:.0f} s{last}")

    async def wait_until_up(self) -> None:
        """Until the hub answers ``/health``."""

        async def healthy() -> bool:
            return bool(await self.request("GET", "/health"))

        await self.until(healthy, "answer", START_TIMEOUT)

    async def wait_for_site(self, devices: int) -> list[dict[str, Any]]:
        """Until every device of the site is connected as the hub's asset and a battery
        reports its state of charge; the site's batteries, by name."""
        agent = f"{HUB_AGENT}/{SITE_ID}"

        async def connected() -> bool:
            rows = [r for r in (await self.request("GET", "/agents"))["agents"]
                    if r["agent_id"] == agent]  # fmt: skip
            return len(rows) >= devices and all(row["connected"] for row in rows)

        await self.until(connected, f"hear the site's {devices} devices", LIVE_TIMEOUT)
        assets = (await self.request("GET", "/assets"))["assets"]
        batteries = sorted(
            (a for a in assets if a["agent_id"] == agent and a["type"] == "battery"),
            key=lambda asset: str(asset["name"]),
        )
        if not batteries:
            raise DemoError("the site registered no battery with the hub")

        async def soc() -> bool:
            values = await self.request("GET", f"/telemetry/{batteries[0]['asset_id']}")
            return "soc_pct" in values["values"]

        await self.until(soc, "receive a state of charge", LIVE_TIMEOUT)
        return batteries


async def configure(api: HomeAssistantApi, endpoints: SiteEndpoints, hub: HubProcess) -> str:
    """Add the site, its devices, its control options and its link to the hub through the
    flows; return its id."""
    flow = "/api/config/config_entries"
    entry = await api.run_flow(f"{flow}/flow", {"handler": DOMAIN}, SITE_STEPS)
    entry_id: str = entry["result"]["entry_id"]
    limits: dict[str, Mapping[str, float]] = {}
    for device in site_devices(endpoints):
        created = await api.run_flow(
            f"{flow}/subentries/flow", {"handler": [entry_id, device.kind]}, device.steps
        )
        if device.limits is not None:
            limits[created["title"]] = device.limits

    # The options ask about the batteries the loaded site has: reload it with every device
    # (each new subentry schedules a reload of its own; this one is waited for).
    await api.request("POST", f"{flow}/entry/{entry_id}/reload")
    await api.wait_loaded(entry_id)

    def battery(form: Mapping[str, Any]) -> Mapping[str, float]:
        title = form.get("description_placeholders", {}).get("device", "")
        if title not in limits:
            raise DemoError(f"the options ask for the limits of {title!r}, not a battery here")
        return limits[title]

    init = {**CONTROL, "hub": hub.gateway, "hub_token": hub.agent_token}
    await api.run_flow(
        f"{flow}/options/flow", {"handler": entry_id}, {"init": init, "battery": battery}
    )
    return entry_id


async def check_frontend(api: HomeAssistantApi, hass: HomeAssistantProcess) -> None:
    """The UI can load: the frontend is set up and every action can be described to it."""
    config = await api.request("GET", "/api/config")
    problem = None
    if "frontend" not in config["components"]:
        problem = "its frontend did not start (is home-assistant-frontend installed?)"
    else:
        try:
            await api.websocket({"type": "get_services"})
        except DemoError as err:
            problem = f"the UI cannot describe the actions ({err}): a requirement is missing"
    if problem is not None:
        log = await asyncio.to_thread(hass.log_tail)
        raise DemoError(f"Home Assistant runs, but {problem}:\n{log}")


async def live_entities(api: HomeAssistantApi) -> dict[str, dict[str, Any]]:
    """Our entities once most of them report a value, by entity id."""
    deadline = time.monotonic() + LIVE_TIMEOUT
    states: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        found = await api.template("{{ integration_entities('" + DOMAIN + "') | to_json }}")
        states = {}
        for entity_id in found:
            states[entity_id] = await api.request("GET", f"/api/states/{entity_id}")
        live = [s for s in states.values() if s["state"] not in ("unavailable", "unknown")]
        if states and len(live) >= len(states) // 2:
            return states
        await asyncio.sleep(2.0)
    raise DemoError(f"our entities did not come alive in {LIVE_TIMEOUT:.0f} s: {len(states)} found")


async def try_dispatch(api: HomeAssistantApi, names: Mapping[str, str]) -> str:
    """Charge the site's batteries for a minute through the action, as a check of control."""
    response = await api.request(
        "POST",
        f"/api/services/{DOMAIN}/dispatch?return_response",
        {"power_w": -1500, "ttl": 60},
    )
    records = response["service_response"]["records"]
    lines = [
        f"  {names.get(r['device_id'], r['device_id'])}: {r['outcome']} {r['applied']} W "
        f"(read back {r['read_back']})"
        for r in records
    ]
    return "edge_ems.dispatch -1500 W for 60 s:\n" + "\n".join(lines)


def hub_lines(hub: HubProcess, battery: Mapping[str, Any]) -> str:
    """The hub's address, its token and two commands to try it with (pasted whole, the
    comments are harmless)."""
    auth = shlex.quote(f"Authorization: Bearer {hub.api_token}")
    query = f"{hub.url}/measurements?asset={battery['asset_id']}&metric=soc_pct"
    body = json.dumps({"site_id": SITE_ID, **HUB_DISPATCH})
    return "\n".join([
        f"Edge EMS hub: {hub.url}",
        f"API token: {hub.api_token}",
        f"the site streams to it as agent {HUB_AGENT}/{SITE_ID}; try:",
        f"  # {battery['name']}: state of charge over the last hour, a minute a row "
        "(a minute shows once it has closed)",
        f"  curl -s -H {auth} {shlex.quote(query)}",
        f"  # discharge the site's batteries at {HUB_DISPATCH['power_w']} W for "
        f"{HUB_DISPATCH['ttl_s']} s",
        f"  curl -s -H {auth} -H 'Content-Type: application/json' -d {shlex.quote(body)} "
        f"{hub.url}/dispatch",
    ])  # fmt: skip


async def try_hub_dispatch(hub: HubApi, names: Mapping[str, str]) -> str:
    """Discharge the site's batteries through the hub, as the second curl command does."""
    answer = await hub.request(
        "POST", "/dispatch", {"site_id": SITE_ID, **HUB_DISPATCH, "requested_by": "demo"}
    )
    if not answer["applied"]:
        raise DemoError(f"hub: /dispatch was not applied: {answer}")
    lines = [
        f"  {names.get(r['device_id'], r['device_id'])}: {r['outcome']} {r['applied']} W "
        f"(read back {r['read_back']})"
        for r in answer["records"]
    ]
    head = f"hub /dispatch {HUB_DISPATCH['power_w']} W for {HUB_DISPATCH['ttl_s']} s"
    return f"{head} ({answer['agent_id']}):\n" + "\n".join(lines)


async def try_measurements(hub: HubApi, battery: Mapping[str, Any]) -> str:
    """The battery's state of charge from the hub's store, once its first minute is written."""

    async def measured() -> list[list[Any]]:
        answer = await hub.request(
            "GET", "/measurements", asset=battery["asset_id"], metric="soc_pct"
        )
        return [point for series in answer["series"] for point in series["points"]]

    points = await hub.until(measured, "store a minute", MEASURED_TIMEOUT)
    start_ms, average, _, _, _, count = points[-1]
    minute = dt.datetime.fromtimestamp(start_ms / 1000, dt.UTC).strftime("%H:%M")
    return (f"hub /measurements soc_pct of {battery['name']}: {len(points)} minute(s) stored, "
            f"{minute} UTC averaged {average:.1f} % over {count} sample(s)")  # fmt: skip


def summary(states: Mapping[str, Mapping[str, Any]], limit: int = 25) -> str:
    """A few live entities, to show they are there."""
    rows = []
    for entity_id, state in sorted(states.items()):
        if state["state"] in ("unavailable", "unknown"):
            continue
        unit = state["attributes"].get("unit_of_measurement") or ""
        rows.append(f"  {entity_id:<60} {state['state']} {unit}".rstrip())
    more = len(rows) - limit
    return "\n".join(rows[:limit] + ([f"  ... and {more} more"] if more > 0 else []))


@contextlib.asynccontextmanager
async def demo_folder(config_dir: Path | None) -> AsyncIterator[Path]:
    """The demo's folder: ``config_dir``, kept, or a temporary one, removed on the way out.
    Home Assistant is configured in it, the hub in its ``hub`` folder."""
    folder = config_dir or Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="edge-ems-ha-"))
    try:
        yield folder
    finally:
        if config_dir is None:
            await asyncio.to_thread(shutil.rmtree, folder, True)


@contextlib.asynccontextmanager
async def home_assistant(host: str, port: int, folder: Path) -> AsyncIterator[HomeAssistantProcess]:
    """Home Assistant configured in ``folder``, stopped on the way out."""
    hass = HomeAssistantProcess(folder, host, port)
    try:
        await asyncio.to_thread(hass.prepare)
        await hass.start()
        yield hass
    finally:
        await hass.stop()


@contextlib.asynccontextmanager
async def hub_process(
    folder: Path, host: str, api_port: int, grpc_port: int
) -> AsyncIterator[HubProcess]:
    """The hub configured in ``folder``, stopped on the way out."""
    hub = HubProcess(folder, host, api_port, grpc_port)
    try:
        await asyncio.to_thread(hub.prepare)
        await hub.start()
        yield hub
    finally:
        await hub.stop()


async def screenshot(url: str, path: Path) -> None:
    """Log in with headless chromium (Debian's; no browser is downloaded) and save the
    overview dashboard as the newcomer first sees it."""
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import async_playwright

    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox"]
            )
            try:
                page = await browser.new_page(viewport={"width": 1400, "height": 1000})
                await page.goto(url, wait_until="networkidle")
                await page.fill("input[name='username']", USER)
                await page.fill("input[name='password']", PASSWORD)
                await page.keyboard.press("Enter")
                await page.wait_for_url(lambda found: "/auth/" not in found, timeout=120_000)
                # The frontend is loaded once its sidebar is drawn (pierces shadow roots).
                await page.wait_for_selector("ha-sidebar", timeout=180_000)
                await page.goto(f"{url}/config/integrations/integration/{DOMAIN}")
                await page.wait_for_selector("ha-sidebar", timeout=180_000)
                await page.wait_for_timeout(5000)  # cards render once the states arrive
                await page.screenshot(path=str(path))
            finally:
                await browser.close()
    except PlaywrightError as err:
        raise DemoError(f"the screenshot failed: {err.message.splitlines()[0]}") from None


async def run(args: argparse.Namespace) -> int:
    """Start everything, print the way in, and wait for Ctrl-C (or stop after ``--once``)."""
    site = SimulatedSite(SITE, opcua_cache=opcua_cache())
    async with (
        site,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session,
        demo_folder(args.config_dir) as folder,
    ):
        print("simulated site running; starting the hub and Home Assistant (a minute or two)...",
              flush=True)  # fmt: skip
        # Leaving stops Home Assistant first, so the site's link says goodbye to a live hub.
        async with (
            hub_process(folder / "hub", args.host, args.hub_port, args.grpc_port) as hub,
            home_assistant(args.host, args.port, folder) as hass,
        ):
            hub_api = HubApi(session, hub)
            await hub_api.wait_until_up()
            api = HomeAssistantApi(session, hass.url)
            await api.wait_until_up(hass)
            await api.onboard()
            await configure(api, site.endpoints, hub)
            states = await live_entities(api)
            await check_frontend(api, hass)
            batteries = await hub_api.wait_for_site(len(site_devices(site.endpoints)))
            names = {battery["asset_id"]: battery["name"] for battery in batteries}
            print(f"\nHome Assistant with Edge EMS: {hass.url}", flush=True)
            print(f"login: {USER} / {PASSWORD}", flush=True)
            print("control is on (the devices are simulated): try edge_ems.dispatch under "
                  "Developer tools > Actions\n", flush=True)  # fmt: skip
            print(hub_lines(hub, batteries[0]) + "\n", flush=True)
            print(f"{len(states)} Edge EMS entities, among them:\n{summary(states)}\n", flush=True)
            if args.once:
                print(await try_dispatch(api, names), flush=True)
                print(await try_hub_dispatch(hub_api, names), flush=True)
                print(await try_measurements(hub_api, batteries[0]), flush=True)
                # homeassistant: deprecated_method is HA's own word on a venv installation.
                issues = await api.websocket({"type": "repairs/list_issues"})
                found = [f"{i['domain']}: {i['translation_key']}" for i in issues["issues"]]
                print(f"repairs: {', '.join(found) or 'none'}", flush=True)
            if args.screenshot is not None:
                await screenshot(hass.url, args.screenshot)
                print(f"screenshot saved to {args.screenshot}", flush=True)
            if not args.once:
                print("Ctrl-C stops Home Assistant, the hub and the simulated site", flush=True)
                await until_stopped(hass, hub)
    print("stopped", flush=True)
    return 0


async def until_stopped(hass: HomeAssistantProcess, hub: HubProcess) -> None:
    """Until Ctrl-C or SIGTERM; Home Assistant or the hub stopping on its own is an error."""
    stop = asyncio.ensure_future(wait_for_stop())
    while not stop.done():
        for name, process in (("Home Assistant", hass), ("the hub", hub)):
            if process.exited():
                stop.cancel()
                log = await asyncio.to_thread(process.log_tail)
                raise DemoError(f"{name} stopped:\n{log}")
        await asyncio.wait([stop], timeout=2.0)


def port_is_free(host: str, port: int) -> bool:
    """Nothing listens on ``host:port`` now (Home Assistant would fall back to another)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    """Parse the options and run the demo; errors are one clear message, exit status 1."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--host",
        default=os.environ.get("EDGE_EMS_DEMO_HOST", "127.0.0.1"),
        help="address Home Assistant and the hub's REST API listen on (default 127.0.0.1, or "
        "$EDGE_EMS_DEMO_HOST)",
    )
    parser.add_argument("--port", type=int, default=8123, help="0 picks a free port")
    parser.add_argument(
        "--hub-port", type=int, default=8099, help="the hub's REST API (0 picks a free port)"
    )
    parser.add_argument(
        "--grpc-port", type=int, default=50051, help="the hub's gateway (0 picks a free port)"
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="show the entities, dispatch here and through the hub, read the hub's store, "
        "then stop",
    )
    parser.add_argument(
        "--config-dir",
        type=Path,
        metavar="DIR",
        help="configure Home Assistant in this new folder, the hub in its hub folder, and keep "
        "both (default: a temporary one)",
    )
    parser.add_argument("--screenshot", type=Path, metavar="FILE.png")
    args = parser.parse_args(argv)
    if args.config_dir is not None and args.config_dir.exists():
        parser.error(f"{args.config_dir} exists; the demo configures a new folder")
    # Each server gets the port asked for or refuses to start: none falls back to another.
    for option, host in (("port", args.host), ("hub_port", args.host), ("grpc_port", LOOPBACK)):
        flag = "--" + option.replace("_", "-")
        port = getattr(args, option)
        if port == 0:
            setattr(args, option, free_port(host))
        elif not 0 < port < 65536:
            parser.error(f"{flag} {port} is not a TCP port")
        elif not port_is_free(host, port):
            parser.error(f"port {port} is taken; pick another with {flag} (0: any free one)")
    if len({args.port, args.hub_port, args.grpc_port}) < 3:
        parser.error("--port, --hub-port and --grpc-port must differ")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    quiet_libraries(SERVER_LOGGERS)
    try:
        return asyncio.run(run(args))
    except DemoError as err:
        print(f"demo: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
