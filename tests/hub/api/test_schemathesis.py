"""Schemathesis with every check it has (``--checks all``: no 5xx, every answer as
documented, schema-valid requests accepted, schema-violating ones refused, no route but
``/health`` served without the token, ...) over ``/openapi.json`` of a live hub with an
agent connected: its command line, in a process of its own, with a bounded number of
examples and a fixed seed, so it runs in seconds and the same way every time.

Per-operation settings are in ``schemathesis.toml`` beside this file (why, there).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from ..gateway.conftest import SiteFactory
from .conftest import API_TOKEN, HubMaker

pytestmark = pytest.mark.slow

EXAMPLES = 30
SEED = 1
CONFIG = Path(__file__).with_name("schemathesis.toml")


def _command() -> str:
    beside = Path(sys.executable).with_name("schemathesis")
    found = str(beside) if beside.exists() else shutil.which("schemathesis")
    if found is None:
        pytest.fail("schemathesis is not installed")
    return found


async def test_schemathesis_with_every_check_finds_nothing(
    hub_maker: HubMaker, site_factory: SiteFactory, tmp_path: Path
) -> None:
    live = await hub_maker(max_body_bytes=16 * 1024, rate_limit=100_000, rate_burst=100_000)
    await site_factory(live.address, agent_id="agent-1", site_id="farm")
    report = tmp_path / "report.json"
    process = await asyncio.create_subprocess_exec(
        _command(), "--config-file", str(CONFIG), "run", f"{live.url}/openapi.json",
        "--checks", "all", "--max-examples", str(EXAMPLES), "--seed", str(SEED),
        "--header", f"Authorization: Bearer {API_TOKEN}", "--request-timeout", "30",
        "--workers", "1", "--no-color", "--report", "json", "--report-json-path", str(report),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path,
    )  # fmt: skip
    async with asyncio.timeout(120):
        output, _ = await process.communicate()
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    result: dict[str, Any] = json.loads(report.read_text())
    assert (result["failures"], result["errors"]) == ([], []), text
    document = await live.json("/openapi.json")
    operations = sum(len(methods) for methods in document["paths"].values())
    assert result["operations"]["tested"] >= operations, text
    assert result["phases"]["stateful"]["status"] in {"success", "skip"}
    # The document's examples reached the agent and were answered.
    assert result["valid_rates"]["POST /dispatch"]["examples"]["accepted"] == 2
