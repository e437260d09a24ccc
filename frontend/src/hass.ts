// The parts of Home Assistant's frontend `hass` object the cards read: states, the entity and
// device registries as the frontend keeps them, the actions, the user's locale and theme.

export interface EntityState {
  entity_id: string;
  state: string;
  attributes: Record<string, unknown>;
  last_updated?: string;
}

/** An entity registry entry as `hass.entities` holds it (the display subset). */
export interface EntityEntry {
  entity_id: string;
  platform: string;
  device_id?: string | null;
  translation_key?: string | null;
  name?: string | null;
  hidden?: boolean;
}

/** A device registry entry as `hass.devices` holds it. */
export interface DeviceEntry {
  id: string;
  name?: string | null;
  name_by_user?: string | null;
  config_entries: string[];
  primary_config_entry?: string | null;
}

export interface Locale {
  language: string;
  number_format?: string;
  time_format?: string;
  time_zone?: string;
}

export interface ServiceCallResult {
  context?: unknown;
  response?: unknown;
}

export interface Hass {
  states: Record<string, EntityState | undefined>;
  entities: Record<string, EntityEntry | undefined>;
  devices: Record<string, DeviceEntry | undefined>;
  services: Record<string, Record<string, unknown> | undefined>;
  locale: Locale;
  language: string;
  config: { time_zone: string };
  themes?: { darkMode?: boolean };
  callService(
    domain: string,
    service: string,
    serviceData?: Record<string, unknown>,
    target?: Record<string, unknown>,
    notifyOnError?: boolean,
    returnResponse?: boolean,
  ): Promise<ServiceCallResult>;
}

export const DOMAIN = "edge_ems";

/** The config entries of Edge EMS sites: those that own a device with an Edge EMS entity. */
export function siteEntryIds(hass: Pick<Hass, "entities" | "devices">): string[] {
  const found = new Set<string>();
  for (const entity of Object.values(hass.entities)) {
    if (entity?.platform !== DOMAIN || !entity.device_id) continue;
    const device = hass.devices[entity.device_id];
    const entry = device?.primary_config_entry ?? device?.config_entries[0];
    if (entry) found.add(entry);
  }
  return [...found].sort();
}

/** The site a card shows: the one configured, or the only one there is. */
export function chosenSite(
  hass: Pick<Hass, "entities" | "devices">,
  configured: string | undefined,
): string | undefined {
  if (configured) return configured;
  const sites = siteEntryIds(hass);
  return sites.length === 1 ? sites[0] : undefined;
}

/** The locale tag whose number format matches the user's choice in their profile. */
export function numberLocale(locale: Locale): string | undefined {
  switch (locale.number_format) {
    case "comma_decimal":
      return "en-US";
    case "decimal_comma":
      return "de";
    case "space_comma":
      return "fr";
    case "quote_decimal":
      return "de-CH";
    case "system":
      return undefined;
    default:
      return locale.language;
  }
}
