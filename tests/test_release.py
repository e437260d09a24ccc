"""One version everywhere (scripts/release.py): the checkout's files agree, any one of them
disagreeing fails, a new version is written everywhere, and the HACS zip is what HACS
unpacks. (The minimum Home Assistant is tested in tests/ha/test_hassfest.py, beside Home
Assistant.)"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import zipfile
from pathlib import Path

import pytest
import yaml
from scripts import release

FILES = {
    "PYPROJECT": "pyproject.toml",
    "MANIFEST": "custom_components/edge_ems/manifest.json",
    "APP_CONFIG": "addon/config.yaml",
    "DOCKERFILE": "addon/Dockerfile",
    "CHANGELOG": "CHANGELOG.md",
    "APP_CHANGELOG": "addon/CHANGELOG.md",
    "HACS": "hacs.json",
}


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the files that state the version, which the module then reads."""
    for name, relative in FILES.items():
        target = tmp_path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(release.REPO / relative, target)
        monkeypatch.setattr(release, name, target)
    monkeypatch.setattr(release, "REPO", tmp_path)
    return tmp_path


def test_the_checkout_states_one_version() -> None:
    version = release.check()
    assert release.VERSION.match(version)
    assert {stated.version for stated in release.stated()} == {version}


@pytest.mark.parametrize(
    ("relative", "old", "new", "where"),
    [
        ("pyproject.toml", 'version = "{v}"', 'version = "9.9.9"', "manifest.json version"),
        ("custom_components/edge_ems/manifest.json", '"version": "{v}"', '"version": "9.9.9"',
         "manifest.json version"),
        ("custom_components/edge_ems/manifest.json", "edge-ems=={v}", "edge-ems==9.9.9",
         "manifest.json requirement"),
        ("addon/config.yaml", 'version: "{v}"', 'version: "9.9.9"', "addon/config.yaml"),
        ("addon/Dockerfile", "BUILD_VERSION={v}", "BUILD_VERSION=9.9.9", "BUILD_VERSION"),
        ("addon/CHANGELOG.md", "## {v}", "## 9.9.9", "addon/CHANGELOG.md"),
    ],
)  # fmt: skip
def test_any_file_that_disagrees_fails(
    checkout: Path, relative: str, old: str, new: str, where: str
) -> None:
    version = release.version()
    path = checkout / relative
    text = path.read_text()
    assert old.format(v=version) in text
    path.write_text(text.replace(old.format(v=version), new, 1))
    with pytest.raises(release.ReleaseError, match=where):
        release.check()


def test_a_tag_must_be_the_version_and_have_its_changelog(checkout: Path) -> None:
    version = release.version()
    with pytest.raises(release.ReleaseError, match="is not v"):
        release.check(tag="v9.9.9")
    if f"## {version}" not in release.CHANGELOG.read_text():
        with pytest.raises(release.ReleaseError, match="no '## "):
            release.check(tag=f"v{version}")


def test_set_writes_the_version_everywhere_and_releases_the_changelog(checkout: Path) -> None:
    release.set_version("7.8.9", today=dt.date(2027, 1, 2))
    assert release.check(tag="v7.8.9") == "7.8.9"
    manifest = json.loads(release.MANIFEST.read_text())
    assert manifest["version"] == "7.8.9"
    assert "edge-ems==7.8.9" in manifest["requirements"]
    assert yaml.safe_load(release.APP_CONFIG.read_text())["version"] == "7.8.9"
    assert "ARG BUILD_VERSION=7.8.9" in release.DOCKERFILE.read_text()
    assert "## 7.8.9 (2027-01-02)" in release.CHANGELOG.read_text()
    assert "## Unreleased" not in release.CHANGELOG.read_text()
    assert release.notes("7.8.9").strip()
    assert release.APP_CHANGELOG.read_text().index("## 7.8.9") < release.APP_CHANGELOG.read_text(
    ).index("## 0.")  # fmt: skip
    with pytest.raises(release.ReleaseError, match="already has"):
        release.set_version("7.8.9")
    with pytest.raises(release.ReleaseError, match=r"major\.minor\.patch"):
        release.set_version("8.0")


def test_the_hacs_zip_holds_the_integration_at_its_root(tmp_path: Path) -> None:
    archive = release.hacs_zip(tmp_path)
    assert archive.name == json.loads((release.REPO / "hacs.json").read_text())["filename"]
    with zipfile.ZipFile(archive) as unpacked:
        names = unpacked.namelist()
    assert "manifest.json" in names
    assert "translations/en.json" in names
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)
    shipped = {
        path.relative_to(release.INTEGRATION).as_posix()
        for path in release.INTEGRATION.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert set(names) == shipped
