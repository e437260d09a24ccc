// What every page of the dashboard shares: it renders into the page itself (one stylesheet,
// no shadow roots), loads what it shows from the hub and loads it again on its period while
// the tab is visible, without reloading, and says when it last did and what went wrong.

import { html, LitElement, nothing, type PropertyValues, type TemplateResult } from "lit";

import { ApiError, type HubApi } from "./api.ts";
import type { Asset } from "./types.ts";

export interface PageContext {
  api: HubApi;
  /** The site chosen in the site picker; `null` is every site. */
  site: string | null;
  /** The hub's assets, loaded by the shell (site picker, forms, names). */
  assets: Asset[];
  /** The planner's part of the hub's health; `null` on a hub that plans nothing. */
  planner: PlannerHealth | null;
}

export interface PlannerHealth {
  leader: boolean;
  sites: Record<string, { version: number | null; last_error: string | null } | undefined>;
}

/** Whether the hub plans `site`, and whether it has a plan for it to ask for (a standby
 * hub serves the leader's plan without one of its own). Asking only then keeps the page
 * free of requests refused with 404. */
export function planFor(
  context: PageContext,
): { site: string; ready: boolean; why: string } | { site: null; ready: false; why: string } {
  const planner = context.planner;
  const sites = planner ? Object.keys(planner.sites) : [];
  if (!planner) {
    return {
      site: null,
      ready: false,
      why: "This hub does not plan (its configuration has no planner section).",
    };
  }
  const site = context.site ?? (sites.length === 1 ? sites[0]! : null);
  if (site === null) return { site: null, ready: false, why: "Choose a site in the site picker." };
  const state = planner.sites[site];
  if (!state) return { site: null, ready: false, why: "The hub does not plan this site." };
  const ready = state.version !== null || !planner.leader;
  const why = state.last_error
    ? `The planner has not made a plan: ${state.last_error}`
    : "The planner has not made a plan for this site yet.";
  return { site, ready, why };
}

const clock = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});

export function timeOf(ms: number): string {
  return clock.format(new Date(ms));
}

const dated = new Intl.DateTimeFormat(undefined, { dateStyle: "short", timeStyle: "medium" });

export function dateTimeOf(ms: number): string {
  return dated.format(new Date(ms));
}

export function messageOf(err: unknown): string {
  if (err instanceof ApiError) return err.message;
  return err instanceof Error ? err.message : String(err);
}

export abstract class HubPage extends LitElement {
  static override properties = {
    context: { attribute: false },
    _error: { state: true },
    _updated: { state: true },
  };

  declare context: PageContext;
  declare _error: string | null;
  /** When the page last loaded without error (ms), 0 before. */
  declare _updated: number;
  /** Milliseconds between loads. */
  protected period = 5000;
  private timer?: ReturnType<typeof setTimeout>;
  private loading = false;
  private again = false;
  private readonly visibility = () => {
    if (!document.hidden) void this.refresh();
  };

  constructor() {
    super();
    this._error = null;
    this._updated = 0;
  }

  protected override createRenderRoot(): HTMLElement {
    return this;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    document.addEventListener("visibilitychange", this.visibility);
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    document.removeEventListener("visibilitychange", this.visibility);
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  protected override willUpdate(changed: PropertyValues<this>): void {
    const before = changed.get("context") as PageContext | undefined;
    if (changed.has("context") && (!before || before.site !== this.context.site)) {
      this.siteChanged();
      void this.refresh();
    }
  }

  /** The chosen site changed: forget what was shown for the other. */
  protected siteChanged(): void {}

  /** Load what the page shows; errors are shown above the page. */
  protected abstract load(): Promise<void>;

  /** Load now, then again after the page's period (while the tab is visible). Asked while
   * a load is under way (a filter changed), it loads again once that one is done. */
  async refresh(): Promise<void> {
    if (!this.context) return;
    if (this.loading) {
      this.again = true;
      return;
    }
    this.loading = true;
    clearTimeout(this.timer);
    try {
      await this.load();
      this._error = null;
      this._updated = Date.now();
    } catch (err) {
      this._error = messageOf(err);
    } finally {
      this.loading = false;
      if (this.again) {
        this.again = false;
        void this.refresh();
      } else if (this.isConnected && !document.hidden) {
        this.timer = setTimeout(() => void this.refresh(), this.period);
      }
    }
  }

  /** The page's heading with its last update, and the last error. */
  protected heading(title: string, extra: TemplateResult | typeof nothing = nothing) {
    return html`
      <div class="toolbar">
        <h2>${title}</h2>
        ${extra}
        <span class="spacer"></span>
        <span class="muted updated" aria-live="off"
          >${this._updated ? `Updated ${timeOf(this._updated)}` : "Loading…"}</span
        >
      </div>
      ${this._error ? html`<p class="message error" role="alert">${this._error}</p>` : nothing}
    `;
  }
}
