// Sparklines: the last 60 minutes of each device's active power, irradiance and state of
// charge. The stored minutes come every 30 s, the latest samples every 5 s; a chart is made
// only once it scrolls into view and redrawn only while in view, so a hub with hundreds of
// series stays smooth (bench/dashboard.py measures it).

import { html, nothing, type TemplateResult } from "lit";
import { repeat } from "lit/directives/repeat.js";

import { ChartSizer, cssColour, sparkline, type uPlot } from "../charts.ts";
import {
  formatValue,
  keepLive,
  METRIC_NAMES,
  SPARK_METRICS,
  sparks,
  type LiveSamples,
  type Spark,
} from "../model.ts";
import { HubPage } from "../page.ts";
import type { Device, Measurements, Snapshot } from "../types.ts";

const HOUR_MS = 3_600_000;
const MINUTES_EVERY_MS = 30_000;

const COLOURS: Record<string, string> = {
  ac_power_w: "--primary-color",
  pv_power_w: "--energy-solar-color",
  battery_power_w: "--energy-battery-out-color",
  grid_power_w: "--energy-grid-consumption-color",
  irradiance_w_m2: "--energy-solar-color",
  poa_irradiance_w_m2: "--energy-solar-color",
  soc_pct: "--edge-ems-soc-color",
};

/** The last hour, or less while the hub has less: no chart is mostly empty. */
function span(spark: Spark, now: number): { min: number; max: number } {
  const first = spark.times[0] ?? now;
  return { min: Math.max(now - 3600, Math.min(first, now - 60)), max: now };
}

export class SparklinesPage extends HubPage {
  static override properties = {
    ...HubPage.properties,
    _sparks: { state: true },
  };

  declare _sparks: Spark[] | null;
  private devices: Device[] = [];
  private measured: Measurements | null = null;
  private readonly live: LiveSamples = new Map();
  private minutesAt = 0;
  private readonly sizer = new ChartSizer();
  private readonly charts = new Map<string, uPlot>();
  private readonly visible = new Set<string>();
  private readonly dirty = new Set<string>();
  private observer?: IntersectionObserver;
  /** Charts drawn, for the page's own measurements (bench/dashboard.py). */
  drawn = 0;

  constructor() {
    super();
    this._sparks = null;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    this.observer = new IntersectionObserver(
      (entries) => {
        for (const entry of entries) {
          const key = (entry.target as HTMLElement).dataset.key ?? "";
          if (entry.isIntersecting) this.visible.add(key);
          else this.visible.delete(key);
        }
        this.draw();
      },
      { rootMargin: "200px" },
    );
    window.addEventListener("edge-ems-theme", this.rethemed);
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.observer?.disconnect();
    window.removeEventListener("edge-ems-theme", this.rethemed);
    this.dropCharts();
  }

  private readonly rethemed = () => {
    this.dropCharts();
    this.draw();
  };

  private dropCharts(): void {
    this.sizer.clear();
    this.charts.clear();
  }

  protected override siteChanged(): void {
    this.minutesAt = 0;
    this.measured = null;
    this.live.clear();
    this._sparks = null;
  }

  protected override async load(): Promise<void> {
    const { api, site } = this.context;
    const now = Date.now();
    const minutes = now - this.minutesAt >= MINUTES_EVERY_MS;
    const [devices, snapshot, measured] = await Promise.all([
      minutes || !this.devices.length ? api.get<{ devices: Device[] }>("devices") : null,
      api.get<Snapshot>("export/snapshot"),
      minutes
        ? api.get<Measurements>("measurements", {
            site: site ?? undefined,
            metric: [...SPARK_METRICS],
            from: now - HOUR_MS,
            to: now,
            resolution: "1m",
          })
        : null,
    ]);
    if (devices) this.devices = devices.devices;
    if (measured) {
      this.measured = measured;
      this.minutesAt = now;
    }
    keepLive(this.live, snapshot, now / 1000);
    const next = sparks(this.devices, this.measured, this.live, site);
    for (const spark of next) this.dirty.add(spark.key);
    this._sparks = next;
  }

  protected override render(): TemplateResult {
    const list = this._sparks ?? [];
    return html`
      ${this.heading("Sparklines", html`<span class="muted">the last 60 minutes</span>`)}
      ${
        this._sparks && !list.length
          ? html`<p class="message empty">
              No device reports active power, irradiance or state of charge yet.
            </p>`
          : nothing
      }
      <div class="grid sparks">
        ${repeat(
          list,
          (spark) => spark.key,
          (spark) => {
            const last = spark.values.length ? spark.values[spark.values.length - 1]! : null;
            const lastAt = spark.times.length ? spark.times[spark.times.length - 1]! : null;
            const name = METRIC_NAMES[spark.metric] ?? spark.metric;
            return html`<section
              class="card spark"
              data-key=${spark.key}
              data-at=${lastAt ?? nothing}
            >
              <header>
                <h3>${spark.assetName} · ${name}</h3>
                <span class="now">${formatValue(last, spark.unit)}</span>
              </header>
              <div
                class="chart"
                data-key=${spark.key}
                role="img"
                aria-label="${name} of ${spark.assetName} over the last 60 minutes, now ${formatValue(last, spark.unit)}"
              ></div>
            </section>`;
          },
        )}
      </div>
    `;
  }

  override updated(): void {
    if (!this.observer) return;
    const keys = new Set((this._sparks ?? []).map((spark) => spark.key));
    for (const box of this.querySelectorAll<HTMLElement>(".chart[data-key]")) {
      if (!box.dataset.observed) {
        box.dataset.observed = "1";
        this.observer.observe(box);
      }
    }
    for (const key of [...this.charts.keys()]) {
      if (!keys.has(key)) {
        const box = this.box(key);
        if (box) this.sizer.forget(box);
        this.charts.delete(key);
      }
    }
    this.draw();
  }

  private box(key: string): HTMLElement | null {
    for (const box of this.querySelectorAll<HTMLElement>(".chart[data-key]")) {
      if (box.dataset.key === key) return box;
    }
    return null;
  }

  /** Make or update the charts in view; those out of view wait until they are. */
  private draw(): void {
    if (!this._sparks) return;
    const byKey = new Map(this._sparks.map((spark) => [spark.key, spark]));
    const now = Date.now() / 1000;
    for (const key of this.visible) {
      const spark = byKey.get(key);
      if (!spark) continue;
      const data: uPlot.AlignedData = [spark.times, spark.values];
      const chart = this.charts.get(key);
      if (chart && chart.root.isConnected) {
        if (!this.dirty.has(key)) continue;
        chart.setData(data, false);
        chart.setScale("x", span(spark, now));
      } else {
        const box = this.box(key);
        if (!box) continue;
        box.replaceChildren();
        const colour = cssColour(COLOURS[spark.metric] ?? "--primary-color");
        const made = sparkline(
          box,
          colour,
          data,
          spark.metric === "soc_pct" ? [0, 100] : undefined,
        );
        made.setScale("x", span(spark, now));
        this.charts.set(key, made);
        this.sizer.watch(box, made);
        // For bench/dashboard.py: when the first chart was there, from the navigation.
        if ((this.drawn += 1) === 1) performance.mark("edge-ems:first-chart");
      }
      this.dirty.delete(key);
    }
  }
}
