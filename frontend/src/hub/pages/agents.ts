// Agents: each agent the hub knows, its site, whether it is connected and from where, when
// it was last heard, the telemetry it still holds for the hub, its assets and its sessions.

import { html, nothing, type TemplateResult } from "lit";

import { ago, inSite } from "../model.ts";
import { dateTimeOf, HubPage } from "../page.ts";
import type { AgentRow, Session } from "../types.ts";

interface AgentView {
  agentId: string | null;
  siteId: string;
  siteName: string;
  connected: boolean;
  peer: string | null;
  lastSeen: number | null;
  buffered: number;
  dropped: number;
  assets: { id: string; name: string }[];
  sessions: Session[];
}

/** The rows of `/agents` (one per asset) gathered by agent; assets no agent serves gather
 * under `null`. */
export function byAgent(rows: readonly AgentRow[]): AgentView[] {
  const found = new Map<string, AgentView>();
  for (const row of rows) {
    const key = `${row.agent_id ?? ""}\u0000${row.agent_id ? "" : row.site_id}`;
    let view = found.get(key);
    if (!view) {
      view = {
        agentId: row.agent_id,
        siteId: row.site_id,
        siteName: row.site_name || row.site_id,
        connected: row.connected,
        peer: row.peer,
        lastSeen: row.last_seen,
        buffered: row.buffered_batches,
        dropped: row.dropped_points,
        assets: [],
        sessions: row.sessions,
      };
      found.set(key, view);
    }
    view.assets.push({ id: row.asset_id, name: row.asset_name || row.asset_id });
    view.connected ||= row.connected;
  }
  return [...found.values()].sort(
    (a, b) =>
      a.siteName.localeCompare(b.siteName) || (a.agentId ?? "~").localeCompare(b.agentId ?? "~"),
  );
}

export class AgentsPage extends HubPage {
  static override properties = {
    ...HubPage.properties,
    _rows: { state: true },
  };

  declare _rows: AgentRow[] | null;
  protected override period = 10_000;

  constructor() {
    super();
    this._rows = null;
  }

  protected override async load(): Promise<void> {
    this._rows = (await this.context.api.get<{ agents: AgentRow[] }>("agents")).agents;
  }

  protected override render(): TemplateResult {
    const rows = (this._rows ?? []).filter((row) => inSite(row, this.context.site));
    const views = byAgent(rows);
    const now = Date.now();
    return html`
      ${this.heading("Agents")}
      ${
        this._rows && !views.length
          ? html`<p class="message empty">No agent has connected yet.</p>`
          : nothing
      }
      ${views.map(
        (view) =>
          html`<section class="card agent" data-agent=${view.agentId ?? ""}>
            <h3>
              ${view.agentId ?? "No agent"}
              <span class="muted">· ${view.siteName}</span>
              ${
                view.agentId
                  ? html`<span class="pill connection ${view.connected ? "ok" : "bad"}"
                      >${view.connected ? "connected" : "disconnected"}</span
                    >`
                  : nothing
              }
            </h3>
            <dl class="stats">
              <div>
                <dt>Last seen</dt>
                <dd class="last-seen">${ago(view.lastSeen ? view.lastSeen * 1000 : null, now)}</dd>
              </div>
              <div>
                <dt>From</dt>
                <dd>${view.peer ?? "—"}</dd>
              </div>
              <div>
                <dt>Buffered batches</dt>
                <dd class="buffered">${view.buffered}</dd>
              </div>
              <div>
                <dt>Dropped samples</dt>
                <dd>${view.dropped}</dd>
              </div>
              <div>
                <dt>Assets</dt>
                <dd>${view.assets.length}</dd>
              </div>
            </dl>
            <p class="muted">${view.assets.map((asset) => asset.name).join(", ")}</p>
            ${
              view.sessions.length
                ? html`<div class="table-wrap">
                    <table class="sessions">
                      <caption class="sr-only">
                        Sessions of ${view.agentId}
                      </caption>
                      <thead>
                        <tr>
                          <th scope="col">Session</th>
                          <th scope="col">From</th>
                          <th scope="col">Started</th>
                          <th scope="col">Ended</th>
                          <th scope="col">Why</th>
                        </tr>
                      </thead>
                      <tbody>
                        ${view.sessions.map(
                          (session) =>
                            html`<tr>
                              <td>${session.session_id.slice(0, 8)}</td>
                              <td>${session.peer}</td>
                              <td>${dateTimeOf(session.started * 1000)}</td>
                              <td>${session.ended ? dateTimeOf(session.ended * 1000) : "open"}</td>
                              <td>${session.end_reason ?? ""}</td>
                            </tr>`,
                        )}
                      </tbody>
                    </table>
                  </div>`
                : nothing
            }
          </section>`,
      )}
    `;
  }
}
