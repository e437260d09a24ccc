"""``edge-ems site validate`` and the agent's systemd unit."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import pytest

from edge_ems.cli import build_parser, main
from edge_ems.pointmap import catalog_paths

DOCS = Path(__file__).resolve().parents[3] / "docs"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(text)
    return path


def test_a_valid_site_is_listed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A map of one's own, named by its file, next to a bundled one.
    own = tmp_path / "my_meter.yaml"
    own.write_text(catalog_paths()["eastron_sdm120"].read_text())
    path = write(
        tmp_path,
        f"""
site: {{id: farm}}
hub: {{address: "hub:50051"}}
devices:
  - {{id: meter, kind: modbus, point_map: eastron_sdm630, host: gw, unit_id: 2,
     battery: {{max_charge_w: 1, max_discharge_w: 1, capacity_wh: 1}}}}
  - {{id: mine, kind: modbus, point_map: {own}, host: gw, unit_id: 3}}
  - {{id: spare, kind: sim_bess}}
""",
    )
    assert main(["site", "validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "site 'farm' with 3 devices is valid; hub hub:50051" in out
    assert "meter" in out
    assert "battery" in out


@pytest.mark.parametrize(
    ("devices", "error"),
    [
        ("[{id: m, kind: modbus, point_map: nope, host: gw}]", "no point map 'nope'"),
        ("[{id: m, kind: modbus, point_map: ./missing.yaml, host: gw}]", "missing.yaml"),
        ("[{id: m, kind: modbus, host: gw}]", "devices.m.point_map: required"),
        (
            "[{id: a, kind: modbus, point_map: eastron_sdm630, transport: rtu, "
            "serial_port: /dev/x, baudrate: 9600},"
            " {id: b, kind: modbus, point_map: eastron_sdm120, transport: rtu, "
            "serial_port: /dev/x, baudrate: 19200}]",
            "already open",
        ),
    ],
)
def test_mistakes_fail_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], devices: str, error: str
) -> None:
    path = write(tmp_path, f"site: {{id: farm}}\ndevices: {devices}\n")
    assert main(["site", "validate", str(path)]) == 1
    assert error in capsys.readouterr().err


def test_the_systemd_unit_runs_commands_the_cli_takes() -> None:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.read(DOCS / "edge-ems-agent.service")
    service = unit["Service"]
    assert service["Restart"] == "on-failure"
    parser = build_parser()
    for key in ("ExecStartPre", "ExecStart"):
        program, *args = shlex.split(service[key])
        assert program.endswith("/edge-ems")
        parsed = parser.parse_args(args)
        assert parsed.command in ("site", "agent")
    agent = parser.parse_args(shlex.split(service["ExecStart"])[1:])
    assert agent.buffer_dir == Path(f"/var/lib/{service['StateDirectory']}")
    assert agent.site.parent == Path(f"/etc/{service['ConfigurationDirectory']}")
