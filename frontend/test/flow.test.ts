import assert from "node:assert/strict";
import { describe as group, test } from "node:test";

import {
  applyOverrides,
  computeFlow,
  describe,
  direction,
  findSources,
  flowSeconds,
  formatPower,
  powerW,
  siteEntities,
  stateOfCharge,
  stateWord,
  type FlowSources,
} from "../src/flow/model.ts";
import { chosenSite, numberLocale, siteEntryIds, type Hass } from "../src/hass.ts";

type Registry = Pick<Hass, "entities" | "devices">;

// The demo's site as Home Assistant's registries show it: a Deye hybrid inverter (battery,
// its grid CT, the load; no register for its PV, and its strings' entities disabled), the
// grid meter, a SunSpec hybrid with storage, an OPC UA battery reporting its capacity, an EV
// charger and a heat pump without a power reading.
const DEVICES: Record<string, string[]> = {
  deye: [
    "battery_power_w",
    "grid_power_w",
    "load_power_w",
    "ac_power_w",
    "soc_pct",
    "pv_energy_today_wh",
  ],
  meter: ["grid_power_w", "grid_import_energy_wh"],
  sunspec: ["ac_power_w", "pv_power_w", "battery_power_w", "soc_pct"],
  bess: ["battery_power_w", "soc_pct", "battery_capacity_wh"],
  charger: ["ac_power_w", "ev_state", "ev_current_limit_a"],
  pump: ["heat_pump_mode", "flow_temperature_c", "heat_pump_sg_ready_state"],
};
const NAMES: Record<string, string> = {
  deye: "Deye",
  meter: "SDM630",
  sunspec: "SunSpec",
  bess: "BESS",
  charger: "Eve",
  pump: "WPM",
};

function registry(entry = "site1"): Registry {
  const entities: Hass["entities"] = {};
  const devices: Hass["devices"] = {};
  for (const [device, metrics] of Object.entries(DEVICES)) {
    devices[device] = {
      id: device,
      name: NAMES[device],
      config_entries: [entry],
      primary_config_entry: entry,
    };
    for (const metric of metrics) {
      const id = `sensor.${device}_${metric}`;
      entities[id] = {
        entity_id: id,
        platform: "edge_ems",
        device_id: device,
        translation_key: metric,
      };
    }
  }
  // Another site, another integration's entity on the same device, an entity with no device.
  devices.other = { id: "other", name: "Other", config_entries: ["site2"] };
  entities["sensor.other_pv_power_w"] = {
    entity_id: "sensor.other_pv_power_w",
    platform: "edge_ems",
    device_id: "other",
    translation_key: "pv_power_w",
  };
  entities["sensor.deye_template"] = {
    entity_id: "sensor.deye_template",
    platform: "template",
    device_id: "deye",
    translation_key: "pv_power_w",
  };
  entities["sensor.lonely"] = {
    entity_id: "sensor.lonely",
    platform: "edge_ems",
    translation_key: "pv_power_w",
  };
  return { entities, devices };
}

function states(values: Record<string, number | string>, unit = "W"): Hass["states"] {
  return Object.fromEntries(
    Object.entries(values).map(([id, value]) => [
      id,
      { entity_id: id, state: String(value), attributes: { unit_of_measurement: unit } },
    ]),
  );
}

const SITE_STATES = {
  ...states({
    "sensor.deye_battery_power_w": -1000,
    "sensor.deye_grid_power_w": 480,
    "sensor.deye_load_power_w": 900,
    "sensor.deye_ac_power_w": 2000,
    "sensor.meter_grid_power_w": 500,
    "sensor.sunspec_ac_power_w": 1200,
    "sensor.sunspec_pv_power_w": 1500,
    "sensor.sunspec_battery_power_w": -300,
    "sensor.bess_battery_power_w": 200,
    "sensor.charger_ac_power_w": -3700,
    "sensor.other_pv_power_w": 99999,
  }),
  ...states(
    { "sensor.deye_soc_pct": 50, "sensor.sunspec_soc_pct": 80, "sensor.bess_soc_pct": 20 },
    "%",
  ),
  ...states({ "sensor.bess_battery_capacity_wh": 10 }, "kWh"),
};

group("finding a site's entities", () => {
  test("only the site's Edge EMS entities, by device name", () => {
    const found = siteEntities(registry(), "site1");
    assert.equal(found.length, Object.values(DEVICES).flat().length);
    assert.ok(
      found.every((e) => e.entityId.startsWith("sensor.") && e.entityId !== "sensor.deye_template"),
    );
    assert.deepEqual(
      [...new Set(found.map((e) => e.deviceName))],
      ["BESS", "Deye", "Eve", "SDM630", "SunSpec", "WPM"],
    );
    assert.deepEqual(siteEntities(registry(), "nowhere"), []);
  });

  test("each part from the devices' metrics; the grid from the dedicated meter", () => {
    const sources = findSources(siteEntities(registry(), "site1"));
    assert.deepEqual(sources.pv, [
      { plus: "sensor.deye_ac_power_w", minus: "sensor.deye_battery_power_w" },
      "sensor.sunspec_pv_power_w",
    ]);
    assert.deepEqual(sources.battery, [
      "sensor.bess_battery_power_w",
      "sensor.deye_battery_power_w",
      "sensor.sunspec_battery_power_w",
    ]);
    assert.deepEqual(sources.grid, ["sensor.meter_grid_power_w"]);
    assert.deepEqual(sources.load, ["sensor.deye_load_power_w"]);
    assert.deepEqual(sources.ev, ["sensor.charger_ac_power_w"]);
    assert.deepEqual(sources.heat_pump, []);
    assert.deepEqual(sources.soc, [
      { entity: "sensor.bess_soc_pct", capacity: "sensor.bess_battery_capacity_wh" },
      { entity: "sensor.deye_soc_pct", capacity: undefined },
      { entity: "sensor.sunspec_soc_pct", capacity: undefined },
    ]);
    assert.deepEqual([...sources.present].sort(), [
      "battery",
      "ev",
      "grid",
      "heat_pump",
      "home",
      "pv",
    ]);
  });

  test("without a dedicated meter the first device that measures the grid", () => {
    const { entities, devices } = registry();
    delete entities["sensor.meter_grid_power_w"];
    const sources = findSources(siteEntities({ entities, devices }, "site1"));
    assert.deepEqual(sources.grid, ["sensor.deye_grid_power_w"]);
  });

  test("a battery that reports only its AC side; a heat pump with its power", () => {
    const entities = [
      { entityId: "sensor.b_ac", metric: "ac_power_w", deviceId: "b", deviceName: "B" },
      { entityId: "sensor.b_soc", metric: "soc_pct", deviceId: "b", deviceName: "B" },
      { entityId: "sensor.hp_ac", metric: "ac_power_w", deviceId: "hp", deviceName: "HP" },
      { entityId: "sensor.hp_cop", metric: "cop", deviceId: "hp", deviceName: "HP" },
      { entityId: "sensor.inv_ac", metric: "ac_power_w", deviceId: "inv", deviceName: "Inv" },
    ];
    const sources = findSources(entities);
    assert.deepEqual(sources.battery, ["sensor.b_ac"]);
    assert.deepEqual(sources.heat_pump, ["sensor.hp_ac"]);
    assert.deepEqual(sources.pv, []);
    assert.ok(!sources.present.has("pv") && !sources.present.has("ev"));
  });

  test("PV from the strings where there is no total; a battery inverter has no PV", () => {
    const entities = [
      { entityId: "sensor.h_pv1", metric: "pv1_power_w", deviceId: "h", deviceName: "H" },
      { entityId: "sensor.h_pv2", metric: "pv2_power_w", deviceId: "h", deviceName: "H" },
      { entityId: "sensor.h_ac", metric: "ac_power_w", deviceId: "h", deviceName: "H" },
      { entityId: "sensor.h_bat", metric: "battery_power_w", deviceId: "h", deviceName: "H" },
      { entityId: "sensor.v_ac", metric: "ac_power_w", deviceId: "v", deviceName: "V" },
      { entityId: "sensor.v_bat", metric: "battery_power_w", deviceId: "v", deviceName: "V" },
      { entityId: "sensor.v_soc", metric: "soc_pct", deviceId: "v", deviceName: "V" },
    ];
    const sources = findSources(entities);
    assert.deepEqual(sources.pv, ["sensor.h_pv1", "sensor.h_pv2"]);
    assert.deepEqual(sources.battery, ["sensor.h_bat", "sensor.v_bat"]);
    const flow = computeFlow(
      sources,
      states({ "sensor.h_pv1": 1200, "sensor.h_pv2": "unavailable" }),
    );
    assert.equal(flow.pv, 1200, "a string without a value leaves the others' sum");
    assert.ok(!flow.computed.has("pv"));
  });

  test("overrides replace what was found, and a measured home is used as it is", () => {
    const found = findSources(siteEntities(registry(), "site1"));
    const sources = applyOverrides(found, {
      grid: "sensor.my_grid",
      battery_soc: "sensor.my_soc",
      home: "sensor.my_home",
      heat_pump: "sensor.my_hp",
    });
    assert.deepEqual(sources.grid, ["sensor.my_grid"]);
    assert.deepEqual(sources.soc, [{ entity: "sensor.my_soc" }]);
    assert.deepEqual(sources.load, ["sensor.my_home"]);
    assert.deepEqual(sources.heat_pump, ["sensor.my_hp"]);
    assert.ok(sources.homeMeasured);
    assert.deepEqual(sources.pv, found.pv);
    assert.equal(found.homeMeasured, false, "the found sources stay as they were");
    assert.deepEqual(applyOverrides(found, undefined).grid, found.grid);
  });

  test("the sites there are, and the one a card without a choice shows", () => {
    const hass = registry();
    assert.deepEqual(siteEntryIds(hass), ["site1", "site2"]);
    assert.equal(chosenSite(hass, undefined), undefined, "two sites: the user must pick");
    assert.equal(chosenSite(hass, "site2"), "site2");
    delete hass.entities["sensor.other_pv_power_w"];
    assert.equal(chosenSite(hass, undefined), "site1");
  });
});

group("power and its signs", () => {
  test("units scale to watts; no reading is null", () => {
    const state = (value: string, unit?: string) => ({
      entity_id: "sensor.x",
      state: value,
      attributes: unit ? { unit_of_measurement: unit } : {},
    });
    assert.equal(powerW(state("1.5", "kW")), 1500);
    assert.equal(powerW(state("-2", "MW")), -2e6);
    assert.equal(powerW(state("250", "W")), 250);
    assert.equal(powerW(state("250")), 250);
    assert.equal(powerW(state("unavailable", "W")), null);
    assert.equal(powerW(state("unknown", "W")), null);
    assert.equal(powerW(undefined), null);
  });

  test("the home is the balance of the bus: grid plus what the assets deliver", () => {
    const sources = findSources(siteEntities(registry(), "site1"));
    const flow = computeFlow(sources, SITE_STATES);
    // The Deye's PV is its AC output less its battery's: 2000 W out while charging 1000 W.
    assert.equal(flow.pv, 4500);
    assert.equal(flow.battery, -1100);
    assert.equal(flow.grid, 500, "the meter's reading, not the sum with the inverter's CT");
    assert.equal(flow.ev, -3700);
    assert.equal(flow.heat_pump, null);
    // 500 imported + 4500 PV - 1100 into the batteries - 3700 into the car.
    assert.equal(flow.home, 200);
    assert.deepEqual([...flow.computed].sort(), ["home", "pv"]);
    // Capacity is known for one battery only: the plain mean.
    assert.equal(flow.soc, 50);
  });

  test("the home is unknown while a part with a power reading has none", () => {
    const sources = findSources(siteEntities(registry(), "site1"));
    const flow = computeFlow(sources, {
      ...SITE_STATES,
      ...states({ "sensor.charger_ac_power_w": "unavailable" }),
    });
    assert.equal(flow.ev, null);
    assert.equal(flow.home, null);
    const noGrid = computeFlow(sources, {
      ...SITE_STATES,
      ...states({ "sensor.meter_grid_power_w": "unknown" }),
    });
    assert.equal(noGrid.grid, null);
    assert.equal(noGrid.home, null);
  });

  test("without a grid meter the load is the home and the grid the balance", () => {
    const sources: FlowSources = {
      pv: ["sensor.pv"],
      battery: ["sensor.bat"],
      grid: [],
      load: ["sensor.load"],
      ev: [],
      heat_pump: [],
      soc: [],
      present: new Set(["pv", "battery", "grid", "home"]),
      homeMeasured: false,
    };
    const flow = computeFlow(
      sources,
      states({ "sensor.pv": 2, "sensor.bat": 0.5, "sensor.load": 1 }, "kW"),
    );
    assert.equal(flow.home, 1000);
    assert.equal(flow.grid, -1500, "exporting what the load does not take");
    assert.deepEqual([...flow.computed], ["grid"]);
  });

  test("a measured home keeps the grid meter's reading", () => {
    const found = findSources(siteEntities(registry(), "site1"));
    const sources = applyOverrides(found, { home: "sensor.my_home" });
    const flow = computeFlow(sources, { ...SITE_STATES, ...states({ "sensor.my_home": 777 }) });
    assert.equal(flow.home, 777);
    assert.equal(flow.grid, 500);
    assert.deepEqual([...flow.computed], ["pv"], "only the Deye's PV is calculated");
  });

  test("state of charge weighted by capacity where every battery gives one", () => {
    const soc = [
      { entity: "sensor.a", capacity: "sensor.a_cap" },
      { entity: "sensor.b", capacity: "sensor.b_cap" },
    ];
    const values = {
      ...states({ "sensor.a": 100, "sensor.b": 0 }, "%"),
      ...states({ "sensor.a_cap": 5, "sensor.b_cap": 15 }, "kWh"),
    };
    assert.equal(stateOfCharge(soc, values), 25);
    assert.equal(stateOfCharge(soc, {}), null);
  });

  test("directions: assets deliver when positive, the grid on import, the home when it uses", () => {
    assert.equal(direction("pv", 3000), "to_bus");
    assert.equal(direction("battery", -500), "from_bus");
    assert.equal(direction("battery", 500), "to_bus");
    assert.equal(direction("grid", 200), "to_bus");
    assert.equal(direction("grid", -200), "from_bus");
    assert.equal(direction("ev", -7400), "from_bus");
    assert.equal(direction("heat_pump", -1500), "from_bus");
    assert.equal(direction("home", 800), "from_bus");
    assert.equal(direction("grid", 5), "idle");
    assert.equal(direction("pv", null), "idle");
  });

  test("words and numbers as people read them", () => {
    assert.equal(formatPower(850, "en"), "850 W");
    assert.equal(formatPower(-3250, "en"), "3.25 kW");
    assert.equal(formatPower(12_449, "en"), "12.4 kW");
    assert.equal(formatPower(3, "en"), "0 W");
    assert.equal(formatPower(3250, "de"), "3,25 kW");
    assert.equal(numberLocale({ language: "cs", number_format: "language" }), "cs");
    assert.equal(numberLocale({ language: "cs", number_format: "comma_decimal" }), "en-US");
    assert.equal(numberLocale({ language: "cs", number_format: "system" }), undefined);
    const flow = {
      pv: 4500,
      battery: -1100,
      grid: -500,
      home: 200,
      ev: null,
      heat_pump: 0,
      soc: 54.4,
      computed: new Set(["home" as const]),
    };
    assert.equal(describe("battery", flow, "en"), "Battery: charging 1.10 kW, 54 %");
    assert.equal(describe("grid", flow, "en"), "Grid: exporting 500 W");
    assert.equal(describe("home", flow, "en"), "Home: using 200 W (calculated)");
    assert.equal(describe("pv", flow, "en"), "Solar: producing 4.50 kW");
    assert.equal(describe("ev", flow, "en"), "EV charger: no reading");
    assert.equal(describe("heat_pump", flow, "en"), "Heat pump: idle");
  });

  test("the dashes run quicker as the power grows", () => {
    assert.equal(flowSeconds(0), 4);
    assert.equal(flowSeconds(10_000), 1);
    assert.equal(flowSeconds(-40_000), 1);
    assert.ok(flowSeconds(500) > flowSeconds(5000));
  });
});

test("the direction in a word, under the part's name", () => {
  assert.equal(stateWord("grid", 300), "importing");
  assert.equal(stateWord("grid", -300), "exporting");
  assert.equal(stateWord("battery", -300), "charging");
  assert.equal(stateWord("battery", 300), "discharging");
  assert.equal(stateWord("ev", -7400), "charging");
  assert.equal(stateWord("ev", 2), "idle");
});
