"""``edge-ems agent`` and ``edge-ems launcher`` as processes against a live hub."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from edge_ems.dispatch import Outcome, Reason
from tests.lib.bms.support import free_port

from .conftest import TOKEN, WAIT, Hub, HubFactory, eventually

SITE = """
site: {id: farm, name: The farm}
poll_interval: 0.2
agent: {id: agent-1, flush_interval: 0.2}
control: {enable_control: true, dry_run: false, lease_ttl: 600}
devices:
  - {id: bess-1, kind: sim_bess, capacity_wh: 10000}
  - {id: bess-2, kind: sim_bess, capacity_wh: 30000}
"""


async def edge_ems(*args: str, token: str | None = None) -> asyncio.subprocess.Process:
    env = {key: value for key, value in os.environ.items() if key != "EDGE_EMS_TOKEN"}
    if token is not None:
        env["EDGE_EMS_TOKEN"] = token
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edge_ems.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )


async def finish(process: asyncio.subprocess.Process) -> tuple[int, str, str]:
    async with asyncio.timeout(WAIT):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_agent_fails_over_serves_and_releases_on_sigterm(hub: Hub, tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(SITE)
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    dead = f"127.0.0.1:{free_port()}"  # nothing listens here: the agent moves on
    process = await edge_ems(
        "agent",
        "--site",
        str(site),
        "--hub",
        f"{dead},{hub.address}",
        "--token-file",
        str(token),
        "--buffer-dir",
        str(tmp_path / "buffer"),
    )
    try:
        await eventually(lambda: hub.server.connected_agents() == ["agent-1"])
        result = await hub.server.dispatch(4000, site_id="farm", issued_by="planner")
        assert {r.device_id: r.applied for r in result.records} == {"bess-1": 1000, "bess-2": 3000}
        await eventually(
            lambda: ("bess-2", "soc_pct") in {s[:2] for s in hub.sink.samples("agent-1")}
        )
    finally:
        process.send_signal(signal.SIGTERM)
    code, _, err = await finish(process)
    assert code == 0, err
    released = [r for _, r in hub.audits if r.outcome is Outcome.RELEASED]
    assert {(r.device_id, r.reason) for r in released} == {
        ("bess-1", Reason.RELEASE_REQUESTED),
        ("bess-2", Reason.RELEASE_REQUESTED),
    }


async def test_agent_without_a_token_says_so(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(SITE)
    code, _, err = await finish(await edge_ems("agent", "--site", str(site), "--hub", "h:1"))
    assert code == 1
    assert "no token" in err
    code, _, err = await finish(
        await edge_ems("agent", "--site", str(site), "--hub", "nowhere", token=TOKEN)
    )
    assert code == 1
    assert "host:port" in err


async def test_launcher_runs_a_fleet_and_reports(hub_factory: HubFactory) -> None:
    hub = await hub_factory({f"sim-{n:04d}": TOKEN for n in range(1, 4)})
    process = await edge_ems(
        "launcher",
        "3",
        "--hub",
        hub.address,
        "--interval",
        "0.2",
        "--flood",
        "--metrics",
        "2",
        "--samples",
        "10",
        token=TOKEN,
    )
    try:
        await eventually(lambda: len(hub.server.connected_agents()) == 3)
        await eventually(lambda: hub.server.stats().points > 1000)
    finally:
        process.send_signal(signal.SIGINT)
    code, out, err = await finish(process)
    assert code == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["agents"] == 3
    assert report["connected"] == 3
    assert report["flooded_points"] > 0
