"""The site file: every device kind, defaults, and an error that says where for each mistake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge_ems.dispatch import AssetLimits
from edge_ems.exceptions import SiteFileError
from edge_ems.site import DeviceKind, load_site_file, parse_site_file

SITE = """
site: {id: farm, name: The farm}
poll_interval: 5
control: {enable_control: true, dry_run: false, lease_ttl: 30}
agent: {id: farm-gw, flush_interval: 4, buffer_dir: /var/lib/edge-ems}
hub: {address: "hub-a:50051, hub-b:50051", token_file: /etc/edge-ems/token, tls: {ca: ca.pem}}
devices:
  - {id: inverter, kind: sunspec, host: 192.168.1.20,
     battery: {max_charge_w: 5000, max_discharge_w: 4000, capacity_wh: 10000}}
  - {id: meter, kind: modbus, point_map: eastron_sdm630, transport: rtu_over_tcp,
     host: 192.168.1.30, unit_id: 2, poll_interval: 2}
  - {id: serial-meter, kind: modbus, point_map: eastron_sdm120, transport: rtu,
     serial_port: /dev/ttyUSB0, baudrate: 19200, parity: even}
  - {id: jk, kind: mqtt_bms, topic_map: esphome_jk_bms, variables: {topic_prefix: jk},
     broker: {host: 192.168.1.5, username: bms, password: secret}}
  - {id: pylontech, kind: can_bms}
  - {id: bess, kind: opcua, url: "opc.tcp://10.0.0.5:4840", node_map: sim_bess,
     security: basic256sha256_signandencrypt, certificate: c.der, private_key: k.pem}
  - {id: spare, name: Spare battery, kind: sim_bess, capacity_wh: 20000, soc_pct: 70,
     mirror: {url: "opc.tcp://10.0.0.6:4840", node_map: sim_bess}}
"""


def minimal(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"site": {"id": "home"}, "devices": [{"id": "b", "kind": "sim_bess"}]}
    data.update(changes)
    return data


def test_a_site_with_every_kind(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(SITE)
    parsed = load_site_file(path)
    site = parsed.description
    assert (site.site_id, site.name, site.gateway_id, site.poll_interval) == (
        "farm", "The farm", "farm-gw", 5.0,
    )  # fmt: skip
    assert (site.policy.enable_control, site.policy.dry_run, site.policy.lease_ttl) == (
        True, False, 30.0,
    )  # fmt: skip
    assert site.buffer_dir == parsed.state_dir == Path("/var/lib/edge-ems")
    assert parsed.agent_id == "farm-gw"
    assert parsed.hub is not None
    assert parsed.hub.addresses == ("hub-a:50051", "hub-b:50051")
    assert (parsed.hub.tls, parsed.hub.tls_ca) == (True, Path("ca.pem"))
    kinds = {spec.device_id: spec.kind for spec in site.devices}
    assert set(kinds.values()) == set(DeviceKind)
    inverter, meter, serial, _, can, bess, spare = site.devices
    assert inverter.limits == AssetLimits(5000, 4000, 10_000)
    assert inverter.settings == {
        "host": "192.168.1.20", "port": 502, "unit_id": 1, "device_index": 0,
    }  # fmt: skip
    assert (site.interval(meter), site.interval(inverter)) == (2.0, 5.0)
    assert (serial.settings["parity"], serial.settings["baudrate"]) == ("even", 19200)
    assert can.settings == {"interface": "socketcan", "channel": "can0"}
    assert bess.settings["application_uri"] == "urn:edge-ems:client"
    # A simulated battery is dispatched within its own size unless told otherwise.
    assert (spare.name, spare.limits) == ("Spare battery", AssetLimits(5000, 5000, 20_000))
    assert meter.limits is None


def test_defaults_keep_control_off_and_link_to_no_hub() -> None:
    parsed = parse_site_file(minimal())
    site = parsed.description
    assert (parsed.agent_id, site.gateway_id, site.buffer_dir, parsed.hub) == (
        "home", "home", None, None,
    )  # fmt: skip
    assert not site.policy.enable_control
    assert site.policy.dry_run
    assert site.name == "home"


def device(**settings: Any) -> dict[str, Any]:
    """A site whose one device has ``settings``."""
    return {"devices": [settings]}


MODBUS = {"id": "m", "kind": "modbus", "point_map": "x"}
OPCUA = {"id": "o", "kind": "opcua", "url": "opc.tcp://x", "node_map": "m"}


@pytest.mark.parametrize(
    ("change", "where", "reason"),
    [
        ({"site": {}}, "site.id", "required"),
        ({"devices": []}, "devices", "a site needs a device"),
        (device(id="b"), "devices.0.kind", "required"),
        (device(id="b", kind="toaster"), "devices.0.kind", "one of"),
        ({"devices": ["b"]}, "devices.0", "expected a mapping"),
        (device(id="x y", kind="can_bms"), "devices.0.id", "letters"),
        (device(id="b", kind="sim_bess", max_charge_w=-5), "devices.b.max_charge_w", "at least 0"),
        (device(id="b", kind="sim_bess", soc_pct=120), "devices.b.soc_pct", "at most 100"),
        (device(id="m", kind="modbus", host="h"), "devices.m.point_map", "required"),
        (device(**MODBUS), "devices.m.host", "required for transport tcp"),
        (device(**MODBUS, transport="rtu"), "devices.m.serial_port", "required for transport rtu"),
        (device(**MODBUS, host="h", parity="N"), "devices.m.parity", "one of"),
        (device(id="s", kind="sunspec", host="h", port=70000), "devices.s.port", "at most 65535"),
        (device(id="s", kind="sunspec", host="h", port=True), "devices.s.port", "integer"),
        (device(**{**OPCUA, "url": "http://x"}), "devices.o.url", "opc.tcp"),
        (device(**OPCUA, security="basic256sha256_sign"), "devices.o.certificate", "required with"),
        (device(id="q", kind="mqtt_bms", topic_map="t"), "devices.q.broker", "required"),
        (
            {"devices": [{"id": "b", "kind": "sim_bess"}, {"id": "b", "kind": "can_bms"}]},
            "devices.b",
            "two devices",
        ),
        (device(id="b", kind="can_bms", colour=1), "devices.b.colour", "unknown key"),
        ({"poll_interval": 0}, "poll_interval", "at least 0.05"),
        ({"hub": {"address": "nohost"}}, "hub.address", "host:port"),
        ({"hub": {}}, "hub.address", "required"),
        ({"colour": "red"}, "colour", "unknown key"),
    ],
)
def test_every_mistake_names_its_key(change: dict[str, Any], where: str, reason: str) -> None:
    with pytest.raises(SiteFileError, match=reason) as raised:
        parse_site_file(minimal(**change), source="site.yaml")
    assert raised.value.path == where
    assert str(raised.value).startswith(f"site.yaml: {where}: ")


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(SiteFileError, match=r"missing\.yaml: cannot read"):
        load_site_file(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("site: [")
    with pytest.raises(SiteFileError, match=r"broken\.yaml: cannot read"):
        load_site_file(broken)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(SiteFileError, match="expected a mapping"):
        load_site_file(empty)
