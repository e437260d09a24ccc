"""The hub's configuration from the app's options file, YAML and the environment, and its
JSON logs."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from edge_ems.exceptions import ConfigError
from edge_ems.hub.app import journal_dir
from edge_ems.hub.config import load_config, parse_config
from edge_ems.hub.logs import JsonFormatter, setup_logging

TOKEN = "t" * 24


def test_app_options_file_with_environment_overrides(tmp_path: Path) -> None:
    options = tmp_path / "options.json"
    options.write_text(
        json.dumps(
            {
                "api_token": TOKEN,
                "api_port": 8099,
                "trust_ingress": True,
                "agents": [{"id": "farm", "token": "f" * 20}],
                "assets": [{"asset_id": "bess-1", "site_id": "farm", "name": "Barn"}],
                "database_url": "",
                "parquet_dir": "/share/edge_ems/parquet",
            }
        )
    )
    env = {
        "EDGE_EMS_API_PORT": "9000",
        "EDGE_EMS_TRUST_INGRESS": "false",
        "EDGE_EMS_AGENTS": "remote=" + "r" * 20,
        "DATABASE_URL": "postgresql://hub@db/edge",
    }
    config = load_config(options, env)
    assert (config.api_port, config.trust_ingress) == (9000, False)
    assert dict(config.agents) == {"farm": "f" * 20, "remote": "r" * 20}
    assert [a.asset_id for a in config.inventory] == ["bess-1"]
    assert config.database_url == "postgresql://hub@db/edge"
    assert config.parquet_dir == "/share/edge_ems/parquet"
    assert TOKEN not in repr(config)


def test_yaml_file_and_inventory_file(tmp_path: Path) -> None:
    inventory = tmp_path / "assets.yaml"
    inventory.write_text("assets:\n  - {asset_id: b1, site_id: s1}\n")
    path = tmp_path / "hub.yaml"
    path.write_text(f"api_token: {TOKEN}\ninventory_file: {inventory}\nlog_format: TEXT\n")
    config = load_config(path, {})
    assert [a.asset_id for a in config.inventory] == ["b1"]
    assert config.log_format == "text"
    assert config.grpc_port == 50051


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "api_token: required key not provided"),
        ({"api_token": "short"}, "api_token: a token needs at least 16"),
        ({"api_token": TOKEN, "api_port": 70000}, "api_port"),
        ({"api_token": TOKEN, "agents": [{"id": "a", "token": "x"}]}, "agents.0.token"),
        ({"api_token": TOKEN, "rate_limit": 0}, "rate_limit"),
        ({"api_token": TOKEN, "tls_certfile": "/c.pem"}, "tls_certfile and tls_keyfile"),
        ({"api_token": TOKEN, "surprise": 1}, "surprise"),
        (
            {"api_token": TOKEN, "agents": [{"id": "a", "token": TOKEN}] * 2},
            "'a' is listed twice",
        ),
        ([1, 2], "expected a mapping"),
    ],
)
def test_bad_configuration_names_the_key(data: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(data, source="hub.yaml")


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        load_config(tmp_path / "missing.yaml", {})
    broken = tmp_path / "options.json"
    broken.write_text("{nope")
    with pytest.raises(ConfigError, match="not valid json"):
        load_config(broken, {})
    with pytest.raises(ConfigError, match="EDGE_EMS_AGENTS"):
        load_config(None, {"EDGE_EMS_API_TOKEN": TOKEN, "EDGE_EMS_AGENTS": "no-token"})


def test_each_hub_journals_in_a_folder_of_its_own() -> None:
    alone = parse_config({"api_token": TOKEN, "store_path": "/data/edge_ems.db"})
    assert journal_dir(alone, "") == Path("/data/edge_ems.db.journal")
    # Hubs sharing a database, on one machine: one journal each, named by the instance.
    assert journal_dir(alone, "host:50051") == Path("/data/edge_ems.db.host_50051.journal")
    given = parse_config({"api_token": TOKEN, "journal_dir": "/var/lib/hub/journal"})
    assert journal_dir(given, "host:50051") == Path("/var/lib/hub/journal")


def test_json_logs_are_one_object_per_line() -> None:
    stream = io.StringIO()
    setup_logging("debug", stream=stream)
    logger = logging.getLogger("edge_ems.test")
    try:
        logger.info("Hub ready on %d", 8099, extra={"api_port": 8099})
        try:
            raise ValueError("boom\nsecond line")
        except ValueError:
            logger.exception("Failed")
    finally:
        setup_logging("warning", json_format=False)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert (first["msg"], first["level"], first["api_port"]) == ("Hub ready on 8099", "info", 8099)
    assert first["logger"] == "edge_ems.test"
    assert first["ts"].endswith("+00:00")
    assert "ValueError: boom" in second["exc"]
    extra = json.loads(JsonFormatter().format(logging.makeLogRecord({"msg": "x", "site": "farm"})))
    assert extra["site"] == "farm"
