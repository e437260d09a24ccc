"""Model definitions come from pysunspec2, and the mapping tables agree with them."""

from __future__ import annotations

import itertools

import pytest

from edge_ems.exceptions import ConfigError
from edge_ems.metrics import METRICS, MetricKind
from edge_ems.sunspec import SUPPORTED_MODELS, model_definition, model_layout
from edge_ems.sunspec.layout import count_points
from edge_ems.sunspec.mapping import CONTROLS, FAN_OUT, METER_MODELS, READINGS, REVERT_TIMER
from edge_ems.sunspec.models import GroupDef, PointDef


def _point(model: int, name: str, group: str | None = None) -> PointDef:
    top = model_definition(model).group
    owner = top if group is None else next(g for g in top.groups if g.name == group)
    point = owner.point(name)
    assert point is not None, f"{model}.{group or ''}.{name}"
    return point


@pytest.mark.parametrize("model_id", sorted(SUPPORTED_MODELS))
def test_every_supported_model_loads_and_places(model_id: int) -> None:
    model = model_definition(model_id)
    assert model.id == model_id
    assert [point.name for point in model.group.points[:2]] == ["ID", "L"]
    counts = dict.fromkeys(count_points(model), 1)
    length = model.group.size - 2 + sum(_size(group, counts) for group in model.group.groups)
    layout = model_layout(model, 40002, length, counts)
    spans = sorted(layout.root.spans())
    # Points tile the model without gaps or overlaps.
    assert spans[0][0] == 40002
    assert spans[-1][1] == layout.end
    assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(spans))


def _size(group: GroupDef, counts: dict[str, int]) -> int:
    instances = 1 if group.count is None or group.count == 0 else counts.get(str(group.count), 0)
    return instances * (group.size + sum(_size(child, counts) for child in group.groups))


def test_definitions_are_pysunspec2s() -> None:
    # 160's modules repeat to fill the model; 705's curves are counted by a point.
    mppt = model_definition(160).group.groups[0]
    assert (mppt.name, mppt.count) == ("module", 0)
    assert count_points(model_definition(705)) == ("NCrv", "NPt")
    assert _point(124, "InWRte").sf == "InOutWRte_SF"
    assert _point(203, "W").type == "int16"


def test_a_model_pysunspec2_does_not_define_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="model 9999"):
        model_definition(9999)


def test_every_mapped_point_exists_and_names_a_metric() -> None:
    for reading in READINGS:
        assert reading.metric in METRICS, reading
        assert reading.model in SUPPORTED_MODELS, reading
        point = _point(reading.model, reading.point, reading.group)
        assert point.type not in {"sunssf", "pad"}, reading
    assert {r.model for r in READINGS if r.meter_power} <= set(METER_MODELS)


def test_enum_labels_borrowed_from_a_sibling_model_match_its_codes() -> None:
    # sunspec/models' 111 names its operating states "ggOFF" ... "ggSTANDBY".
    assert _point(111, "St").symbols[4] == "ggMPPT"
    for reading in READINGS:
        if reading.symbols_from is not None:
            own = _point(reading.model, reading.point).symbols
            named = _point(reading.symbols_from, reading.point).symbols
            assert set(own) == set(named), reading


def test_the_allowlist_holds_writable_settings_only() -> None:
    for control in CONTROLS:
        assert METRICS[control.metric].kind is MetricKind.SETTING, control
        assert _point(control.model, control.point).writable, control
    timers = {c.point for c in CONTROLS if c.metric == REVERT_TIMER}
    assert all("RvrtTms" in point for point in timers)
    assert REVERT_TIMER in FAN_OUT
