"""The site file of ``edge-ems agent``: defaults, every asset kind, errors that say where."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from edge_ems.agent.site import OpcUaSource, load_site, parse_site
from edge_ems.exceptions import ConfigError

SITE = """
site: {id: farm, name: The farm}
agent: {id: farm-gw, read_interval: 2, flush_interval: 4, buffer_dir: /var/lib/edge-ems}
control: {enable_control: true, dry_run: false, lease_ttl: 30}
assets:
  - {id: bess-1, name: Barn battery, capacity_wh: 20000, max_charge_w: 8000,
     max_discharge_w: 9000, soc_pct: 70}
  - id: bess-2
    opcua: {url: "opc.tcp://10.0.0.5:4840/bess", node_map: sim_bess}
  - id: bess-3
    opcua: {url: "opc.tcp://10.0.0.6:4840/bess", node_map: ./maps/x.yaml,
            telemetry_write_sim: true, username: op, password: pw}
"""


def test_a_full_site_file(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(SITE)
    site = load_site(path)
    assert (site.site_id, site.site_name, site.agent_id, site.gateway_id) == (
        "farm",
        "The farm",
        "farm-gw",
        "farm-gw",
    )
    assert (site.read_interval, site.flush_interval) == (2.0, 4.0)
    assert site.buffer_dir == Path("/var/lib/edge-ems")
    assert site.policy.enable_control
    assert not site.policy.dry_run
    assert site.policy.lease_ttl == 30
    one, two, three = site.assets
    assert (one.name, one.capacity_wh, one.max_discharge_w, one.soc_pct) == (
        "Barn battery",
        20_000,
        9000,
        70,
    )
    assert one.simulated
    assert two.opcua == OpcUaSource("opc.tcp://10.0.0.5:4840/bess", "sim_bess")
    assert not two.simulated
    assert two.name == "bess-2"
    assert three.simulated
    assert three.opcua is not None
    assert three.opcua.username == "op"


def test_defaults_make_one_agent_for_the_site_with_controls_off() -> None:
    site = parse_site({"site": {"id": "home"}, "assets": [{"id": "b"}]})
    assert (site.agent_id, site.gateway_id, site.buffer_dir) == ("home", "home", None)
    assert not site.policy.enable_control
    assert site.policy.dry_run
    assert site.assets[0].type == "battery"


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"site": {}}, "site.id"),
        ({"assets": []}, "assets"),
        ({"assets": [{"id": "b", "max_charge_w": -5}]}, "assets.0.max_charge_w"),
        ({"assets": [{"id": "b", "soc_pct": 120}]}, "assets.0.soc_pct"),
        ({"assets": [{"id": "b", "opcua": {"url": "x"}}]}, "assets.0.opcua.node_map"),
        ({"assets": [{"id": "b"}, {"id": "b"}]}, "unique"),
        ({"agent": {"read_interval": 0}}, "agent.read_interval"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_errors_name_the_key(change: dict[str, object], where: str) -> None:
    data: dict[str, object] = {"site": {"id": "home"}, "assets": [{"id": "b"}]}
    data.update(change)
    with pytest.raises(ConfigError, match=where):
        parse_site(data, source="site.yaml")


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing"):
        load_site(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("site: [")
    with pytest.raises(ConfigError, match="broken"):
        load_site(broken)
    assert yaml.safe_load(SITE)["site"]["id"] == "farm"
