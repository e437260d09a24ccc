"""The demo's site: the simulated devices added through the flows as a person would, and what
the demo then asks of them, here and through the hub."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shlex
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edge_ems.cli.hubapi import HubApi, HubApiError
from edge_ems.sim import ev_charger, heat_pump
from edge_ems.sim.config import SiteConfig
from edge_ems.sim.site import SiteEndpoints

from .hass_api import LOADED_TIMEOUT, START_TIMEOUT, Answer, HomeAssistantApi
from .processes import DOMAIN, HUB_AGENT, DemoError, HomeAssistantProcess, HubProcess

SITE = SiteConfig(can_bms=False, mqtt_bms=None)
"""The CAN BMS runs on python-can's in-process virtual bus, which Home Assistant, another
process, cannot reach; the MQTT BMS needs HA's MQTT integration set up against the site's
broker, which the demo leaves out to stay small."""
SITE_ID = "demo_home"
"""The site id as the config flow keeps it (it slugifies what is typed)."""
SITE_STEPS: Mapping[str, Answer] = {"user": {"site_name": "Demo home", "site_id": SITE_ID}}
CONTROL = {"enable_control": True, "dry_run": False, "lease_ttl": 60, "eeprom_daily_writes": 100}
"""The demo's site may be controlled: its devices are simulated. A real site starts with
control off and dry run on."""
MEASURED_TIMEOUT = 240.0
"""The hub's store writes a minute once it has closed (10 s after it ends), so the first one
shows in ``/measurements`` about a minute after the site's first telemetry."""
HUB_DISPATCH = {"power_w": 2000, "ttl_s": 60}
"""What ``--once`` asks of the site through the hub: discharge 2 kW for a minute."""


@dataclass(frozen=True, slots=True)
class Device:
    """One device of the simulated site as the demo adds it: its subentry flow's answers."""

    kind: str
    steps: Mapping[str, Answer]
    limits: Mapping[str, float] | None = None
    """A battery's limits and capacity, for the site's options."""


def _modbus(point_map: str, host: str, port: int | None, unit: int | None) -> Device:
    return Device("modbus", {
        "user": {"point_map": point_map, "transport": "tcp"},
        "network": {"host": host, "port": port, "unit_id": unit},
    })  # fmt: skip


def _limits(power_w: float, capacity_wh: float) -> dict[str, float]:
    return {"max_charge_w": power_w, "max_discharge_w": power_w, "capacity_wh": capacity_wh}


def site_devices(endpoints: SiteEndpoints) -> list[Device]:
    """The devices of the simulated site the demo adds, each as a person would in the UI."""
    host, sunspec, bess = endpoints.host, SITE.sunspec, SITE.bess
    gateway = endpoints.modbus_gateway_port
    devices = [
        _modbus("deye_sun_sg_hybrid", host, gateway, endpoints.deye_unit),
        _modbus("eastron_sdm630", host, gateway, endpoints.meter_unit),
    ]
    if endpoints.sunspec_port is not None and sunspec is not None:
        where: dict[str, Any] = {
            "host": host, "port": endpoints.sunspec_port, "unit_id": endpoints.sunspec_unit,
        }  # fmt: skip
        # The chain holds the hybrid inverter and, after it, its grid meter: both are added.
        inverter: dict[str, Answer] = {"user": where, "chain": {"device_index": "0"}}
        devices.append(
            Device("sunspec", inverter, _limits(sunspec.max_power_w, sunspec.capacity_wh))
        )
        devices.append(Device("sunspec", {"user": where, "chain": {"device_index": "1"}}))
    if endpoints.opcua_url is not None and bess is not None:
        steps = {"user": {"url": endpoints.opcua_url, "node_map": "sim_bess"}}
        devices.append(Device("opcua", steps, _limits(bess.max_power_w, bess.capacity_wh)))
    if endpoints.ev_charger_port is not None:
        devices.append(
            _modbus(ev_charger.MAP_ID, host, endpoints.ev_charger_port, endpoints.ev_charger_unit)
        )
    if endpoints.heat_pump_port is not None:
        devices.append(
            _modbus(heat_pump.MAP_ID, host, endpoints.heat_pump_port, endpoints.heat_pump_unit)
        )
    return devices


async def configure(
    api: HomeAssistantApi, endpoints: SiteEndpoints, hub: HubProcess | None = None
) -> str:
    """Add the site, its devices, its control options and (with ``hub``) its link to the hub
    through the flows; return its id."""
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

    link = {} if hub is None else {"hub": hub.gateway, "hub_token": hub.agent_token}
    init = {**CONTROL, **link}
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
    deadline = time.monotonic() + LOADED_TIMEOUT
    states: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        states = await api.states(DOMAIN)
        live = [s for s in states.values() if s["state"] not in ("unavailable", "unknown")]
        if states and len(live) >= len(states) // 2:
            return states
        await asyncio.sleep(2.0)
    raise DemoError(f"our entities did not come alive in {LOADED_TIMEOUT:.0f} s: {len(states)}")


def _records(records: list[dict[str, Any]], names: Mapping[str, str]) -> str:
    return "\n".join(
        f"  {names.get(r['device_id'], r['device_id'])}: {r['outcome']} {r['applied']} W "
        f"(read back {r['read_back']})"
        for r in records
    )


async def try_dispatch(api: HomeAssistantApi, names: Mapping[str, str]) -> str:
    """Charge the site's batteries for a minute through the action, as a check of control."""
    response = await api.request(
        "POST",
        f"/api/services/{DOMAIN}/dispatch?return_response",
        {"power_w": -1500, "ttl": 60},
    )
    records = response["service_response"]["records"]
    return "edge_ems.dispatch -1500 W for 60 s:\n" + _records(records, names)


async def until[T](
    hub: HubProcess, probe: Callable[[], Awaitable[T | None]], what: str, seconds: float
) -> T:
    """Poll ``probe`` until it returns something true; the hub stopping, or the timeout, is
    an error that says what the hub last answered."""
    deadline = time.monotonic() + seconds
    last = ""
    while time.monotonic() < deadline:
        if hub.exited():
            log = await asyncio.to_thread(hub.log_tail)
            raise DemoError(f"the hub stopped: {log}")
        try:
            if found := await probe():
                return found
        except HubApiError as err:
            last = f" (last answer: {err})"
        await asyncio.sleep(1.0)
    raise DemoError(f"the hub did not {what} in {seconds:.0f} s{last}")


async def wait_for_hub(api: HubApi, hub: HubProcess) -> None:
    """Until the hub answers ``/health``."""

    async def healthy() -> bool:
        return bool(await api.get("/health"))

    await until(hub, healthy, "answer", START_TIMEOUT)


async def wait_for_site(api: HubApi, hub: HubProcess, devices: int) -> list[dict[str, Any]]:
    """Until every device of the site is connected as the hub's asset and a battery reports
    its state of charge; the site's batteries, by name."""
    agent = f"{HUB_AGENT}/{SITE_ID}"

    async def connected() -> bool:
        rows = [r for r in (await api.get("/agents"))["agents"] if r["agent_id"] == agent]
        return len(rows) >= devices and all(row["connected"] for row in rows)

    await until(hub, connected, f"hear the site's {devices} devices", LOADED_TIMEOUT)
    assets = (await api.get("/assets"))["assets"]
    batteries = sorted(
        (a for a in assets if a["agent_id"] == agent and a["type"] == "battery"),
        key=lambda asset: str(asset["name"]),
    )
    if not batteries:
        raise DemoError("the site registered no battery with the hub")

    async def soc() -> bool:
        values = await api.get(f"/telemetry/{batteries[0]['asset_id']}")
        return "soc_pct" in values["values"]

    await until(hub, soc, "receive a state of charge", LOADED_TIMEOUT)
    return batteries


def dashboard_url(hub: HubProcess) -> str:
    """The hub's dashboard with the API token in the fragment: the page takes it from there
    (browsers never send a fragment to the server) and clears it from the address bar."""
    return f"{hub.url}/#token={hub.api_token}"


async def check_dashboard(api: HubApi, hub: HubProcess) -> str:
    """The hub serves its dashboard: the page, its script and stylesheet."""
    sizes = []
    for path in ("/", "/dashboard.js", "/dashboard.css"):
        body = await api.get_text(path)
        if path == "/" and "<edge-ems-hub>" not in body:
            raise DemoError(f"hub: {hub.url}/ is not the dashboard")
        sizes.append(f"{path} {len(body.encode()):,} bytes")
    return "hub dashboard served: " + ", ".join(sizes)


def hub_lines(hub: HubProcess, battery: Mapping[str, Any]) -> str:
    """The hub's address, its token and two commands to try it with (pasted whole, the
    comments are harmless)."""
    auth = shlex.quote(f"Authorization: Bearer {hub.api_token}")
    query = f"{hub.url}/measurements?asset={battery['asset_id']}&metric=soc_pct"
    body = json.dumps({"site_id": SITE_ID, **HUB_DISPATCH})
    return "\n".join([
        f"Edge EMS hub: {hub.url}",
        f"API token: {hub.api_token}",
        f"the hub's dashboard: {dashboard_url(hub)}",
        "  (the token after # stays in the browser; the plain address asks for it)",
        f"the site streams to it as agent {HUB_AGENT}/{SITE_ID}; try:",
        f"  # {battery['name']}: state of charge over the last hour, a minute a row "
        "(a minute shows once it has closed)",
        f"  curl -s -H {auth} {shlex.quote(query)}",
        f"  # discharge the site's batteries at {HUB_DISPATCH['power_w']} W for "
        f"{HUB_DISPATCH['ttl_s']} s",
        f"  curl -s -H {auth} -H 'Content-Type: application/json' -d {shlex.quote(body)} "
        f"{hub.url}/dispatch",
    ])  # fmt: skip


async def try_hub_dispatch(api: HubApi, names: Mapping[str, str]) -> str:
    """Discharge the site's batteries through the hub, as the second curl command does."""
    answer = await api.request(
        "POST", "/dispatch", body={"site_id": SITE_ID, **HUB_DISPATCH, "requested_by": "demo"}
    )
    if not answer["applied"]:
        raise DemoError(f"hub: /dispatch was not applied: {answer}")
    head = f"hub /dispatch {HUB_DISPATCH['power_w']} W for {HUB_DISPATCH['ttl_s']} s"
    return f"{head} ({answer['agent_id']}):\n" + _records(answer["records"], names)


async def try_measurements(api: HubApi, hub: HubProcess, battery: Mapping[str, Any]) -> str:
    """The battery's state of charge from the hub's store, once its first minute is written."""

    async def measured() -> list[list[Any]]:
        params = {"asset": battery["asset_id"], "metric": "soc_pct"}
        answer = await api.get("/measurements", params)
        return [point for series in answer["series"] for point in series["points"]]

    points = await until(hub, measured, "store a minute", MEASURED_TIMEOUT)
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
