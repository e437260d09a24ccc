"""``/measurements``: series, ranges and resolutions from the store, and clear 400s."""

from __future__ import annotations

import datetime as dt

import pytest

from edge_ems.hub.api import routes

from ..gateway.conftest import SiteFactory, eventually
from .conftest import LiveHub, now_ms

MINUTE = 60_000


async def _two_hours_of_power(live: LiveHub, site_factory: SiteFactory) -> int:
    """Publish one sample a minute for two closed hours; return the first hour's start."""
    site = await site_factory(live.address, agent_id="agent-1", site_id="farm")
    start = (now_ms() // 3_600_000 - 3) * 3_600_000
    stamps = [start + n * MINUTE for n in range(120)]
    site.agent.publish_series("bess-1", "battery_power_w", stamps, [float(n) for n in range(120)])
    site.agent.publish_series("bess-2", "battery_power_w", stamps, [1.0] * 120)
    await site.agent.flush()
    await eventually(lambda: live.store.status().waiting_batches > 0)
    await live.store.flush(full=True)
    return start


async def test_minutes_five_minutes_and_hours(live: LiveHub, site_factory: SiteFactory) -> None:
    start = await _two_hours_of_power(live, site_factory)
    minutes = await live.json(
        "/measurements",
        asset="bess-1",
        metric="battery_power_w",
        **{"from": str(start), "to": str(start + 10 * MINUTE)},
    )
    assert minutes["resolution"] == "1m"
    assert minutes["columns"] == ["start_ms", "avg", "min", "max", "last", "count"]
    [series] = minutes["series"]
    assert (series["site_id"], series["asset_id"], series["unit"]) == ("farm", "bess-1", "W")
    assert [p[0] for p in series["points"]] == [start + n * MINUTE for n in range(10)]
    assert [p[1] for p in series["points"]] == [float(n) for n in range(10)]
    iso_from = dt.datetime.fromtimestamp(start / 1000, dt.UTC).isoformat()
    window = {"from": iso_from, "to": str(start + 3_600_000)}
    five = await live.json("/measurements", asset="bess-1", resolution="5m", **window)
    points = five["series"][0]["points"]
    assert len(points) == 12
    assert points[0][1:] == [2.0, 0.0, 4.0, 4.0, 5]
    hours = await live.json(
        "/measurements",
        asset="bess-1,bess-2",
        resolution="1h",
        **{"from": str(start), "to": str(start + 2 * 3_600_000)},
    )
    by_asset = {s["asset_id"]: s["points"] for s in hours["series"]}
    assert [p[5] for p in by_asset["bess-1"]] == [60, 60]
    assert [p[1] for p in by_asset["bess-2"]] == [1.0, 1.0]


async def test_filters_that_match_nothing_give_no_series(live: LiveHub) -> None:
    answer = await live.json("/measurements", site="nowhere")
    assert answer["series"] == []


async def test_bad_parameters_get_clear_400s(live: LiveHub) -> None:
    cases = [
        {"resolution": "2m"},
        {"from": "yesterday"},
        {"from": "2026-01-02T00:00:00", "to": "2026-01-01T00:00:00"},
        {"from": "0", "to": str(now_ms())},
        {"asset": ","},
        {"series": "farm/bess-1/soc_pct"},
        {"to": "99999999999999999999"},
    ]
    for params in cases:
        response = await live.get("/measurements", **params)
        assert response.status == 400, params
        message = (await response.json())["error"]["message"]
        assert message, params


async def test_too_many_points_are_refused_before_the_query(
    live: LiveHub, site_factory: SiteFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = await _two_hours_of_power(live, site_factory)
    monkeypatch.setattr(routes, "MAX_POINTS", 100)
    window = {"from": str(start), "to": str(start + 3_600_000)}
    refused = await live.get("/measurements", **window)
    assert refused.status == 400
    assert "narrow the series" in (await refused.json())["error"]["message"]
    coarse = await live.json("/measurements", resolution="5m", **window)
    assert len(coarse["series"]) == 2
