import assert from "node:assert/strict";
import { describe as group, test } from "node:test";

import { tokenFromFragment, withQuery } from "../src/hub/api.ts";
import {
  answerTo,
  energyFrom,
  filterRows,
  flowSeries,
  formatEnergy,
  hubPlan,
  keepLive,
  liveRows,
  outcomeText,
  overrideValue,
  planTimeline,
  seriesKey,
  siteFlow,
  sitesOf,
  sparks,
  type LiveSamples,
} from "../src/hub/model.ts";
import type { AuditRecord, Device, Measurements, SitePlan, Snapshot } from "../src/hub/types.ts";
// The planner's plan for the s7 scenario, laid out as the hub's site plan document.
import response from "./fixtures/get_plan_response.json" with { type: "json" };

const T0 = Date.parse("2026-12-07T10:00:00Z");

function device(asset_id: string, metrics: string[], site_id = "farm", name = ""): Device {
  return {
    asset_id,
    site_id,
    name: name || asset_id,
    type: "",
    agent_id: "gw",
    connected: true,
    last_sample_ms: T0,
    metrics,
  };
}

const DEVICES = [
  device("inverter", ["pv_power_w", "battery_power_w", "soc_pct", "ac_power_w"], "farm", "Hybrid"),
  device("meter", ["grid_power_w"], "farm", "Grid meter"),
  device("charger", ["ac_power_w", "ev_state"], "farm", "Charger"),
  device("spare", ["soc_pct", "battery_power_w"], "depot", "Spare"),
];

function snapshot(values: Record<string, Record<string, number | string>>, at = T0): Snapshot {
  return {
    generated_ms: at,
    assets: Object.entries(values).map(([asset_id, metrics]) => ({
      site_id: asset_id === "spare" ? "depot" : "farm",
      asset_id,
      values: Object.fromEntries(
        Object.entries(metrics).map(([metric, value]) => [
          metric,
          { value, timestamp_ms: at, unit: typeof value === "number" ? "W" : null },
        ]),
      ),
    })),
  };
}

const NOW = snapshot({
  inverter: { pv_power_w: 3000, battery_power_w: -1000, soc_pct: 60, ac_power_w: 2000 },
  meter: { grid_power_w: 500 },
  charger: { ac_power_w: -1500, ev_state: "c2" },
  spare: { battery_power_w: 800, soc_pct: 40 },
});

group("sites and the flow from the hub's values", () => {
  test("sites come from the assets, named, by name", () => {
    const sites = sitesOf([
      { site_id: "farm", site_name: "The farm" },
      { site_id: "depot", site_name: "" },
      { site_id: "farm", site_name: "" },
    ]);
    assert.deepEqual(sites, [
      { id: "depot", name: "depot" },
      { id: "farm", name: "The farm" },
    ]);
  });

  test("the flow card's rules find the parts; the home is the bus balance", () => {
    const { flow, sources } = siteFlow(DEVICES, NOW, "farm");
    assert.equal(flow.pv, 3000);
    assert.equal(flow.battery, -1000);
    assert.equal(flow.grid, 500);
    assert.equal(flow.ev, -1500);
    assert.equal(flow.home, 500 + 3000 - 1000 - 1500);
    assert.equal(flow.soc, 60);
    // Another site's battery stays out.
    assert.ok(!flowSeries(sources).some((series) => series.asset === "spare"));
  });

  test("today's energy: the flow bucket by bucket, each part's way split", () => {
    const { sources } = siteFlow(DEVICES, NOW, "farm");
    const bucket = (metric: string, asset: string, means: number[]) => ({
      site_id: "farm",
      asset_id: asset,
      metric,
      unit: "W",
      points: means.map((mean, i) => [T0 + i * 300_000, mean, mean, mean, mean, 5]),
    });
    const measured: Measurements = {
      resolution: "5m",
      from_ms: T0,
      to_ms: T0 + 600_000,
      columns: ["start_ms", "avg", "min", "max", "last", "count"],
      series: [
        bucket("pv_power_w", "inverter", [1200, 0]),
        bucket("battery_power_w", "inverter", [-600, 600]),
        bucket("grid_power_w", "meter", [-120, 240]),
        bucket("ac_power_w", "charger", [0, 0]),
      ],
    };
    const energy = energyFrom(sources, measured, 300_000);
    const twelfth = 1 / 12; // five minutes in hours
    assert.equal(energy.pv.in, 1200 * twelfth);
    assert.equal(energy.battery.out, 600 * twelfth);
    assert.equal(energy.battery.in, 600 * twelfth);
    assert.equal(energy.grid.in, 240 * twelfth);
    assert.equal(energy.grid.out, 120 * twelfth);
    // The home: grid + PV + battery - EV in each bucket.
    assert.equal(energy.home.out, (480 + 840) * twelfth);
    assert.equal(formatEnergy(12_345), "12.3 kWh");
    assert.equal(formatEnergy(850), "850 Wh");
  });
});

group("the live table", () => {
  test("every value of the chosen site, searched by words", () => {
    const rows = liveRows(NOW, DEVICES, "farm");
    assert.equal(rows.length, 7);
    assert.deepEqual(
      filterRows(rows, "hybrid soc", "").map((row) => row.metric),
      ["soc_pct"],
    );
    assert.deepEqual(
      filterRows(rows, "", "charger").map((row) => row.metric),
      ["ac_power_w", "ev_state"],
    );
    assert.equal(liveRows(NOW, DEVICES, null).length, 9);
  });
});

group("sparklines", () => {
  test("stored minutes, then the samples seen since the last one ended", () => {
    const live: LiveSamples = new Map();
    const measured: Measurements = {
      resolution: "1m",
      from_ms: T0 - 3_600_000,
      to_ms: T0,
      columns: ["start_ms", "avg", "min", "max", "last", "count"],
      series: [
        {
          site_id: "farm",
          asset_id: "inverter",
          metric: "soc_pct",
          unit: "%",
          points: [
            [T0 - 180_000, 58, 58, 58, 58, 12],
            [T0 - 120_000, 59, 59, 59, 59, 12],
          ],
        },
      ],
    };
    // A sample inside the last stored minute is left out; later ones are added once.
    for (const [offset, soc] of [
      [-90_000, 59.5],
      [-30_000, 60],
      [-30_000, 60],
      [0, 61],
    ] as const) {
      keepLive(live, snapshot({ inverter: { soc_pct: soc } }, T0 + offset), T0 / 1000);
    }
    const shown = sparks(DEVICES, measured, live, "farm");
    const soc = shown.find((spark) => spark.key === seriesKey("inverter", "soc_pct"));
    assert.ok(soc);
    assert.deepEqual(soc.values, [58, 59, 60, 61]);
    assert.equal(soc.unit, "%");
    // Every device's power and charge of the site, grouped by device.
    assert.deepEqual(
      shown.map((spark) => spark.key),
      [
        "ac_power_w@charger",
        "grid_power_w@meter",
        "ac_power_w@inverter",
        "pv_power_w@inverter",
        "battery_power_w@inverter",
        "soc_pct@inverter",
      ],
    );
    // Samples older than the hour are forgotten.
    keepLive(live, snapshot({}), T0 / 1000 + 3600 - 20);
    assert.deepEqual(live.get(seriesKey("inverter", "soc_pct")), [[T0 / 1000, 61]]);
  });
});

group("the plan page", () => {
  const document = {
    schema: "edge-ems-site-plan/1",
    time_zone: "Europe/Prague",
    step_cost: [],
    days: [
      {
        day: "2025-06-16",
        actual_cost: 12.5,
        until: "",
        savings_vs_self_consumption: 0,
        savings_vs_no_battery: 0,
      },
    ],
    ...response,
  } as unknown as SitePlan;

  test("planned power per asset, the day's cost", () => {
    const plan = hubPlan(document, "2025-06-16");
    assert.ok(plan);
    assert.equal(plan.todayCost, 12.5);
    const [battery] = plan.assets;
    assert.equal(battery?.kind, "battery");
    assert.equal(battery?.powerW.length, plan.view.times.length);
    assert.equal(hubPlan({ ...document, plan: null }, "2025-06-16"), null);
  });

  test("the audited steps before the plan, planned beside measured", () => {
    const plan = hubPlan(document, "2025-06-16");
    assert.ok(plan);
    const first = plan.view.times[0]! * 1000;
    const timeline = planTimeline(plan, [
      {
        start_ms: first - 900_000,
        end_ms: first,
        import_price: 0.2,
        export_price: 0.05,
        soc_start: { battery: 0.5 },
        report: { assets: [{ asset_id: "battery", planned_wh: -500, actual_wh: -450 }] },
      },
    ]);
    assert.equal(timeline.planStart, 1);
    assert.equal(timeline.times.length, plan.view.times.length + 1);
    const [battery] = timeline.assets;
    assert.equal(battery?.planned[0], -2000);
    assert.equal(battery?.actual[0], -1800);
    assert.equal(battery?.socActual?.[0], 50);
    assert.equal(timeline.importPrice[0], 0.2);
  });
});

group("words and addresses", () => {
  test("an outcome and why", () => {
    assert.equal(
      outcomeText({ outcome: "released", reason: "release_requested", message: "" }),
      "released",
    );
    assert.equal(
      outcomeText({ outcome: "refused", reason: "control_disabled", message: "" }),
      "refused: control is off at the site (enable_control)",
    );
  });

  test("an override's value", () => {
    assert.equal(overrideValue({ command: "battery_power_setpoint_w", value: -1500 }), "-1500 W");
    assert.equal(
      overrideValue({ command: "ev_charge_enable", value: false }),
      "ev_charge_enable = false",
    );
  });

  test("the site's answer to an override: of its value, written after it", () => {
    const record = (device_id: string, requested: number, seconds: number): AuditRecord => ({
      id: `${device_id}-${seconds}`,
      site_id: "farm",
      device_id,
      command: "battery_power_setpoint_w",
      requested,
      applied: requested,
      read_back: null,
      outcome: "applied",
      reason: "written",
      message: "",
      requested_by: "planner",
      source: "hub",
      timestamp: T0 / 1000 + seconds,
      ttl: 600,
    });
    // Newest first: the plan's setpoint resent just before the override, then the override.
    const records = [record("other", -1500, 3), record("bess", -1500, 2), record("bess", 4000, -1)];
    const asked = { asset: "bess", sinceMs: T0, value: -1500 };
    assert.equal(answerTo(records, asked)?.id, "bess-2");
    assert.equal(answerTo(records.slice(1), { ...asked, value: 300 }), undefined);
    assert.equal(answerTo(records.slice(2), asked), undefined);
    // Cleared: the asset's next setpoint, whatever the plan says.
    assert.equal(answerTo(records.slice(2), { asset: "bess", sinceMs: T0 - 5000 })?.id, "bess--1");
  });

  test("the token from the fragment; queries without empty values", () => {
    assert.equal(tokenFromFragment("#token=abc%2Fdef"), "abc/def");
    assert.equal(tokenFromFragment("#/devices"), null);
    assert.equal(
      withQuery("audit", { site_id: "farm", reason: "", metric: ["a", "b"], limit: 5 }),
      "audit?site_id=farm&metric=a%2Cb&limit=5",
    );
  });
});
