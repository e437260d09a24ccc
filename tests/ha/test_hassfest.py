"""What hassfest and HACS's action check on GitHub, run here (their rules in ``hassfest.py``),
and the rules themselves tried on Home Assistant's own integrations, so that a rule ported too
strictly shows here instead of as a false alarm."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import homeassistant
import pytest
import yaml
from custom_components.edge_ems import config_flow
from homeassistant.const import __version__ as harness

from . import hassfest

pytestmark = pytest.mark.ha

INTEGRATION = Path(config_flow.__file__).parent
REPOSITORY = INTEGRATION.parents[1]
CORE = Path(homeassistant.__file__).parent / "components"


def _json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def strings() -> dict[str, Any]:
    return _json(INTEGRATION / "translations" / "en.json")


@pytest.fixture(scope="module")
def icons() -> dict[str, Any]:
    return _json(INTEGRATION / "icons.json")


def test_manifest(strings: dict[str, Any]) -> None:
    assert hassfest.validate_manifest(INTEGRATION) == []
    assert "title" not in strings  # the manifest's name is the title


def test_translations(strings: dict[str, Any]) -> None:
    assert hassfest.validate_translations(strings) == []


def test_services_and_their_icons(strings: dict[str, Any], icons: dict[str, Any]) -> None:
    assert hassfest.validate_services(INTEGRATION, strings, icons) == []


def test_icons(icons: dict[str, Any]) -> None:
    assert hassfest.validate_icons(icons) == []


def test_quality_scale_names_every_rule_with_a_valid_status() -> None:
    assert hassfest.validate_quality_scale(INTEGRATION) == []
    status = hassfest.quality_scale_status(INTEGRATION)
    every = [rule for rules in hassfest.ALL_RULES.values() for rule in rules]
    assert sorted(status) == sorted(every)
    # Published to PyPI by the release workflow, pinned in the manifest.
    assert status["dependency-transparency"] == "done"


def test_hacs() -> None:
    assert hassfest.validate_hacs(REPOSITORY, INTEGRATION) == []


def test_the_ported_rules_find_what_they_are_for() -> None:
    """Each rule refuses what its source refuses (a rule that passes everything is none)."""
    bad_strings: list[dict[str, Any]] = [
        {"selector": {"parity": {"options": {"N": "None"}}}},  # keys [a-z0-9-_]
        {"config": {"step": {"user": {"title": "<b>Site</b>"}}}},  # no HTML
        {"config": {"step": {"user": {"data": {}, "data_description": {"host": "Host"}}}}},
        {"config_subentries": {"modbus": {"step": {}}}},  # a subentry has an entry_type
        {"services": {"dispatch": {"name": "Dispatch"}}},  # and a description
        {"exceptions": {"failed": {"message": " padded "}}},
        {"issues": {"gone": {"title": "Gone", "description": "x", "fix_flow": {"step": {}}}}},
        {"entity": {"sensor": {"Power": {"name": "Power"}}}},
        {"unknown": {}},
    ]
    for strings in bad_strings:
        assert hassfest.validate_translations(strings), strings
    for icons in (
        {"services": {"dispatch": {"service": "battery"}}},  # mdi: icons only
        {"entity": {"sensor": {"soc": {"default": "mdi:battery", "state": {"low": "<b>"}}}}},
    ):
        assert hassfest.validate_icons(icons), icons
    with pytest.raises(hassfest.vol.Invalid):
        hassfest.HACS_MANIFEST_JSON_SCHEMA({"name": "Edge EMS", "domains": ["sensor"]})
    with pytest.raises(hassfest.vol.Invalid):
        hassfest.CUSTOM_INTEGRATION_MANIFEST_SCHEMA({"domain": "x", "name": "X"})


def test_the_quality_scale_rules_are_those_core_uses() -> None:
    """Core's own quality_scale.yaml files name no rule the port does not know."""
    every = {rule for rules in hassfest.ALL_RULES.values() for rule in rules}
    seen: set[str] = set()
    for path in CORE.glob("*/quality_scale.yaml"):
        seen |= set(yaml.safe_load(path.read_text(encoding="utf-8"))["rules"])
    assert seen <= every


@pytest.mark.parametrize("section", sorted(set(hassfest.SECTIONS) - {"title"}))
def test_the_translation_rules_accept_core_s_own_strings(section: str) -> None:
    """Home Assistant's integrations pass hassfest in core's CI; the port must accept them."""
    checked = 0
    problems = []
    for path in sorted(CORE.glob("*/strings.json")):
        strings = _json(path)
        if section in strings:
            checked += 1
            problems += [f"{path.parent.name}: {problem}" for problem in
                         hassfest.validate_translations({section: strings[section]})]  # fmt: skip
    assert checked
    assert problems[:5] == []


def test_the_icon_rules_accept_core_s_hub_and_device_integrations() -> None:
    checked = 0
    problems = []
    for path in sorted(CORE.glob("*/icons.json")):
        manifest = _json(path.parent / "manifest.json")
        if manifest.get("integration_type", "hub") in ("hub", "device", "service"):
            checked += 1
            skip = {"triggers", "conditions"}  # not of a hub's
            icons = {key: value for key, value in _json(path).items() if key not in skip}
            problems += [f"{path.parent.name}: {p}" for p in hassfest.validate_icons(icons)]
    assert checked > 100
    assert problems[:5] == []


def test_the_minimum_home_assistant_is_the_one_tested() -> None:
    """hacs.json, the app and the blueprints ask for the Home Assistant release series the
    test harness runs (make release-check runs the newest release too)."""
    minimum = json.loads((REPOSITORY / "hacs.json").read_text())["homeassistant"]
    assert (
        yaml.safe_load((REPOSITORY / "addon" / "config.yaml").read_text())["homeassistant"]
        == minimum
    )
    for path in (REPOSITORY / "blueprints").rglob("*.yaml"):
        blueprint = yaml.safe_load(path.read_text().replace("!input", ""))["blueprint"]
        assert blueprint["homeassistant"]["min_version"] == minimum, path.name
    year, month, _ = harness.split(".", 2)
    assert minimum == f"{year}.{month}.0"
