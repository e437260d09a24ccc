"""``edge-ems sim``, ``scan`` and ``demo`` through the real entry point, against real peers."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from edge_ems.cli import main
from edge_ems.site import parse_site_file

from .bms.support import allow_loopback_sockets

STARTUP = 90.0
"""Seconds the simulator may take to come up on a loaded machine (OPC UA builds its
address space the first time)."""
TITLES = (
    "Deye hybrid inverter", "SDM630 grid meter", "SunSpec hybrid inverter", "SunSpec meter",
    "BESS", "MQTT BMS", "CAN BMS",
)  # fmt: skip


@pytest.fixture(autouse=True)
def _loopback_sockets() -> None:
    allow_loopback_sockets()


def site_file(folder: Path) -> Path:
    """A site description with a CAN channel of its own (the virtual bus is per process)."""
    path = folder / "site.yaml"
    path.write_text(f"can_bms: {{channel: cli-{uuid.uuid4().hex}}}\n", encoding="utf-8")
    return path


@dataclass
class SimProcess:
    """``edge-ems sim`` running in a process of its own, its output gathered by a thread."""

    process: subprocess.Popen[str]
    output: list[str]

    def gather(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line.rstrip("\n"))

    def port_of(self, device: str, protocol: str) -> int:
        for line in self.output:
            if line.startswith(device) and protocol in line:
                return int(re.split(r"\s{2,}", line)[3])
        raise AssertionError(f"{device} over {protocol} not listed in {self.output}")

    def read_until(self, text: str, timeout: float) -> None:
        """Wait until a line of output contains ``text``."""
        deadline = time.monotonic() + timeout
        while not any(text in line for line in list(self.output)):
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} from edge-ems sim: {self.output}")
            time.sleep(0.05)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    """One simulator for the module, on free ports, stopped with Ctrl-C at the end."""
    allow_loopback_sockets()
    folder = tmp_path_factory.mktemp("sim")
    env = {**os.environ, "XDG_CACHE_HOME": str(folder / "cache")}
    command = [sys.executable, "-m", "edge_ems.cli", "sim", "--base-port", "0",
               "--speed", "60", "--config", str(site_file(folder))]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    running = SimProcess(process, [])
    reader = threading.Thread(target=running.gather, daemon=True)
    reader.start()
    try:
        running.read_until("Ctrl-C stops", STARTUP)
        yield running
        process.send_signal(signal.SIGINT)
        running.read_until("stopped", STARTUP)
        assert process.wait(timeout=STARTUP) == 0
    finally:
        if process.poll() is None:  # the test failed: still stop it gently, for its broker
            process.terminate()
            try:
                process.wait(timeout=STARTUP)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        reader.join(timeout=STARTUP)


def test_sim_lists_every_device_and_where_it_answers(sim: SimProcess) -> None:
    gateway = sim.port_of("Deye hybrid inverter", "Modbus TCP")
    assert sim.port_of("SDM630 grid meter", "Modbus TCP") == gateway
    assert sim.port_of("SDM630 grid meter", "RTU over TCP") != gateway
    for device, protocol in (("SunSpec", "Modbus TCP"), ("BESS", "OPC UA"), ("MQTT BMS", "MQTT")):
        assert sim.port_of(device, protocol) > 0
    assert any("CAN (virtual)" in line for line in sim.output)


def test_scan_finds_the_gateway_devices_of_the_running_sim(
    sim: SimProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    gateway = sim.port_of("Deye hybrid inverter", "Modbus TCP")
    target = f"127.0.0.1:{gateway}"
    assert main(["scan", target, "--units", "1-3", "--rate", "200", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [unit["present"] for unit in report["units"]] == [True, True, False]
    assert [unit["suggestions"][:1] for unit in report["units"]] == [
        ["deye_sun_sg_hybrid"], ["eastron_sdm630"], [],
    ]  # fmt: skip
    assert report["writes"] == 0
    assert main(["scan", target, "--units", "2", "--rate", "200"]) == 0
    text = capsys.readouterr().out
    assert "unit 2: answers" in text
    assert "eastron_sdm630" in text


def test_scan_of_sunspec_and_of_an_empty_unit(
    sim: SimProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    target = f"127.0.0.1:{sim.port_of('SunSpec', 'Modbus TCP')}"
    assert main(["scan", target, "--units", "1", "--rate", "200"]) == 0
    assert "SunSpec at 40000: models 1 103 120" in capsys.readouterr().out
    gateway = f"127.0.0.1:{sim.port_of('Deye hybrid inverter', 'Modbus TCP')}"
    assert main(["scan", gateway, "--units", "9", "--rate", "200"]) == 1
    assert "unit 9: no device" in capsys.readouterr().out


def test_scan_writes_site_file_entries_the_agent_takes(
    sim: SimProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    gateway = sim.port_of("Deye hybrid inverter", "Modbus TCP")
    sunspec = sim.port_of("SunSpec", "Modbus TCP")
    devices = []
    for port, units in ((gateway, "1-3"), (sunspec, "1")):
        target = f"127.0.0.1:{port}"
        assert main(["scan", target, "--units", units, "--rate", "200", "--site-entry"]) == 0
        devices += yaml.safe_load(capsys.readouterr().out)["devices"]
    site = parse_site_file({"site": {"id": "found"}, "devices": devices}).description
    found = {
        (spec.kind, spec.settings.get("point_map"), spec.settings["unit_id"])
        for spec in site.devices
    }
    # Unit 3 answers nothing; the SunSpec chain holds the inverter and its meter.
    assert found == {
        ("modbus", "deye_sun_sg_hybrid", 1),
        ("modbus", "eastron_sdm630", 2),
        ("sunspec", None, 1),
    }
    chain = [spec for spec in site.devices if spec.kind == "sunspec"]
    assert [spec.settings["device_index"] for spec in chain] == [0, 1]
    assert all(spec.settings["port"] == sunspec for spec in chain)
    assert chain[0].name.startswith("Edge EMS")


def test_scan_over_rtu_over_tcp(sim: SimProcess, capsys: pytest.CaptureFixture[str]) -> None:
    target = f"127.0.0.1:{sim.port_of('SDM630 grid meter', 'RTU over TCP')}"
    assert main(["scan", target, "--units", "2", "--rtu-over-tcp", "--rate", "200"]) == 0
    assert "eastron_sdm630" in capsys.readouterr().out


def test_demo_once_shows_every_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    argv = ["demo", "--once", "--time", "12:00", "--config", str(site_file(tmp_path))]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "\x1b[" not in out  # one plain snapshot
    for title in TITLES:
        assert title in out
    assert "(waiting for readings)" not in out
    assert re.search(r"grid_power_w\s+-?[\d,.]+\s+W\s+good", out)
    assert re.search(r"soc_pct\s+[\d.]+\s+%\s+good", out)
    assert "Links" in out


def test_sim_refuses_a_broken_site_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "site.yaml"
    broken.write_text("deye: {soc_pct: 140}\n", encoding="utf-8")
    assert main(["sim", "--config", str(broken)]) == 1
    assert "deye.soc_pct" in capsys.readouterr().err
