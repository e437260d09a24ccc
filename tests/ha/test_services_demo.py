"""The Home Assistant demo end to end: a real ``hass`` with the simulated site, driven through
HA's own API; the demo's ``--once`` run shows live entities and a site dispatch that lands."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ha, pytest.mark.slow]

DEMO = Path(__file__).parents[2] / "scripts" / "demo_ha.py"


async def test_the_demo_shows_live_entities_and_takes_a_dispatch(tmp_path: Path) -> None:
    config_dir = tmp_path / "ha"
    demo = await asyncio.create_subprocess_exec(
        sys.executable, str(DEMO), "--once", "--port", "0", "--config-dir", str(config_dir),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(900):
        stdout, stderr = await demo.communicate()
    out = stdout.decode()
    assert demo.returncode == 0, stderr.decode()[-3000:]
    assert "login: demo / edge-ems-demo" in out
    assert "Edge EMS entities, among them:" in out
    # The site's -1500 W split across both simulated batteries by capacity, and read back.
    assert "applied -300.0 W (read back -300.0)" in out
    assert "applied -1200.0 W (read back -1200.0)" in out
    assert out.rstrip().endswith("stopped")
    # The integration was set up through the flows and its stored state is real HA storage.
    entries = config_dir / ".storage" / "core.config_entries"
    assert await asyncio.to_thread(entries.is_file)
    blueprint = config_dir / "blueprints" / "automation" / "edge_ems" / "charge_when_cheap.yaml"
    assert await asyncio.to_thread(blueprint.is_file)
