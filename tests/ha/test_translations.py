"""Every name, error and repair the integration can show has its English text, and the
user documentation (docs/integration.md) covers every map, field, action and refusal."""

from __future__ import annotations

import ast
import inspect
import json
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from custom_components.edge_ems import config_flow
from custom_components.edge_ems.const import DOMAIN, SUBENTRY_ACTUATOR
from custom_components.edge_ems.descriptions import platform_of
from custom_components.edge_ems.services import (
    CLEAR_OVERRIDE_SCHEMA,
    DISPATCH_SCHEMA,
    GET_PLAN_SCHEMA,
    OVERRIDE_SCHEMA,
    RELEASE_SCHEMA,
    REPLAN_SCHEMA,
    SERVICE_CLEAR_OVERRIDE,
    SERVICE_DISPATCH,
    SERVICE_GET_PLAN,
    SERVICE_OVERRIDE,
    SERVICE_RELEASE,
    SERVICE_REPLAN,
    SERVICE_WRITE_POINT,
    WRITE_POINT_SCHEMA,
)
from homeassistant.const import Platform

from edge_ems.bms import catalog_paths as topic_map_paths
from edge_ems.device import Command
from edge_ems.dispatch import Outcome, Reason, dispatcher
from edge_ems.metrics import LEASED_METRICS, METRICS, MetricKind
from edge_ems.opcua.nodemap import catalog_paths as node_map_paths
from edge_ems.pointmap import catalog_paths
from edge_ems.sim.bess import BATTERY_STATES
from edge_ems.site import load_catalog
from edge_ems.sunspec.mapping import READ_POINTS
from edge_ems.sunspec.models import SUPPORTED_MODELS
from edge_ems.sunspec.readout import reading_states

EN = Path(config_flow.__file__).parent / "translations" / "en.json"
SERVICES = EN.parents[1] / "services.yaml"
PROBE_ERRORS = {"cannot_connect", "timeout", "not_sunspec", "map_mismatch", "invalid_auth",
                "no_data", "link_conflict", "variables_needed"}  # fmt: skip


@pytest.fixture(scope="module")
def english() -> dict[str, Any]:
    return json.loads(EN.read_text(encoding="utf-8"))


def test_every_metric_has_a_name_wherever_it_can_appear(english: dict[str, Any]) -> None:
    entity = english["entity"]
    missing = []
    for name, metric in METRICS.items():
        candidates = [platform_of(metric, None)]
        if metric.kind is MetricKind.SETTING and metric.device_class == "enum":
            options = {0: "a", 1: "b"}
            candidates.append(platform_of(metric, Command(name, options=options, allow_write=True)))
        elif metric.kind is MetricKind.SETTING:
            leased = name in LEASED_METRICS
            candidates += [
                platform_of(metric, Command(name, 0, 1, allow_write=True, lease=leased)),
                platform_of(metric, Command(name, 0, 100, allow_write=True, lease=leased)),
            ]
        for platform in candidates:
            if platform is Platform.SWITCH and metric.unit is not None:
                continue
            if platform is not None and name not in entity[platform.value]:
                missing.append(f"{platform.value}.{name}")
    assert missing == []


COMMON_PROBE_ERRORS = {"cannot_connect", "timeout"}
SHOWN_ERRORS = {
    # config_flow.probe maps a ConfigError to variables_needed for MQTT, else link_conflict;
    # an IdentificationError to not_sunspec for SunSpec, else map_mismatch (only Modbus and
    # OPC UA devices raise it); only OPC UA raises DeviceAuthenticationError; only the push
    # devices (MQTT, CAN) wait for first data. SunSpec's chain survey adds nothing new.
    "sunspec": COMMON_PROBE_ERRORS | {"not_sunspec", "link_conflict"},
    "modbus": COMMON_PROBE_ERRORS | {"map_mismatch", "link_conflict"},
    "mqtt_bms": COMMON_PROBE_ERRORS | {"no_data", "variables_needed"},
    "can_bms": COMMON_PROBE_ERRORS | {"no_data", "link_conflict"},
    "opcua": COMMON_PROBE_ERRORS | {"map_mismatch", "invalid_auth", "link_conflict"},
    # The site's name, and the OPC UA probe of its reauthentication.
    "config": COMMON_PROBE_ERRORS | {"map_mismatch", "invalid_auth", "link_conflict",
                                     "invalid_site_id"},
}  # fmt: skip
"""The errors each flow can show, and no other (hassfest's rule of thumb, and a user reading
the strings learns nothing from an error a flow never shows)."""


def test_every_probe_error_is_explained(english: dict[str, Any]) -> None:
    source = Path(config_flow.__file__).read_text(encoding="utf-8")
    # Keys raised directly, and those chosen between in one expression.
    used = set(re.findall(r'ProbeError\("(\w+)"\)', source))
    for pair in re.findall(r'"(\w+)" if .* else "(\w+)"', source):
        used |= set(pair)
    assert used == PROBE_ERRORS
    assert set().union(*SHOWN_ERRORS.values()) == PROBE_ERRORS | {"invalid_site_id"}
    for kind, texts in english["config_subentries"].items():
        if kind == SUBENTRY_ACTUATOR:
            continue  # nothing to probe: its entities are checked instead (its own test)
        assert set(texts["error"]) == SHOWN_ERRORS[kind], kind
    assert set(english["config"]["error"]) == SHOWN_ERRORS["config"]


def _aborts(flow: type) -> set[str]:
    """The abort reasons a flow class (and the classes of ours it builds on) can end with."""
    reasons: set[str] = set()
    for cls in flow.__mro__:
        if not cls.__module__.startswith("custom_components."):
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
        for call in (node for node in ast.walk(tree) if isinstance(node, ast.Call)):
            name = _callee(call)
            reason = _keyword(call, "reason")
            if name == "async_abort" and isinstance(reason, ast.Constant):
                reasons.add(reason.value)
            elif name == "async_update_and_abort":
                reasons.add("reconfigure_successful")  # Home Assistant's default reason
            elif name == "_abort_if_unique_id_configured":
                reasons.add("already_configured")
            elif name == "async_set_unique_id":
                reasons.add("already_in_progress")  # another flow for the same site or hub
    return reasons


def test_every_flow_abort_has_its_text_and_no_other(english: dict[str, Any]) -> None:
    assert set(english["config"]["abort"]) == _aborts(config_flow.EdgeEmsConfigFlow)
    assert "already_in_progress" in english["config"]["abort"]
    kinds = config_flow.EdgeEmsConfigFlow.async_get_supported_subentry_types(None)  # type: ignore[arg-type]
    assert set(kinds) == set(english["config_subentries"])
    for kind, flow in kinds.items():
        assert set(english["config_subentries"][kind]["abort"]) == _aborts(flow), kind


def test_repairs_name_their_placeholders(english: dict[str, Any]) -> None:
    issues = english["issues"]
    assert set(issues) == {
        "device_unreachable", "map_mismatch", "control_in_dry_run", "hub_unreachable",
        "device_not_following",
    }  # fmt: skip
    assert "{since}" in issues["device_unreachable"]["description"]
    hub = issues["hub_unreachable"]["description"]
    assert {"hub", "since", "error"} <= set(PLACEHOLDER.findall(hub))
    assert "{error}" in issues["map_mismatch"]["description"]
    assert "{site}" in issues["control_in_dry_run"]["title"]


SOURCES = sorted(Path(config_flow.__file__).parent.glob("*.py"))
LIBRARY = Path(dispatcher.__file__).parents[1]
PLACEHOLDER = re.compile(r"{(\w+)}")


def _calls(path: Path) -> Iterator[ast.Call]:
    yield from (
        node for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Call)
    )


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((kw.value for kw in call.keywords if kw.arg == name), None)


def _callee(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _placeholders(call: ast.Call) -> set[str] | None:
    """The placeholder names a call passes, when it spells them out as a dict."""
    given = _keyword(call, "translation_placeholders")
    if isinstance(given, ast.Dict):
        return {key.value for key in given.keys if isinstance(key, ast.Constant)}
    return None


@dataclass(frozen=True)
class _Helper:
    """A function that passes its ``key`` parameter on as a translation key."""

    section: str
    position: int
    """Of ``key`` among the call's positional arguments."""
    placeholders: set[str]
    """The placeholders the helper itself names."""
    spreads: bool
    """Whether the helper adds its keyword arguments as placeholders."""


def _section(call: ast.Call) -> str | None:
    """Which en.json section a call's translation key belongs to, if it names one."""
    if _callee(call) == "async_create_issue":
        return "issues"
    if _keyword(call, "translation_domain") is not None:
        return "exceptions"
    return None  # an entity description: named from the metric vocabulary (tested above)


def _helpers(trees: list[ast.Module]) -> dict[str, _Helper]:
    helpers = {}
    for tree in trees:
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef):
                continue
            params = [arg.arg for arg in func.args.args if arg.arg != "self"]
            for call in (node for node in ast.walk(func) if isinstance(node, ast.Call)):
                key, section = _keyword(call, "translation_key"), _section(call)
                if "key" in params and isinstance(key, ast.Name) and key.id == "key" and section:
                    given = _keyword(call, "translation_placeholders")
                    spreads = isinstance(given, ast.Dict) and None in given.keys
                    names = _placeholders(call) or set()
                    helpers[func.name] = _Helper(section, params.index("key"), names, spreads)
    return helpers


def _constant(node: ast.expr | None, constants: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    return None


def _used_keys() -> dict[str, dict[str, set[str] | None]]:
    """Translation keys the integration raises, by section, with the placeholders it passes.

    Keys are given literally, as module constants, or through a helper's ``key`` parameter
    (the coordinator's ``_failed`` and ``_repair``); refusals and failures are keyed by
    outcome and reason (tested below).
    """
    trees = [ast.parse(path.read_text(encoding="utf-8")) for path in SOURCES]
    helpers = _helpers(trees)
    used: dict[str, dict[str, set[str] | None]] = {"issues": {}, "exceptions": {}}
    for tree in trees:
        constants = {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            for target in node.targets
            if isinstance(target, ast.Name) and isinstance(node.value.value, str)
        }
        for call in (node for node in ast.walk(tree) if isinstance(node, ast.Call)):
            helper = helpers.get(_callee(call))
            if helper is not None and len(call.args) > helper.position:
                key = _constant(call.args[helper.position], constants)
                extra = {kw.arg for kw in call.keywords if kw.arg and helper.spreads}
                if key is not None:
                    used[helper.section][key] = helper.placeholders | extra
            elif (section := _section(call)) is not None:
                key = _constant(_keyword(call, "translation_key"), constants)
                if key is not None:
                    used[section][key] = _placeholders(call)
    return used


def test_every_literal_key_has_its_text(english: dict[str, Any]) -> None:
    used = _used_keys()
    assert {"update_failed", "device_busy", "device_unlike_map"} <= set(used["exceptions"])
    assert set(used["issues"]) == {
        "device_unreachable", "map_mismatch", "control_in_dry_run", "hub_unreachable",
        "device_not_following",
    }  # fmt: skip
    for section, keys in used.items():
        for key, given in keys.items():
            assert key in english[section], f"{section}.{key}"
            texts = english[section][key].values()
            wanted = {name for text in texts for name in PLACEHOLDER.findall(text)}
            if given is not None:
                assert wanted <= given, f"{section}.{key} needs {wanted - given}"


def _refusal_reasons() -> set[Reason]:
    """Every reason a refusal can carry: the dispatcher's own guards, and the reasons
    devices give when they refuse a write (unknown ones become ``not_allowed``)."""
    reasons = {Reason.NOT_ALLOWED}
    for path in LIBRARY.rglob("*.py"):
        for call in _calls(path):
            if _callee(call) == "_refuse" and isinstance(call.args[1], ast.Attribute):
                reasons.add(Reason(call.args[1].attr.lower()))
            reason = _keyword(call, "reason")
            if _callee(call) == "WriteRefusedError" and isinstance(reason, ast.Constant):
                reasons.add(Reason(reason.value) if reason.value in Reason else Reason.NOT_ALLOWED)
    return reasons


def _failure_reasons() -> set[Reason]:
    """Every reason the dispatcher records a failed write with."""
    reasons = set()
    for call in _calls(Path(dispatcher.__file__)):
        if _callee(call) == "_record" and len(call.args) >= 3:
            outcome, reason = call.args[1], call.args[2]
            if isinstance(outcome, ast.Attribute) and outcome.attr == "FAILED":
                assert isinstance(reason, ast.Attribute)
                reasons.add(Reason(reason.attr.lower()))
    return reasons


def test_every_refusal_and_failure_is_explained(english: dict[str, Any]) -> None:
    refused = _refusal_reasons()
    failed = _failure_reasons()
    assert Reason.BUDGET_EXHAUSTED in refused
    assert Reason.OUT_OF_RANGE in refused  # a device's own refusal
    assert failed == {Reason.DEVICE_ERROR, Reason.READ_BACK_MISMATCH}
    exceptions = english["exceptions"]
    keys = {f"{Outcome.REFUSED}_{reason}" for reason in refused}
    keys |= {f"{Outcome.FAILED}_{reason}" for reason in failed}
    assert sorted(keys - set(exceptions)) == []
    for key in keys:
        # What entity.py and services.py pass: the text may use any of these, no other.
        wanted = set(PLACEHOLDER.findall(exceptions[key]["message"]))
        assert wanted <= {"site", "device", "command", "message"}, key


DOCS = Path(__file__).parents[2] / "docs" / "integration.md"


@pytest.fixture(scope="module")
def docs() -> str:
    return DOCS.read_text(encoding="utf-8")


def test_the_docs_name_every_bundled_map_and_sunspec_model(docs: str) -> None:
    maps = [*catalog_paths(), *topic_map_paths(), *node_map_paths()]
    assert [name for name in maps if f"`{name}`" not in docs] == []
    assert [
        model for model in sorted(SUPPORTED_MODELS) if not re.search(rf"\b{model}\b", docs)
    ] == []


def test_the_docs_explain_every_field_and_option(docs: str, english: dict[str, Any]) -> None:
    labels = set(english["config"]["step"]["user"]["data"].values())
    for step in english["options"]["step"].values():
        labels |= set(step["data"].values())
    for kind in english["config_subentries"].values():
        for step in kind["step"].values():
            labels |= set(step.get("data", {}).values())
    assert sorted(label for label in labels if label not in docs) == []
    services = yaml.safe_load(SERVICES.read_text(encoding="utf-8"))
    for action, spec in services.items():
        assert f"`edge_ems.{action}`" in docs
        assert [field for field in spec["fields"] if f"`{field}`" not in docs] == [], action


def test_the_docs_troubleshoot_every_refusal_and_failure(docs: str) -> None:
    reasons = _refusal_reasons() | _failure_reasons() | {Reason.LEASE_EXPIRED}
    assert sorted(reason for reason in reasons if f"`{reason}`" not in docs) == []


def _edge_ems_calls(node: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        action = node.get("action")
        if isinstance(action, str) and action.startswith(f"{DOMAIN}."):
            yield action.removeprefix(f"{DOMAIN}."), node.get("data", {})
        for value in node.values():
            yield from _edge_ems_calls(value)
    elif isinstance(node, list):
        for item in node:
            yield from _edge_ems_calls(item)


def test_the_docs_examples_call_the_actions_as_their_schemas_take_them(docs: str) -> None:
    schemas = {
        SERVICE_DISPATCH: DISPATCH_SCHEMA,
        SERVICE_WRITE_POINT: WRITE_POINT_SCHEMA,
        SERVICE_RELEASE: RELEASE_SCHEMA,
        SERVICE_REPLAN: REPLAN_SCHEMA,
        SERVICE_GET_PLAN: GET_PLAN_SCHEMA,
        SERVICE_OVERRIDE: OVERRIDE_SCHEMA,
        SERVICE_CLEAR_OVERRIDE: CLEAR_OVERRIDE_SCHEMA,
    }
    blocks = re.findall(r"```yaml\n(.*?)```", docs, flags=re.DOTALL)
    calls = [call for block in blocks for call in _edge_ems_calls(yaml.safe_load(block))]
    assert {name for name, _ in calls} >= {SERVICE_DISPATCH, SERVICE_WRITE_POINT}
    for name, data in calls:
        schemas[name](data)


def test_every_exception_text_is_used(english: dict[str, Any]) -> None:
    used = set(_used_keys()["exceptions"])
    used |= {f"{Outcome.REFUSED}_{reason}" for reason in _refusal_reasons()}
    used |= {f"{Outcome.FAILED}_{reason}" for reason in _failure_reasons()}
    assert sorted(set(english["exceptions"]) - used) == []


def _states() -> dict[tuple[Platform, str], set[str]]:
    """Every state an enum entity of any device can show, by platform and metric: the
    catalog's point maps (selects for modes the user may set), every SunSpec model's enum
    points, the simulated BESS."""
    states: dict[tuple[Platform, str], set[str]] = {}
    for point_map in load_catalog().point_maps.values():
        for point in point_map.points.values():
            if not point.options or point.bits or METRICS[point.metric].kind is MetricKind.IDENTITY:
                continue
            write = point.write
            command = None
            if write is not None:
                command = Command(
                    point.metric, options=point.options, allow_write=write.allow_write,
                    lease=write.lease,
                )  # fmt: skip
            platform = platform_of(METRICS[point.metric], command)
            assert platform is not None
            states.setdefault((platform, point.metric), set()).update(point.options.values())
    for reading in READ_POINTS:
        if (names := reading_states(reading)) is not None:
            states.setdefault((Platform.SENSOR, reading.metric), set()).update(names)
    states.setdefault((Platform.SENSOR, "battery_state"), set()).update(BATTERY_STATES)
    return states


def test_every_state_a_device_can_show_has_its_text(english: dict[str, Any]) -> None:
    missing = []
    for (platform, metric), names in sorted(_states().items()):
        shown = english["entity"][platform.value].get(metric, {}).get("state", {})
        missing += [f"{platform.value}.{metric}.{name}" for name in sorted(names - set(shown))]
    assert missing == []
