"""Every name, error and repair the integration can show has its English text."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from custom_components.edge_ems import config_flow
from custom_components.edge_ems.descriptions import platform_of
from homeassistant.const import Platform

from edge_ems.device import Command
from edge_ems.metrics import METRICS, MetricKind

EN = Path(config_flow.__file__).parent / "translations" / "en.json"
PROBE_ERRORS = {"cannot_connect", "timeout", "not_sunspec", "map_mismatch", "invalid_auth",
                "no_data", "link_conflict"}  # fmt: skip


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
            candidates += [
                platform_of(metric, Command(name, 0, 1, allow_write=True)),
                platform_of(metric, Command(name, 0, 100, allow_write=True)),
            ]
        for platform in candidates:
            if platform is Platform.SWITCH and metric.unit is not None:
                continue
            if platform is not None and name not in entity[platform.value]:
                missing.append(f"{platform.value}.{name}")
    assert missing == []


def test_every_probe_error_is_explained(english: dict[str, Any]) -> None:
    source = Path(config_flow.__file__).read_text(encoding="utf-8")
    # Keys raised directly, and those chosen between in one expression.
    used = set(re.findall(r'ProbeError\("(\w+)"\)', source))
    for pair in re.findall(r'"(\w+)" if .* else "(\w+)"', source):
        used |= set(pair)
    assert used == PROBE_ERRORS
    for kind, texts in english["config_subentries"].items():
        assert set(texts["error"]) >= PROBE_ERRORS, kind
    assert set(english["config"]["error"]) >= PROBE_ERRORS


def test_repairs_name_their_placeholders(english: dict[str, Any]) -> None:
    issues = english["issues"]
    assert set(issues) == {"device_unreachable", "map_mismatch", "control_in_dry_run"}
    assert "{since}" in issues["device_unreachable"]["description"]
    assert "{error}" in issues["map_mismatch"]["description"]
    assert "{site}" in issues["control_in_dry_run"]["title"]
