// Audit: every dispatch attempt the hub heard of, newest first, refused ones included,
// filtered by device, outcome and reason; older pages on demand.

import { html, nothing, type TemplateResult } from "lit";

import { GOOD_OUTCOMES, inSite, outcomeText } from "../model.ts";
import { dateTimeOf, HubPage } from "../page.ts";
import type { AuditPage as AuditAnswer, AuditRecord, Scalar } from "../types.ts";

const PAGE = 50;

interface Choices {
  outcomes: string[];
  reasons: string[];
}

/** The outcomes and reasons the API knows, from its own OpenAPI document. */
export function auditChoices(document: unknown): Choices {
  const properties = (
    document as {
      components?: {
        schemas?: { AuditRecord?: { properties?: Record<string, { enum?: string[] }> } };
      };
    }
  )?.components?.schemas?.AuditRecord?.properties;
  return { outcomes: properties?.outcome?.enum ?? [], reasons: properties?.reason?.enum ?? [] };
}

function shown(value: Scalar): string {
  return value === null ? "—" : String(value);
}

export class AuditPage extends HubPage {
  static override properties = {
    ...HubPage.properties,
    _records: { state: true },
    _cursor: { state: true },
    _device: { state: true },
    _outcome: { state: true },
    _reason: { state: true },
    _choices: { state: true },
  };

  declare _records: AuditRecord[] | null;
  declare _cursor: string | null;
  declare _device: string;
  declare _outcome: string;
  declare _reason: string;
  declare _choices: Choices;
  protected override period = 10_000;
  /** Pages beyond the first were asked for: refreshing would drop them. */
  private paged = false;

  constructor() {
    super();
    this._records = null;
    this._cursor = null;
    this._device = "";
    this._outcome = "";
    this._reason = "";
    this._choices = { outcomes: [], reasons: [] };
  }

  private query(cursor?: string) {
    return {
      site_id: this.context.site ?? undefined,
      device_id: this._device || undefined,
      outcome: this._outcome || undefined,
      reason: this._reason || undefined,
      limit: PAGE,
      cursor,
    };
  }

  protected override async load(): Promise<void> {
    const { api } = this.context;
    if (!this._choices.outcomes.length) {
      this._choices = auditChoices(await api.get<unknown>("openapi.json"));
    }
    if (this.paged) return;
    const page = await api.get<AuditAnswer>("audit", this.query());
    this._records = page.records;
    this._cursor = page.next_cursor;
  }

  private async older(): Promise<void> {
    if (!this._cursor) return;
    this.paged = true;
    const page = await this.context.api.get<AuditAnswer>("audit", this.query(this._cursor));
    this._records = [...(this._records ?? []), ...page.records];
    this._cursor = page.next_cursor;
  }

  private filter(name: "_device" | "_outcome" | "_reason", value: string): void {
    this[name] = value;
    this.paged = false;
    void this.refresh();
  }

  protected override render(): TemplateResult {
    const records = this._records ?? [];
    const assets = this.context.assets.filter((asset) => inSite(asset, this.context.site));
    const select = (
      id: string,
      label: string,
      name: "_device" | "_outcome" | "_reason",
      options: [string, string][],
    ) =>
      html`<div class="field">
        <label for=${id}>${label}</label>
        <select
          id=${id}
          @change=${(e: Event) => this.filter(name, (e.target as HTMLSelectElement).value)}
        >
          <option value="">Any</option>
          ${options.map(
            ([value, text]) =>
              html`<option value=${value} ?selected=${value === this[name]}>${text}</option>`,
          )}
        </select>
      </div>`;
    return html`
      ${this.heading("Audit")}
      <form class="row" @submit=${(e: Event) => e.preventDefault()}>
        ${select(
          "audit-device",
          "Device",
          "_device",
          assets.map((asset) => [asset.asset_id, asset.name || asset.asset_id]),
        )}
        ${select(
          "audit-outcome",
          "Outcome",
          "_outcome",
          this._choices.outcomes.map((o) => [o, o]),
        )}
        ${select(
          "audit-reason",
          "Reason",
          "_reason",
          this._choices.reasons.map((r) => [r, r.replaceAll("_", " ")]),
        )}
      </form>
      ${
        this._records && !records.length
          ? html`<p class="message empty">No attempt matches.</p>`
          : nothing
      }
      <div class="card table-wrap">
        <table class="audit">
          <thead>
            <tr>
              <th scope="col">At</th>
              <th scope="col">Target</th>
              <th scope="col">Command</th>
              <th scope="col" class="number">Asked</th>
              <th scope="col" class="number">Applied</th>
              <th scope="col">Outcome</th>
              <th scope="col">By</th>
              <th scope="col">Through</th>
            </tr>
          </thead>
          <tbody>
            ${records.map(
              (record) =>
                html`<tr
                  data-id=${record.id}
                  data-outcome=${record.outcome}
                  data-reason=${record.reason}
                >
                  <td>${dateTimeOf(record.timestamp * 1000)}</td>
                  <td>${record.device_id ?? `site ${record.site_id}`}</td>
                  <td>${record.command}</td>
                  <td class="number">${shown(record.requested)}</td>
                  <td class="number">${shown(record.applied)}</td>
                  <td class="outcome ${GOOD_OUTCOMES.has(record.outcome) ? "ok" : "bad"}">
                    ${outcomeText(record)}
                  </td>
                  <td>${record.requested_by}</td>
                  <td>${record.source}</td>
                </tr>`,
            )}
          </tbody>
        </table>
      </div>
      ${
        this._cursor
          ? html`<button type="button" @click=${() => void this.older()}>Older attempts</button>`
          : nothing
      }
    `;
  }
}
