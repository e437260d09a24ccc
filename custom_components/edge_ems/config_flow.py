"""Config flow: a site entry, its devices as subentries, options for the site's control policy.

Every device step connects and identifies the device before anything is created, so a wrong
address, unit id or map is caught here with a translated error, not at the next restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import probatio as vol
from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
    ConfigEntry,
    ConfigEntryState,
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentryFlow,
    OptionsFlow,
    SubentryFlowResult,
)
from homeassistant.const import CONF_HOST, CONF_PASSWORD, CONF_PORT, CONF_USERNAME
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import selector
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
from homeassistant.util import slugify

from edge_ems.device import Device, DeviceIdentity
from edge_ems.exceptions import (
    ConfigError,
    DeviceAuthenticationError,
    DeviceBusyError,
    DeviceConnectionError,
    DeviceError,
    DeviceTimeoutError,
    IdentificationError,
)
from edge_ems.gateway.transport import parse_addresses
from edge_ems.metrics import BATTERY_POWER
from edge_ems.modbus import LinkRegistry, TcpEndpoint
from edge_ems.site import (
    DEFAULT_POLL_INTERVAL,
    SECURITY_CHOICES,
    BuildContext,
    DeviceSpec,
    build_device,
)
from edge_ems.site import keys as site_keys
from edge_ems.sunspec import LinkUnit
from edge_ems.sunspec.survey import ChainDevice, survey

from .actuator_flow import ActuatorSubentryFlow
from .const import (
    CONF_APPLICATION_URI,
    CONF_BASE_ADDRESS,
    CONF_BATTERIES,
    CONF_BAUDRATE,
    CONF_CAPACITY_WH,
    CONF_CERTIFICATE,
    CONF_CHANNEL,
    CONF_DEVICE_INDEX,
    CONF_DRY_RUN,
    CONF_EEPROM_DAILY_WRITES,
    CONF_ENABLE_CONTROL,
    CONF_HUB,
    CONF_HUB_AGENT_ID,
    CONF_HUB_TOKEN,
    CONF_INTERFACE,
    CONF_LEASE_TTL,
    CONF_MAX_CHARGE_W,
    CONF_MAX_DISCHARGE_W,
    CONF_NODE_MAP,
    CONF_PARITY,
    CONF_POINT_MAP,
    CONF_PRICE_ENTITY,
    CONF_PRICE_KIND,
    CONF_PRIVATE_KEY,
    CONF_SECURITY,
    CONF_SERIAL_PORT,
    CONF_SITE_ID,
    CONF_SITE_NAME,
    CONF_SOLAR_FORECAST,
    CONF_TOPIC_MAP,
    CONF_TRANSPORT,
    CONF_UNIT_ID,
    CONF_URL,
    CONF_VARIABLES,
    DEFAULT_DRY_RUN,
    DEFAULT_EEPROM_DAILY_WRITES,
    DEFAULT_ENABLE_CONTROL,
    DEFAULT_HUB_AGENT_ID,
    DEFAULT_LEASE_TTL,
    DOMAIN,
    PRICE_KIND_IMPORT,
    PRICE_KIND_SPOT,
    SECURITY_NONE,
    SUBENTRY_ACTUATOR,
    SUBENTRY_CAN_BMS,
    SUBENTRY_MODBUS,
    SUBENTRY_MQTT_BMS,
    SUBENTRY_OPCUA,
    SUBENTRY_SUNSPEC,
    TRANSPORT_RTU,
    TRANSPORT_RTU_OVER_TCP,
    TRANSPORT_TCP,
)
from .models import EdgeEmsConfigEntry
from .site import async_get_catalog, device_factories

_LOGGER = logging.getLogger(__name__)

CONNECT_TIMEOUT = 30.0
"""Seconds a device has to connect and identify itself (generous: RTU lines are slow)."""
FIRST_DATA_TIMEOUT = 30.0
"""Seconds a push device (MQTT, CAN) has to send something decodable."""
DATA_POLL = 0.25
PROBE_ATTEMPTS = 3
"""Tries a probe makes when the device does not answer: a busy gateway or a loaded host
drops a request now and then, and the form should not fail for one."""
PROBE_RETRY_DELAY = 1.0
DEFAULT_APPLICATION_URI = "urn:edge-ems:client"
"""The URI this client's OPC UA certificate must carry."""

_PORT = vol.All(vol.Coerce(int), vol.Range(min=1, max=65535))
_UNIT = vol.All(vol.Coerce(int), vol.Range(min=0, max=255))
_TEXT = selector.TextSelector()
_PASSWORD = selector.TextSelector(
    selector.TextSelectorConfig(type=selector.TextSelectorType.PASSWORD)
)


def _choice(options: list[str], key: str) -> selector.SelectSelector:
    return selector.SelectSelector(
        selector.SelectSelectorConfig(
            options=options, mode=selector.SelectSelectorMode.DROPDOWN, translation_key=key
        )
    )


def _maps(makers: Mapping[str, tuple[str, str]]) -> selector.SelectSelector:
    """A picker of bundled maps, each shown by the maker and model it describes."""
    options = sorted(
        (selector.SelectOptionDict(value=key, label=f"{maker} {model}")
         for key, (maker, model) in makers.items()),
        key=lambda option: option["label"].casefold(),
    )  # fmt: skip
    return selector.SelectSelector(
        selector.SelectSelectorConfig(options=options, mode=selector.SelectSelectorMode.DROPDOWN)
    )


def _number(low: float, high: float, unit: str | None = None) -> selector.NumberSelector:
    config = selector.NumberSelectorConfig(min=low, max=high, mode=selector.NumberSelectorMode.BOX)
    if unit is not None:
        config["unit_of_measurement"] = unit
    return selector.NumberSelector(config)


class ProbeError(Exception):
    """A device could not be identified; ``key`` is the translated error."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


async def _has_data(device: Device) -> bool:
    """Something decoded arrived; and the maker, where the device names it in a message of
    its own (a CAN battery's frame 0x35E), so the new device is titled by it."""
    readings = await device.read()
    maker = "device_manufacturer"
    return bool(readings) and (maker in readings or maker not in device.declared_metrics)


async def _first_data(device: Device) -> None:
    """Wait until a push device (MQTT, CAN) sent something it could decode."""
    for _ in range(round(FIRST_DATA_TIMEOUT / DATA_POLL)):
        if await _has_data(device):
            return
        await asyncio.sleep(DATA_POLL)
    raise ProbeError("no_data")


@contextlib.asynccontextmanager
async def _probe_links(entry: ConfigEntry) -> AsyncIterator[LinkRegistry]:
    """The Modbus links a probe talks over.

    A loaded site's own, since a gateway or serial port may take one connection only; held
    from the site's reload (which closes them) until the probe is done. Else links of the
    probe's own, closed after it.
    """
    async with entry.setup_lock:
        if entry.state is ConfigEntryState.LOADED:
            yield entry.runtime_data.site.links
            return
    links = LinkRegistry()
    try:
        yield links
    finally:
        await links.close()


async def probe(
    hass: HomeAssistant, entry: ConfigEntry, kind: str, data: Mapping[str, Any]
) -> DeviceIdentity:
    """Connect to the device ``data`` describes, identify it, and let it go again.

    Devices behind a gateway the site already uses are reached over that same link.
    """
    catalog = await async_get_catalog(hass)
    spec = DeviceSpec("probe", "probe", kind, data)
    async with _probe_links(entry) as links:
        try:
            device = build_device(
                spec, BuildContext(catalog, links, DEFAULT_POLL_INTERVAL), device_factories(hass)
            )
        except ConfigError as err:
            _LOGGER.debug("device not built: %s", err)
            # An MQTT bridge's keepalive needs concrete topic variables; a Modbus link,
            # settings that agree with the devices already on it.
            raise ProbeError(
                "variables_needed" if kind == SUBENTRY_MQTT_BMS else "link_conflict"
            ) from err
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                identity = await _answering(device.connect)
            if kind in (SUBENTRY_MQTT_BMS, SUBENTRY_CAN_BMS):
                await _first_data(device)
                identity = device.identity or identity
        except IdentificationError as err:
            _LOGGER.debug("not identified: %s", err)
            raise ProbeError("not_sunspec" if kind == SUBENTRY_SUNSPEC else "map_mismatch") from err
        except (TimeoutError, DeviceTimeoutError) as err:
            raise ProbeError("timeout") from err
        except DeviceAuthenticationError as err:
            raise ProbeError("invalid_auth") from err
        except DeviceError as err:
            _LOGGER.debug("cannot connect: %s", err)
            raise ProbeError("cannot_connect") from err
        finally:
            await device.close()
    return identity


def _unique_id(kind: str, data: Mapping[str, Any], identity: DeviceIdentity) -> str:
    """The serial number where the device has one; else where it is reached."""
    if identity.serial:
        return f"{slugify(identity.manufacturer)}_{identity.serial}"
    if kind == SUBENTRY_MQTT_BMS:
        variables = ",".join(f"{k}={v}" for k, v in sorted(data[CONF_VARIABLES].items()))
        return f"mqtt_{data[CONF_TOPIC_MAP]}_{variables}"
    if kind == SUBENTRY_CAN_BMS:
        return f"can_{data[CONF_INTERFACE]}_{data[CONF_CHANNEL]}"
    if kind == SUBENTRY_OPCUA:
        return f"opcua_{data[CONF_URL]}"
    place = data.get(CONF_SERIAL_PORT) or f"{data.get(CONF_HOST)}:{data.get(CONF_PORT)}"
    index = data.get(CONF_DEVICE_INDEX) or 0  # a chain's second device and on
    return f"modbus_{place}_{data[CONF_UNIT_ID]}" + (f"_{index}" if index else "")


class EdgeEmsConfigFlow(ConfigFlow, domain=DOMAIN):
    """A site: its name and id; devices are added to it as subentries."""

    VERSION = 1
    MINOR_VERSION = 2
    _hub: dict[str, str]
    """The hub link a discovery offers."""

    @classmethod
    @callback
    def async_get_supported_subentry_types(
        cls, config_entry: ConfigEntry
    ) -> dict[str, type[ConfigSubentryFlow]]:
        """One subentry type per device kind."""
        return {
            SUBENTRY_SUNSPEC: SunSpecSubentryFlow,
            SUBENTRY_MODBUS: ModbusSubentryFlow,
            SUBENTRY_MQTT_BMS: MqttBmsSubentryFlow,
            SUBENTRY_CAN_BMS: CanBmsSubentryFlow,
            SUBENTRY_OPCUA: OpcUaSubentryFlow,
            SUBENTRY_ACTUATOR: ActuatorSubentryFlow,
        }

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> OptionsFlow:
        """The site's control policy and battery limits."""
        return EdgeEmsOptionsFlow()

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Name the site."""
        errors: dict[str, str] = {}
        if user_input is not None:
            raw = user_input.get(CONF_SITE_ID) or user_input[CONF_SITE_NAME]
            site_id = slugify(raw)
            if not any(char.isalnum() for char in raw):
                errors[CONF_SITE_ID] = "invalid_site_id"
            else:
                await self.async_set_unique_id(site_id)
                self._abort_if_unique_id_configured()
                return self.async_create_entry(
                    title=user_input[CONF_SITE_NAME],
                    data={CONF_SITE_NAME: user_input[CONF_SITE_NAME], CONF_SITE_ID: site_id},
                    options={
                        CONF_ENABLE_CONTROL: DEFAULT_ENABLE_CONTROL,
                        CONF_DRY_RUN: DEFAULT_DRY_RUN,
                        CONF_LEASE_TTL: DEFAULT_LEASE_TTL,
                        CONF_EEPROM_DAILY_WRITES: DEFAULT_EEPROM_DAILY_WRITES,
                    },
                )
        schema = vol.Schema(
            {vol.Required(CONF_SITE_NAME): _TEXT, vol.Optional(CONF_SITE_ID): _TEXT}
        )
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(schema, user_input),
            errors=errors,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Rename the site (its id stays: records and the hub know it by that)."""
        entry = self._get_reconfigure_entry()
        if user_input is not None:
            return self.async_update_and_abort(
                entry,
                title=user_input[CONF_SITE_NAME],
                data_updates={CONF_SITE_NAME: user_input[CONF_SITE_NAME]},
            )
        schema = vol.Schema({vol.Required(CONF_SITE_NAME): _TEXT})
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(schema, entry.data),
        )

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """An OPC UA server refused the credentials of one of the site's devices."""
        entry = self._get_reauth_entry()
        subentry_id = entry_data.get("subentry_id")
        if subentry_id not in entry.subentries:
            subentry_id = next(
                (
                    key
                    for key, sub in entry.subentries.items()
                    if sub.subentry_type == SUBENTRY_OPCUA
                ),
                None,
            )
        if subentry_id is None:
            return self.async_abort(reason="reauth_not_needed")
        self._reauth_subentry = subentry_id
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the user name and password again, and try them."""
        entry = self._get_reauth_entry()
        subentry = entry.subentries[self._reauth_subentry]
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {**subentry.data, **user_input}
            try:
                await probe(self.hass, entry, SUBENTRY_OPCUA, data)
            except ProbeError as err:
                errors["base"] = err.key
            else:
                # A loaded site reloads through its update listener; a site whose setup
                # failed on the credentials has none, and is set up again here.
                self.hass.config_entries.async_update_subentry(entry, subentry, data=data)
                if entry.state is not ConfigEntryState.LOADED:
                    self.hass.config_entries.async_schedule_reload(entry.entry_id)
                return self.async_abort(reason="reauth_successful")
        schema = vol.Schema(
            {vol.Required(CONF_USERNAME): _TEXT, vol.Optional(CONF_PASSWORD): _PASSWORD}
        )
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=self.add_suggested_values_to_schema(
                schema, {CONF_USERNAME: subentry.data.get(CONF_USERNAME)}
            ),
            errors=errors,
            description_placeholders={"device": subentry.title},
        )

    async def async_step_hassio(self, discovery_info: HassioServiceInfo) -> ConfigFlowResult:
        """The Edge EMS app announced its hub: offer to link a site to it."""
        await self.async_set_unique_id(f"hub_{discovery_info.uuid}")
        self._abort_if_unique_id_configured()
        config = discovery_info.config
        address = f"{config.get('host', '')}:{config.get('port', '')}"
        token, agent = config.get("token"), config.get("agent_id", DEFAULT_HUB_AGENT_ID)
        try:
            parse_addresses(address)  # the same check the options make of a hub typed in
        except ValueError:
            return self.async_abort(reason="invalid_discovery_info")
        if not isinstance(token, str) or not token or not isinstance(agent, str) or not agent:
            return self.async_abort(reason="invalid_discovery_info")
        self._hub = {CONF_HUB: address, CONF_HUB_TOKEN: token, CONF_HUB_AGENT_ID: agent}
        if not self._async_current_entries(include_ignore=False):
            return self.async_abort(reason="no_site")
        return await self.async_step_hassio_confirm()

    async def async_step_hassio_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Pick the site that sends its data to the hub and takes its setpoints."""
        sites = {entry.entry_id: entry for entry in self._async_current_entries(False)}
        if user_input is not None:
            site = sites.get(user_input.get(CONF_SITE_ID, ""))
            if site is None:
                return self.async_abort(reason="no_site")
            if all(site.options.get(key) == value for key, value in self._hub.items()):
                return self.async_abort(reason="already_linked")
            # The site reloads through its update listener and links on the way up.
            self.hass.config_entries.async_update_entry(site, options={**site.options, **self._hub})
            return self.async_abort(
                reason="hub_linked", description_placeholders={"site": site.title}
            )
        choices = [
            selector.SelectOptionDict(value=entry_id, label=entry.title)
            for entry_id, entry in sites.items()
        ]
        schema = vol.Schema(
            {
                vol.Required(CONF_SITE_ID, default=choices[0]["value"]): selector.SelectSelector(
                    selector.SelectSelectorConfig(options=choices)
                )
            }
        )
        return self.async_show_form(
            step_id="hassio_confirm",
            data_schema=schema,
            description_placeholders={"hub": self._hub[CONF_HUB]},
        )


class EdgeEmsOptionsFlow(OptionsFlow):
    """Control policy first, then the limits of each battery that takes power setpoints."""

    def __init__(self) -> None:
        self._options: dict[str, Any] = {}
        self._batteries: list[str] = []

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Whether and how the site may be controlled, and the hub it links to."""
        errors: dict[str, str] = {}
        if user_input is not None:
            errors = _hub_errors(user_input)
        if user_input is not None and not errors:
            self._options = {**self.config_entry.options, **user_input}
            for key in (CONF_HUB, CONF_HUB_TOKEN, CONF_PRICE_ENTITY):
                if not user_input.get(key):  # cleared: the site unlinks
                    self._options.pop(key, None)
            self._options[CONF_BATTERIES] = dict(self._options.get(CONF_BATTERIES, {}))
            self._batteries = _batteries(self.config_entry)
            return await self.async_step_battery()
        schema = vol.Schema(
            {
                vol.Required(CONF_ENABLE_CONTROL): selector.BooleanSelector(),
                vol.Required(CONF_DRY_RUN): selector.BooleanSelector(),
                vol.Required(CONF_LEASE_TTL): _number(10, 3600, "s"),
                vol.Required(CONF_EEPROM_DAILY_WRITES): vol.All(_number(0, 10000), vol.Coerce(int)),
                vol.Optional(CONF_HUB): _TEXT,
                vol.Optional(CONF_HUB_TOKEN): _PASSWORD,
                vol.Optional(CONF_PRICE_ENTITY): selector.EntitySelector(
                    selector.EntitySelectorConfig(domain=["sensor", "event"])
                ),
                vol.Required(CONF_PRICE_KIND, default=PRICE_KIND_SPOT): selector.SelectSelector(
                    selector.SelectSelectorConfig(
                        options=[PRICE_KIND_SPOT, PRICE_KIND_IMPORT],
                        translation_key=CONF_PRICE_KIND,
                    )
                ),
                vol.Required(CONF_SOLAR_FORECAST, default=False): selector.BooleanSelector(),
            }
        )
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(
                schema, user_input or self.config_entry.options
            ),
            errors=errors,
        )

    async def async_step_battery(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """The power limits and capacity of one battery; unknown limits mean 0 W."""
        if user_input is not None:
            self._options[CONF_BATTERIES][self._batteries.pop(0)] = user_input
        if not self._batteries:
            return self.async_create_entry(data=self._options)
        device_id = self._batteries[0]
        schema = vol.Schema(
            {
                vol.Required(CONF_MAX_CHARGE_W, default=0): _number(0, 1_000_000, "W"),
                vol.Required(CONF_MAX_DISCHARGE_W, default=0): _number(0, 1_000_000, "W"),
                vol.Required(CONF_CAPACITY_WH, default=0): _number(0, 10_000_000, "Wh"),
            }
        )
        return self.async_show_form(
            step_id="battery",
            data_schema=self.add_suggested_values_to_schema(
                schema, self._options[CONF_BATTERIES].get(device_id)
            ),
            description_placeholders={"device": self.config_entry.subentries[device_id].title},
        )


def _hub_errors(user_input: Mapping[str, Any]) -> dict[str, str]:
    """What is wrong with the hub link the options ask for."""
    try:
        addresses = parse_addresses(user_input.get(CONF_HUB) or "")
    except ValueError:
        return {CONF_HUB: "invalid_hub"}
    if addresses and not user_input.get(CONF_HUB_TOKEN):
        return {CONF_HUB_TOKEN: "hub_token_missing"}
    return {}


def _batteries(entry: EdgeEmsConfigEntry) -> list[str]:
    """Devices of a loaded site that take battery power setpoints, in a stable order."""
    if entry.state is not ConfigEntryState.LOADED:
        return []
    return sorted(
        device_id
        for device_id, member in entry.runtime_data.devices.items()
        if BATTERY_POWER in member.member.device.commands
    )


class DeviceSubentryFlow(ConfigSubentryFlow):
    """What every device kind's flow shares: probe, unique id, create or update."""

    kind: str

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """The first step of the device kind's flow."""
        raise NotImplementedError

    def _current(self) -> Mapping[str, Any]:
        """The subentry's data when reconfiguring, else nothing."""
        if self.source == SOURCE_RECONFIGURE:
            return self._get_reconfigure_subentry().data
        return {}

    async def _finish(
        self, data: dict[str, Any], errors: dict[str, str]
    ) -> SubentryFlowResult | None:
        """Probe the device; create or update the subentry, or fill ``errors``."""
        entry = self._get_entry()
        try:
            identity = await probe(self.hass, entry, self.kind, data)
        except ProbeError as err:
            errors["base"] = err.key
            return None
        unique_id = _unique_id(self.kind, data, identity)
        if self.source == SOURCE_RECONFIGURE:
            subentry = self._get_reconfigure_subentry()
            if subentry.unique_id != unique_id:
                return self.async_abort(reason="unique_id_mismatch")
            # Updating the subentry reloads the site through its update listener.
            return self.async_update_and_abort(entry, subentry, data=data)
        for other in self.hass.config_entries.async_entries(DOMAIN):
            if any(sub.unique_id == unique_id for sub in other.subentries.values()):
                return self.async_abort(reason="already_configured")
        return self.async_create_entry(title=identity.short_name(), data=data, unique_id=unique_id)

    async def _probe_or_show(
        self,
        step_id: str,
        schema: vol.Schema,
        user_input: dict[str, Any] | None,
        data: dict[str, Any] | None,
        *,
        suggested: Mapping[str, Any] | None = None,
        placeholders: Mapping[str, str] | None = None,
    ) -> SubentryFlowResult:
        """Finish with ``data`` when the user gave some; else, or when the device could not
        be identified, show the step's form again (with what was entered, or the current
        subentry's data)."""
        errors: dict[str, str] = {}
        if data is not None and (result := await self._finish(data, errors)) is not None:
            return result
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(
                schema, user_input or (self._current() if suggested is None else suggested)
            ),
            errors=errors,
            description_placeholders=placeholders,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Change where the device is reached; it must still be the same device."""
        return await self.async_step_user(user_input)


class SunSpecSubentryFlow(DeviceSubentryFlow):
    """A SunSpec inverter, meter or battery over Modbus TCP; a chain with several devices (an
    inverter and the meters wired to it) offers each."""

    kind = SUBENTRY_SUNSPEC

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        self._chain: tuple[ChainDevice, ...] = ()

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Where the device answers; the SunSpec base address is found unless given."""
        schema = vol.Schema(
            {
                vol.Required(CONF_HOST): _TEXT,
                vol.Required(CONF_PORT, default=502): _PORT,
                vol.Required(CONF_UNIT_ID, default=1): _UNIT,
                vol.Optional(CONF_BASE_ADDRESS): vol.All(_number(0, 65535), vol.Coerce(int)),
            }
        )
        if user_input is None:
            return await self._probe_or_show("user", schema, None, None)
        data = {key: user_input[key] for key in (CONF_HOST, CONF_PORT, CONF_UNIT_ID)}
        if user_input.get(CONF_BASE_ADDRESS) is not None:
            data[CONF_BASE_ADDRESS] = int(user_input[CONF_BASE_ADDRESS])
        try:
            self._chain = await survey_chain(self.hass, self._get_entry(), data)
        except ProbeError as err:
            return self.async_show_form(
                step_id="user",
                data_schema=self.add_suggested_values_to_schema(schema, user_input),
                errors={"base": err.key},
            )
        self._data = data
        if len(self._chain) > 1:
            return await self.async_step_chain()
        # A device alone in its chain is added at once.
        return await self._probe_or_show("user", schema, user_input, {**data, CONF_DEVICE_INDEX: 0})

    async def async_step_chain(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Which device of the chain: each is added on its own."""
        choices = [
            selector.SelectOptionDict(value=str(device.index), label=_chain_label(device))
            for device in self._chain
        ]
        data = None
        if user_input is not None:
            data = {**self._data, CONF_DEVICE_INDEX: int(user_input[CONF_DEVICE_INDEX])}
        current = self._current().get(CONF_DEVICE_INDEX, 0)
        schema = vol.Schema(
            {
                vol.Required(CONF_DEVICE_INDEX, default=str(current)): selector.SelectSelector(
                    selector.SelectSelectorConfig(options=choices)
                )
            }
        )
        return await self._probe_or_show(
            "chain",
            schema,
            user_input,
            data,
            suggested={},
            placeholders={"count": str(len(choices))},
        )


async def _answering[T](attempt: Callable[[], Awaitable[T]]) -> T:
    """``attempt``, tried again (up to :data:`PROBE_ATTEMPTS` times) while the connection
    fails or the device is busy; what it says (not SunSpec, wrong map, bad login) and a
    device that stays silent (a timeout, already long) count at once."""
    for _ in range(PROBE_ATTEMPTS - 1):
        try:
            return await attempt()
        except DeviceTimeoutError:
            raise
        except (DeviceConnectionError, DeviceBusyError) as err:
            _LOGGER.debug("no answer, trying again: %s", err)
            await asyncio.sleep(PROBE_RETRY_DELAY)
    return await attempt()


def _chain_label(device: ChainDevice) -> str:
    """A device of a chain as the picker shows it: who it is and which models it has."""
    models = ", ".join(str(model.id) for model in device.models)
    identity = device.identity
    if identity is None:
        return f"Device {device.index + 1} (models {models})"
    serial = f", serial …{identity.serial[-4:]}" if identity.serial else ""
    return f"{identity.short_name()}{serial} (models {models})"


async def survey_chain(
    hass: HomeAssistant, entry: ConfigEntry, data: Mapping[str, Any]
) -> tuple[ChainDevice, ...]:
    """Every device of the SunSpec chain ``data`` points at (read only)."""
    async with _probe_links(entry) as links:
        link = links.link(TcpEndpoint(data[CONF_HOST], int(data[CONF_PORT])))
        unit = LinkUnit(link, int(data[CONF_UNIT_ID]), name="survey")
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                _, devices = await _answering(lambda: survey(unit, data.get(CONF_BASE_ADDRESS)))
        except IdentificationError as err:
            _LOGGER.debug("no SunSpec chain: %s", err)
            raise ProbeError("not_sunspec") from err
        except (TimeoutError, DeviceTimeoutError) as err:
            raise ProbeError("timeout") from err
        except DeviceError as err:
            _LOGGER.debug("cannot survey: %s", err)
            raise ProbeError("cannot_connect") from err
    return devices


class ModbusSubentryFlow(DeviceSubentryFlow):
    """A device from the point-map catalog on Modbus TCP, RTU, or RTU over TCP."""

    kind = SUBENTRY_MODBUS

    def __init__(self) -> None:
        self._choice: dict[str, Any] = {}

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Which device (point map) and how it is wired."""
        if user_input is not None:
            self._choice = user_input
            if user_input[CONF_TRANSPORT] == TRANSPORT_RTU:
                return await self.async_step_serial()
            return await self.async_step_network()
        catalog = await async_get_catalog(self.hass)
        schema = vol.Schema(
            {
                vol.Required(CONF_POINT_MAP): _maps(
                    {key: (m.device.maker, m.device.model) for key, m in catalog.point_maps.items()}
                ),
                vol.Required(CONF_TRANSPORT, default=TRANSPORT_TCP): _choice(
                    [TRANSPORT_TCP, TRANSPORT_RTU_OVER_TCP, TRANSPORT_RTU], CONF_TRANSPORT
                ),
            }
        )
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(schema, self._current()),
        )

    def _chosen(self, user_input: dict[str, Any] | None) -> dict[str, Any] | None:
        """The first step's choice with where the device is reached, once entered."""
        return None if user_input is None else {**self._choice, **user_input}

    def _unit_default(self) -> int:
        current = self._current()
        if CONF_UNIT_ID in current:
            return int(current[CONF_UNIT_ID])
        return 1

    async def async_step_network(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """The device, or the gateway in front of it, on the network."""
        schema = vol.Schema(
            {
                vol.Required(CONF_HOST): _TEXT,
                vol.Required(CONF_PORT, default=502): _PORT,
                vol.Required(CONF_UNIT_ID, default=self._unit_default()): _UNIT,
            }
        )
        return await self._probe_or_show("network", schema, user_input, self._chosen(user_input))

    async def async_step_serial(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """The device on a local serial port (an RS-485 adapter)."""
        schema = vol.Schema(
            {
                vol.Required(CONF_SERIAL_PORT): _TEXT,
                vol.Required(CONF_BAUDRATE, default=9600): vol.All(
                    vol.Coerce(int), vol.In(site_keys.BAUDRATES)
                ),
                vol.Required(CONF_PARITY, default="none"): _choice(
                    list(site_keys.PARITIES), CONF_PARITY
                ),
                vol.Required(CONF_UNIT_ID, default=self._unit_default()): _UNIT,
            }
        )
        return await self._probe_or_show("serial", schema, user_input, self._chosen(user_input))


class MqttBmsSubentryFlow(DeviceSubentryFlow):
    """A battery whose bridge publishes over MQTT, read through Home Assistant's MQTT."""

    kind = SUBENTRY_MQTT_BMS

    def __init__(self) -> None:
        self._topic_map = ""

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Which bridge publishes the battery."""
        if "mqtt" not in self.hass.config.components:
            return self.async_abort(reason="mqtt_not_configured")
        if user_input is not None:
            self._topic_map = user_input[CONF_TOPIC_MAP]
            return await self.async_step_topics()
        catalog = await async_get_catalog(self.hass)
        makers = {key: (m.bridge.maker, m.bridge.model) for key, m in catalog.topic_maps.items()}
        schema = vol.Schema({vol.Required(CONF_TOPIC_MAP): _maps(makers)})
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(schema, self._current()),
        )

    async def async_step_topics(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """The names the bridge publishes under (its topic prefix, say)."""
        catalog = await async_get_catalog(self.hass)
        defaults = dict(catalog.topic_maps[self._topic_map].bridge.variables)
        data = None
        if user_input is not None:
            data = {CONF_TOPIC_MAP: self._topic_map, CONF_VARIABLES: {**defaults, **user_input}}
        current = self._current()
        suggested = (
            current.get(CONF_VARIABLES, {})
            if current.get(CONF_TOPIC_MAP) == self._topic_map
            else {}
        )
        schema = vol.Schema(
            {vol.Required(name, default=value): _TEXT for name, value in sorted(defaults.items())}
        )
        return await self._probe_or_show(
            "topics",
            schema,
            user_input,
            data,
            suggested=suggested,
            placeholders={"topic_map": self._topic_map},
        )


class CanBmsSubentryFlow(DeviceSubentryFlow):
    """A Pylontech/SMA-compatible battery on a CAN bus (python-can)."""

    kind = SUBENTRY_CAN_BMS

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """The CAN interface and channel the battery is heard on."""
        schema = vol.Schema(
            {
                vol.Required(CONF_INTERFACE, default="socketcan"): _TEXT,
                vol.Required(CONF_CHANNEL, default="can0"): _TEXT,
            }
        )
        return await self._probe_or_show("user", schema, user_input, user_input)


class OpcUaSubentryFlow(DeviceSubentryFlow):
    """A device on an OPC UA server, read and written through a node map."""

    kind = SUBENTRY_OPCUA

    def __init__(self) -> None:
        self._server: dict[str, Any] = {}

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """The server's endpoint, the node map, credentials and message security."""
        if user_input is not None:
            self._server = user_input
            if user_input.get(CONF_SECURITY, SECURITY_NONE) != SECURITY_NONE:
                return await self.async_step_security()
        catalog = await async_get_catalog(self.hass)
        schema = vol.Schema(
            {
                vol.Required(CONF_URL): _TEXT,
                vol.Required(CONF_NODE_MAP): _maps(
                    {key: (m.device.maker, m.device.model) for key, m in catalog.node_maps.items()}
                ),
                vol.Optional(CONF_USERNAME): _TEXT,
                vol.Optional(CONF_PASSWORD): _PASSWORD,
                vol.Required(CONF_SECURITY, default=SECURITY_NONE): _choice(
                    list(SECURITY_CHOICES), CONF_SECURITY
                ),
            }
        )
        return await self._probe_or_show("user", schema, user_input, user_input)

    async def async_step_security(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """This client's certificate and key for the secure channel."""
        schema = vol.Schema(
            {
                vol.Required(CONF_CERTIFICATE): _TEXT,
                vol.Required(CONF_PRIVATE_KEY): _TEXT,
                vol.Required(CONF_APPLICATION_URI, default=DEFAULT_APPLICATION_URI): _TEXT,
            }
        )
        data = None if user_input is None else {**self._server, **user_input}
        return await self._probe_or_show("security", schema, user_input, data)
