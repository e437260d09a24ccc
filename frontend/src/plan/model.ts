// What the plan card shows, from the `edge_ems.get_plan` action's response: the plan's steps
// on a time axis, the prices on the same steps, the battery power the plan sets (site sign:
// positive discharges) and each battery's state of charge. No DOM here, so it is tested
// under Node.

/** The action's response: the site's latest plan and the prices it was made against. The
 * plan is `edge_ems.planner.plan.Plan.as_dict()`. */
export interface PlanResponse {
  site_id: string;
  version: number;
  made_at: string;
  plan: PlanDict | null;
  prices: {
    start: string;
    step_minutes: number;
    import: (number | null)[];
    export: (number | null)[];
    currency: string;
  } | null;
}

export interface PlanDict {
  start: string;
  step_minutes: number;
  n_steps: number;
  status: string;
  currency: string;
  cost: number;
  batteries: { id: string; charge_w: number[]; discharge_w: number[]; soc: number[] }[];
  grid_import_w: number[];
  grid_export_w: number[];
  pv_w: number[];
  evs: { id: string; power_w: number[] }[];
  heat_pumps: { id: string; power_w: number[] }[];
  shortfalls: { asset_id: string; message: string }[];
}

/** A plan laid out for the charts. Times are in seconds (uPlot's unit) and mark the step
 * boundaries: `times[i]` starts step `i`, the last one ends the plan, so there is one more
 * time than steps. Series that hold over a step (prices, power) repeat their last value at
 * the end; state of charge is known at the end of each step, so it starts with `null`. */
export interface PlanView {
  siteId: string;
  version: number;
  madeAt: Date;
  status: string;
  currency: string;
  cost: number;
  stepSeconds: number;
  times: number[];
  importPrice: (number | null)[];
  exportPrice: (number | null)[];
  batteryW: (number | null)[];
  soc: { id: string; pct: (number | null)[] }[];
  shortfalls: string[];
}

export class PlanError extends Error {}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function seconds(iso: unknown, what: string): number {
  const ms = typeof iso === "string" ? Date.parse(iso) : Number.NaN;
  if (!Number.isFinite(ms)) throw new PlanError(`${what} is not a time: ${String(iso)}`);
  return ms / 1000;
}

function numbers(values: unknown, length: number, what: string): number[] {
  if (!Array.isArray(values) || values.length !== length) {
    throw new PlanError(`${what} needs ${length} values`);
  }
  return values.map((value) => (typeof value === "number" ? value : Number.NaN));
}

/** Step boundaries in seconds: `n + 1` times from `start`, `stepMinutes` apart. */
export function stepTimes(startSeconds: number, stepMinutes: number, n: number): number[] {
  return Array.from({ length: n + 1 }, (_, i) => startSeconds + i * stepMinutes * 60);
}

/** Values that hold over each step, on the step boundaries: the last repeated at the end. */
function held(values: readonly (number | null)[]): (number | null)[] {
  return values.length ? [...values, values[values.length - 1] ?? null] : [];
}

/** The price in force at the start of each plan step (prices may come in other steps than
 * the plan's, hourly prices under a quarter-hour plan); `null` where there is none. */
export function pricesOnSteps(
  prices: readonly (number | null)[],
  priceStart: number,
  priceStepSeconds: number,
  times: readonly number[],
): (number | null)[] {
  return times.slice(0, -1).map((time) => {
    const index = Math.floor((time - priceStart) / priceStepSeconds + 1e-9);
    const price = index >= 0 && index < prices.length ? prices[index] : null;
    return typeof price === "number" && Number.isFinite(price) ? price : null;
  });
}

/** The view of a response; `null` when there is no plan yet. A response that does not
 * have the promised shape raises a {@link PlanError} saying what is wrong. */
export function planView(response: unknown): PlanView | null {
  if (!isObject(response) || response.plan === null || response.plan === undefined) return null;
  const plan = response.plan;
  if (!isObject(plan)) throw new PlanError("the plan is not an object");
  const n = plan.n_steps;
  const step = plan.step_minutes;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1) {
    throw new PlanError("the plan has no steps");
  }
  if (typeof step !== "number" || step <= 0) throw new PlanError("the plan has no step length");
  const times = stepTimes(seconds(plan.start, "the plan's start"), step, n);
  const batteries = Array.isArray(plan.batteries) ? plan.batteries : [];
  const batteryW: number[] = new Array<number>(n).fill(0);
  const soc: PlanView["soc"] = [];
  for (const battery of batteries) {
    if (!isObject(battery)) throw new PlanError("a battery of the plan is not an object");
    const id = String(battery.id);
    const charge = numbers(battery.charge_w, n, `battery ${id}: charge_w`);
    const discharge = numbers(battery.discharge_w, n, `battery ${id}: discharge_w`);
    for (let i = 0; i < n; i += 1) batteryW[i] = (batteryW[i] ?? 0) + discharge[i]! - charge[i]!;
    const fractions = numbers(battery.soc, n, `battery ${id}: soc`);
    soc.push({ id, pct: [null, ...fractions.map((f) => (Number.isFinite(f) ? f * 100 : null))] });
  }
  let importPrice: (number | null)[] = new Array<number | null>(n).fill(null);
  let exportPrice: (number | null)[] = new Array<number | null>(n).fill(null);
  let currency = typeof plan.currency === "string" ? plan.currency : "";
  const prices = response.prices;
  if (isObject(prices)) {
    const start = seconds(prices.start, "the prices' start");
    const stepSeconds = Number(prices.step_minutes) * 60;
    if (!(stepSeconds > 0)) throw new PlanError("the prices have no step length");
    const read = (values: unknown) => (Array.isArray(values) ? (values as (number | null)[]) : []);
    importPrice = pricesOnSteps(read(prices.import), start, stepSeconds, times);
    exportPrice = pricesOnSteps(read(prices.export), start, stepSeconds, times);
    if (typeof prices.currency === "string") currency = prices.currency;
  }
  const shortfalls = Array.isArray(plan.shortfalls)
    ? plan.shortfalls.filter(isObject).map((s) => `${String(s.asset_id)}: ${String(s.message)}`)
    : [];
  return {
    siteId: String(response.site_id ?? ""),
    version: Number(response.version ?? 0),
    madeAt: new Date(seconds(response.made_at, "made_at") * 1000),
    status: String(plan.status ?? ""),
    currency,
    cost: Number(plan.cost ?? Number.NaN),
    stepSeconds: step * 60,
    times,
    importPrice: held(importPrice),
    exportPrice: held(exportPrice),
    batteryW: held(batteryW.map((w) => Math.round(w * 10) / 10)),
    soc,
    shortfalls,
  };
}

/** The step `now` (seconds) falls in; `-1` before the plan or after it. */
export function currentStep(view: Pick<PlanView, "times">, now: number): number {
  const { times } = view;
  if (times.length < 2 || now < times[0]! || now >= times[times.length - 1]!) return -1;
  const step = times[1]! - times[0]!;
  return Math.min(Math.floor((now - times[0]!) / step), times.length - 2);
}

/** How much of the past the charts keep in view, so the current step is seen in context. */
export const LOOKBACK_SECONDS = 3600;

/** The part of the plan to show: from an hour before the current step (or from the plan's
 * start, when now is outside it) to the end, or to `hours` after the current step. Returns
 * `[first, last]` indexes into `times`, both included. */
export function visibleRange(
  view: Pick<PlanView, "times">,
  now: number,
  hours?: number,
): [number, number] {
  const { times } = view;
  const last = times.length - 1;
  const current = currentStep(view, now);
  const anchor = current < 0 ? 0 : current;
  const step = times[1]! - times[0]!;
  const first = Math.max(0, anchor - Math.round(LOOKBACK_SECONDS / step));
  if (!hours || hours <= 0) return [first, last];
  const end = times[anchor]! + hours * 3600;
  let stop = anchor;
  while (stop < last && times[stop + 1]! <= end) stop += 1;
  return [first, Math.max(stop, Math.min(anchor + 1, last))];
}

/** What the plan does now and next, in numbers: the current step's prices, battery power
 * and state of charge at its end, and the state of charge at the end of the plan. */
export interface PlanNow {
  step: number;
  importPrice: number | null;
  exportPrice: number | null;
  batteryW: number | null;
  socNext: number | null;
  socEnd: number | null;
}

function mean(values: readonly (number | null | undefined)[]): number | null {
  const known = values.filter((v): v is number => typeof v === "number");
  return known.length ? known.reduce((a, b) => a + b, 0) / known.length : null;
}

export function planNow(view: PlanView, now: number): PlanNow | null {
  const step = currentStep(view, now);
  if (step < 0) return null;
  return {
    step,
    importPrice: view.importPrice[step] ?? null,
    exportPrice: view.exportPrice[step] ?? null,
    batteryW: view.batteryW[step] ?? null,
    socNext: mean(view.soc.map((battery) => battery.pct[step + 1])),
    socEnd: mean(view.soc.map((battery) => battery.pct[battery.pct.length - 1])),
  };
}
