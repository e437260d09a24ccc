// edge-ems-flow-card: the site's power flow (PV, battery, grid, home, EV, heat pump) as an
// SVG, from the integration's entities, found through the entity and device registries.

import { css, html, LitElement, nothing, svg, type PropertyValues, type TemplateResult } from "lit";
import {
  mdiEvStation,
  mdiHeatPump,
  mdiHome,
  mdiHomeBattery,
  mdiSolarPower,
  mdiTransmissionTower,
} from "@mdi/js";

import { chosenSite, numberLocale, siteEntryIds, type Hass } from "../hass.ts";
import { cardStyles, noSite, siteField, type FormSchema } from "../shared.ts";
import {
  applyOverrides,
  computeFlow,
  describe,
  direction,
  findSources,
  flowSeconds,
  formatPower,
  NAMES,
  siteEntities,
  stateWord,
  termEntities,
  type Flow,
  type FlowNode,
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

const SIZE = { width: 360, height: 334 };
const BUS: [number, number] = [180, 158];
const RADIUS = 36;
/** Where each part sits: consumers on the right, the grid on the left. */
const PLACES: Record<FlowNode, [number, number]> = {
  pv: [180, 58],
  heat_pump: [304, 58],
  grid: [56, 158],
  home: [304, 158],
  battery: [180, 262],
  ev: [304, 262],
};
const ICONS: Record<FlowNode, string> = {
  pv: mdiSolarPower,
  battery: mdiHomeBattery,
  grid: mdiTransmissionTower,
  home: mdiHome,
  ev: mdiEvStation,
  heat_pump: mdiHeatPump,
};
/** Colours from Home Assistant's energy palette, which themes set for light and dark. */
const COLOURS: Record<FlowNode, string> = {
  pv: "var(--energy-solar-color, #ff9800)",
  battery: "var(--energy-battery-out-color, #4db6ac)",
  grid: "var(--energy-grid-consumption-color, #488fc2)",
  home: "var(--primary-color, #03a9f4)",
  ev: "var(--edge-ems-ev-color, #66bb6a)",
  heat_pump: "var(--edge-ems-heat-pump-color, #ef5350)",
};
const FLOW_COLOURS: Partial<Record<FlowNode, string>> = {
  battery: "var(--energy-battery-in-color, #f06292)",
  grid: "var(--energy-grid-return-color, #8353d1)",
};
const ORDER: FlowNode[] = ["pv", "battery", "grid", "home", "ev", "heat_pump"];
/** Parts whose direction matters, said in words under their name as well as by the moving
 * dashes (which a screenshot, or a user who asked for less motion, does not see). */
const STATES = new Set<FlowNode>(["grid", "battery", "ev"]);

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
    const nodes = ORDER.filter((node) => sources.present.has(node));
    const words = nodes.map((node) => describe(node, flow, locale));
    return html`
      <ha-card .header=${title}>
        <div class="content ${title ? "" : "untitled"}">
          <svg
            viewBox="0 0 ${SIZE.width} ${SIZE.height}"
            role="img"
            aria-labelledby="flow-title"
            aria-describedby="flow-desc"
          >
            <title id="flow-title">${title ?? "Power flow"}</title>
            <desc id="flow-desc">${words.join(". ")}.</desc>
            ${nodes.map((node) => this.line(node, flow))}
            <circle class="bus" cx=${BUS[0]} cy=${BUS[1]} r="5"></circle>
            ${nodes.map((node, i) => this.node(node, flow, locale, words[i] ?? ""))}
          </svg>
        </div>
      </ha-card>
    `;
  }

  private line(node: FlowNode, flow: Flow): TemplateResult {
    const [x, y] = PLACES[node];
    const length = Math.hypot(BUS[0] - x, BUS[1] - y);
    const [dx, dy] = [(BUS[0] - x) / length, (BUS[1] - y) / length];
    const path = `M ${x + dx * RADIUS} ${y + dy * RADIUS} L ${BUS[0] - dx * 6} ${BUS[1] - dy * 6}`;
    const watts = flow[node];
    const way = direction(node, watts);
    const colour =
      way === "from_bus" && node !== "home" ? (FLOW_COLOURS[node] ?? COLOURS[node]) : COLOURS[node];
    return svg`
      <path class="line" d=${path}></path>
      ${
        way === "idle" || watts === null
          ? nothing
          : svg`<path
            class="flow ${way}"
            data-node=${node}
            d=${path}
            style="stroke: ${colour}; animation-duration: ${flowSeconds(watts)}s"
          ></path>`
      }
    `;
  }

  private node(
    node: FlowNode,
    flow: Flow,
    locale: string | undefined,
    words: string,
  ): TemplateResult {
    const [x, y] = PLACES[node];
    const watts = flow[node];
    const value = watts === null ? "" : formatPower(watts, locale);
    const battery = node === "battery" && flow.soc !== null;
    const iconY = y - (battery ? 25 : 20);
    const above = y < BUS[1];
    return svg`
      <g class="node" data-node=${node}>
        <title>${words}</title>
        <circle cx=${x} cy=${y} r=${RADIUS} style="stroke: ${COLOURS[node]}"></circle>
        <path
          d=${ICONS[node]}
          transform="translate(${x - 11} ${iconY}) scale(0.9167)"
          style="fill: ${COLOURS[node]}"
        ></path>
        ${
          watts === null
            ? svg`<text class="soc" x=${x} y=${y + 13}>no reading</text>`
            : svg`<text class="value" x=${x} y=${y + (battery ? 10 : 14)}>${value}</text>`
        }
        ${
          battery
            ? svg`<text class="soc" x=${x} y=${y + 25}>${new Intl.NumberFormat(locale, {
                maximumFractionDigits: 0,
              }).format(flow.soc ?? 0)} %</text>`
            : nothing
        }
        <text class="label" x=${x} y=${above ? y - RADIUS - 8 : y + RADIUS + 17}>${NAMES[node]}</text>
        ${
          STATES.has(node) && watts !== null
            ? svg`<text class="state" x=${x} y=${y + RADIUS + 31}>${stateWord(node, watts)}</text>`
            : nothing
        }
      </g>
    `;
  }

  static override styles = [
    cardStyles,
    css`
      .content {
        padding: 0 12px 12px;
      }
      .content.untitled {
        padding-top: 12px;
      }
      svg {
        display: block;
        width: 100%;
        height: auto;
        max-height: 420px;
        font-family: inherit;
      }
      .node circle {
        fill: var(--card-background-color, var(--ha-card-background, #fff));
        stroke-width: 2.5;
      }
      text {
        text-anchor: middle;
      }
      .value {
        font-size: 13px;
        font-weight: 500;
        fill: var(--primary-text-color, #212121);
      }
      .soc {
        font-size: 11px;
        fill: var(--secondary-text-color, #727272);
      }
      .label {
        font-size: 12px;
        fill: var(--secondary-text-color, #727272);
      }
      .state {
        font-size: 11px;
        fill: var(--secondary-text-color, #727272);
      }
      .line {
        fill: none;
        stroke: var(--divider-color, rgba(0, 0, 0, 0.12));
        stroke-width: 2;
      }
      .bus {
        fill: var(--divider-color, rgba(0, 0, 0, 0.12));
      }
      .flow {
        fill: none;
        stroke-width: 3;
        stroke-linecap: round;
        stroke-dasharray: 2 14;
        animation: edge-ems-flow linear infinite;
      }
      .flow.from_bus {
        animation-direction: reverse;
      }
      @keyframes edge-ems-flow {
        from {
          stroke-dashoffset: 16;
        }
        to {
          stroke-dashoffset: 0;
        }
      }
      @media (prefers-reduced-motion: reduce) {
        .flow {
          animation: none;
        }
      }
    `,
  ];
}
