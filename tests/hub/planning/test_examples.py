"""The example files under ``examples/planner`` load, and plan offline: recorded prices and
PV replayed onto the day, the example tariff, the simulated site's battery."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import yaml

from edge_ems.hub.config import load_config
from edge_ems.hub.config import parse_config as parse_hub_config
from edge_ems.planner.tariff import load_tariff

from .conftest import BATTERY, PRAGUE, Clock, PlannerMaker, minutes

EXAMPLES = Path(__file__).parents[3] / "examples" / "planner"
DOCS = Path(__file__).parents[3] / "docs" / "planner.md"


def test_the_example_hub_configuration_loads() -> None:
    config = load_config(EXAMPLES / "hub.yaml", env={})
    assert config.planner is not None
    assert config.planner.prices.path == EXAMPLES / "prices-cz.json"
    assert config.planner.tariff == EXAMPLES / "tariff-d57d.yaml"
    assert config.planner.sites[0].site_id == "sim"


def test_the_example_tariffs_are_the_documented_ones() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for name in ("tariff-d57d.yaml", "tariff-flat.yaml"):
        example = (EXAMPLES / name).read_text(encoding="utf-8")
        assert example in text, f"{name} differs from docs/planner.md"
        load_tariff(EXAMPLES / name)


def test_the_documented_configuration_is_valid() -> None:
    text = DOCS.read_text(encoding="utf-8")
    section = text[text.index("### Turning it on") :]
    block = section[
        section.index("```yaml\n") + 8 : section.index("```\n", section.index("```yaml"))
    ]
    config = parse_hub_config(yaml.safe_load(block) | {"api_token": "x" * 16})
    assert config.planner is not None
    [site] = config.planner.sites
    assert [ev.asset_id for ev in site.evs] == ["ev-charger"]
    assert [load.asset_id for load in site.deferrables] == ["boiler-switch"]


async def test_the_examples_plan_offline(make_planner: PlannerMaker) -> None:
    config = load_config(EXAMPLES / "hub.yaml", env={}).planner
    assert config is not None
    noon = datetime(2027, 3, 3, 12, 1, tzinfo=PRAGUE)
    planner = await make_planner(config=config, clock=Clock(noon))
    planner.link.assets["sim"] = planner.link.assets.pop("farm")
    await planner.store.feed(
        {(BATTERY, "soc_pct"): minutes(noon.replace(minute=0), noon, 30.0)}, "sim"
    )
    assert await planner.service.refresh_prices(planner.clock.moment)
    await planner.service.refresh_forecast("sim", planner.clock.moment)
    result = await planner.service.replan("sim", "example")
    assert result.error is None, result.error
    plan = planner.service.sites["sim"].plan
    assert plan is not None
    assert plan.currency == "CZK"
    assert [b.id for b in plan.batteries] == [BATTERY]
    assert plan.pv_w[0] > 1000  # the recorded June noon, replayed onto March
    # Today's and tomorrow's prices (the recorded day twice): 36 hours from noon.
    assert plan.horizon.n_steps == 36 * 4
    assert plan.import_price[0] > plan.export_price[0]
