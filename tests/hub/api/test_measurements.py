"""``/measurements``: series, ranges and resolutions from the store, and clear 400s."""

from __future__ import annotations

import datetime as dt

import pytest

from edge_ems.exceptions import ConfigError
from edge_ems.hub.api import routes
from edge_ems.hub.api.measurements import SLICE
from edge_ems.hub.config import parse_config

from ..gateway.conftest import SiteFactory, eventually
from .conftest import API_TOKEN, HubMaker, LiveHub, now_ms

MINUTE = 60_000
HOUR = 3_600_000


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
        {"from": "", "to": str(now_ms())},
        {"asset": ","},
        {"series": "farm/bess-1/soc_pct"},
        {"to": "99999999999999999999"},
    ]
    for params in cases:
        response = await live.get("/measurements", **params)
        assert response.status == 400, params
        message = (await response.json())["error"]["message"]
        assert message, params


async def test_a_request_over_the_points_cap_is_refused_and_one_at_it_served(
    hub_maker: HubMaker, site_factory: SiteFactory
) -> None:
    live = await hub_maker(max_points=120)  # two series, one hour of minutes
    start = await _two_hours_of_power(live, site_factory)
    at_cap = await live.json("/measurements", **{"from": str(start), "to": str(start + HOUR)})
    assert [len(s["points"]) for s in at_cap["series"]] == [60, 60]
    # Half a minute later on both ends: 61 buckets overlap the range, as the store counts.
    shifted = {"from": str(start + 30_000), "to": str(start + HOUR + 30_000)}
    refused = await live.get("/measurements", **shifted)
    assert refused.status == 400
    answer = await refused.json()
    assert answer["error"]["code"] == "too_many_points"
    assert (answer["points"], answer["max_points"]) == (122, 120)
    assert answer["error"]["message"] == (
        "2 series of 61 buckets of 1m is 122 points; one request returns at most 120: "
        "ask for resolution 5m (26 points), fewer series or a shorter range"
    )
    document = await live.json("/openapi.json")
    error = document["components"]["schemas"]["Error"]
    assert set(answer) <= set(error["properties"])  # the document allows no other keys
    assert error["properties"]["max_points"]["type"] == "integer"
    assert "at most 120 points" in document["paths"]["/measurements"]["get"]["description"]
    one_series = await live.json("/measurements", asset="bess-1", **shifted)
    assert len(one_series["series"][0]["points"]) == 61
    coarse = await live.json("/measurements", resolution="5m", **shifted)
    assert [len(s["points"]) for s in coarse["series"]] == [13, 13]


async def test_the_refusal_names_no_resolution_when_none_fits(
    hub_maker: HubMaker, site_factory: SiteFactory
) -> None:
    live = await hub_maker(max_points=1)
    start = await _two_hours_of_power(live, site_factory)
    refused = await live.get(
        "/measurements", resolution="5m", **{"from": str(start), "to": str(start + HOUR)}
    )
    assert refused.status == 400
    message = (await refused.json())["error"]["message"]
    assert message == (
        "2 series of 12 buckets of 5m is 24 points; one request returns at most 1: "
        "ask for a coarser resolution, fewer series or a shorter range"
    )


async def test_a_large_answer_is_the_same_json_as_a_small_one(
    hub_maker: HubMaker, site_factory: SiteFactory
) -> None:
    """Answers past LARGE_ANSWER points are encoded in slices off the event loop."""
    live = await hub_maker()
    site = await site_factory(live.address, agent_id="agent-1", site_id="farm")
    start = (now_ms() // HOUR - 72) * HOUR
    stamps = [start + n * MINUTE for n in range(60 * 70)]
    assert len(stamps) > max(routes.LARGE_ANSWER, SLICE)
    site.agent.publish_series(
        "bess-1", "battery_power_w", stamps, [n / 7 for n in range(len(stamps))]
    )
    await site.agent.flush()
    await eventually(lambda: live.store.status().waiting_batches > 0)
    await live.store.flush(full=True)
    window = {"from": str(start), "to": str(start + 70 * HOUR)}
    large = await live.json("/measurements", asset="bess-1", metric="battery_power_w", **window)
    [series] = large["series"]
    assert series["unit"] == "W"
    assert [p[0] for p in series["points"]] == stamps
    assert [p[1] for p in series["points"]] == [n / 7 for n in range(len(stamps))]
    assert all(p[5] == 1 for p in series["points"])


def test_the_cap_is_an_option_of_the_hub() -> None:
    assert parse_config({"api_token": API_TOKEN}).max_measurement_points == 200_000
    config = parse_config({"api_token": API_TOKEN, "max_measurement_points": "5000"})
    assert config.max_measurement_points == 5000
    with pytest.raises(ConfigError, match="max_measurement_points"):
        parse_config({"api_token": API_TOKEN, "max_measurement_points": 0})
