// edge-ems-flow-card: the site's power flow (PV, battery, grid, home, EV, heat pump) as an
// SVG, from the integration's entities, found through the entity and device registries.

import {
  css,
  html,
  LitElement,
  nothing,
  unsafeCSS,
  type PropertyValues,
  type TemplateResult,
} from "lit";

import { chosenSite, numberLocale, siteEntryIds, type Hass } from "../hass.ts";
import { cardStyles, noSite, siteField, type FormSchema } from "../shared.ts";
import { flowDiagram } from "./diagram.ts";
import diagramCss from "./diagram.css";
import {
  applyOverrides,
  computeFlow,
  findSources,
  siteEntities,
  termEntities,
  type FlowOverrides,
  type FlowSources,
} from "./model.ts";

export interface FlowCardConfig {
  type: string;
  config_entry?: string;
  title?: string;
  entities?: FlowOverrides;
}

const OVERRIDES = ["pv", "battery", "battery_soc", "grid", "home", "ev", "heat_pump"] as const;

const LABELS: Record<string, string> = {
  config_entry: "Site",
  title: "Title",
  entities: "Entities (instead of what the card finds)",
  pv: "Solar power",
  battery: "Battery power (+ discharge)",
  battery_soc: "Battery state of charge",
  grid: "Grid power (+ import)",
  home: "Home power (+ consumes)",
  ev: "EV charger power (- charging)",
  heat_pump: "Heat pump power (- consuming)",
};

const FORM: FormSchema = {
  schema: [
    siteField,
    { name: "title", selector: { text: {} } },
    {
      name: "entities",
      type: "expandable",
      title: LABELS.entities,
      schema: OVERRIDES.map((name) => ({
        name,
        selector: {
          entity: {
            filter: {
              domain: "sensor",
              device_class: name === "battery_soc" ? "battery" : "power",
            },
          },
        },
      })),
    },
  ],
  computeLabel: (schema) => LABELS[schema.name] ?? schema.name,
  computeHelper: (schema) =>
    schema.name === "config_entry"
      ? "The Edge EMS site to show; the card finds its entities."
      : undefined,
};

export class EdgeEmsFlowCard extends LitElement {
  static override properties = {
    hass: { attribute: false },
    _config: { state: true },
  };

  declare hass?: Hass;
  declare _config?: FlowCardConfig;
  private _sources?: FlowSources;
  private _sourcesKey?: readonly unknown[];

  static getConfigForm(): FormSchema {
    return FORM;
  }

  static getStubConfig(hass: Hass): Partial<FlowCardConfig> {
    const [site] = siteEntryIds(hass);
    return site ? { config_entry: site } : {};
  }

  setConfig(config: FlowCardConfig): void {
    if (!config || typeof config !== "object") throw new Error("The card needs a configuration");
    const entities = config.entities ?? {};
    if (typeof entities !== "object" || Array.isArray(entities)) {
      throw new Error("entities: give one entity id for each part (pv, battery, grid...)");
    }
    for (const [key, value] of Object.entries(entities)) {
      if (!(OVERRIDES as readonly string[]).includes(key)) {
        throw new Error(`entities: unknown part ${key} (one of ${OVERRIDES.join(", ")})`);
      }
      if (value !== undefined && value !== null && typeof value !== "string") {
        throw new Error(`entities.${key}: an entity id, such as sensor.grid_power`);
      }
    }
    this._config = config;
  }

  getCardSize(): number {
    return 6;
  }

  getGridOptions(): Record<string, number> {
    return { columns: 12, rows: 6, min_columns: 6, min_rows: 4 };
  }

  /** The entities behind each part, worked out again only when the registries, the site
   * or the overrides change. */
  private sources(hass: Hass, site: string): FlowSources {
    const key = [hass.entities, hass.devices, site, this._config?.entities];
    if (!this._sources || !this._sourcesKey?.every((part, i) => part === key[i])) {
      this._sources = applyOverrides(findSources(siteEntities(hass, site)), this._config?.entities);
      this._sourcesKey = key;
    }
    return this._sources;
  }

  protected override shouldUpdate(changed: PropertyValues<this>): boolean {
    if (changed.has("_config") || !this._sources) return true;
    const old = changed.get("hass") as Hass | undefined;
    if (!old || !this.hass) return changed.size > 0;
    if (old.entities !== this.hass.entities || old.devices !== this.hass.devices) return true;
    if (old.locale !== this.hass.locale || old.themes !== this.hass.themes) return true;
    const sources = this._sources;
    const used = [
      ...[sources.pv, sources.battery, sources.grid, sources.load, sources.ev, sources.heat_pump]
        .flat()
        .flatMap(termEntities),
      ...sources.soc.flatMap((s) => (s.capacity ? [s.entity, s.capacity] : [s.entity])),
    ];
    return used.some((id) => old.states[id] !== this.hass?.states[id]);
  }

  protected override render(): TemplateResult | typeof nothing {
    if (!this._config || !this.hass) return nothing;
    const title = this._config.title;
    const site = chosenSite(this.hass, this._config.config_entry);
    if (!site) return noSite(this.hass, title ?? "Power flow");
    const sources = this.sources(this.hass, site);
    const flow = computeFlow(sources, this.hass.states);
    const locale = numberLocale(this.hass.locale);
    return html`
      <ha-card .header=${title}>
        <div class="content ${title ? "" : "untitled"}">
          ${flowDiagram(sources, flow, locale, title ?? "Power flow")}
        </div>
      </ha-card>
    `;
  }

  static override styles = [
    cardStyles,
    unsafeCSS(diagramCss),
    css`
      .content {
        padding: 0 12px 12px;
      }
      .content.untitled {
        padding-top: 12px;
      }
    `,
  ];
}
