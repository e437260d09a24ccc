"""``edge-ems pointmap validate|catalog|diff`` through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from edge_ems.cli import main
from edge_ems.cli.pointmap import catalog_rows
from edge_ems.pointmap import catalog_paths, load_catalog

CATALOG_DIR = Path(next(iter(catalog_paths().values()))).parent


def _write(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _copy_of(map_id: str) -> dict[str, object]:
    loaded = yaml.safe_load(catalog_paths()[map_id].read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_validate_passes_on_the_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pointmap", "validate", str(CATALOG_DIR)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(catalog_paths())
    assert all(line.startswith("ok   ") and line.endswith(" points") for line in out)


def test_validate_reports_file_key_and_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = _copy_of("eastron_sdm120")
    points = broken["points"]
    assert isinstance(points, dict)
    points["grid_power_w"]["scale"] = 0
    bad = _write(tmp_path / "bad.yaml", broken)
    good = _write(tmp_path / "good.yaml", _copy_of("eastron_sdm120"))
    assert main(["pointmap", "validate", str(bad), str(good)]) == 1
    out = capsys.readouterr().out
    assert f"FAIL {bad}: points.grid_power_w.scale: scale is 0" in out
    assert f"ok   {good}: 12 points" in out


def test_catalog_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pointmap", "catalog"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", "maker", "model", "kind", "points", "writable", "allowed"]
    assert len(lines) == 1 + len(catalog_paths())
    deye = next(line for line in lines if line.startswith("deye_sun_sg_hybrid "))
    assert "Deye" in deye
    assert "hybrid_inverter" in deye


def test_catalog_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pointmap", "catalog", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == catalog_rows(load_catalog())
    by_id = {row["id"]: row for row in rows}
    assert by_id["eastron_sdm630"]["writable"] == 0
    deye = by_id["deye_sun_sg_hybrid"]
    assert 0 < deye["allowed"] <= deye["writable"] < deye["points"]


def test_diff_of_a_map_with_itself_is_empty(capsys: pytest.CaptureFixture[str]) -> None:
    path = catalog_paths()["eastron_sdm630"]
    assert main(["pointmap", "diff", "eastron_sdm630", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "no differences"


def test_diff_shows_device_and_point_changes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pointmap", "diff", "deye_sun_sg_hybrid", "deye_sun_sg_hybrid_hv"]) == 1
    out = capsys.readouterr().out
    assert "device:" in out
    assert "  ~ identify: " in out
    assert "  ~ battery_power_w.scale: 1.0 -> 10.0" in out
    assert "  ~ grid_export_limit_w.write.maximum: 15600.0 -> 25000.0" in out
    assert "soc_pct" not in out


def test_diff_shows_added_and_removed_points(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    changed = _copy_of("eastron_sdm120")
    points = changed["points"]
    assert isinstance(points, dict)
    del points["ac_frequency_hz"]
    points["ac_current_a"] = {"address": 0x0030, "type": "f32"}
    path = _write(tmp_path / "sdm120_changed.yaml", changed)
    assert main(["pointmap", "diff", "eastron_sdm120", str(path)]) == 1
    out = capsys.readouterr().out
    assert "points:\n  + ac_current_a\n  - ac_frequency_hz\n" in out
    assert "device:" not in out


@pytest.mark.parametrize("other", ["no_such_map", "broken.yaml"])
def test_diff_errors_exit_2(other: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.yaml").write_text("device: [", encoding="utf-8")
    target = str(tmp_path / other) if other.endswith(".yaml") else other
    assert main(["pointmap", "diff", "eastron_sdm120", target]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"edge-ems: {target}")
