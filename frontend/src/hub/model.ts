// What the dashboard's pages show, worked out from the hub's answers alone: no DOM here, so
// it is tested under Node. The power flow uses the flow card's own rules (../flow/model.ts):
// the hub's latest values stand in for Home Assistant's states.

import type { EntityState } from "../hass.ts";
import {
  computeFlow,
  findSources,
  NODES,
  type Flow,
  type FlowNode,
  type FlowSources,
  type SiteEntity,
} from "../flow/model.ts";
import { planView, stepTimes, type PlanView } from "../plan/model.ts";
import type {
  Asset,
  AuditRecord,
  Device,
  Measurements,
  Override,
  Scalar,
  SitePlan,
  Snapshot,
  Value,
} from "./types.ts";

/** A site the hub serves, with the name it was given. */
export interface Site {
  id: string;
  name: string;
}

/** Every site of the hub's assets, by name. */
export function sitesOf(assets: readonly { site_id: string; site_name?: string }[]): Site[] {
  const found = new Map<string, string>();
  for (const asset of assets) {
    if (!asset.site_id) continue;
    const name = asset.site_name || found.get(asset.site_id) || "";
    found.set(asset.site_id, name);
  }
  return [...found]
    .map(([id, name]) => ({ id, name: name || id }))
    .sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
}

/** Whether a row belongs to the chosen site (every site when none is chosen). */
export function inSite(row: { site_id: string }, site: string | null): boolean {
  return site === null || row.site_id === site;
}

/** The id standing for one metric of one asset where the flow model wants an entity id
 * (metric names never hold "@"; asset ids may hold anything). */
export function seriesKey(assetId: string, metric: string): string {
  return `${metric}@${assetId}`;
}

/** The asset and metric of a {@link seriesKey}. */
export function fromSeriesKey(key: string): { asset: string; metric: string } {
  const at = key.indexOf("@");
  return { metric: key.slice(0, at), asset: key.slice(at + 1) };
}

function state(value: Scalar, unit: string | null): EntityState {
  return {
    entity_id: "",
    state: value === null ? "unknown" : String(value),
    attributes: unit ? { unit_of_measurement: unit } : {},
  };
}

/** The site's assets as the flow model's entities: one per metric an asset reports. */
export function flowEntities(devices: readonly Device[], site: string | null): SiteEntity[] {
  const entities: SiteEntity[] = [];
  for (const device of devices) {
    if (!inSite(device, site)) continue;
    for (const metric of device.metrics) {
      entities.push({
        entityId: seriesKey(device.asset_id, metric),
        metric,
        deviceId: device.asset_id,
        deviceName: device.name || device.asset_id,
      });
    }
  }
  return entities.sort(
    (a, b) => a.deviceName.localeCompare(b.deviceName) || a.entityId.localeCompare(b.entityId),
  );
}

/** The snapshot's values as the flow model's states. */
export function snapshotStates(snapshot: Snapshot): Record<string, EntityState> {
  const states: Record<string, EntityState> = {};
  for (const asset of snapshot.assets) {
    for (const [metric, value] of Object.entries(asset.values)) {
      states[seriesKey(asset.asset_id, metric)] = state(value.value, value.unit);
    }
  }
  return states;
}

/** The site's power flow now. */
export function siteFlow(
  devices: readonly Device[],
  snapshot: Snapshot,
  site: string | null,
): { sources: FlowSources; flow: Flow } {
  const sources = findSources(flowEntities(devices, site));
  return { sources, flow: computeFlow(sources, snapshotStates(snapshot)) };
}

/** Every (asset, metric) the flow reads. */
export function flowSeries(sources: FlowSources): { asset: string; metric: string }[] {
  const keys = new Set<string>();
  const terms = [sources.pv, sources.battery, sources.grid, sources.load, sources.ev]
    .concat([sources.heat_pump])
    .flat();
  for (const term of terms) {
    for (const key of typeof term === "string" ? [term] : [term.plus, term.minus]) keys.add(key);
  }
  return [...keys].map(fromSeriesKey);
}

/** Energy through each part over a span, in Wh: what it delivered to the site bus (`in`)
 * and what it took from it (`out`), the grid's import as `in` and export as `out`. */
export type Energy = Record<FlowNode, { in: number; out: number }>;

/** Today's energy from buckets of the flow's series (mean power per bucket): the flow is
 * worked out bucket by bucket with the same rules as now, and each part's power integrated
 * over the bucket's length. A bucket missing a part's reading leaves that part out (and
 * the home, which is their balance). */
export function energyFrom(sources: FlowSources, measured: Measurements, bucketMs: number): Energy {
  const energy = Object.fromEntries(NODES.map((node) => [node, { in: 0, out: 0 }])) as Energy;
  const start = measured.columns.indexOf("start_ms");
  const mean = measured.columns.indexOf("avg");
  if (start < 0 || mean < 0) return energy;
  const buckets = new Map<number, Record<string, EntityState>>();
  for (const series of measured.series) {
    for (const point of series.points) {
      const time = point[start]!;
      let states = buckets.get(time);
      if (!states) buckets.set(time, (states = {}));
      states[seriesKey(series.asset_id, series.metric)] = state(point[mean] ?? null, series.unit);
    }
  }
  const hours = bucketMs / 3_600_000;
  for (const states of buckets.values()) {
    const flow = computeFlow(sources, states);
    for (const node of NODES) {
      const watts = flow[node];
      if (watts === null) continue;
      // The home is positive when it consumes; every other part when it delivers.
      const delivered = node === "home" ? -watts : watts;
      if (delivered >= 0) energy[node].in += delivered * hours;
      else energy[node].out -= delivered * hours;
    }
  }
  return energy;
}

/** Local midnight before `now`. */
export function startOfDay(now: Date): Date {
  return new Date(now.getFullYear(), now.getMonth(), now.getDate());
}

/** One row of the live table. */
export interface LiveRow {
  siteId: string;
  assetId: string;
  assetName: string;
  metric: string;
  value: Scalar;
  unit: string | null;
  timestampMs: number;
}

export function liveRows(
  snapshot: Snapshot,
  devices: readonly Device[],
  site: string | null,
): LiveRow[] {
  const names = new Map(devices.map((device) => [device.asset_id, device.name]));
  const rows: LiveRow[] = [];
  for (const asset of snapshot.assets) {
    if (!inSite(asset, site)) continue;
    for (const [metric, value] of Object.entries(asset.values) as [string, Value][]) {
      rows.push({
        siteId: asset.site_id,
        assetId: asset.asset_id,
        assetName: names.get(asset.asset_id) || asset.asset_id,
        metric,
        value: value.value,
        unit: value.unit,
        timestampMs: value.timestamp_ms,
      });
    }
  }
  return rows.sort(
    (a, b) => a.assetName.localeCompare(b.assetName) || a.metric.localeCompare(b.metric),
  );
}

/** Rows matching every word of `search` (in the asset's name or id, the metric or the
 * unit) and, when given, one asset. */
export function filterRows(rows: readonly LiveRow[], search: string, asset: string): LiveRow[] {
  const words = search.toLowerCase().split(/\s+/).filter(Boolean);
  return rows.filter((row) => {
    if (asset && row.assetId !== asset) return false;
    const text = `${row.assetName} ${row.assetId} ${row.metric} ${row.unit ?? ""}`.toLowerCase();
    return words.every((word) => text.includes(word));
  });
}

/** A value with its unit, as people read it. */
export function formatValue(value: Scalar, unit: string | null, locale?: string): string {
  if (value === null) return "—";
  if (typeof value === "boolean") return value ? "on" : "off";
  if (typeof value === "string") return value;
  const magnitude = Math.abs(value);
  const digits = magnitude >= 100 ? 0 : magnitude >= 10 ? 1 : magnitude >= 1 ? 2 : 3;
  const text = new Intl.NumberFormat(locale, { maximumFractionDigits: digits }).format(value);
  return unit ? `${text} ${unit}` : text;
}

/** Energy in Wh as people read it: "850 Wh", "12.3 kWh". */
export function formatEnergy(wh: number, locale?: string): string {
  if (Math.abs(wh) < 1000) {
    return `${new Intl.NumberFormat(locale, { maximumFractionDigits: 0 }).format(wh)} Wh`;
  }
  const kwh = wh / 1000;
  const digits = Math.abs(kwh) < 10 ? 2 : 1;
  return `${new Intl.NumberFormat(locale, { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(kwh)} kWh`;
}

/** How long ago, in a few words: "12 s ago", "3 min ago", "2 h ago", "5 d ago". */
export function ago(ms: number | null, now: number): string {
  if (ms === null) return "never";
  const seconds = Math.max(0, Math.round((now - ms) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86_400)} d ago`;
}

/** The metrics the sparklines show, in this order, for each device that reports them. */
export const SPARK_METRICS = [
  "ac_power_w",
  "pv_power_w",
  "battery_power_w",
  "grid_power_w",
  "irradiance_w_m2",
  "poa_irradiance_w_m2",
  "soc_pct",
] as const;

export const METRIC_NAMES: Record<string, string> = {
  ac_power_w: "Active power",
  pv_power_w: "PV power",
  battery_power_w: "Battery power",
  grid_power_w: "Grid power",
  irradiance_w_m2: "Irradiance",
  poa_irradiance_w_m2: "Plane-of-array irradiance",
  soc_pct: "State of charge",
};

/** One sparkline: a device's metric over the last hour. */
export interface Spark {
  key: string;
  assetId: string;
  assetName: string;
  metric: string;
  unit: string | null;
  /** Seconds (uPlot's unit), then values. */
  times: number[];
  values: (number | null)[];
}

/** The latest samples seen, by series key: `[seconds, value]`, oldest first. */
export type LiveSamples = Map<string, [number, number][]>;

/** Keep the snapshot's numeric samples of the sparkline metrics that are new, and forget
 * those older than `keepSeconds` before `now` (seconds). */
export function keepLive(
  live: LiveSamples,
  snapshot: Snapshot,
  now: number,
  keepSeconds = 3600,
): void {
  const wanted = new Set<string>(SPARK_METRICS);
  for (const asset of snapshot.assets) {
    for (const [metric, value] of Object.entries(asset.values)) {
      if (!wanted.has(metric) || typeof value.value !== "number") continue;
      const key = seriesKey(asset.asset_id, metric);
      let samples = live.get(key);
      if (!samples) live.set(key, (samples = []));
      const time = value.timestamp_ms / 1000;
      const last = samples[samples.length - 1];
      if (!last || time > last[0]) samples.push([time, value.value]);
    }
  }
  for (const [key, samples] of live) {
    const first = samples.findIndex(([time]) => time >= now - keepSeconds);
    if (first < 0) live.delete(key);
    else if (first > 0) samples.splice(0, first);
  }
}

/** The sparklines of the site's devices: the stored minutes, then the samples seen since the
 * last stored minute ended (the minute still open), so they move with every refresh and not
 * only once a minute closes. */
export function sparks(
  devices: readonly Device[],
  measured: Measurements | null,
  live: LiveSamples,
  site: string | null,
): Spark[] {
  const wanted = new Set<string>(SPARK_METRICS);
  const found = new Map<string, Spark>();
  const names = new Map(devices.map((device) => [device.asset_id, device.name]));
  const spark = (assetId: string, metric: string): Spark => {
    const key = seriesKey(assetId, metric);
    let made = found.get(key);
    if (!made) {
      made = {
        key,
        assetId,
        assetName: names.get(assetId) || assetId,
        metric,
        unit: METRIC_UNITS[metric] ?? null,
        times: [],
        values: [],
      };
      found.set(key, made);
    }
    return made;
  };
  for (const device of devices) {
    if (!inSite(device, site)) continue;
    for (const metric of SPARK_METRICS) {
      if (device.metrics.includes(metric)) spark(device.asset_id, metric);
    }
  }
  if (measured) {
    const start = measured.columns.indexOf("start_ms");
    const mean = measured.columns.indexOf("avg");
    for (const series of measured.series) {
      if (!wanted.has(series.metric) || !inSite(series, site)) continue;
      const shown = spark(series.asset_id, series.metric);
      shown.unit = series.unit;
      for (const point of series.points) {
        shown.times.push(point[start]! / 1000);
        shown.values.push(point[mean] ?? null);
      }
    }
  }
  for (const shown of found.values()) {
    const stored = shown.times.length ? shown.times[shown.times.length - 1]! + 60 : -Infinity;
    for (const [time, value] of live.get(shown.key) ?? []) {
      if (time < stored) continue;
      shown.times.push(time);
      shown.values.push(value);
    }
  }
  return [...found.values()].sort(
    (a, b) =>
      a.assetName.localeCompare(b.assetName) ||
      SPARK_METRICS.indexOf(a.metric as (typeof SPARK_METRICS)[number]) -
        SPARK_METRICS.indexOf(b.metric as (typeof SPARK_METRICS)[number]),
  );
}

/** The units of the sparkline metrics (the hub's answers carry them too). */
const METRIC_UNITS: Record<string, string> = {
  ac_power_w: "W",
  pv_power_w: "W",
  battery_power_w: "W",
  grid_power_w: "W",
  irradiance_w_m2: "W/m²",
  poa_irradiance_w_m2: "W/m²",
  soc_pct: "%",
};

/** The planned power of one asset of the plan (battery, EV, heat pump), + delivering. */
export interface PlannedAsset {
  id: string;
  kind: "battery" | "ev" | "heat_pump";
  /** On the step boundaries, like the plan view's series (the last value repeated). */
  powerW: (number | null)[];
  /** Batteries: state of charge in % at the end of each step (`null` at the start). */
  socPct?: (number | null)[];
}

/** The Plan page's view of a site plan document: the plan card's view, with the spot price
 * and each planned asset's own power. `null` when there is no plan. */
export interface HubPlan {
  view: PlanView;
  spotPrice: (number | null)[];
  assets: PlannedAsset[];
  todayCost: number | null;
  currency: string;
}

function steps(values: unknown, n: number): (number | null)[] {
  const list = Array.isArray(values) ? values : [];
  const out = Array.from({ length: n }, (_, i) => {
    const value = list[i];
    return typeof value === "number" && Number.isFinite(value) ? value : null;
  });
  return out.length ? [...out, out[out.length - 1] ?? null] : [];
}

export function hubPlan(document: SitePlan | null, today: string): HubPlan | null {
  const view = planView(document);
  if (!view || !document?.plan) return null;
  const plan = document.plan as Record<string, unknown>;
  const n = view.times.length - 1;
  const assets: PlannedAsset[] = [];
  for (const battery of (plan.batteries as Record<string, unknown>[] | undefined) ?? []) {
    const charge = steps(battery.charge_w, n);
    const discharge = steps(battery.discharge_w, n);
    const soc = view.soc.find((entry) => entry.id === String(battery.id));
    assets.push({
      id: String(battery.id),
      kind: "battery",
      powerW: discharge.map((d, i) => (d === null || charge[i] == null ? null : d - charge[i]!)),
      socPct: soc?.pct ?? [],
    });
  }
  for (const [kind, key] of [
    ["ev", "evs"],
    ["heat_pump", "heat_pumps"],
  ] as const) {
    for (const asset of (plan[key] as Record<string, unknown>[] | undefined) ?? []) {
      // The plan gives what they draw; on the site bus that is negative.
      const drawn = steps(asset.power_w, n);
      assets.push({
        id: String(asset.id),
        kind,
        powerW: drawn.map((w) => (w === null ? null : -w)),
      });
    }
  }
  let spotPrice: (number | null)[] = new Array<number | null>(n + 1).fill(null);
  const prices = document.prices as Record<string, unknown> | null;
  if (prices && Array.isArray(prices.spot) && typeof prices.start === "string") {
    const start = Date.parse(prices.start) / 1000;
    const step = Number(prices.step_minutes) * 60;
    const spot = prices.spot as (number | null)[];
    const onSteps = view.times.slice(0, -1).map((time) => {
      const index = Math.floor((time - start) / step + 1e-9);
      const value = index >= 0 && index < spot.length ? spot[index] : null;
      return typeof value === "number" ? value : null;
    });
    spotPrice = onSteps.length ? [...onSteps, onSteps[onSteps.length - 1] ?? null] : [];
  }
  const day = document.days?.find((entry) => entry.day === today);
  return {
    view,
    spotPrice,
    assets,
    todayCost: day ? day.actual_cost : null,
    currency: view.currency,
  };
}

/** Measured buckets of one series on the plan's step boundaries, for "actual" beside
 * "planned": each step gets the mean of the buckets that start within it. */
export function onSteps(
  times: readonly number[],
  measured: Measurements,
  assetId: string,
  metric: string,
  scale = 1,
): (number | null)[] {
  const start = measured.columns.indexOf("start_ms");
  const mean = measured.columns.indexOf("avg");
  const series = measured.series.find((s) => s.asset_id === assetId && s.metric === metric);
  const sums = new Array<number>(times.length).fill(0);
  const counts = new Array<number>(times.length).fill(0);
  if (series && start >= 0 && mean >= 0 && times.length > 1) {
    const step = times[1]! - times[0]!;
    for (const point of series.points) {
      const value = point[mean];
      if (typeof value !== "number") continue;
      const index = Math.floor((point[start]! / 1000 - times[0]!) / step);
      if (index < 0 || index >= times.length - 1) continue;
      sums[index]! += value * scale;
      counts[index]! += 1;
    }
  }
  const out = sums.map((sum, i) => (counts[i] ? sum / counts[i]! : null));
  // The last boundary repeats the last step, as the plan's held series do.
  if (out.length > 1) out[out.length - 1] = out[out.length - 2] ?? null;
  return out;
}

export { stepTimes };

/** The asset choices of the override form: batteries, which dispatch takes power for. */
export function batteries(assets: readonly Asset[], site: string | null): Asset[] {
  return assets.filter((asset) => asset.type === "battery" && inSite(asset, site));
}

/** Outcomes of attempts that did what was asked. */
export const GOOD_OUTCOMES = new Set(["applied", "unchanged", "released"]);

/** What an audit record says, in words: the outcome and, when it was not applied, why. */
export function outcomeText(record: { outcome: string; reason: string; message: string }): string {
  if (GOOD_OUTCOMES.has(record.outcome)) return record.outcome;
  const why = REASONS[record.reason] ?? record.reason.replaceAll("_", " ");
  return `${record.outcome}: ${why}${record.message ? ` (${record.message})` : ""}`;
}

/** Who the hub's planner says it is in the audit trail (`requested_by`). */
export const PLANNER = "planner";

/** A request of the Overrides page waiting for the site's answer: the asset, the moment
 * from which the answer may be written (ms) and, when known, the value it must carry. */
export interface Awaited {
  asset: string;
  sinceMs: number;
  value?: Scalar;
}

/** The site's answer to `awaited` among audit records (newest first, as `GET /audit` gives
 * them): the newest attempt on the asset from `sinceMs` on, of the value asked for. The
 * planner resends the plan's setpoints all the while, so an earlier one is not the answer. */
export function answerTo(
  records: readonly AuditRecord[],
  awaited: Awaited,
): AuditRecord | undefined {
  return records.find(
    (record) =>
      record.device_id === awaited.asset &&
      record.timestamp * 1000 >= awaited.sinceMs &&
      (awaited.value === undefined || record.requested === awaited.value),
  );
}

/** An override's value in words: a battery's power in W, else the command and its value. */
export function overrideValue(override: Pick<Override, "command" | "value">): string {
  return override.command === BATTERY_POWER_COMMAND
    ? `${String(override.value)} W`
    : `${override.command} = ${String(override.value)}`;
}

const BATTERY_POWER_COMMAND = "battery_power_setpoint_w";

/** Reasons a person may not guess from their name. */
export const REASONS: Record<string, string> = {
  control_disabled: "control is off at the site (enable_control)",
  dry_run: "the site is in dry run",
  not_allowed: "the command is not allowed (allow_write or the allowlist)",
  not_writable: "the point cannot be written",
  out_of_range: "the value is out of the device's range",
  budget_exhausted: "the device's daily write budget is spent",
  rate_limited: "written too often",
  no_batteries: "the site has no battery to take it",
  unknown_device: "no such device at the site",
  unknown_site: "no such site",
  device_error: "the device did not answer",
  read_back_mismatch: "the device reads back another value",
};

/** One step the planner audited (`GET /plan/audit`'s `steps`): what it planned for each
 * asset and what the meters said, and the state of charge at the step's start. */
export interface AuditedStep {
  start_ms: number;
  end_ms: number;
  import_price?: number;
  export_price?: number;
  soc_start?: Record<string, number>;
  report?: { assets?: { asset_id: string; planned_wh: number; actual_wh: number }[] };
}

/** Planned beside actual, per planned asset, on one time axis: the audited steps before the
 * plan, then the plan's own steps. Powers in W (site sign), state of charge in %. */
export interface PlanTimeline {
  times: number[];
  importPrice: (number | null)[];
  exportPrice: (number | null)[];
  spotPrice: (number | null)[];
  assets: {
    id: string;
    kind: PlannedAsset["kind"];
    planned: (number | null)[];
    actual: (number | null)[];
    socPlanned?: (number | null)[];
    socActual?: (number | null)[];
  }[];
  /** Index into `times` of the plan's first step. */
  planStart: number;
}

export function planTimeline(plan: HubPlan, audited: readonly AuditedStep[]): PlanTimeline {
  const { view } = plan;
  const step = view.stepSeconds;
  const first = view.times[0]!;
  const past = audited
    .filter(
      (record) => record.start_ms / 1000 < first && (first - record.start_ms / 1000) % step < 1,
    )
    .sort((a, b) => a.start_ms - b.start_ms);
  const begin = past.length ? past[0]!.start_ms / 1000 : first;
  const before = Math.round((first - begin) / step);
  const times = [...Array.from({ length: before }, (_, i) => begin + i * step), ...view.times];
  const pastIndex = (record: AuditedStep) => Math.round((record.start_ms / 1000 - begin) / step);
  const blank = () => new Array<number | null>(before).fill(null);
  const importPrice = [...blank(), ...view.importPrice];
  const exportPrice = [...blank(), ...view.exportPrice];
  for (const record of past) {
    const i = pastIndex(record);
    importPrice[i] = record.import_price ?? null;
    exportPrice[i] = record.export_price ?? null;
  }
  const hours = step / 3600;
  const assets = plan.assets.map((asset) => {
    const planned = [...blank(), ...asset.powerW];
    const actual = new Array<number | null>(times.length).fill(null);
    const socPlanned = asset.socPct ? [...blank(), ...asset.socPct] : undefined;
    const socActual = asset.socPct ? new Array<number | null>(times.length).fill(null) : undefined;
    for (const record of past) {
      const i = pastIndex(record);
      const found = record.report?.assets?.find((entry) => entry.asset_id === asset.id);
      if (found) {
        planned[i] = found.planned_wh / hours;
        actual[i] = found.actual_wh / hours;
      }
      const soc = record.soc_start?.[asset.id];
      if (socActual && typeof soc === "number") socActual[i] = soc * 100;
    }
    return { id: asset.id, kind: asset.kind, planned, actual, socPlanned, socActual };
  });
  return {
    times,
    importPrice,
    exportPrice,
    spotPrice: [...blank(), ...plan.spotPrice],
    assets,
    planStart: before,
  };
}
