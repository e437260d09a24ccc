// The bundle the integration serves and Home Assistant loads on every page: it defines both
// cards and lists them in the card picker. Loaded twice (the integration's URL and a
// dashboard resource left from before), it defines nothing twice.

import { EdgeEmsFlowCard } from "./flow/card.ts";
import { EdgeEmsPlanCard } from "./plan/card.ts";

interface CustomCard {
  type: string;
  name: string;
  description: string;
  preview?: boolean;
  documentationURL?: string;
}

const DOCS = "https://github.com/edge-ems/edge-ems/blob/main/docs/integration.md#cards";

const CARDS: [string, CustomElementConstructor, CustomCard][] = [
  [
    "edge-ems-flow-card",
    EdgeEmsFlowCard,
    {
      type: "edge-ems-flow-card",
      name: "Edge EMS power flow",
      description: "Power between PV, battery, grid, home, EV charger and heat pump, live.",
      preview: true,
      documentationURL: DOCS,
    },
  ],
  [
    "edge-ems-plan-card",
    EdgeEmsPlanCard,
    {
      type: "edge-ems-plan-card",
      name: "Edge EMS plan",
      description: "Prices, the battery power the planner sets and the state of charge ahead.",
      preview: true,
      documentationURL: DOCS,
    },
  ],
];

/** Define the cards in the registry the page uses now; true when they are all there. */
function define(): boolean {
  for (const [tag, element] of CARDS) {
    if (!window.customElements.get(tag)) window.customElements.define(tag, element);
  }
  return CARDS.every(([tag]) => window.customElements.get(tag) !== undefined);
}

/** Home Assistant swaps `window.customElements` for a scoped-registry polyfill while it
 * starts, and a module that ran before the swap has its elements in a registry nobody asks
 * any more: the cards then "do not exist" (home-assistant/frontend#53890). Define them again
 * in the new registry once the frontend has started, and on a few later checks. */
function keepDefined(): void {
  const first = window.customElements;
  let checks = 0;
  const check = () => {
    if (window.customElements !== first) define();
    else if ((checks += 1) < 20) setTimeout(check, 250 * checks);
  };
  void first.whenDefined("home-assistant").then(check);
  window.addEventListener("load", check, { once: true });
}

const page = window as unknown as { customCards?: CustomCard[] };
page.customCards ??= [];
for (const [, , card] of CARDS) {
  if (!page.customCards.some((listed) => listed.type === card.type)) page.customCards.push(card);
}
define();
keepDefined();
