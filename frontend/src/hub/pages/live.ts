// Live: every measurement's latest value with its unit, searchable, filtered by device,
// refreshed every few seconds (or paused).

import { html, type TemplateResult } from "lit";

import { filterRows, formatValue, liveRows, type LiveRow } from "../model.ts";
import { HubPage, timeOf } from "../page.ts";
import type { Device, Snapshot } from "../types.ts";

/** Rows drawn at most: the browser stays quick on a hub with thousands of series; the
 * search narrows them. */
const MAX_ROWS = 2000;

export class LivePage extends HubPage {
  static override properties = {
    ...HubPage.properties,
    _rows: { state: true },
    _search: { state: true },
    _asset: { state: true },
    _paused: { state: true },
  };

  declare _rows: LiveRow[] | null;
  declare _search: string;
  declare _asset: string;
  declare _paused: boolean;
  private devices: Device[] = [];
  private devicesAt = 0;

  constructor() {
    super();
    this._rows = null;
    this._search = "";
    this._asset = "";
    this._paused = false;
  }

  protected override async load(): Promise<void> {
    if (this._paused && this._rows) return;
    const { api, site } = this.context;
    const now = Date.now();
    const [snapshot, devices] = await Promise.all([
      api.get<Snapshot>("export/snapshot"),
      now - this.devicesAt > 30_000 ? api.get<{ devices: Device[] }>("devices") : null,
    ]);
    if (devices) {
      this.devices = devices.devices;
      this.devicesAt = now;
    }
    this._rows = liveRows(snapshot, this.devices, site);
  }

  protected override render(): TemplateResult {
    const rows = this._rows ?? [];
    const shown = filterRows(rows, this._search, this._asset);
    const assets = [...new Map(rows.map((row) => [row.assetId, row.assetName]))];
    return html`
      ${this.heading("Live")}
      <form class="row" role="search" @submit=${(e: Event) => e.preventDefault()}>
        <div class="field">
          <label for="live-search">Search</label>
          <input
            id="live-search"
            type="search"
            placeholder="soc, battery, kW…"
            .value=${this._search}
            @input=${(e: Event) => (this._search = (e.target as HTMLInputElement).value)}
          />
        </div>
        <div class="field">
          <label for="live-device">Device</label>
          <select
            id="live-device"
            @change=${(e: Event) => (this._asset = (e.target as HTMLSelectElement).value)}
          >
            <option value="">Every device</option>
            ${assets.map(
              ([id, name]) =>
                html`<option value=${id} ?selected=${id === this._asset}>${name}</option>`,
            )}
          </select>
        </div>
        <label class="field-inline">
          <input
            type="checkbox"
            .checked=${!this._paused}
            @change=${(e: Event) => {
              this._paused = !(e.target as HTMLInputElement).checked;
              if (!this._paused) void this.refresh();
            }}
          />
          Refresh every ${this.period / 1000} s
        </label>
        <span class="muted count" aria-live="polite"
          >${shown.length} of ${rows.length} measurements</span
        >
      </form>
      <div class="card table-wrap">
        <table class="live">
          <thead>
            <tr>
              <th scope="col">Device</th>
              <th scope="col">Measurement</th>
              <th scope="col" class="number">Value</th>
              <th scope="col">Unit</th>
              <th scope="col">At</th>
            </tr>
          </thead>
          <tbody>
            ${shown.slice(0, MAX_ROWS).map(
              (row) =>
                html`<tr data-asset=${row.assetId} data-metric=${row.metric}>
                  <td>${row.assetName}</td>
                  <td>${row.metric}</td>
                  <td class="number value">${formatValue(row.value, null)}</td>
                  <td>${row.unit ?? ""}</td>
                  <td class="at">${timeOf(row.timestampMs)}</td>
                </tr>`,
            )}
          </tbody>
        </table>
      </div>
    `;
  }
}
