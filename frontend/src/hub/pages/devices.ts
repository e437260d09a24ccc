// Devices: each device of the site with its kind, health, last poll, last error and request
// counts (what its agent reports with every heartbeat); a device's page lists its points.

import { html, nothing, type PropertyValues, type TemplateResult } from "lit";

import { ago, formatValue, inSite } from "../model.ts";
import { dateTimeOf, HubPage } from "../page.ts";
import type { Device, DeviceStatus, Telemetry } from "../types.ts";

export function health(device: Device): { text: string; tone: string } {
  const status = device.status;
  if (!device.connected) return { text: "agent offline", tone: "bad" };
  if (!status) return { text: "no report yet", tone: "muted" };
  if (status.answering === null) return { text: "not polled yet", tone: "muted" };
  if (!status.answering) return { text: "not answering", tone: "bad" };
  if (status.breaker !== "closed") return { text: `breaker ${status.breaker}`, tone: "warn" };
  return { text: "answering", tone: "ok" };
}

/** When the device was last read: its newest sample, or its agent's last report of a poll
 * (which comes with the heartbeat, and says so also when the poll failed). */
export function lastPoll(device: Device): number | null {
  const times = [device.status?.last_poll_ms, device.last_sample_ms].filter(
    (time): time is number => typeof time === "number",
  );
  return times.length ? Math.max(...times) : null;
}

function requests(status: DeviceStatus | null | undefined): string {
  if (!status) return "—";
  const polls = `${status.polls} polls, ${status.failed_polls} failed`;
  return status.requests === null ? polls : `${polls}; ${status.requests} requests`;
}

export class DevicesPage extends HubPage {
  static override properties = {
    ...HubPage.properties,
    asset: { type: String },
    _devices: { state: true },
    _telemetry: { state: true },
  };

  declare asset: string;
  declare _devices: Device[] | null;
  declare _telemetry: Telemetry | null;

  constructor() {
    super();
    this.asset = "";
    this._devices = null;
    this._telemetry = null;
  }

  protected override async load(): Promise<void> {
    const { api } = this.context;
    const [devices, telemetry] = await Promise.all([
      api.get<{ devices: Device[] }>("devices"),
      this.asset ? api.get<Telemetry>(`telemetry/${encodeURIComponent(this.asset)}`) : null,
    ]);
    this._devices = devices.devices;
    this._telemetry = telemetry;
  }

  override updated(changed: PropertyValues<this>): void {
    if (changed.has("asset") && changed.get("asset" as keyof DevicesPage) !== undefined) {
      this._telemetry = null;
      void this.refresh();
    }
  }

  protected override render(): TemplateResult {
    if (this.asset) return this.renderDevice();
    const now = Date.now();
    const devices = (this._devices ?? []).filter((device) => inSite(device, this.context.site));
    return html`
      ${this.heading("Devices")}
      ${
        this._devices && !devices.length
          ? html`<p class="message empty">No devices yet: connect a site's agent to the hub.</p>`
          : nothing
      }
      <div class="card table-wrap">
        <table class="devices">
          <thead>
            <tr>
              <th scope="col">Device</th>
              <th scope="col">Site</th>
              <th scope="col">Kind</th>
              <th scope="col">Health</th>
              <th scope="col">Last poll</th>
              <th scope="col">Last error</th>
              <th scope="col">Requests</th>
            </tr>
          </thead>
          <tbody>
            ${devices.map((device) => {
              const state = health(device);
              const status = device.status;
              const polled = lastPoll(device);
              return html`<tr data-asset=${device.asset_id}>
                <td>
                  <a href="#/devices/${encodeURIComponent(device.asset_id)}"
                    >${device.name || device.asset_id}</a
                  >
                  <div class="muted">${device.asset_id}</div>
                </td>
                <td>${device.site_id}</td>
                <td>${device.type || "—"}</td>
                <td class="health ${state.tone}">${state.text}</td>
                <td class="last-poll" title=${polled ? dateTimeOf(polled) : ""}>
                  ${ago(polled ?? null, now)}
                </td>
                <td class="last-error">${status?.last_error ?? "—"}</td>
                <td class="requests">${requests(status)}</td>
              </tr>`;
            })}
          </tbody>
        </table>
      </div>
    `;
  }

  private renderDevice(): TemplateResult {
    const device = this._devices?.find((row) => row.asset_id === this.asset);
    const telemetry = this._telemetry;
    const values = telemetry
      ? Object.entries(telemetry.values).sort(([a], [b]) => a.localeCompare(b))
      : [];
    const state = device ? health(device) : null;
    const now = Date.now();
    return html`
      ${this.heading(device?.name || this.asset, html`<a href="#/devices">All devices</a>`)}
      ${
        device
          ? html`<section class="card">
              <dl class="stats">
                <div>
                  <dt>Kind</dt>
                  <dd>${device.type || "—"}</dd>
                </div>
                <div>
                  <dt>Site</dt>
                  <dd>${device.site_id}</dd>
                </div>
                <div>
                  <dt>Agent</dt>
                  <dd>${device.agent_id ?? "—"}</dd>
                </div>
                <div>
                  <dt>Health</dt>
                  <dd class=${state!.tone}>${state!.text}</dd>
                </div>
                <div>
                  <dt>Last poll</dt>
                  <dd>${ago(lastPoll(device), now)}</dd>
                </div>
                <div>
                  <dt>Requests</dt>
                  <dd>${requests(device.status)}</dd>
                </div>
              </dl>
              ${
                device.status?.last_error
                  ? html`<p class="message error">Last error: ${device.status.last_error}</p>`
                  : nothing
              }
            </section>`
          : nothing
      }
      <div class="card table-wrap">
        <table class="points">
          <caption class="sr-only">
            The device's points and their latest values
          </caption>
          <thead>
            <tr>
              <th scope="col">Point</th>
              <th scope="col" class="number">Value</th>
              <th scope="col">At</th>
            </tr>
          </thead>
          <tbody>
            ${values.map(
              ([metric, value]) =>
                html`<tr data-metric=${metric}>
                  <td>${metric}</td>
                  <td class="number value">${formatValue(value.value, value.unit)}</td>
                  <td>${dateTimeOf(value.timestamp_ms)}</td>
                </tr>`,
            )}
          </tbody>
        </table>
      </div>
    `;
  }
}
