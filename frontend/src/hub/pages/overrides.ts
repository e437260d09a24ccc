// Overrides: hold a battery at a power for a while, and let it go again. Where the hub
// plans the site, through the planner (POST/DELETE /overrides: the plan is made around the
// hold and the planner sends it); elsewhere as a setpoint with a time to live (POST
// /dispatch). Either way the site's guarded Dispatcher decides, and its answer (refused
// while control is off, say) is shown as the audit trail has it.

import { html, nothing, type TemplateResult } from "lit";

import { ApiError } from "../api.ts";
import {
  answerTo,
  batteries,
  GOOD_OUTCOMES,
  outcomeText,
  overrideValue,
  PLANNER,
  type Awaited,
} from "../model.ts";
import { HubPage, messageOf, planFor, timeOf } from "../page.ts";
import type { AuditPage, AuditRecord, DispatchResult, Override } from "../types.ts";

export const REQUESTED_BY = "hub dashboard";
/** How long to look for the site's answer to a planner override. */
const ANSWER_WAIT_MS = 60_000;

type Mode = { kind: "unknown" } | { kind: "planner"; overrides: Override[] } | { kind: "dispatch" };

interface Result {
  tone: "ok" | "bad" | "muted";
  text: string;
  records: AuditRecord[];
}

/** The site's answer in words; `done` says what happened when every attempt went well. */
function summary(records: readonly AuditRecord[], done = "Applied."): Result {
  if (!records.length) return { tone: "muted", text: "No answer from the site yet.", records: [] };
  const good = records.every((r) => GOOD_OUTCOMES.has(r.outcome));
  return {
    tone: good ? "ok" : "bad",
    text: good
      ? done
      : `Refused by the site: ${records
          .filter((r) => !GOOD_OUTCOMES.has(r.outcome))
          .map(outcomeText)
          .join("; ")}`,
    records: [...records],
  };
}

export class OverridesPage extends HubPage {
  static override properties = {
    ...HubPage.properties,
    _mode: { state: true },
    _result: { state: true },
    _busy: { state: true },
    _recent: { state: true },
  };

  declare _mode: Mode;
  declare _result: Result | null;
  declare _busy: boolean;
  declare _recent: AuditRecord[];
  protected override period = 10_000;
  /** A planner override set or cleared, waiting for the site's answer; `done` is what to
   * say when it comes and went well. */
  private waiting: (Awaited & { asked: number; done: string }) | null = null;

  constructor() {
    super();
    this._mode = { kind: "unknown" };
    this._result = null;
    this._busy = false;
    this._recent = [];
  }

  protected override siteChanged(): void {
    this._mode = { kind: "unknown" };
    this._result = null;
    this.waiting = null;
  }

  protected override async load(): Promise<void> {
    const { api, site } = this.context;
    const planned = planFor(this.context);
    if (planned.site) {
      const answer = await api.get<{ overrides: Override[] }>("overrides", {
        site_id: planned.site,
      });
      this._mode = { kind: "planner", overrides: answer.overrides };
    } else {
      // No planner, or not for this site: setpoints go straight to the site.
      this._mode = { kind: "dispatch" };
    }
    const recent = await api.get<AuditPage>("audit", { site_id: site ?? undefined, limit: 20 });
    this._recent = recent.records.filter(
      (record) => record.requested_by === REQUESTED_BY || record.requested_by === PLANNER,
    );
    if (this.waiting) {
      const answer = answerTo(recent.records, this.waiting);
      if (answer) {
        this._result = summary([answer], this.waiting.done);
        this.waiting = null;
      } else if (Date.now() - this.waiting.asked > ANSWER_WAIT_MS) {
        this._result = {
          tone: "muted",
          text: "The site has not answered yet; see Audit.",
          records: [],
        };
        this.waiting = null;
      }
    }
  }

  private async submit(event: Event): Promise<void> {
    event.preventDefault();
    const form = event.target as HTMLFormElement;
    const data = new FormData(form);
    const asset = String(data.get("asset") ?? "");
    const powerW = Number(data.get("power"));
    const minutes = Number(data.get("minutes"));
    if (!asset || !Number.isFinite(powerW) || !(minutes > 0)) {
      this._result = {
        tone: "bad",
        text: "Choose a battery, a power in W and a duration in minutes.",
        records: [],
      };
      return;
    }
    await this.act(async () => {
      if (this._mode.kind === "planner") {
        const site = this.context.assets.find((a) => a.asset_id === asset)?.site_id;
        const override = await this.context.api.post<Override>("overrides", {
          site_id: site,
          asset_id: asset,
          value: powerW,
          duration_s: minutes * 60,
          requested_by: REQUESTED_BY,
        });
        // The planner sends the value once it has planned around it: the answer is an
        // attempt of that value, written after the override (the hub's clock).
        this.waiting = {
          asset,
          value: powerW,
          sinceMs: override.created_ms,
          asked: Date.now(),
          done: "Applied.",
        };
        return {
          tone: "muted",
          text: "Override set: the planner plans around it and sends it; waiting for the site's answer…",
          records: [],
        };
      }
      const answer = await this.context.api.post<DispatchResult>("dispatch", {
        asset_id: asset,
        power_w: powerW,
        ttl_s: minutes * 60,
        requested_by: REQUESTED_BY,
      });
      return answer.error && !answer.records.length
        ? { tone: "bad", text: `The site could not do it: ${answer.error}`, records: [] }
        : summary(answer.records);
    });
  }

  private async clear(asset: string, override?: Override): Promise<void> {
    await this.act(async () => {
      if (override) {
        await this.context.api.delete("overrides", { id: override.id });
        // The answer is the plan's next setpoint for the asset (a second's leeway for the
        // hub's clock).
        const now = Date.now();
        this.waiting = {
          asset,
          sinceMs: now - 1000,
          asked: now,
          done: "Override cleared: the site follows the plan again.",
        };
        return {
          tone: "muted",
          text: "Override cleared: the planner plans without it; waiting for the site's answer…",
          records: [],
        };
      }
      const answer = await this.context.api.post<DispatchResult>("dispatch", {
        asset_id: asset,
        release: true,
        requested_by: REQUESTED_BY,
      });
      return summary(answer.records);
    });
  }

  private async act(work: () => Promise<Result>): Promise<void> {
    this._busy = true;
    try {
      this._result = await work();
    } catch (err) {
      const audit =
        err instanceof ApiError ? (err.body.audit as AuditRecord | undefined) : undefined;
      this._result = audit
        ? summary([audit])
        : { tone: "bad", text: `Refused: ${messageOf(err)}`, records: [] };
    } finally {
      this._busy = false;
      void this.refresh();
    }
  }

  protected override render(): TemplateResult {
    const choices = batteries(this.context.assets, this.context.site);
    const mode = this._mode;
    const result = this._result;
    return html`
      ${this.heading("Overrides")}
      <section class="card">
        <p class="muted how">
          ${
            mode.kind === "planner"
              ? "The hub plans this site: an override holds the battery at this power; the plan is made around it and the planner sends it."
              : mode.kind === "dispatch"
                ? "The hub does not plan this site: the setpoint goes to the site at once and lapses after the duration (the battery returns to its own control)."
                : "…"
          }
          Every attempt passes the site's guards (control on, limits, write rate) and is audited.
        </p>
        <form class="row override" @submit=${(e: Event) => void this.submit(e)}>
          <div class="field">
            <label for="override-asset">Battery</label>
            <select id="override-asset" name="asset" required>
              ${choices.map((asset) => html`<option value=${asset.asset_id}>${asset.name || asset.asset_id}</option>`)}
            </select>
          </div>
          <div class="field">
            <label for="override-power">Power (W, + discharges, − charges)</label>
            <input
              id="override-power"
              name="power"
              type="number"
              step="100"
              value="-1000"
              required
            />
          </div>
          <div class="field">
            <label for="override-minutes">For (minutes)</label>
            <input
              id="override-minutes"
              name="minutes"
              type="number"
              min="1"
              max="1440"
              value="30"
              required
            />
          </div>
          <button
            class="primary"
            type="submit"
            ?disabled=${this._busy || !choices.length || mode.kind === "unknown"}
          >
            Set
          </button>
          ${
            mode.kind === "dispatch"
              ? html`<button
                  type="button"
                  ?disabled=${this._busy || !choices.length}
                  @click=${() => {
                    const select = this.querySelector<HTMLSelectElement>("#override-asset");
                    if (select?.value) void this.clear(select.value);
                  }}
                >
                  Release
                </button>`
              : nothing
          }
        </form>
        ${choices.length ? nothing : html`<p class="message">No battery at this site takes a setpoint.</p>`}
        ${
          result
            ? html`<p
                class="message result ${result.tone === "bad" ? "error" : ""}"
                role=${result.tone === "bad" ? "alert" : "status"}
              >
                <span class=${result.tone}>${result.text}</span>
              </p>`
            : nothing
        }
      </section>
      ${
        mode.kind === "planner"
          ? html`<section class="card">
              <h3>In force</h3>
              ${
                mode.overrides.length
                  ? html`<table class="overrides">
                      <thead>
                        <tr>
                          <th scope="col">Asset</th>
                          <th scope="col">Value</th>
                          <th scope="col">Until</th>
                          <th scope="col">By</th>
                          <th scope="col"><span class="sr-only">Clear</span></th>
                        </tr>
                      </thead>
                      <tbody>
                        ${mode.overrides.map(
                          (o) =>
                            html`<tr data-id=${o.id}>
                              <td>${o.asset_id}</td>
                              <td>${overrideValue(o)}</td>
                              <td>${timeOf(o.end_ms)}</td>
                              <td>${o.requested_by}</td>
                              <td>
                                <button
                                  type="button"
                                  ?disabled=${this._busy}
                                  @click=${() => void this.clear(o.asset_id, o)}
                                >
                                  Clear
                                </button>
                              </td>
                            </tr>`,
                        )}
                      </tbody>
                    </table>`
                  : html`<p class="muted">No override: the plan runs as made.</p>`
              }
            </section>`
          : nothing
      }
      <section class="card">
        <h3>Recent attempts from here and the planner</h3>
        ${
          this._recent.length
            ? html`<ul class="recent">
                ${this._recent.map(
                  (r) =>
                    html`<li data-id=${r.id}>
                      ${timeOf(r.timestamp * 1000)} · ${r.device_id ?? r.site_id} · ${r.command}
                      ${r.requested === null ? "" : `= ${String(r.requested)}`} ·
                      <span class=${GOOD_OUTCOMES.has(r.outcome) ? "ok" : "bad"}
                        >${outcomeText(r)}</span
                      >
                    </li>`,
                )}
              </ul>`
            : html`<p class="muted">
                None yet. Every attempt is on the <a href="#/audit">Audit</a> page.
              </p>`
        }
      </section>
    `;
  }
}
