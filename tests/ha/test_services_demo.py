"""The Home Assistant demo end to end: a real ``hass`` with the simulated site and the hub,
driven through HA's own API; the demo's ``--once`` run shows live entities, a site dispatch
that lands, the same through the hub's ``/dispatch``, and the hub's stored minutes."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.ha, pytest.mark.slow]

REPO = Path(__file__).parents[2]
PATIENCE = 900
"""Seconds for the whole run on a loaded two-core machine: Home Assistant's first start, and
the hub's first closed minute (a minute or so after the site starts streaming)."""


def printed(out: str, prefix: str) -> list[str]:
    """The printed lines that start with ``prefix``, indent stripped."""
    return [line.strip() for line in out.splitlines() if line.strip().startswith(prefix)]


@pytest.mark.timeout(PATIENCE)
async def test_the_demo_shows_live_entities_and_takes_dispatches_here_and_through_the_hub(
    tmp_path: Path,
) -> None:
    config_dir = tmp_path / "ha"
    demo = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "scripts.hass_demo", "--once",
        "--port", "0", "--hub-port", "0", "--grpc-port", "0", "--config-dir", str(config_dir),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO,
    )  # fmt: skip
    async with asyncio.timeout(PATIENCE - 30):
        stdout, stderr = await demo.communicate()
    out = stdout.decode()
    assert demo.returncode == 0, stderr.decode()[-3000:]
    assert "login: demo / edge-ems-demo" in out
    assert "Edge EMS entities, among them:" in out
    # The site's -1500 W split across both simulated batteries by capacity, and read back.
    assert "applied -300.0 W (read back -300.0)" in out
    assert "applied -1200.0 W (read back -1200.0)" in out
    assert out.rstrip().endswith("stopped")
    # Edge EMS raised no repair (Home Assistant's own about its installation may be there).
    [repairs] = printed(out, "repairs: ")
    assert "edge_ems" not in repairs
    # The integration was set up through the flows and its stored state is real HA storage.
    entries = config_dir / ".storage" / "core.config_entries"
    assert await asyncio.to_thread(entries.is_file)
    blueprint = config_dir / "blueprints" / "automation" / "edge_ems" / "charge_when_cheap.yaml"
    assert await asyncio.to_thread(blueprint.is_file)

    # The hub ran from the configuration the demo wrote, and the demo prints its way in.
    hub = config_dir / "hub"
    config = yaml.safe_load(await asyncio.to_thread((hub / "hub.yaml").read_text))
    url, token = f"http://127.0.0.1:{config['api_port']}", config["api_token"]
    assert printed(out, "Edge EMS hub:") == [f"Edge EMS hub: {url}"]
    assert printed(out, "API token:") == [f"API token: {token}"]
    # The dashboard: its address with the token for the page to take, and served.
    assert printed(out, "the hub's dashboard:") == [f"the hub's dashboard: {url}/#token={token}"]
    [served] = printed(out, "hub dashboard served:")
    assert re.fullmatch(r"hub dashboard served: / [\d,]+ bytes, /dashboard\.js [\d,]+ bytes, "
                        r"/dashboard\.css [\d,]+ bytes", served)  # fmt: skip
    assert [agent["id"] for agent in config["agents"]] == ["homeassistant"]
    # The curl commands are ready to paste: the shell splits them into these words.
    auth = ["-H", f"Authorization: Bearer {token}"]
    measurements, dispatch = (shlex.split(line) for line in printed(out, "curl "))
    assert measurements[:4] == ["curl", "-s", *auth]
    assert re.fullmatch(rf"{url}/measurements\?asset=\w+&metric=soc_pct", measurements[4])
    assert dispatch[:4] == ["curl", "-s", *auth]
    assert dispatch[4:8] == ["-H", "Content-Type: application/json", "-d", dispatch[7]]
    assert json.loads(dispatch[7]) == {"site_id": "demo_home", "power_w": 2000, "ttl_s": 60}
    assert dispatch[8:] == [f"{url}/dispatch"]

    # Through the hub: the site's 2000 W split by capacity, carried out at the site, read back.
    assert "hub /dispatch 2000 W for 60 s (homeassistant/demo_home):" in out
    assert "applied 400.0 W (read back 400.0)" in out
    assert "applied 1600.0 W (read back 1600.0)" in out
    [measured] = printed(out, "hub /measurements soc_pct of ")
    assert re.search(
        r": [1-9]\d* minute\(s\) stored, \d\d:\d\d UTC averaged [\d.]+ % over", measured
    )
    # The hub's planner planned the site offline and Home Assistant shows its plan.
    [planner] = printed(out, "the hub's planner (optimal): ")
    assert re.search(r"\d+ steps of 15 min from \d\d:\d\d UTC, version [1-9]", planner)
    # Plans made before the site connected have no battery; this one has both.
    planned = [
        line for line in out.splitlines() if line.endswith(" W now (+ discharges, - charges)")
    ]
    assert len(planned) == 2, planned
    [whole_plan] = printed(out, "the whole plan: ")
    assert f"{url}/plan?site_id=demo_home" in whole_plan
    assert re.fullmatch(
        r"the plan in Home Assistant: sensor\.\w+_plan_status = optimal",
        printed(out, "the plan in Home Assistant:")[0],
    )
    # The hub stopped cleanly after Home Assistant, its store flushed.
    log = await asyncio.to_thread((hub / "hub.log").read_text)
    assert log.rstrip().endswith("Hub stopped")
    assert "Traceback" not in log
    assert await asyncio.to_thread((hub / "store.sqlite").is_file)
