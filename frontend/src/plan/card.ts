// edge-ems-plan-card: the site's plan from the `edge_ems.get_plan` action: prices, planned
// battery power and state of charge on one time axis, the current step highlighted.

import {
  css,
  html,
  LitElement,
  nothing,
  unsafeCSS,
  type PropertyValues,
  type TemplateResult,
} from "lit";
import uPlot from "uplot";
import uPlotCss from "uplot/dist/uPlot.min.css";

import { chosenSite, DOMAIN, numberLocale, siteEntryIds, type Hass } from "../hass.ts";
import { cardStyles, noSite, siteField, type FormSchema } from "../shared.ts";
import { withAlpha } from "../colour.ts";
import { formatPower } from "../flow/model.ts";
import { currentStep, planNow, planView, visibleRange, type PlanView } from "./model.ts";

export interface PlanCardConfig {
  type: string;
  config_entry?: string;
  title?: string;
  hours_to_show?: number;
}

type Shown =
  | { kind: "loading" }
  | { kind: "none" }
  | { kind: "error"; message: string }
  | { kind: "plan"; view: PlanView };

const SERVICE = "get_plan";
/** The plan is made again every quarter-hour at most; asking every five minutes keeps the
 * card within one step of it without loading Home Assistant. */
const REFRESH_MS = 5 * 60_000;
const TICK_MS = 60_000;
/** A day ahead shows the current step clearly; the whole plan is often two days. */
const DEFAULT_HOURS = 24;

const LABELS: Record<string, string> = {
  config_entry: "Site",
  title: "Title",
  hours_to_show: "Hours to show",
};

const FORM: FormSchema = {
  schema: [
    siteField,
    { name: "title", selector: { text: {} } },
    {
      name: "hours_to_show",
      selector: { number: { min: 1, max: 96, step: 1, mode: "box", unit_of_measurement: "h" } },
    },
  ],
  computeLabel: (schema) => LABELS[schema.name] ?? schema.name,
  computeHelper: (schema) =>
    schema.name === "hours_to_show"
      ? "From now; 24 by default, the plan's own length at most."
      : undefined,
};

const COLOURS = {
  import: "--energy-grid-consumption-color",
  export: "--energy-grid-return-color",
  battery: "--energy-battery-out-color",
  soc: "--edge-ems-soc-color",
  text: "--secondary-text-color",
  grid: "--divider-color",
  now: "--primary-color",
};
const FALLBACK: Record<keyof typeof COLOURS, string> = {
  import: "#488fc2",
  export: "#8353d1",
  battery: "#4db6ac",
  soc: "#43a047",
  text: "#727272",
  grid: "rgba(0, 0, 0, 0.12)",
  now: "#03a9f4",
};

let charts = 0;

export class EdgeEmsPlanCard extends LitElement {
  static override properties = {
    hass: { attribute: false },
    _config: { state: true },
    _shown: { state: true },
    _minute: { state: true },
  };

  declare hass?: Hass;
  declare _config?: PlanCardConfig;
  declare _shown: Shown;
  /** Bumped every minute: the highlight and the summary move on. */
  declare _minute: number;
  private _site?: string;
  /** Bumped by every request: an answer that is not the latest one is dropped. */
  private _request = 0;
  private _fetchedAt = 0;
  private _timer?: ReturnType<typeof setInterval>;
  private _charts: uPlot[] = [];
  private _resize?: ResizeObserver;
  private readonly _syncKey = `edge-ems-plan-${(charts += 1)}`;

  constructor() {
    super();
    this._shown = { kind: "loading" };
    this._minute = 0;
  }

  static getConfigForm(): FormSchema {
    return FORM;
  }

  static getStubConfig(hass: Hass): Partial<PlanCardConfig> {
    const [site] = siteEntryIds(hass);
    return site ? { config_entry: site } : {};
  }

  setConfig(config: PlanCardConfig): void {
    if (!config || typeof config !== "object") throw new Error("The card needs a configuration");
    const hours = config.hours_to_show;
    if (hours !== undefined && hours !== null && !(typeof hours === "number" && hours > 0)) {
      throw new Error("hours_to_show: a number of hours, more than 0");
    }
    this._config = config;
  }

  getCardSize(): number {
    return 7;
  }

  getGridOptions(): Record<string, number> {
    return { columns: 12, rows: 7, min_columns: 6, min_rows: 5 };
  }

  override connectedCallback(): void {
    super.connectedCallback();
    this._timer = setInterval(() => this.tick(), TICK_MS);
    // Back on a dashboard view after a while: the charts were dropped on the way out.
    this.tick();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    clearInterval(this._timer);
    this.destroyCharts();
  }

  /** Every minute the highlight moves on; every five the plan is asked for again. */
  private tick(): void {
    if (Date.now() - this._fetchedAt >= REFRESH_MS) void this.fetchPlan();
    else if (this._shown.kind === "plan") this._minute += 1;
  }

  private hasAction(): boolean {
    return Boolean(this.hass?.services[DOMAIN]?.[SERVICE]);
  }

  /** Ask the integration for the site's plan; no action or no plan is "no plan yet". */
  async fetchPlan(): Promise<void> {
    const hass = this.hass;
    const site = this._site;
    if (!hass || !site) return;
    const request = (this._request += 1);
    this._fetchedAt = Date.now();
    if (!this.hasAction()) {
      this._shown = { kind: "none" };
      return;
    }
    let shown: Shown;
    try {
      const data = { config_entry_id: site };
      const result = await hass.callService(DOMAIN, SERVICE, data, undefined, false, true);
      const view = planView(result.response);
      shown = view ? { kind: "plan", view } : { kind: "none" };
    } catch (err) {
      const message =
        err instanceof Error
          ? err.message
          : ((err as { message?: string })?.message ?? String(err));
      shown = { kind: "error", message };
    }
    if (request === this._request) this._shown = shown;
  }

  protected override shouldUpdate(changed: PropertyValues<this>): boolean {
    if (changed.has("_config") || changed.has("_shown") || changed.has("_minute")) return true;
    const old = changed.get("hass") as Hass | undefined;
    if (!old || !this.hass) return changed.size > 0;
    return (
      old.locale !== this.hass.locale ||
      old.themes !== this.hass.themes ||
      old.entities !== this.hass.entities ||
      (old.services !== this.hass.services &&
        this.hasAction() !== Boolean(old.services[DOMAIN]?.[SERVICE]))
    );
  }

  protected override willUpdate(changed: PropertyValues<this>): void {
    if (!this.hass || !this._config) return;
    const site = chosenSite(this.hass, this._config.config_entry);
    const old = changed.get("hass") as Hass | undefined;
    const actionAppeared =
      old !== undefined && this.hasAction() && !old.services[DOMAIN]?.[SERVICE];
    if (site !== this._site || actionAppeared) {
      this._site = site;
      this._shown = { kind: "loading" };
      void this.fetchPlan();
    }
  }

  protected override updated(): void {
    if (this._shown.kind === "plan") this.drawCharts(this._shown.view);
    else this.destroyCharts();
  }

  protected override render(): TemplateResult | typeof nothing {
    if (!this._config || !this.hass) return nothing;
    const title = this._config.title ?? "Plan";
    if (!this._site) return noSite(this.hass, title);
    const shown = this._shown;
    let body: TemplateResult;
    if (shown.kind === "loading") body = html`<p class="message">Loading the plan…</p>`;
    else if (shown.kind === "none") {
      body = html`<p class="message empty">No plan yet</p>
        <p class="hint">
          The planner has not made a plan for this site yet; it shows here once it has.
        </p>`;
    } else if (shown.kind === "error") {
      body = html`<p class="message error" role="alert">
        The plan could not be read: ${shown.message}
      </p>`;
    } else body = this.renderPlan(shown.view);
    return html`<ha-card .header=${title}><div class="content">${body}</div></ha-card>`;
  }

  private renderPlan(view: PlanView): TemplateResult {
    const hass = this.hass!;
    const locale = numberLocale(hass.locale);
    const now = Date.now() / 1000;
    const current = planNow(view, now);
    const at = this.moment();
    const price = (value: number | null) =>
      value === null
        ? "—"
        : `${new Intl.NumberFormat(locale, { minimumFractionDigits: 3, maximumFractionDigits: 3 }).format(value)} ${view.currency}/kWh`;
    const pct = (value: number | null) =>
      value === null
        ? "—"
        : `${new Intl.NumberFormat(locale, { maximumFractionDigits: 0 }).format(value)} %`;
    const battery = (watts: number | null) =>
      watts === null || Math.abs(watts) < 10
        ? "idle"
        : `${watts < 0 ? "charging" : "discharging"} ${formatPower(watts, locale)}`;
    const end = view.times[view.times.length - 1]!;
    const [first, last] = visibleRange(view, now, this._config?.hours_to_show ?? DEFAULT_HOURS);
    const cost = Number.isFinite(view.cost)
      ? `${new Intl.NumberFormat(locale, { minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(view.cost)} ${view.currency}`
      : "—";
    const stats: [string, string][] = current
      ? [
          ["Import now", price(current.importPrice)],
          ["Export now", price(current.exportPrice)],
          ["Battery now", battery(current.batteryW)],
          [`Charge at ${at(view.times[current.step + 1]!)}`, pct(current.socNext)],
          [`Charge at ${at(end)}`, pct(current.socEnd)],
        ]
      : [];
    return html`
      ${
        current
          ? html`<dl class="now">
              ${stats.map(
                ([label, value]) =>
                  html`<div>
                    <dt>${label}</dt>
                    <dd>${value}</dd>
                  </div>`,
              )}
            </dl>`
          : html`<p class="message">
              ${
                now >= end
                  ? "The plan has ended; the next one shows here once the planner has made it."
                  : `The plan starts at ${at(view.times[0]!)}.`
              }
            </p>`
      }
      <ul class="legend" aria-hidden="true">
        <li><span class="swatch import"></span>Import price (${view.currency}/kWh)</li>
        <li><span class="swatch export"></span>Export price</li>
        <li><span class="swatch battery"></span>Battery (kW, + discharge)</li>
        <li><span class="swatch soc"></span>State of charge</li>
      </ul>
      <div
        class="chart prices"
        role="img"
        aria-label="Import and export prices in ${view.currency}/kWh from ${at(view.times[first]!)} to ${at(view.times[last]!)}; the current quarter-hour is highlighted"
      ></div>
      <div
        class="chart power"
        role="img"
        aria-label="Planned battery power in kW and state of charge in % from ${at(view.times[first]!)} to ${at(view.times[last]!)}"
      ></div>
      <p class="footer">
        Plan ${view.version} made ${at(view.madeAt.getTime() / 1000)} · cost ${cost} ·
        ${view.status}
        ${view.shortfalls.length ? html`<br />Cannot do: ${view.shortfalls.join("; ")}` : nothing}
      </p>
    `;
  }

  private timeZone(): string | undefined {
    const hass = this.hass;
    return hass?.locale.time_zone === "server" ? hass.config.time_zone : undefined;
  }

  private hour12(): boolean | undefined {
    const format = this.hass?.locale.time_format;
    return format === "12" ? true : format === "24" ? false : undefined;
  }

  /** A moment as people say it: "07:45" today, "Tue 07:45" on another day. */
  private moment(): (seconds: number) => string {
    const language = this.hass?.locale.language;
    const options = {
      hour: "2-digit",
      minute: "2-digit",
      hour12: this.hour12(),
      timeZone: this.timeZone(),
    } as const;
    const time = new Intl.DateTimeFormat(language, options);
    const dated = new Intl.DateTimeFormat(language, { ...options, weekday: "short" });
    const day = new Intl.DateTimeFormat("en-CA", { dateStyle: "short", timeZone: this.timeZone() });
    const today = day.format(new Date());
    return (seconds) => {
      const date = new Date(seconds * 1000);
      return (day.format(date) === today ? time : dated).format(date);
    };
  }

  private colour(name: keyof typeof COLOURS): string {
    const value = getComputedStyle(this).getPropertyValue(COLOURS[name]).trim();
    return value || FALLBACK[name];
  }

  private destroyCharts(): void {
    for (const chart of this._charts) chart.destroy();
    this._charts = [];
    this._resize?.disconnect();
    this._resize = undefined;
  }

  /** Draw both charts afresh: a few milliseconds, once a minute or when the plan, the
   * theme or the locale change. */
  private drawCharts(view: PlanView): void {
    const priceBox = this.renderRoot.querySelector<HTMLElement>(".chart.prices");
    const powerBox = this.renderRoot.querySelector<HTMLElement>(".chart.power");
    if (!priceBox || !powerBox) return;
    const now = Date.now() / 1000;
    const [first, last] = visibleRange(view, now, this._config?.hours_to_show ?? DEFAULT_HOURS);
    const slice = <T>(values: readonly T[]) => values.slice(first, last + 1);
    const times = slice(view.times);
    const priceData: uPlot.AlignedData = [times, slice(view.importPrice), slice(view.exportPrice)];
    const powerData: uPlot.AlignedData = [
      times,
      slice(view.batteryW).map((w) => (w === null ? null : w / 1000)),
      ...view.soc.map((battery) => slice(battery.pct)),
    ];
    this.destroyCharts();
    const width = Math.max(priceBox.clientWidth, 200);
    const locale = numberLocale(this.hass!.locale);
    const colours = Object.fromEntries(
      Object.keys(COLOURS).map((name) => [name, this.colour(name as keyof typeof COLOURS)]),
    ) as Record<keyof typeof COLOURS, string>;
    // The current step as a band behind the series, and now as a line through it.
    const highlight = (u: uPlot) => {
      const now = Date.now() / 1000;
      const step = currentStep(view, now);
      if (step < 0) return;
      const left = u.valToPos(view.times[step]!, "x", true);
      const right = u.valToPos(view.times[step + 1]!, "x", true);
      const line = Math.round(u.valToPos(now, "x", true));
      const { ctx } = u;
      ctx.save();
      ctx.fillStyle = colours.now;
      ctx.globalAlpha = 0.2;
      ctx.fillRect(left, u.bbox.top, Math.max(right - left, 3), u.bbox.height);
      ctx.globalAlpha = 0.9;
      ctx.fillRect(line - 1, u.bbox.top, 2 * uPlot.pxRatio, u.bbox.height);
      ctx.restore();
    };
    const timeZone = this.timeZone();
    const hour12 = this.hour12();
    const hours = new Intl.DateTimeFormat(this.hass?.locale.language, {
      hour: "2-digit",
      minute: "2-digit",
      hour12,
      timeZone,
    });
    const days = new Intl.DateTimeFormat(this.hass?.locale.language, {
      weekday: "short",
      timeZone,
    });
    const xAxis: uPlot.Axis = {
      stroke: colours.text,
      grid: { stroke: colours.grid, width: 1 },
      ticks: { stroke: colours.grid, width: 1 },
      values: (_u, ticks) =>
        ticks.map((tick) => {
          const date = new Date(tick * 1000);
          const text = hours.format(date);
          return /^0?0[:.]00/.test(text) ? days.format(date) : text;
        }),
    };
    // Both charts keep an axis on each side of the same size, so their times line up.
    const yAxis = (scale: string, format: (value: number) => string, side = 3): uPlot.Axis => ({
      scale,
      side,
      size: 58,
      stroke: colours.text,
      grid: { show: side === 3, stroke: colours.grid, width: 1 },
      ticks: { stroke: colours.grid, width: 1 },
      values: (_u, ticks) => ticks.map(format),
    });
    const spacer: uPlot.Axis = {
      scale: "price",
      side: 1,
      size: 58,
      grid: { show: false },
      ticks: { show: false },
      values: (_u, ticks) => ticks.map(() => ""),
    };
    const number = (digits: number) => {
      const f = new Intl.NumberFormat(locale, { maximumFractionDigits: digits });
      return (value: number) => f.format(value);
    };
    const stepped = uPlot.paths.stepped!({ align: 1 });
    const base = (height: number): Omit<uPlot.Options, "series"> => ({
      width,
      height,
      legend: { show: false },
      cursor: { sync: { key: this._syncKey }, drag: { x: false, y: false } },
      hooks: { drawClear: [highlight] },
      ...(timeZone ? { tzDate: (ts: number) => uPlot.tzDate(new Date(ts * 1000), timeZone) } : {}),
    });
    const prices = new uPlot(
      {
        ...base(150),
        scales: { x: { time: true } },
        axes: [xAxis, yAxis("price", number(2)), spacer],
        series: [
          {},
          {
            label: "Import price",
            scale: "price",
            stroke: colours.import,
            width: 2,
            paths: stepped,
          },
          {
            label: "Export price",
            scale: "price",
            stroke: colours.export,
            width: 2,
            dash: [6, 4],
            paths: stepped,
          },
        ],
      },
      priceData,
      priceBox,
    );
    const power = new uPlot(
      {
        ...base(170),
        scales: { x: { time: true }, "%": { range: [0, 100] } },
        axes: [
          xAxis,
          yAxis("kW", (v) => `${number(1)(v)} kW`),
          yAxis("%", (v) => `${number(0)(v)} %`, 1),
        ],
        series: [
          {},
          {
            label: "Battery",
            scale: "kW",
            stroke: colours.battery,
            fill: withAlpha(colours.battery, 0.35) ?? withAlpha(FALLBACK.battery, 0.35)!,
            fillTo: 0,
            width: 1.5,
            paths: stepped,
          },
          ...view.soc.map((battery) => ({
            label: `State of charge ${battery.id}`,
            scale: "%",
            stroke: colours.soc,
            width: 2,
          })),
        ],
      },
      powerData,
      powerBox,
    );
    this._charts = [prices, power];
    this._resize = new ResizeObserver(() => {
      const next = Math.max(priceBox.clientWidth, 200);
      for (const chart of this._charts) {
        if (chart.width !== next) chart.setSize({ width: next, height: chart.height });
      }
    });
    this._resize.observe(priceBox);
  }

  static override styles = [
    cardStyles,
    unsafeCSS(uPlotCss),
    css`
      .content {
        padding: 0 16px 12px;
      }
      .message {
        padding: 16px 0 4px;
      }
      .empty {
        font-size: 1.1em;
        font-weight: 500;
      }
      .hint,
      .footer {
        margin: 0;
        color: var(--secondary-text-color);
        font-size: 0.9em;
      }
      .hint {
        padding-bottom: 8px;
      }
      .now {
        display: flex;
        flex-wrap: wrap;
        gap: 8px 24px;
        margin: 0 0 12px;
      }
      .now dt {
        font-size: 0.8em;
        color: var(--secondary-text-color);
      }
      .now dd {
        margin: 0;
        font-weight: 500;
        color: var(--primary-text-color);
      }
      .error {
        /* The theme's error red is too light for text on a card (WCAG contrast): the text
           keeps the primary colour and the red marks the message's edge. */
        color: var(--primary-text-color);
        border-left: 4px solid var(--error-color, #db4437);
        padding-left: 12px;
      }
      .legend {
        display: flex;
        flex-wrap: wrap;
        gap: 4px 16px;
        margin: 0 0 4px;
        padding: 0;
        list-style: none;
        font-size: 0.85em;
        color: var(--secondary-text-color);
      }
      .swatch {
        display: inline-block;
        width: 14px;
        height: 3px;
        margin-right: 6px;
        vertical-align: middle;
        background: currentColor;
      }
      .swatch.import {
        background: var(--energy-grid-consumption-color, #488fc2);
      }
      .swatch.export {
        background: repeating-linear-gradient(
          90deg,
          var(--energy-grid-return-color, #8353d1) 0 5px,
          transparent 5px 8px
        );
      }
      .swatch.battery {
        height: 8px;
        background: var(--energy-battery-out-color, #4db6ac);
      }
      .swatch.soc {
        background: var(--edge-ems-soc-color, #43a047);
      }
      .chart {
        width: 100%;
        min-height: 150px;
      }
      .chart.power {
        min-height: 170px;
      }
      .footer {
        padding-top: 6px;
      }
      .u-legend {
        display: none;
      }
    `,
  ];
}
