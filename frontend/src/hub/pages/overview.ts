// Overview: the site now (PV, home, grid, battery and its charge), the power-flow diagram,
// today's energy through each part and, where the hub plans the site, today's cost.

import { html, nothing, type TemplateResult } from "lit";

import { flowDiagram } from "../../flow/diagram.ts";
import { formatPower, NAMES, stateWord, type Flow, type FlowNode } from "../../flow/model.ts";
import { ApiError } from "../api.ts";
import {
  energyFrom,
  flowSeries,
  formatEnergy,
  siteFlow,
  startOfDay,
  type Energy,
} from "../model.ts";
import { HubPage, planFor } from "../page.ts";
import type { Device, Measurements, SitePlan, Snapshot } from "../types.ts";

const BUCKET_MS = 5 * 60_000;
const ENERGY_EVERY_MS = 60_000;
const COST_EVERY_MS = 5 * 60_000;

export class OverviewPage extends HubPage {
  static override properties = {
    ...HubPage.properties,
    _devices: { state: true },
    _snapshot: { state: true },
    _energy: { state: true },
    _cost: { state: true },
  };

  declare _devices: Device[] | null;
  declare _snapshot: Snapshot | null;
  declare _energy: Energy | null;
  declare _cost: { value: number; currency: string } | string | null;
  private energyAt = 0;
  private costAt = 0;
  /** The plan version today's cost was read from: a new plan is read at once. */
  private costVersion: number | null = null;

  constructor() {
    super();
    this._devices = null;
    this._snapshot = null;
    this._energy = null;
    this._cost = null;
  }

  protected override siteChanged(): void {
    this._energy = null;
    this._cost = null;
    this.energyAt = 0;
    this.costAt = 0;
    this.costVersion = null;
  }

  protected override async load(): Promise<void> {
    const { api, site } = this.context;
    const [devices, snapshot] = await Promise.all([
      api.get<{ devices: Device[] }>("devices"),
      api.get<Snapshot>("export/snapshot"),
    ]);
    this._devices = devices.devices;
    this._snapshot = snapshot;
    const now = Date.now();
    if (now - this.energyAt >= ENERGY_EVERY_MS) {
      this.energyAt = now;
      const { sources } = siteFlow(devices.devices, snapshot, site);
      const wanted = flowSeries(sources);
      if (wanted.length) {
        const measured = await api.get<Measurements>("measurements", {
          asset: [...new Set(wanted.map((w) => w.asset))],
          metric: [...new Set(wanted.map((w) => w.metric))],
          from: startOfDay(new Date(now)).getTime(),
          to: now,
          resolution: "5m",
        });
        this._energy = energyFrom(sources, measured, BUCKET_MS);
      } else this._energy = null;
    }
    const planned = planFor(this.context);
    const version = planned.site
      ? (this.context.planner?.sites[planned.site]?.version ?? null)
      : null;
    if (now - this.costAt >= COST_EVERY_MS || version !== this.costVersion) {
      this.costAt = now;
      this.costVersion = version;
      this._cost = await this.todayCost();
    }
  }

  /** Today's measured cost from the site's plan document, where the hub plans the site. */
  private async todayCost(): Promise<OverviewPage["_cost"]> {
    const { api } = this.context;
    const planned = planFor(this.context);
    if (!planned.ready)
      return planned.site ? "no plan yet" : "no prices: the hub does not plan this site";
    try {
      const plan = await api.get<SitePlan>("plan", { site_id: planned.site });
      const today = new Intl.DateTimeFormat("en-CA", { timeZone: plan.time_zone }).format(
        new Date(),
      );
      const day = plan.days?.find((entry) => entry.day === today);
      const currency = String((plan.prices as { currency?: string } | null)?.currency ?? "");
      return day ? { value: day.actual_cost, currency } : "not measured yet today";
    } catch (err) {
      if (err instanceof ApiError && (err.status === 404 || err.status === 400)) {
        return err.code === "planner_off" || err.code === "not_found"
          ? "no prices: the hub does not plan"
          : err.code === "no_plan"
            ? "no plan yet"
            : "choose a site";
      }
      throw err;
    }
  }

  protected override render(): TemplateResult {
    const body =
      this._devices && this._snapshot ? this.renderSite(this._devices, this._snapshot) : nothing;
    return html`${this.heading("Overview")}${body}`;
  }

  private renderSite(devices: Device[], snapshot: Snapshot): TemplateResult {
    const { sources, flow } = siteFlow(devices, snapshot, this.context.site);
    if (
      !devices.some((device) => this.context.site === null || device.site_id === this.context.site)
    ) {
      return html`<p class="message empty">No devices yet: connect a site's agent to the hub.</p>`;
    }
    const now = (node: FlowNode): [string, string, string] => {
      const watts = flow[node];
      const state = watts === null ? "no reading" : stateWord(node, watts);
      return [NAMES[node], watts === null ? "—" : formatPower(watts), state];
    };
    const shown: FlowNode[] = ["pv", "home", "grid", "battery"];
    return html`
      <section class="card" aria-labelledby="now-title">
        <h3 id="now-title">Now</h3>
        <dl class="stats now">
          ${shown.map((node) => {
            const [name, value, state] = now(node);
            return html`<div data-part=${node}>
              <dt>${name}</dt>
              <dd><span class="value">${value}</span></dd>
              <dd class="muted state">${state}</dd>
            </div>`;
          })}
          <div data-part="soc">
            <dt>Battery charge</dt>
            <dd>
              <span class="value"
                >${
                  flow.soc === null
                    ? "—"
                    : `${new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 }).format(flow.soc)} %`
                }</span
              >
            </dd>
          </div>
        </dl>
      </section>
      <div class="grid">
        <section class="card flow-box" aria-label="Power flow">
          <h3>Power flow</h3>
          ${flowDiagram(sources, flow, undefined, "Power flow of the site")}
        </section>
        <section class="card" aria-labelledby="today-title">
          <h3 id="today-title">Today</h3>
          ${this.renderToday(flow)}
        </section>
      </div>
    `;
  }

  private renderToday(flow: Flow): TemplateResult {
    const energy = this._energy;
    const rows: [string, string, number | null][] = energy
      ? [
          ["pv", "Solar produced", energy.pv.in],
          ["home", "Home used", flow.home === null && !energy.home.out ? null : energy.home.out],
          ["grid", "Imported from the grid", energy.grid.in],
          ["grid", "Exported to the grid", energy.grid.out],
          ["battery", "Battery charged", energy.battery.out],
          ["battery", "Battery discharged", energy.battery.in],
          ["ev", "EV charged", energy.ev.out],
          ["heat_pump", "Heat pump used", energy.heat_pump.out],
        ]
      : [];
    const cost = this._cost;
    return html`
      <table class="today">
        <tbody>
          ${rows.map(
            ([part, label, wh]) =>
              html`<tr data-part=${part}>
                <th scope="row">${label}</th>
                <td class="number">${wh === null ? "—" : formatEnergy(wh)}</td>
              </tr>`,
          )}
          <tr data-part="cost">
            <th scope="row">Cost</th>
            <td class="number">
              ${
                cost === null
                  ? "—"
                  : typeof cost === "string"
                    ? html`<span class="muted">${cost}</span>`
                    : `${new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(cost.value)} ${cost.currency}`
              }
            </td>
          </tr>
        </tbody>
      </table>
      ${energy ? nothing : html`<p class="muted">Today's energy shows once the first minutes are stored.</p>`}
    `;
  }
}
