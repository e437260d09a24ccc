"""The day-two commands as processes against a live hub: ``edge-ems health``, ``export``,
``diagnostics`` and ``replay`` (recorded Parquet back through an agent into a second hub)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sys
from pathlib import Path

from edge_ems.hub.parquet import ParquetExporter
from tests.lib.bms.support import free_port

from ..gateway.conftest import WAIT, SiteFactory, eventually
from .conftest import API_TOKEN, HubMaker, LiveHub, now_ms
from .test_measurements import MINUTE

AGENT_TOKEN = "s3cret-token"  # the gateway tests' agent token, which the live hubs accept


async def edge_ems(*args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_EMS_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edge_ems.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    async with asyncio.timeout(WAIT):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def _recorded_hour(live: LiveHub, site_factory: SiteFactory) -> int:
    site = await site_factory(live.address, agent_id="agent-1", site_id="farm")
    start = (now_ms() // 3_600_000 - 2) * 3_600_000
    stamps = [start + n * MINUTE for n in range(60)]
    site.agent.publish_series("bess-1", "soc_pct", stamps, [50 + n / 10 for n in range(60)])
    site.agent.publish_series("bess-2", "battery_power_w", stamps, [-1000.0] * 60)
    await site.agent.flush()
    await eventually(lambda: live.store.status().waiting_batches > 0)
    await live.store.flush(full=True)
    return start


async def test_health_prints_a_summary_and_exits_by_status(live: LiveHub) -> None:
    code, out, _ = await edge_ems("health", "--url", live.url, "--token", API_TOKEN)
    assert code == 0
    assert out.startswith("status      ok")
    assert f"port {live.grpc_port}" in out
    code, out, _ = await edge_ems("health", "--url", live.url, "--token", API_TOKEN, "--json")
    assert json.loads(out)["store"]["backend"] == "sqlite"
    code, out, _ = await edge_ems("health", "--url", live.url, "--json")  # no token
    assert (code, set(json.loads(out))) == (0, {"status", "version"})
    code, out, _ = await edge_ems("health", "--url", f"http://127.0.0.1:{free_port()}")
    assert code == 2
    assert "cannot reach the hub" in out
    code, _, err = await edge_ems("health", "--url", "ftp://x")
    assert code == 1
    assert "--url" in err


async def test_export_writes_csv_and_json(
    live: LiveHub, site_factory: SiteFactory, tmp_path: Path
) -> None:
    start = await _recorded_hour(live, site_factory)
    target = tmp_path / "bess.csv"
    code, _, err = await edge_ems(
        "export", "--url", live.url, "--token", API_TOKEN, "--asset", "bess-1",
        "--from", str(start), "--to", str(start + 3_600_000), "--resolution", "5m",
        "-o", str(target),
    )  # fmt: skip
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert len(rows) == 12
    assert (rows[0]["site_id"], rows[0]["metric"], rows[0]["unit"]) == ("farm", "soc_pct", "%")
    assert float(rows[0]["avg"]) == 50.2
    assert rows[0]["samples"] == "5"
    code, out, _ = await edge_ems(
        "export", "--url", live.url, "--token", API_TOKEN, "--snapshot", "--format", "json"
    )
    assert code == 0
    assets = {row["asset_id"] for row in json.loads(out)["assets"]}
    assert assets == {"bess-1", "bess-2"}
    code, _, err = await edge_ems("export", "--url", live.url, "--token", "wrong" * 5)
    assert code == 1
    assert "HTTP 401" in err
    code, _, err = await edge_ems("export", "--url", live.url, "--token", API_TOKEN, "--to", "x")
    assert code == 1
    assert "HTTP 400" in err


async def test_diagnostics_gather_everything_without_the_token(
    live: LiveHub, site_factory: SiteFactory, tmp_path: Path
) -> None:
    await site_factory(live.address, agent_id="agent-1", site_id="farm")
    token_file = tmp_path / "token"
    token_file.write_text(API_TOKEN + "\n")
    code, out, err = await edge_ems(
        "diagnostics", "--url", live.url, "--token-file", str(token_file)
    )
    assert code == 0, err
    assert API_TOKEN not in out
    report = json.loads(out)
    assert report["health"]["status"] == "ok"
    assert {row["asset_id"] for row in report["agents"]["agents"]} >= {"bess-1", "bess-2"}
    assert any(line.startswith("edge_ems_gateway_connected_agents 1") for line in report["metrics"])
    code, out, _ = await edge_ems("diagnostics", "--url", live.url)  # no token
    report = json.loads(out)
    assert code == 0
    assert "HTTP 401" in report["agents"]["error"]


async def test_replay_feeds_parquet_back_through_an_agent(
    live: LiveHub, hub_maker: HubMaker, site_factory: SiteFactory, tmp_path: Path
) -> None:
    start = await _recorded_hour(live, site_factory)
    [_recorded] = await ParquetExporter(live.store, tmp_path / "parquet").export_hour(start)
    second = await hub_maker()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edge_ems.cli", "replay", str(tmp_path / "parquet"),
        "--hub", second.address, "--token", AGENT_TOKEN, "--agent-id", "agent-2",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    await eventually(lambda: second.store.status().waiting_batches > 0)
    await eventually(lambda: second.gateway.stats().points == 120)
    await second.store.flush(full=True)  # the store acknowledges, and the replay ends
    async with asyncio.timeout(WAIT):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    summary = json.loads(out.decode().splitlines()[-1])
    assert summary == {"site_id": "farm", "assets": 2, "series": 2, "samples": 120, "last_seq": 2}
    window = {"from": str(start), "to": str(start + 3_600_000)}
    before = await live.json("/measurements", **window)
    after = await second.json("/measurements", **window)
    assert [s["points"] for s in after["series"]] == [s["points"] for s in before["series"]]
    code, _, err = await edge_ems(
        "replay", str(tmp_path / "nothing"), "--hub", second.address, "--token", AGENT_TOKEN,
        "--agent-id", "agent-2",
    )  # fmt: skip
    assert code == 1
    assert "no such file" in err


def test_shift_to_now_ends_the_recording_at_the_last_closed_minute() -> None:
    from edge_ems.cli.replay import Recording, shift_to_now

    recording = Recording(
        "farm",
        {("bess-1", "soc_pct"): ([0, MINUTE, 2 * MINUTE], [1.0, 2.0, 3.0]),
         ("bess-2", "soc_pct"): ([MINUTE + 500], [4.0])},
    )  # fmt: skip
    now = 1_000 * MINUTE + 30_000  # half past minute 1000
    shifted = shift_to_now(recording, now)
    assert shifted.series[("bess-1", "soc_pct")][0] == [997 * MINUTE, 998 * MINUTE, 999 * MINUTE]
    assert shifted.series[("bess-2", "soc_pct")] == ([998 * MINUTE + 500], [4.0])
    assert (shifted.samples, shifted.assets) == (4, ["bess-1", "bess-2"])


def test_health_summary_names_the_problems() -> None:
    from edge_ems.cli.health import summary

    lines = summary(
        {
            "status": "degraded",
            "problems": ["uplink"],
            "version": "0.1.0",
            "uptime_s": 12.0,
            "store": {"backend": "sqlite", "flushes": 3, "rows_written": 9, "waiting_batches": 0},
            "gateway": {"port": 50051, "connected_agents": 2, "points": 10, "batches": 1},
            "parquet": None,
            "uplink": {"url": "https://x", "queued_batches": 4, "last_error": "HTTP 503"},
        }
    )
    assert lines[0] == "status      degraded (uplink)"
    assert lines[-2] == "parquet     off"
    assert lines[-1] == "uplink      queued_batches 4, error: HTTP 503"


def test_health_without_the_token_says_how_to_see_the_details() -> None:
    from edge_ems.cli.health import summary

    lines = summary({"status": "ok", "version": "0.1.0"})
    assert lines[0] == "status      ok"
    assert "EDGE_EMS_API_TOKEN" in lines[-1]
