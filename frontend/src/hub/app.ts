// The dashboard's shell: the pages' menu, the site picker (for hubs serving several sites),
// the hub's status, and the token form when the hub asks for one. Pages are chosen by the
// address's fragment (#/devices), so the page works under any path prefix (Home Assistant's
// ingress) without the server knowing its routes.

import { html, LitElement, nothing, type TemplateResult } from "lit";

import { HubApi, sessionTokens, tokenFromFragment } from "./api.ts";
import { sitesOf, type Site } from "./model.ts";
import { messageOf, type PageContext, type PlannerHealth } from "./page.ts";
import { AgentsPage } from "./pages/agents.ts";
import { AuditPage } from "./pages/audit.ts";
import { DevicesPage } from "./pages/devices.ts";
import { LivePage } from "./pages/live.ts";
import { OverridesPage } from "./pages/overrides.ts";
import { OverviewPage } from "./pages/overview.ts";
import { PlanPage } from "./pages/plan.ts";
import { SparklinesPage } from "./pages/sparklines.ts";
import type { Asset } from "./types.ts";

const SITE_KEY = "edge-ems-hub-site";
const ASSETS_EVERY_MS = 30_000;

export const PAGES = [
  ["overview", "Overview", "edge-ems-overview"],
  ["devices", "Devices", "edge-ems-devices"],
  ["live", "Live", "edge-ems-live"],
  ["sparklines", "Sparklines", "edge-ems-sparklines"],
  ["plan", "Plan", "edge-ems-plan"],
  ["overrides", "Overrides", "edge-ems-overrides"],
  ["audit", "Audit", "edge-ems-audit"],
  ["agents", "Agents", "edge-ems-agents"],
] as const;

export function definePages(): void {
  const elements: [string, CustomElementConstructor][] = [
    ["edge-ems-overview", OverviewPage],
    ["edge-ems-devices", DevicesPage],
    ["edge-ems-live", LivePage],
    ["edge-ems-sparklines", SparklinesPage],
    ["edge-ems-plan", PlanPage],
    ["edge-ems-overrides", OverridesPage],
    ["edge-ems-audit", AuditPage],
    ["edge-ems-agents", AgentsPage],
    ["edge-ems-hub", EdgeEmsHub],
  ];
  for (const [tag, element] of elements) {
    if (!customElements.get(tag)) customElements.define(tag, element);
  }
}

/** The page and its argument from the address's fragment: `#/devices/bess-1`. */
export function route(hash: string): { page: string; arg: string } {
  const [page = "", ...rest] = hash.replace(/^#\/?/, "").split("/");
  const known = PAGES.some(([name]) => name === page);
  return { page: known ? page : "overview", arg: known ? decodeURIComponent(rest.join("/")) : "" };
}

export class EdgeEmsHub extends LitElement {
  static override properties = {
    _route: { state: true },
    _context: { state: true },
    _sites: { state: true },
    _needToken: { state: true },
    _status: { state: true },
    _tokenError: { state: true },
  };

  declare _route: { page: string; arg: string };
  declare _context: PageContext;
  declare _sites: Site[];
  declare _needToken: boolean;
  declare _status: string;
  declare _tokenError: string;
  private readonly api = new HubApi(sessionTokens());
  private timer?: ReturnType<typeof setTimeout>;
  private readonly hashChanged = () => this.takeRoute();
  private readonly dark = window.matchMedia("(prefers-color-scheme: dark)");
  private readonly themeChanged = () => window.dispatchEvent(new Event("edge-ems-theme"));

  constructor() {
    super();
    this._route = route("");
    this._sites = [];
    this._needToken = false;
    this._status = "";
    this._tokenError = "";
    this._context = {
      api: this.api,
      site: localStorage.getItem(SITE_KEY),
      assets: [],
      planner: null,
    };
    this.api.onUnauthorized = () => {
      this._needToken = true;
    };
  }

  protected override createRenderRoot(): HTMLElement {
    return this;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    const token = tokenFromFragment(window.location.hash);
    if (token) {
      this.api.tokens.set(token);
      history.replaceState(
        null,
        "",
        window.location.pathname + window.location.search + "#/overview",
      );
    }
    this.takeRoute();
    window.addEventListener("hashchange", this.hashChanged);
    this.dark.addEventListener("change", this.themeChanged);
    void this.loadAssets();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    window.removeEventListener("hashchange", this.hashChanged);
    this.dark.removeEventListener("change", this.themeChanged);
    clearTimeout(this.timer);
  }

  private takeRoute(): void {
    this._route = route(window.location.hash);
    const name = PAGES.find(([page]) => page === this._route.page)?.[1] ?? "";
    document.title = `${name} · Edge EMS hub`;
  }

  /** The assets (for the site picker and the forms) and the hub's health, every 30 s. */
  private async loadAssets(): Promise<void> {
    clearTimeout(this.timer);
    try {
      const [assets, health] = await Promise.all([
        this.api.get<{ assets: Asset[] }>("assets"),
        this.api.get<{ status: string; problems?: string[]; planner?: PlannerHealth | null }>(
          "health",
        ),
      ]);
      this._needToken = false;
      this._sites = sitesOf(assets.assets);
      let site = this._context.site;
      if (site !== null && !this._sites.some((known) => known.id === site)) site = null;
      if (site === null && this._sites.length === 1) site = this._sites[0]!.id;
      this._context = {
        ...this._context,
        site,
        assets: assets.assets,
        planner: health.planner ?? null,
      };
      this._status =
        health.status === "ok"
          ? "ok"
          : `${health.status}${health.problems?.length ? `: ${health.problems.join(", ")}` : ""}`;
    } catch (err) {
      this._status = messageOf(err);
    }
    this.timer = setTimeout(() => void this.loadAssets(), ASSETS_EVERY_MS);
  }

  private chooseSite(site: string): void {
    const chosen = site || null;
    if (chosen) localStorage.setItem(SITE_KEY, chosen);
    else localStorage.removeItem(SITE_KEY);
    this._context = { ...this._context, site: chosen };
  }

  private async signIn(event: Event): Promise<void> {
    event.preventDefault();
    const input = (event.target as HTMLFormElement).querySelector<HTMLInputElement>(
      "input[name=token]",
    );
    const token = input?.value.trim() ?? "";
    if (!token) return;
    this.api.tokens.set(token);
    try {
      await this.api.get("assets");
      this._tokenError = "";
      this._needToken = false;
      void this.loadAssets();
    } catch (err) {
      this.api.tokens.set(null);
      this._tokenError = messageOf(err);
    }
  }

  private signOut(): void {
    this.api.tokens.set(null);
    this._needToken = true;
  }

  protected override render(): TemplateResult {
    const { page, arg } = this._route;
    return html`
      <header class="bar">
        <h1>Edge EMS hub</h1>
        <nav class="pages" aria-label="Pages">
          <ul>
            ${PAGES.map(
              ([name, label]) =>
                html`<li>
                  <a href="#/${name}" aria-current=${name === page ? "page" : "false"}>${label}</a>
                </li>`,
            )}
          </ul>
        </nav>
        <span class="spacer"></span>
        ${
          this._sites.length > 1
            ? html`<div class="field-inline site-picker">
                <label for="site">Site</label>
                <select
                  id="site"
                  @change=${(e: Event) => this.chooseSite((e.target as HTMLSelectElement).value)}
                >
                  <option value="" ?selected=${this._context.site === null}>Every site</option>
                  ${this._sites.map(
                    (site) =>
                      html`<option value=${site.id} ?selected=${site.id === this._context.site}>
                        ${site.name}
                      </option>`,
                  )}
                </select>
              </div>`
            : this._sites.length === 1
              ? html`<span class="muted">${this._sites[0]!.name}</span>`
              : nothing
        }
        <span
          class="pill hub-status ${this._status === "ok" ? "ok" : this._status ? "bad" : "muted"}"
          title="The hub's health"
          >${this._status || "…"}</span
        >
        ${this.api.tokens.get() ? html`<button type="button" @click=${() => this.signOut()}>Forget token</button>` : nothing}
      </header>
      <main>${this._needToken ? this.renderToken() : this.renderPage(page, arg)}</main>
    `;
  }

  private renderToken(): TemplateResult {
    return html`<section class="card token">
      <h2>The hub's API token</h2>
      <p>
        This hub answers only with its API token (the app's <code>api_token</code> option, or
        <code>api_token</code> in hub.yaml). It is kept in this tab only, and sent with each
        request; through Home Assistant's sidebar no token is needed.
      </p>
      <form class="row" @submit=${(e: Event) => void this.signIn(e)}>
        <div class="field">
          <label for="token">API token</label>
          <input id="token" name="token" type="password" autocomplete="current-password" required />
        </div>
        <button class="primary" type="submit">Open</button>
      </form>
      ${this._tokenError ? html`<p class="message error" role="alert">${this._tokenError}</p>` : nothing}
    </section>`;
  }

  private renderPage(page: string, arg: string): TemplateResult {
    const context = this._context;
    switch (page) {
      case "devices":
        return html`<edge-ems-devices .context=${context} .asset=${arg}></edge-ems-devices>`;
      case "live":
        return html`<edge-ems-live .context=${context}></edge-ems-live>`;
      case "sparklines":
        return html`<edge-ems-sparklines .context=${context}></edge-ems-sparklines>`;
      case "plan":
        return html`<edge-ems-plan .context=${context}></edge-ems-plan>`;
      case "overrides":
        return html`<edge-ems-overrides .context=${context}></edge-ems-overrides>`;
      case "audit":
        return html`<edge-ems-audit .context=${context}></edge-ems-audit>`;
      case "agents":
        return html`<edge-ems-agents .context=${context}></edge-ems-agents>`;
      default:
        return html`<edge-ems-overview .context=${context}></edge-ems-overview>`;
    }
  }
}
