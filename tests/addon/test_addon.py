"""Static checks of the app packaging in ``addon/``: the manifest against its options, the
hub's configuration schema and the translations; the Dockerfile's base image; the s6-overlay
services and scripts; the AppArmor profile; icons; the repository file."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from edge_ems.exceptions import ConfigError
from edge_ems.hub.config import (
    APP_SELF_SIGNED_DIR,
    APP_TLS_OPTIONS,
    SCALAR_KEYS,
    TOKEN_PATTERN,
    app_config,
    load_config,
)
from edge_ems.hub.sessions import InventoryAsset

from .supervisor_options import SCHEMA_ELEMENT, OptionError, validate

ROOT = Path(__file__).resolve().parents[2]
ADDON = ROOT / "addon"
S6 = ADDON / "rootfs/etc/s6-overlay"


def manifest() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ADDON / "config.yaml").read_text())
    return data


def test_manifest_asks_for_a_good_security_rating() -> None:
    config = manifest()
    assert config["slug"] == "edge_ems"
    assert (config["ingress"], config["ingress_port"]) == (True, 8099)
    assert config["ports"] == {"50051/tcp": 50051}
    assert config["discovery"] == ["edge_ems"]
    assert {"type": "share", "read_only": False} in config["map"]
    assert config["apparmor"] is True
    assert not config.get("host_network", False)
    assert not config.get("privileged")
    assert not config.get("full_access", False)
    assert not config.get("hassio_api", False)
    assert not config.get("docker_api", False)
    assert config["init"] is False  # s6-overlay v3 is PID 1
    assert set(config["arch"]) <= {"amd64", "aarch64"}
    assert not (ADDON / "build.yaml").exists()
    assert not (ADDON / "build.json").exists()


def _schema_types(schema: Any) -> list[str]:
    if isinstance(schema, list):
        return [kind for item in schema for kind in _schema_types(item)]
    if isinstance(schema, dict):
        return [kind for item in schema.values() for kind in _schema_types(item)]
    return [schema]


def test_every_default_passes_the_supervisor_s_option_rules() -> None:
    config = manifest()
    for kind in _schema_types(config["schema"]):
        assert SCHEMA_ELEMENT.match(kind), kind
    assert set(config["options"]) <= set(config["schema"])
    validate(config["schema"], config["options"])  # what the Supervisor runs before a start
    token = f"match({TOKEN_PATTERN})"  # the hub's own rule, matched as the Supervisor does
    assert config["schema"]["agents"][0]["token"] == token
    assert config["schema"]["api_token"] == token + "?"


def _options(**changes: Any) -> dict[str, Any]:
    return {**manifest()["options"], **changes}


@pytest.mark.parametrize(
    "options",
    [
        _options(agents=[{"id": "remote", "token": "t" * 15}]),
        _options(api_token="t" * 15),
        _options(agents=[{"id": "remote/site", "token": "t" * 16}]),  # "/" is for sub-agents
        _options(uplink_url=""),
        _options(hub_id=None),
        _options(assets=[{"asset_id": "b", "site_id": "s", "agent_id": ""}]),
    ],
)
def test_the_schema_refuses_what_the_hub_would_stop_on(options: dict[str, Any]) -> None:
    with pytest.raises(OptionError):
        validate(manifest()["schema"], options)


@given(
    token=st.text(st.characters(codec="utf-8", exclude_characters="\n"), max_size=40),
    api=st.booleans(),
)
def test_a_token_the_supervisor_accepts_the_hub_accepts_and_no_other(token: str, api: bool) -> None:
    options = (
        _options(api_token=token)
        if api
        else _options(api_token="a" * 20, agents=[{"id": "remote", "token": token}])
    )
    try:
        saved = validate(manifest()["schema"], options)
    except OptionError:
        supervisor = False
    else:
        supervisor = True
    try:
        app_config(saved if supervisor else options, {})
    except ConfigError:
        hub = False
    else:
        hub = True
    assert supervisor == hub, (token, api)


def test_options_are_hub_configuration_keys() -> None:
    config = manifest()
    options = dict(config["options"], api_token="x" * 32)
    options["agents"] = [{"id": "remote", "token": "r" * 20}]
    options["assets"] = [{"asset_id": "bess-1", "site_id": "farm", "capacity_wh": 10.0}]
    hub = app_config(validate(config["schema"], options), {})
    assert dict(hub.agents) == {"remote": "r" * 20}
    asset_fields = set(InventoryAsset.__dataclass_fields__)
    assert set(config["schema"]["assets"][0]) <= asset_fields
    assert set(config["schema"]["agents"][0]) == {"id", "token"}
    scalars = set(SCALAR_KEYS) | {"agents", "assets", "tls_names"}
    assert set(config["schema"]) - scalars == set(APP_TLS_OPTIONS)


def test_translations_name_every_option_and_port() -> None:
    config = manifest()
    english = yaml.safe_load((ADDON / "translations/en.yaml").read_text())
    assert set(english["configuration"]) == set(config["schema"])
    for key, text in english["configuration"].items():
        assert text["name"], key
        assert text["description"], key
    assert set(english["network"]) == set(config["ports"])


BASE_TAG = re.compile(
    r"(?P<python>3\.1[4-9])-alpine(?P<alpine>3\.\d+)-(?P<release>20\d\d\.\d\d\.\d+)"
)
"""A dated release of home-assistant/docker-base's Python image: it never moves under us."""


def base_image() -> re.Match[str]:
    lines = (ADDON / "Dockerfile").read_text().splitlines()
    froms = [line.split()[1] for line in lines if line.startswith("FROM ")]
    assert len(froms) == 1
    image, _, tag = froms[0].partition(":")
    assert image == "ghcr.io/home-assistant/base-python"
    pinned = BASE_TAG.fullmatch(tag.split("@")[0])
    assert pinned is not None, f"{tag}: pin a dated tag (or a digest)"
    return pinned


def test_dockerfile_names_a_dated_base_image_and_installs_its_own_version() -> None:
    base_image()
    text = (ADDON / "Dockerfile").read_text()
    assert "BUILD_FROM" not in text
    assert 'io.hass.type="app"' in text
    assert "COPY rootfs /" in text
    # The image installs the library of the app's own version (scripts/release.py keeps the
    # Dockerfile's default BUILD_VERSION, config.yaml's version and pyproject's one).
    install = 'pip3 install --no-cache-dir --only-binary=:all: "edge-ems[hub]==${BUILD_VERSION}"'
    assert install in text
    assert f"ARG BUILD_VERSION={manifest()['version']}" in text


def test_the_supervisor_pulls_a_published_image_for_each_architecture() -> None:
    config = manifest()
    assert config["image"] == "ghcr.io/edge-ems/{arch}-edge-ems-hub"
    workflow = (ROOT / ".github/workflows/release.yml").read_text()
    assert "home-assistant/builder/actions/build-image@" in workflow
    assert "edge-ems-hub" in workflow


def test_backups_are_consistent_with_sqlite_in_wal_mode() -> None:
    """A hot backup would copy the store while it writes: the database file without the
    commits still in its -wal file, or (with the -wal excluded) without them for good. The
    app is stopped for its backup instead; the hub closes the store on SIGTERM, which
    checkpoints the WAL into the database (tests/addon/test_backup.py)."""
    config = manifest()
    assert config["backup"] == "cold"
    excluded = config.get("backup_exclude", [])
    assert not any("wal" in pattern or "shm" in pattern for pattern in excluded)


def _services() -> dict[str, Path]:
    return {path.name: path for path in (S6 / "s6-rc.d").iterdir() if path.name != "user"}


def test_s6_services_are_complete_and_wired() -> None:
    services = _services()
    assert set(services) == {"init-edge-ems", "edge-ems", "edge-ems-discovery"}
    enabled = {path.name for path in (S6 / "s6-rc.d/user/contents.d").iterdir()}
    assert enabled == set(services)
    for name, path in services.items():
        kind = (path / "type").read_text().strip()
        assert kind in {"oneshot", "longrun"}, name
        if kind == "longrun":
            assert os.access(path / "run", os.X_OK), name
        else:
            script = Path((path / "up").read_text().strip())
            assert (ADDON / "rootfs" / script.relative_to("/")).is_file(), name
        for dependency in (path / "dependencies.d").glob("*"):
            assert dependency.name in services, (name, dependency.name)
    assert (services["edge-ems"] / "dependencies.d/init-edge-ems").exists()
    assert (services["edge-ems-discovery"] / "dependencies.d/edge-ems").exists()


def test_scripts_are_executable_bashio_scripts() -> None:
    scripts = [*(S6 / "scripts").glob("*.sh"), S6 / "s6-rc.d/edge-ems/run"]
    scripts.append(S6 / "s6-rc.d/edge-ems/finish")
    for script in scripts:
        assert os.access(script, os.X_OK), script
        assert script.read_text().startswith("#!/command/with-contenv bashio\n"), script
        if shutil.which("bash"):
            check = subprocess.run(["bash", "-n", str(script)], capture_output=True, check=False)
            assert check.returncode == 0, (script, check.stderr)


def test_run_script_sets_only_hub_settings() -> None:
    run = (S6 / "s6-rc.d/edge-ems/run").read_text()
    exported = re.findall(r"^export (EDGE_EMS_[A-Z_]+)", run, re.MULTILINE)
    exported += re.findall(r"^(EDGE_EMS_[A-Z_]+)=", run, re.MULTILINE)
    assert exported
    for name in exported:
        key = name.removeprefix("EDGE_EMS_").lower()
        assert key in SCALAR_KEYS or key == "agents", name
    assert "exec python3 -m edge_ems.hub --app" in run


def test_discovery_announces_host_port_and_token() -> None:
    script = (S6 / "scripts/discovery.sh").read_text()
    assert 'bashio::discovery "edge_ems"' in script
    for field in ("host", "port", "api_port", "agent_id", "token", "api_token"):
        assert re.search(rf"^\s+{field} ", script, re.MULTILINE), field
    assert '"^50052"' in script  # the internal plaintext port; a number in the JSON


def _apparmor_rules(text: str) -> tuple[str, list[str]]:
    body = [line.strip() for line in text.splitlines()]
    body = [line for line in body if line and not line.startswith("#")]
    header = next(line for line in body if line.startswith("profile "))
    start = body.index(header)
    assert body[-1] == "}"
    return header, body[start + 1 : -1]


def test_apparmor_profile_structure() -> None:
    text = (ADDON / "apparmor.txt").read_text()
    assert text.startswith("#include <tunables/global>")
    header, rules = _apparmor_rules(text)
    assert header.split()[1] == manifest()["slug"]
    assert header.endswith("{")
    assert text.count("{") == text.count("}")
    for rule in rules:
        assert rule.endswith(",") or rule.startswith("#include"), rule
    assert "/data/** rwk," in rules
    assert not any(
        rule.startswith(("capability sys_admin", "capability sys_module")) for rule in rules
    )
    parser = shutil.which("apparmor_parser")
    if parser is None:
        pytest.skip("apparmor_parser is not installed (the structure test still ran)")
    result = subprocess.run(
        [parser, "-QT", str(ADDON / "apparmor.txt")], capture_output=True, check=False
    )
    assert result.returncode == 0, result.stderr


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_icon_logo_docs_and_repository() -> None:
    width, height = _png_size(ADDON / "icon.png")
    assert width == height >= 128
    assert _png_size(ADDON / "logo.png")[0] > 0
    for name in ("DOCS.md", "CHANGELOG.md", "README.md"):
        assert (ADDON / name).read_text().strip(), name
    assert manifest()["version"] in (ADDON / "CHANGELOG.md").read_text()
    repository = yaml.safe_load((ROOT / "repository.yaml").read_text())
    assert set(repository) >= {"name", "url", "maintainer"}


def test_default_options_with_the_run_scripts_environment_load(tmp_path: Path) -> None:
    options = tmp_path / "options.json"
    saved = validate(manifest()["schema"], manifest()["options"])
    options.write_text(json.dumps(saved))  # what the Supervisor writes
    run = (S6 / "s6-rc.d/edge-ems/run").read_text()
    env = dict(re.findall(r"^export (EDGE_EMS_[A-Z_]+)=(\S+)$", run, re.MULTILINE))
    env |= {"EDGE_EMS_API_TOKEN": "g" * 43, "EDGE_EMS_AGENTS": "homeassistant=" + "h" * 43}
    config = load_config(options, env, app=True)
    assert (config.api_host, config.api_port, config.grpc_port) == ("0.0.0.0", 8099, 50051)
    assert config.trust_ingress is True
    assert dict(config.agents) == {"homeassistant": "h" * 43}
    assert (config.store_path, config.parquet_dir) == (
        "/data/edge_ems.db",
        "/share/edge_ems/parquet",
    )
    assert config.uplink_url is None  # no uplink unless one is set
    assert config.hub_id is None  # made on first start and kept in the store
    assert (config.grpc_internal_port, config.tls_certfile) == (50052, None)
    assert config.tls_self_signed_dir == APP_SELF_SIGNED_DIR
    options.write_text(json.dumps(saved | {"ssl": True}))
    with_ssl = load_config(options, env, app=True)
    assert (with_ssl.tls_certfile, with_ssl.tls_keyfile, with_ssl.tls_self_signed_dir) == (
        "/ssl/fullchain.pem",
        "/ssl/privkey.pem",
        None,
    )
