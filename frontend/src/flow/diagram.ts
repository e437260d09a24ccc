// The power-flow diagram as an SVG: drawn by the flow card inside Home Assistant and by the
// hub's dashboard, from the same model (./model.ts). Styled by diagram.css, scoped to
// svg.edge-ems-flow so it can live in a shadow root or on a plain page.

import { nothing, svg, type TemplateResult } from "lit";
import {
  mdiEvStation,
  mdiHeatPump,
  mdiHome,
  mdiHomeBattery,
  mdiSolarPower,
  mdiTransmissionTower,
} from "@mdi/js";

import {
  describe,
  direction,
  flowSeconds,
  formatPower,
  NAMES,
  stateWord,
  type Flow,
  type FlowNode,
  type FlowSources,
} from "./model.ts";

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
/** Colours from Home Assistant's energy palette, which themes set for light and dark (the
 * hub's page sets the same variables). */
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

/** The diagram of `flow` for the parts `sources` found; `title` names it for screen readers. */
export function flowDiagram(
  sources: FlowSources,
  flow: Flow,
  locale: string | undefined,
  title: string,
): TemplateResult {
  const nodes = ORDER.filter((node) => sources.present.has(node));
  const words = nodes.map((node) => describe(node, flow, locale));
  return svg`
    <svg
      class="edge-ems-flow"
      viewBox="0 0 ${SIZE.width} ${SIZE.height}"
      role="img"
      aria-labelledby="flow-title"
      aria-describedby="flow-desc"
    >
      <title id="flow-title">${title}</title>
      <desc id="flow-desc">${words.join(". ")}.</desc>
      ${nodes.map((node) => line(node, flow))}
      <circle class="bus" cx=${BUS[0]} cy=${BUS[1]} r="5"></circle>
      ${nodes.map((node, i) => part(node, flow, locale, words[i] ?? ""))}
    </svg>
  `;
}

function line(node: FlowNode, flow: Flow): TemplateResult {
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

function part(
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
