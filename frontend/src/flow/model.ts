// What the flow card shows, worked out from the entity registry and the states alone: which
// of a site's entities stand for PV, battery, grid, home, EV and heat pump, and the power
// flowing through each. No DOM here, so it is tested under Node.
//
// Signs follow Edge EMS's metric vocabulary: asset power (PV, battery, EV charger, heat pump)
// is positive when the asset delivers to the site bus, grid power positive on import, and
// the site load positive when it consumes.

import { DOMAIN, type EntityState, type Hass } from "../hass.ts";

export const NODES = ["pv", "battery", "grid", "home", "ev", "heat_pump"] as const;
export type FlowNode = (typeof NODES)[number];

/** Below this many watts a flow counts as idle (meters are never quite at zero). */
export const IDLE_W = 10;

/** One Edge EMS entity of a site, with the metric it shows. */
export interface SiteEntity {
  entityId: string;
  metric: string;
  deviceId: string;
  deviceName: string;
}

/** A reading of a part: one entity's power, or the difference of two (a hybrid inverter's
 * PV as its AC output less its battery's power, where it has no register for its PV). */
export type Term = string | { plus: string; minus: string };

/** The entities that stand for each part of the site; a part's power is the sum of its
 * terms that have a value. */
export interface FlowSources {
  pv: Term[];
  battery: Term[];
  grid: Term[];
  /** Measured site load (`load_power_w`, or an override): used only without a grid meter. */
  load: Term[];
  ev: Term[];
  heat_pump: Term[];
  soc: { entity: string; capacity?: string }[];
  /** The parts the site has, also those without a power reading (a heat pump that reports
   * temperatures only). The grid and the home are always there. */
  present: Set<FlowNode>;
  /** The home's value is measured (an override), not the balance of the others. */
  homeMeasured: boolean;
}

/** Entities the user picked in the card's options, each replacing what the card found. */
export interface FlowOverrides {
  pv?: string;
  battery?: string;
  battery_soc?: string;
  grid?: string;
  home?: string;
  ev?: string;
  heat_pump?: string;
}

/** Power through each part in watts with the signs above; `null` where there is no reading. */
export interface Flow {
  pv: number | null;
  battery: number | null;
  grid: number | null;
  home: number | null;
  ev: number | null;
  heat_pump: number | null;
  /** State of charge of the site's batteries, in %. */
  soc: number | null;
  /** Values worked out from the balance of the others rather than read. */
  computed: Set<FlowNode>;
}

/** Every Edge EMS entity of one site (config entry), ordered by device name, then id. */
export function siteEntities(
  hass: Pick<Hass, "entities" | "devices">,
  entryId: string,
): SiteEntity[] {
  const found: SiteEntity[] = [];
  for (const entity of Object.values(hass.entities)) {
    if (entity?.platform !== DOMAIN || !entity.device_id || !entity.translation_key) continue;
    const device = hass.devices[entity.device_id];
    if (!device?.config_entries.includes(entryId)) continue;
    found.push({
      entityId: entity.entity_id,
      metric: entity.translation_key,
      deviceId: device.id,
      deviceName: device.name_by_user ?? device.name ?? device.id,
    });
  }
  return found.sort(
    (a, b) => a.deviceName.localeCompare(b.deviceName) || a.entityId.localeCompare(b.entityId),
  );
}

const HEAT_PUMP_METRICS = new Set([
  "heat_power_w",
  "heat_energy_wh",
  "cop",
  "compressor_frequency_hz",
  "compressor_current_a",
]);

function isEvCharger(metrics: Map<string, string>): boolean {
  return [...metrics.keys()].some((metric) => metric.startsWith("ev_"));
}

function isHeatPump(metrics: Map<string, string>): boolean {
  return [...metrics.keys()].some(
    (metric) => metric.startsWith("heat_pump_") || HEAT_PUMP_METRICS.has(metric),
  );
}

/** Which entities stand for each part of the site, device by device:
 * - an EV charger (any `ev_*` metric): its `ac_power_w` is the EV's;
 * - a heat pump (any `heat_pump_*`, `heat_power_w`, `cop`... metric): its `ac_power_w`;
 * - any other device: `pv_power_w` is PV (else the sum of its strings, else, for a hybrid
 *   inverter without a register for its PV, its `ac_power_w` less its `battery_power_w`),
 *   `battery_power_w` battery (or, for a battery that reports only its AC side,
 *   `ac_power_w` beside `soc_pct`), `load_power_w` the site load;
 * - the grid is one meter, never a sum: several devices measure the same connection (a
 *   hybrid inverter's CT and the grid meter), so a dedicated meter (grid power without PV,
 *   battery or load) wins, then the first device by name. */
export function findSources(entities: readonly SiteEntity[]): FlowSources {
  const devices = new Map<string, Map<string, string>>();
  for (const entity of entities) {
    let metrics = devices.get(entity.deviceId);
    if (!metrics) devices.set(entity.deviceId, (metrics = new Map()));
    if (!metrics.has(entity.metric)) metrics.set(entity.metric, entity.entityId);
  }
  const sources: FlowSources = {
    pv: [],
    battery: [],
    grid: [],
    load: [],
    ev: [],
    heat_pump: [],
    soc: [],
    present: new Set(["grid", "home"]),
    homeMeasured: false,
  };
  const meters: string[] = [];
  const others: string[] = [];
  for (const metrics of devices.values()) {
    const ac = metrics.get("ac_power_w");
    if (isEvCharger(metrics)) {
      sources.present.add("ev");
      if (ac) sources.ev.push(ac);
      continue;
    }
    if (isHeatPump(metrics)) {
      sources.present.add("heat_pump");
      if (ac) sources.heat_pump.push(ac);
      continue;
    }
    const pv = metrics.get("pv_power_w");
    const strings = [...metrics].filter(([metric]) => /^pv\d+_power_w$/.test(metric));
    const hasPv = [...metrics.keys()].some((metric) => metric.startsWith("pv"));
    const battery = metrics.get("battery_power_w");
    const soc = metrics.get("soc_pct");
    const load = metrics.get("load_power_w");
    const grid = metrics.get("grid_power_w");
    if (pv) sources.pv.push(pv);
    else if (strings.length) sources.pv.push(...strings.map(([, entity]) => entity));
    else if (hasPv && ac && battery) sources.pv.push({ plus: ac, minus: battery });
    if (battery) sources.battery.push(battery);
    else if (soc && ac && !hasPv) sources.battery.push(ac);
    if (soc) sources.soc.push({ entity: soc, capacity: metrics.get("battery_capacity_wh") });
    if (load) sources.load.push(load);
    if (grid) (pv || battery || load ? others : meters).push(grid);
  }
  const grid = meters[0] ?? others[0];
  if (grid) sources.grid.push(grid);
  if (sources.pv.length) sources.present.add("pv");
  if (sources.battery.length || sources.soc.length) sources.present.add("battery");
  return sources;
}

/** The sources with the user's choices in place of what was found. */
export function applyOverrides(
  found: FlowSources,
  overrides: FlowOverrides | undefined,
): FlowSources {
  const sources: FlowSources = {
    ...found,
    soc: [...found.soc],
    present: new Set(found.present),
  };
  if (!overrides) return sources;
  for (const node of ["pv", "battery", "grid", "ev", "heat_pump"] as const) {
    const entity = overrides[node];
    if (entity) {
      sources[node] = [entity];
      sources.present.add(node);
    }
  }
  if (overrides.battery_soc) {
    sources.soc = [{ entity: overrides.battery_soc }];
    sources.present.add("battery");
  }
  if (overrides.home) {
    sources.load = [overrides.home];
    sources.homeMeasured = true;
  }
  return sources;
}

const POWER_UNITS: Record<string, number> = { mW: 1e-3, W: 1, kW: 1e3, MW: 1e6, GW: 1e9 };
const ENERGY_UNITS: Record<string, number> = { Wh: 1, kWh: 1e3, MWh: 1e6, GWh: 1e9 };

function number(state: EntityState | undefined): number | null {
  if (!state) return null;
  const value = Number.parseFloat(state.state);
  return Number.isFinite(value) ? value : null;
}

/** A power entity's value in watts, whatever unit it reports in; `null` without one. */
export function powerW(state: EntityState | undefined): number | null {
  const value = number(state);
  if (value === null || !state) return null;
  const unit = state.attributes.unit_of_measurement;
  return value * (typeof unit === "string" ? (POWER_UNITS[unit] ?? 1) : 1);
}

/** An energy entity's value in watt-hours; `null` without one. */
export function energyWh(state: EntityState | undefined): number | null {
  const value = number(state);
  if (value === null || !state) return null;
  const unit = state.attributes.unit_of_measurement;
  return value * (typeof unit === "string" ? (ENERGY_UNITS[unit] ?? 1) : 1);
}

function termW(term: Term, states: Hass["states"]): number | null {
  if (typeof term === "string") return powerW(states[term]);
  const plus = powerW(states[term.plus]);
  const minus = powerW(states[term.minus]);
  return plus === null || minus === null ? null : plus - minus;
}

/** The terms' sum; `null` when none of them has a value. A device that sleeps (a PV
 * inverter at night) leaves the others' sum. */
function total(terms: readonly Term[], states: Hass["states"]): number | null {
  const values = terms.map((term) => termW(term, states)).filter((v) => v !== null);
  return values.length ? values.reduce((sum, value) => sum + value, 0) : null;
}

/** Every entity a term reads. */
export function termEntities(term: Term): string[] {
  return typeof term === "string" ? [term] : [term.plus, term.minus];
}

/** State of charge over every battery: weighted by capacity where each battery gives its
 * own, else the plain mean. */
export function stateOfCharge(soc: FlowSources["soc"], states: Hass["states"]): number | null {
  const read = soc
    .map(({ entity, capacity }) => ({
      pct: number(states[entity]),
      capacity: capacity ? energyWh(states[capacity]) : null,
    }))
    .filter((battery) => battery.pct !== null);
  if (!read.length) return null;
  if (read.every((battery) => battery.capacity !== null && battery.capacity > 0)) {
    const capacity = read.reduce((sum, battery) => sum + (battery.capacity ?? 0), 0);
    return read.reduce((sum, b) => sum + (b.pct ?? 0) * (b.capacity ?? 0), 0) / capacity;
  }
  return read.reduce((sum, battery) => sum + (battery.pct ?? 0), 0) / read.length;
}

/** The power through every part now. The home is the balance of the site bus (what the grid
 * and the assets deliver, less what the EV and heat pump take), so the diagram always adds
 * up; it is unknown while any part with a power reading has none. Without a grid meter the
 * measured load gives the home, and the grid is the balance instead. */
export function computeFlow(sources: FlowSources, states: Hass["states"]): Flow {
  const flow: Flow = {
    pv: total(sources.pv, states),
    battery: total(sources.battery, states),
    grid: total(sources.grid, states),
    home: null,
    ev: total(sources.ev, states),
    heat_pump: total(sources.heat_pump, states),
    soc: stateOfCharge(sources.soc, states),
    computed: new Set(),
  };
  if (sources.pv.some((term) => typeof term !== "string")) flow.computed.add("pv");
  const assets = (["pv", "battery", "ev", "heat_pump"] as const).filter(
    (node) => sources[node].length > 0,
  );
  const missing = assets.some((node) => flow[node] === null);
  const delivered = assets.reduce((sum, node) => sum + (flow[node] ?? 0), 0);
  const load = total(sources.load, states);
  if (sources.homeMeasured || (flow.grid === null && sources.grid.length === 0)) {
    flow.home = load;
    if (flow.grid === null && sources.grid.length === 0 && load !== null && !missing) {
      flow.grid = load - delivered;
      flow.computed.add("grid");
    }
  } else if (flow.grid !== null && !missing) {
    flow.home = flow.grid + delivered;
    flow.computed.add("home");
  }
  return flow;
}

export type Direction = "to_bus" | "from_bus" | "idle";

/** Which way power flows between a part and the site bus. */
export function direction(node: FlowNode, watts: number | null): Direction {
  if (watts === null || Math.abs(watts) < IDLE_W) return "idle";
  const delivers = node === "home" ? watts < 0 : watts > 0;
  return delivers ? "to_bus" : "from_bus";
}

/** Seconds for one dash to travel a line: quicker as the power grows, 4 s down to 1 s. */
export function flowSeconds(watts: number): number {
  const share = Math.min(Math.abs(watts), 10_000) / 10_000;
  return Math.round((4 - 3 * Math.sqrt(share)) * 100) / 100;
}

/** Watts as people read them: "850 W", "3.25 kW", "12.4 kW". */
export function formatPower(watts: number, locale?: string): string {
  const magnitude = Math.abs(watts) < IDLE_W ? 0 : Math.abs(watts);
  if (magnitude < 1000) {
    return `${new Intl.NumberFormat(locale, { maximumFractionDigits: 0 }).format(magnitude)} W`;
  }
  const kw = magnitude / 1000;
  const digits = kw < 10 ? 2 : 1;
  const text = new Intl.NumberFormat(locale, {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  }).format(kw);
  return `${text} kW`;
}

export const NAMES: Record<FlowNode, string> = {
  pv: "Solar",
  battery: "Battery",
  grid: "Grid",
  home: "Home",
  ev: "EV charger",
  heat_pump: "Heat pump",
};

const VERBS: Record<FlowNode, { to_bus: string; from_bus: string }> = {
  pv: { to_bus: "producing", from_bus: "drawing" },
  battery: { to_bus: "discharging", from_bus: "charging" },
  grid: { to_bus: "importing", from_bus: "exporting" },
  home: { to_bus: "delivering", from_bus: "using" },
  ev: { to_bus: "delivering", from_bus: "charging" },
  heat_pump: { to_bus: "delivering", from_bus: "using" },
};

/** Which way a part's power goes, in a word: "importing", "charging", "idle". */
export function stateWord(node: FlowNode, watts: number | null): string {
  const way = direction(node, watts);
  return way === "idle" ? "idle" : VERBS[node][way];
}

/** One part in words, as the screen reader reads it: "Battery: charging 1.50 kW, 54 %". */
export function describe(node: FlowNode, flow: Flow, locale?: string): string {
  const watts = flow[node];
  let text: string;
  if (watts === null) {
    text = "no reading";
  } else {
    const word = stateWord(node, watts);
    text = word === "idle" ? word : `${word} ${formatPower(watts, locale)}`;
    if (flow.computed.has(node)) text += " (calculated)";
  }
  if (node === "battery" && flow.soc !== null) {
    text += `, ${new Intl.NumberFormat(locale, { maximumFractionDigits: 0 }).format(flow.soc)} %`;
  }
  return `${NAMES[node]}: ${text}`;
}
