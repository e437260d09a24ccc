// Plan: the site's plan from the hub's planner: prices, each planned asset's power planned
// and measured (the planner's audit of the steps gone by), state of charge planned and
// measured, and the overrides in force. "No plan yet" until the planner has made one,
// and on a hub that plans nothing.

import { html, nothing, type PropertyValues, type TemplateResult } from "lit";
import { repeat } from "lit/directives/repeat.js";

import { formatPower } from "../../flow/model.ts";
import { currentStep } from "../../plan/model.ts";
import { ApiError } from "../api.ts";
import { ChartSizer, cssColour, fillOf, timeAxis, uPlot, valueAxis } from "../charts.ts";
import {
  hubPlan,
  overrideValue,
  planTimeline,
  type AuditedStep,
  type HubPlan,
  type PlanTimeline,
} from "../model.ts";
import { dateTimeOf, HubPage, planFor, timeOf } from "../page.ts";
import type { PageContext } from "../page.ts";
import type { Override, SitePlan } from "../types.ts";

const AUDIT_HOURS = 6;
const KIND_COLOURS: Record<string, string> = {
  battery: "--energy-battery-out-color",
  ev: "--edge-ems-ev-color",
  heat_pump: "--edge-ems-heat-pump-color",
};
const KIND_NAMES: Record<string, string> = { battery: "Battery", ev: "EV", heat_pump: "Heat pump" };

type Shown =
  | { kind: "loading" }
  | { kind: "none"; why: string }
  | { kind: "plan"; plan: HubPlan; timeline: PlanTimeline; overrides: Override[] };

export class PlanPage extends HubPage {
  static override properties = {
    ...HubPage.properties,
    _shown: { state: true },
  };

  declare _shown: Shown;
  protected override period = 60_000;
  private readonly sizer = new ChartSizer();
  private drawnFor: unknown = null;

  constructor() {
    super();
    this._shown = { kind: "loading" };
  }

  override connectedCallback(): void {
    super.connectedCallback();
    window.addEventListener("edge-ems-theme", this.rethemed);
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    window.removeEventListener("edge-ems-theme", this.rethemed);
    this.sizer.clear();
    this.drawnFor = null;
  }

  private readonly rethemed = () => {
    this.drawnFor = null;
    this.requestUpdate();
  };

  protected override siteChanged(): void {
    this._shown = { kind: "loading" };
  }

  protected override willUpdate(changed: PropertyValues<this>): void {
    super.willUpdate(changed);
    const before = changed.get("context") as PageContext | undefined;
    // The hub made its first plan (or stopped planning): show it without waiting a minute.
    if (before && before.site === this.context.site && before.planner !== this.context.planner) {
      const was = before.planner?.sites[this.context.site ?? ""]?.version ?? null;
      const now = this.context.planner?.sites[this.context.site ?? ""]?.version ?? null;
      if (was !== now) void this.refresh();
    }
  }

  protected override async load(): Promise<void> {
    const { api } = this.context;
    const planned = planFor(this.context);
    if (!planned.ready) {
      this._shown = { kind: "none", why: planned.why };
      return;
    }
    let document: SitePlan;
    try {
      document = await api.get<SitePlan>("plan", { site_id: planned.site });
    } catch (err) {
      if (err instanceof ApiError && (err.status === 404 || err.status === 400)) {
        this._shown = { kind: "none", why: whyNoPlan(err) };
        return;
      }
      throw err;
    }
    const today = new Intl.DateTimeFormat("en-CA", { timeZone: document.time_zone }).format(
      new Date(),
    );
    const plan = hubPlan(document, today);
    if (!plan) {
      this._shown = { kind: "none", why: "The planner has not made a plan for this site yet." };
      return;
    }
    const siteQuery = { site_id: document.site_id };
    const [audit, overrides] = await Promise.all([
      api
        .get<{ steps: AuditedStep[] }>("plan/audit", {
          ...siteQuery,
          from: Date.now() - AUDIT_HOURS * 3_600_000,
        })
        .catch(() => ({ steps: [] })),
      api.get<{ overrides: Override[] }>("overrides", siteQuery).catch(() => ({ overrides: [] })),
    ]);
    this._shown = {
      kind: "plan",
      plan,
      timeline: planTimeline(plan, audit.steps),
      overrides: overrides.overrides,
    };
  }

  protected override render(): TemplateResult {
    const shown = this._shown;
    let body: TemplateResult | typeof nothing = nothing;
    if (shown.kind === "none") {
      body = html`<section class="card">
        <p class="message empty no-plan">No plan yet</p>
        <p class="muted">${shown.why}</p>
      </section>`;
    } else if (shown.kind === "plan")
      body = this.renderPlan(shown.plan, shown.timeline, shown.overrides);
    return html`${this.heading("Plan")}${body}`;
  }

  private renderPlan(plan: HubPlan, timeline: PlanTimeline, overrides: Override[]): TemplateResult {
    const { view } = plan;
    const now = Date.now() / 1000;
    const step = currentStep(view, now);
    const number = (digits: number) =>
      new Intl.NumberFormat(undefined, {
        minimumFractionDigits: digits,
        maximumFractionDigits: digits,
      });
    const price = (value: number | null | undefined) =>
      value === null || value === undefined
        ? "—"
        : `${number(3).format(value)} ${view.currency}/kWh`;
    const battery = step >= 0 ? (view.batteryW[step] ?? null) : null;
    const stats: [string, string][] = [
      ["Import now", price(step >= 0 ? view.importPrice[step] : null)],
      ["Export now", price(step >= 0 ? view.exportPrice[step] : null)],
      [
        "Batteries now",
        battery === null || Math.abs(battery) < 10
          ? "idle"
          : `${battery < 0 ? "charging" : "discharging"} ${formatPower(battery)}`,
      ],
      [
        "Plan's cost",
        Number.isFinite(view.cost) ? `${number(2).format(view.cost)} ${view.currency}` : "—",
      ],
      [
        "Today so far",
        plan.todayCost === null ? "—" : `${number(2).format(plan.todayCost)} ${view.currency}`,
      ],
    ];
    return html`
      <section class="card">
        <dl class="stats plan-now">
          ${stats.map(
            ([label, value]) =>
              html`<div>
                <dt>${label}</dt>
                <dd>${value}</dd>
              </div>`,
          )}
        </dl>
        <p class="muted plan-made">
          Plan ${view.version} made ${dateTimeOf(view.madeAt.getTime())} · ${view.status}
          ${view.shortfalls.length ? html`<br />Cannot do: ${view.shortfalls.join("; ")}` : nothing}
        </p>
      </section>
      <section class="card overrides-now">
        <h3>Overrides in force</h3>
        ${
          overrides.length
            ? html`<ul>
                ${overrides.map(
                  (o) =>
                    html`<li>
                      ${o.asset_id}: ${overrideValue(o)} until ${timeOf(o.end_ms)}
                      <span class="muted">(by ${o.requested_by})</span>
                    </li>`,
                )}
              </ul>`
            : html`<p class="muted">
                None: the plan runs as made. <a href="#/overrides">Set one</a>
              </p>`
        }
      </section>
      <section class="card">
        <h3>Prices</h3>
        <ul class="legend" aria-hidden="true">
          <li>
            <span class="swatch" style="background: var(--energy-grid-consumption-color)"></span
            >Import
          </li>
          <li>
            <span class="swatch" style="background: var(--energy-grid-return-color)"></span>Export
          </li>
          <li><span class="swatch" style="background: var(--edge-ems-spot-color)"></span>Spot</li>
        </ul>
        <div
          class="chart plan-prices"
          role="img"
          aria-label="Import, export and spot prices in ${view.currency}/kWh over the plan"
        ></div>
      </section>
      ${repeat(
        timeline.assets,
        (asset) => asset.id,
        (asset) =>
          html`<section class="card">
            <h3>${KIND_NAMES[asset.kind]} ${asset.id}</h3>
            <ul class="legend" aria-hidden="true">
              <li>
                <span class="swatch" style="background: var(${KIND_COLOURS[asset.kind]})"></span
                >Planned power
              </li>
              <li>
                <span class="swatch dashed" style="color: var(--edge-ems-actual-color)"></span
                >Measured power
              </li>
              ${
                asset.socPlanned
                  ? html`<li>
                        <span class="swatch" style="background: var(--edge-ems-soc-color)"></span
                        >Charge planned
                      </li>
                      <li>
                        <span class="swatch dashed" style="color: var(--edge-ems-soc-color)"></span
                        >Charge measured
                      </li>`
                  : nothing
              }
            </ul>
            <div
              class="chart plan-asset"
              data-asset=${asset.id}
              role="img"
              aria-label="${KIND_NAMES[asset.kind]} ${asset.id}: planned and measured power in kW${asset.socPlanned ? " and state of charge in %" : ""}"
            ></div>
          </section>`,
      )}
    `;
  }

  override updated(): void {
    const shown = this._shown;
    if (shown.kind !== "plan") {
      this.sizer.clear();
      this.drawnFor = null;
      return;
    }
    if (this.drawnFor === shown) return;
    this.drawnFor = shown;
    this.sizer.clear();
    this.draw(shown.plan, shown.timeline);
  }

  private draw(plan: HubPlan, timeline: PlanTimeline): void {
    const { times } = timeline;
    const stepped = uPlot.paths.stepped!({ align: 1 });
    const nowLine = (u: uPlot) => {
      const x = Math.round(u.valToPos(Date.now() / 1000, "x", true));
      if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) return;
      const { ctx } = u;
      ctx.save();
      ctx.fillStyle = cssColour("--primary-color");
      ctx.fillRect(x - 1, u.bbox.top, 2 * uPlot.pxRatio, u.bbox.height);
      ctx.restore();
    };
    const number = (digits: number) => {
      const f = new Intl.NumberFormat(undefined, { maximumFractionDigits: digits });
      return (value: number) => f.format(value);
    };
    const base = (box: HTMLElement, height: number) => ({
      width: Math.max(box.clientWidth, 200),
      height,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      hooks: { drawClear: [nowLine] },
    });
    const pricesBox = this.querySelector<HTMLElement>(".chart.plan-prices");
    if (pricesBox) {
      pricesBox.replaceChildren();
      const chart = new uPlot(
        {
          ...base(pricesBox, 160),
          scales: { x: { time: true } },
          axes: [timeAxis(), valueAxis("price", number(3))],
          series: [
            {},
            {
              label: "Import",
              scale: "price",
              stroke: cssColour("--energy-grid-consumption-color"),
              width: 2,
              paths: stepped,
            },
            {
              label: "Export",
              scale: "price",
              stroke: cssColour("--energy-grid-return-color"),
              width: 2,
              paths: stepped,
            },
            {
              label: "Spot",
              scale: "price",
              stroke: cssColour("--edge-ems-spot-color"),
              width: 1.5,
              dash: [4, 4],
              paths: stepped,
            },
          ],
        },
        [times, timeline.importPrice, timeline.exportPrice, timeline.spotPrice],
        pricesBox,
      );
      this.sizer.watch(pricesBox, chart);
    }
    for (const asset of timeline.assets) {
      const box = this.querySelector<HTMLElement>(
        `.chart.plan-asset[data-asset="${CSS.escape(asset.id)}"]`,
      );
      if (!box) continue;
      box.replaceChildren();
      const colour = cssColour(KIND_COLOURS[asset.kind] ?? "--primary-color");
      const actual = cssColour("--edge-ems-actual-color");
      const soc = cssColour("--edge-ems-soc-color");
      const kw = (values: (number | null)[]) => values.map((w) => (w === null ? null : w / 1000));
      const series: uPlot.Series[] = [
        {},
        {
          label: "Planned",
          scale: "kW",
          stroke: colour,
          fill: fillOf(colour, 0.25),
          fillTo: 0,
          width: 1.5,
          paths: stepped,
        },
        {
          label: "Measured",
          scale: "kW",
          stroke: actual,
          width: 1.5,
          dash: [5, 4],
          paths: stepped,
        },
      ];
      const data: (number | null)[][] = [kw(asset.planned), kw(asset.actual)];
      const axes = [timeAxis(), valueAxis("kW", (v) => `${number(1)(v)} kW`)];
      if (asset.socPlanned && asset.socActual) {
        series.push(
          { label: "Charge planned", scale: "%", stroke: soc, width: 2 },
          {
            label: "Charge measured",
            scale: "%",
            stroke: soc,
            width: 2,
            dash: [3, 3],
            spanGaps: true,
          },
        );
        data.push(asset.socPlanned, asset.socActual);
        axes.push(valueAxis("%", (v) => `${number(0)(v)} %`, 1));
      }
      const chart = new uPlot(
        {
          ...base(box, 170),
          scales: { x: { time: true }, "%": { range: [0, 100] } },
          axes,
          series,
        },
        [times, ...data] as uPlot.AlignedData,
        box,
      );
      this.sizer.watch(box, chart);
    }
    void plan;
  }
}

/** Why there is no plan, from the API's refusal. */
export function whyNoPlan(err: ApiError): string {
  switch (err.code) {
    case "planner_off":
    case "not_found":
      return "This hub does not plan (its configuration has no planner section).";
    case "no_plan":
      return err.message;
    case "unknown_site":
      return "The hub does not plan this site.";
    default:
      return err.status === 400 ? "Choose a site in the site picker." : err.message;
  }
}
