"""Round trip of the Edge EMS actions through a real Home Assistant to the simulated devices.

Run: ``scripts/in-env python bench/ha_actions.py``. The stack is the HA demo's
(``scripts/hass_demo``): the simulated site in this process, ``hass`` in a child process set
up through its own flows, control on. The benchmark is a REST client calling
``edge_ems.dispatch`` (with ``return_response``) for the OPC UA BESS and the SunSpec hybrid
inverter (setpoint plus revert timer, each read back) and ``edge_ems.write_point`` for the
Deye's export limit over the Modbus gateway (an EEPROM-backed register: alternating values,
so each call writes). Each call returns once the write is read back and audited (event, log,
logbook). ``CALLS`` per action after ``WARM_UP``, within the dispatcher's 30 writes per
device and minute. Reported: median and worst milliseconds per action.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.hass_demo.hass_api import HomeAssistantApi
from scripts.hass_demo.processes import DOMAIN, home_assistant
from scripts.hass_demo.site import SITE, configure, live_entities

from _common import emit, median, progress
from edge_ems.cli.sim import SERVER_LOGGERS, opcua_cache, quiet_libraries
from edge_ems.sim.site import SimulatedSite, free_port

CALLS = 25
WARM_UP = 2
DEVICES = (
    "{% set ns = namespace(found=[]) %}"
    "{% for d in integration_entities('edge_ems') | map('device_id') | unique %}"
    "{% set ns.found = ns.found + [[d, device_attr(d, 'name')]] %}"
    "{% endfor %}{{ ns.found | to_json }}"
)


async def devices(api: HomeAssistantApi) -> dict[str, str]:
    """The demo's devices by role: ``bess``, ``sunspec`` and ``deye`` to their HA device id."""
    found: dict[str, str] = {}
    for device_id, name in await api.template(DEVICES):
        if "BESS" in name:
            found["bess"] = device_id
        elif "Simulated hybrid" in name:
            found["sunspec"] = device_id
        elif "Deye" in name:
            found["deye"] = device_id
    return found


async def timed(api: HomeAssistantApi, service: str, data: dict[str, Any]) -> float:
    """One action call; milliseconds until its response, which must report a write."""
    started = time.perf_counter()
    response = await api.request("POST", f"/api/services/{DOMAIN}/{service}?return_response", data)
    elapsed = (time.perf_counter() - started) * 1000.0
    outcomes = {record["outcome"] for record in response["service_response"]["records"]}
    if outcomes != {"applied"}:
        raise RuntimeError(f"{service} {data}: {outcomes}")
    return elapsed


async def run() -> dict[str, float]:
    site = SimulatedSite(SITE, opcua_cache=opcua_cache())
    with tempfile.TemporaryDirectory(prefix="edge-ems-bench-") as folder:
        return await _measure(site, Path(folder))


async def _measure(site: SimulatedSite, folder: Path) -> dict[str, float]:
    async with (
        site,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session,
        home_assistant("127.0.0.1", free_port(), folder / "ha") as hass,
    ):
        api = HomeAssistantApi(session, hass.url)
        progress("starting Home Assistant and setting up the site through its flows")
        await api.wait_until_up(hass)
        await api.onboard()
        await configure(api, site.endpoints)
        await live_entities(api)
        ids = await devices(api)
        cases = {
            "dispatch_bess_opcua": lambda n: (
                "dispatch", {"device_id": ids["bess"], "power_w": -1000 - n, "ttl": 60}
            ),
            "dispatch_sunspec_modbus": lambda n: (
                "dispatch", {"device_id": ids["sunspec"], "power_w": -500 - n, "ttl": 60}
            ),
            "write_point_deye_eeprom": lambda n: (
                "write_point",
                {"device_id": ids["deye"], "command": "grid_export_limit_w",
                 "value": 5000 + n % 2},
            ),
        }  # fmt: skip
        result: dict[str, float] = {}
        for name, make in cases.items():
            times = [await timed(api, *make(n)) for n in range(WARM_UP + CALLS)][WARM_UP:]
            result[f"{name}_median_ms"] = round(median(times), 2)
            result[f"{name}_max_ms"] = round(max(times), 2)
            progress(f"{name}: median {median(times):.1f} ms, max {max(times):.1f} ms")
        await api.request("POST", f"/api/services/{DOMAIN}/release", {})
    return result


def main() -> None:
    quiet_libraries(SERVER_LOGGERS)
    result = asyncio.run(run())
    emit({"benchmark": "ha_actions", "calls": CALLS, **result})


if __name__ == "__main__":
    main()
