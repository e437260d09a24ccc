// What both cards share: the site field of their editors, the message shown before a site
// is chosen, and the card's frame.

import { css, html, type TemplateResult } from "lit";

import { DOMAIN, siteEntryIds, type Hass } from "./hass.ts";

/** One field of a card editor's form, as Home Assistant's `ha-form` takes it. */
export interface FormField {
  name: string;
  type?: string;
  title?: string;
  required?: boolean;
  selector?: Record<string, unknown>;
  schema?: FormField[];
}

/** What `getConfigForm()` returns: Home Assistant draws the card's visual editor from it. */
export interface FormSchema {
  schema: FormField[];
  computeLabel?: (schema: FormField) => string | undefined;
  computeHelper?: (schema: FormField) => string | undefined;
}

export const siteField: FormField = {
  name: "config_entry",
  required: true,
  selector: { config_entry: { integration: DOMAIN } },
};

/** The card's content before it knows which site to show. */
export function noSite(hass: Hass, title: string): TemplateResult {
  const many = siteEntryIds(hass).length > 1;
  return html`
    <ha-card .header=${title}>
      <p class="message">
        ${
          many
            ? "Choose the site to show in the card's options."
            : "No Edge EMS site yet: add one under Settings > Devices & services."
        }
      </p>
    </ha-card>
  `;
}

export const cardStyles = css`
  :host {
    display: block;
  }
  ha-card {
    height: 100%;
    overflow: hidden;
  }
  .message {
    margin: 0;
    padding: 16px;
    color: var(--primary-text-color);
  }
`;
