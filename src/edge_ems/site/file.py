"""The site file of ``edge-ems agent``: a whole site without Home Assistant, in YAML.

::

    site: {id: farm, name: The farm}
    poll_interval: 10                 # seconds, for every device unless it says otherwise
    control: {enable_control: true, dry_run: false, lease_ttl: 60}
    agent: {id: farm-gw, flush_interval: 5, buffer_dir: /var/lib/edge-ems}
    hub: {address: "hub.example.net:50051", token_file: /etc/edge-ems/token, tls: true}
    devices:
      - {id: inverter, kind: sunspec, host: 192.168.1.20, unit_id: 1,
         battery: {max_charge_w: 5000, max_discharge_w: 5000, capacity_wh: 10000}}
      - {id: meter, kind: modbus, point_map: eastron_sdm630, transport: rtu_over_tcp,
         host: 192.168.1.30, port: 502, unit_id: 2}
      - {id: jk, kind: mqtt_bms, topic_map: esphome_jk_bms,
         variables: {topic_prefix: jk-bms}, broker: {host: 192.168.1.5}}
      - {id: pylontech, kind: can_bms, interface: socketcan, channel: can0}
      - {id: bess, kind: opcua, url: "opc.tcp://10.0.0.5:4840", node_map: sim_bess}
      - {id: spare, kind: sim_bess, capacity_wh: 10000, soc_pct: 50}

A device's keys are those of :mod:`edge_ems.site.keys`, the same the integration keeps in
its config subentries. Maps are named by their catalog id or by a file path. Every mistake
is reported with the file, the key path (devices by their id) and the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import voluptuous as vol
import yaml

from ..dispatch import AssetLimits, ControlPolicy
from ..exceptions import SiteFileError
from ..gateway.transport import parse_addresses
from ..pointmap.validators import TEXT, apply_schema, integer, number
from . import keys
from .description import DEFAULT_POLL_INTERVAL, DeviceSpec, SiteDescription
from .factory import SECURITY_CHOICES

_ID = vol.All(str, vol.Match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", msg="letters, digits, _ . - only"))
_PORT = vol.All(integer, vol.Range(min=1, max=65535))
_UNIT = vol.All(integer, vol.Range(min=0, max=255))
_WATTS = vol.All(number, vol.Range(min=0))
_SECONDS = vol.All(number, vol.Range(min=0.05))
_PATH = TEXT


def _addresses(value: Any) -> tuple[str, ...]:
    """``host:port``, or several comma-separated (the agent fails over in that order)."""
    if not isinstance(value, str):
        raise vol.Invalid("expected host:port")
    try:
        addresses = parse_addresses(value)
    except ValueError as err:
        raise vol.Invalid(str(err)) from None
    if not addresses:
        raise vol.Invalid("expected host:port")
    return addresses


_BATTERY = {
    vol.Required(keys.MAX_CHARGE_W): _WATTS,
    vol.Required(keys.MAX_DISCHARGE_W): _WATTS,
    vol.Required(keys.CAPACITY_WH): _WATTS,
}
_KIND = vol.In([kind.value for kind in keys.DeviceKind])
_COMMON = {
    vol.Required("id"): _ID,
    vol.Required("kind"): _KIND,
    vol.Optional("name"): TEXT,
    vol.Optional("poll_interval"): _SECONDS,
    vol.Optional("battery"): _BATTERY,
}
_NETWORK = {vol.Required(keys.HOST): TEXT, vol.Optional(keys.PORT, default=502): _PORT}
_LOGIN = {vol.Optional(keys.USERNAME): str, vol.Optional(keys.PASSWORD): str}

_KINDS: Mapping[str, dict[Any, Any]] = {
    keys.DeviceKind.SUNSPEC: {
        **_NETWORK,
        vol.Optional(keys.UNIT_ID, default=1): _UNIT,
        vol.Optional(keys.BASE_ADDRESS): vol.All(integer, vol.Range(min=0, max=65535)),
        vol.Optional(keys.DEVICE_INDEX, default=0): vol.All(integer, vol.Range(min=0)),
    },
    keys.DeviceKind.MODBUS: {
        vol.Required(keys.POINT_MAP): TEXT,
        vol.Optional(keys.TRANSPORT, default=keys.TRANSPORT_TCP): vol.In(
            [keys.TRANSPORT_TCP, keys.TRANSPORT_RTU_OVER_TCP, keys.TRANSPORT_RTU]
        ),
        vol.Optional(keys.HOST): TEXT,
        vol.Optional(keys.PORT, default=502): _PORT,
        vol.Optional(keys.SERIAL_PORT): TEXT,
        vol.Optional(keys.BAUDRATE, default=9600): vol.In(keys.BAUDRATES),
        vol.Optional(keys.PARITY, default="none"): vol.In(list(keys.PARITIES)),
        vol.Optional(keys.UNIT_ID, default=1): _UNIT,
    },
    keys.DeviceKind.MQTT_BMS: {
        vol.Required(keys.TOPIC_MAP): TEXT,
        vol.Optional(keys.VARIABLES, default={}): {str: vol.Coerce(str)},
        vol.Required(keys.BROKER): {
            **_NETWORK,
            vol.Optional(keys.PORT, default=1883): _PORT,
            **_LOGIN,
            vol.Optional("tls", default=False): bool,
        },
    },
    keys.DeviceKind.CAN_BMS: {
        vol.Optional(keys.INTERFACE, default="socketcan"): TEXT,
        vol.Optional(keys.CHANNEL, default="can0"): TEXT,
    },
    keys.DeviceKind.OPCUA: {
        vol.Required(keys.URL): vol.All(str, vol.Match(r"^opc\.tcp://", msg="not opc.tcp://...")),
        vol.Required(keys.NODE_MAP): TEXT,
        **_LOGIN,
        vol.Optional(keys.SECURITY, default=keys.SECURITY_NONE): vol.In(SECURITY_CHOICES),
        vol.Optional(keys.CERTIFICATE): _PATH,
        vol.Optional(keys.PRIVATE_KEY): _PATH,
        vol.Optional(keys.APPLICATION_URI, default="urn:edge-ems:client"): TEXT,
    },
    keys.DeviceKind.SIM_BESS: {
        vol.Optional(keys.CAPACITY_WH, default=10_000.0): _WATTS,
        vol.Optional(keys.MAX_CHARGE_W, default=5000.0): _WATTS,
        vol.Optional(keys.MAX_DISCHARGE_W, default=5000.0): _WATTS,
        vol.Optional(keys.SOC_PCT, default=50.0): vol.All(number, vol.Range(min=0, max=100)),
        vol.Optional(keys.MIRROR): {
            vol.Required(keys.URL): TEXT,
            vol.Required(keys.NODE_MAP): TEXT,
            **_LOGIN,
        },
    },
}
_SITE = vol.Schema(
    {
        vol.Required("site"): {vol.Required("id"): _ID, vol.Optional("name"): TEXT},
        vol.Optional("poll_interval", default=DEFAULT_POLL_INTERVAL): _SECONDS,
        vol.Optional("control", default={}): {
            vol.Optional("enable_control", default=False): bool,
            vol.Optional("dry_run", default=True): bool,
            vol.Optional("lease_ttl", default=60.0): _SECONDS,
            vol.Optional("eeprom_daily_writes", default=100): vol.All(integer, vol.Range(min=0)),
            vol.Optional("writes_per_minute", default=30): vol.All(integer, vol.Range(min=1)),
        },
        vol.Optional("agent", default={}): {
            vol.Optional("id"): _ID,
            vol.Optional("gateway_id"): TEXT,
            vol.Optional("flush_interval", default=5.0): _SECONDS,
            vol.Optional("buffer_dir"): _PATH,
            vol.Optional("state_dir"): _PATH,
        },
        vol.Optional("hub"): {
            vol.Required("address"): vol.Any(_addresses, [_addresses]),
            vol.Optional("token_file"): _PATH,
            vol.Optional("tls", default=False): vol.Any(
                bool,
                {
                    vol.Optional("ca"): _PATH,
                    vol.Optional("cert"): _PATH,
                    vol.Optional("key"): _PATH,
                },
            ),
        },
        vol.Required("devices"): vol.All(list, vol.Length(min=1, msg="a site needs a device")),
    }
)
_DEVICE_HEAD = vol.Schema(
    {vol.Required("id"): _ID, vol.Required("kind"): _KIND},
    extra=vol.ALLOW_EXTRA,
)


@dataclass(frozen=True, slots=True)
class HubFileSettings:
    """The hub link a site file names; the token itself stays out of the file."""

    addresses: tuple[str, ...]
    token_file: Path | None = None
    tls: bool = False
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None


@dataclass(frozen=True, slots=True)
class SiteFile:
    """A validated site file: the site, and how its agent runs."""

    description: SiteDescription
    """The site; its ``hub`` is set once the agent's token is known (``edge-ems agent``)."""
    agent_id: str
    hub: HubFileSettings | None
    state_dir: Path | None
    """Where the agent keeps what devices learned (default: the buffer directory)."""


def parse_site_file(data: Any, *, source: str = "<site file>") -> SiteFile:
    """Validate a site file's content; :class:`SiteFileError` names the key and the reason."""
    valid = apply_schema(
        _SITE, data, source=source, expected="site, devices, ...", error=SiteFileError
    )
    devices = tuple(_device(raw, index, source) for index, raw in enumerate(valid["devices"]))
    seen: set[str] = set()
    for spec in devices:
        if spec.device_id in seen:
            raise SiteFileError(
                "two devices have this id", source=source, path=f"devices.{spec.device_id}"
            )
        seen.add(spec.device_id)
    site, control, agent = valid["site"], valid["control"], valid["agent"]
    agent_id = agent.get("id", site["id"])
    buffer_dir = _optional_path(agent.get("buffer_dir"))
    description = SiteDescription(
        site_id=site["id"],
        name=site.get("name", site["id"]),
        devices=devices,
        policy=ControlPolicy(**control),
        poll_interval=valid["poll_interval"],
        gateway_id=agent.get("gateway_id", agent_id),
        flush_interval=agent["flush_interval"],
        buffer_dir=buffer_dir,
    )
    return SiteFile(
        description=description,
        agent_id=agent_id,
        hub=_hub(valid.get("hub")),
        state_dir=_optional_path(agent.get("state_dir")) or buffer_dir,
    )


def load_site_file(path: str | Path) -> SiteFile:
    """Read and validate a site file (blocking: call it before the loop or in an executor)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise SiteFileError(f"cannot read: {err}", source=str(path)) from None
    return parse_site_file(data, source=str(path))


def _device(raw: Any, index: int, source: str) -> DeviceSpec:
    head = apply_schema(
        _DEVICE_HEAD, raw, source=source, expected="id and kind", error=SiteFileError,
        prefix=f"devices.{index}",
    )  # fmt: skip
    device_id = head["id"]
    schema = vol.Schema({**_COMMON, **_KINDS[head["kind"]]})
    valid = apply_schema(
        schema, raw, source=source, expected="id and kind", error=SiteFileError,
        prefix=f"devices.{device_id}",
    )  # fmt: skip
    for check in _CHECKS.get(head["kind"], ()):
        problem = check(valid)
        if problem is not None:
            key, reason = problem
            raise SiteFileError(reason, source=source, path=f"devices.{device_id}.{key}")
    settings = {
        key: value
        for key, value in valid.items()
        if key not in ("id", "kind", "name", "poll_interval", "battery")
    }
    limits = _limits(valid.get("battery"))
    if limits is None and head["kind"] == keys.DeviceKind.SIM_BESS:
        limits = AssetLimits(
            valid[keys.MAX_CHARGE_W], valid[keys.MAX_DISCHARGE_W], valid[keys.CAPACITY_WH]
        )
    return DeviceSpec(
        device_id=device_id,
        name=valid.get("name", device_id),
        kind=head["kind"],
        settings=settings,
        limits=limits,
        poll_interval=valid.get("poll_interval"),
    )


def _modbus_link(valid: Mapping[str, Any]) -> tuple[str, str] | None:
    if valid[keys.TRANSPORT] == keys.TRANSPORT_RTU:
        if keys.SERIAL_PORT not in valid:
            return keys.SERIAL_PORT, "required for transport rtu"
    elif keys.HOST not in valid:
        return keys.HOST, f"required for transport {valid[keys.TRANSPORT]}"
    return None


def _opcua_security(valid: Mapping[str, Any]) -> tuple[str, str] | None:
    if valid[keys.SECURITY] == keys.SECURITY_NONE:
        return None
    for key in (keys.CERTIFICATE, keys.PRIVATE_KEY):
        if key not in valid:
            return key, f"required with security {valid[keys.SECURITY]}"
    return None


_CHECKS: Mapping[str, tuple[Callable[[Mapping[str, Any]], tuple[str, str] | None], ...]] = {
    keys.DeviceKind.MODBUS: (_modbus_link,),
    keys.DeviceKind.OPCUA: (_opcua_security,),
}
"""What one key alone cannot say: settings that depend on each other."""


def _limits(battery: Mapping[str, float] | None) -> AssetLimits | None:
    if battery is None:
        return None
    return AssetLimits(
        battery[keys.MAX_CHARGE_W], battery[keys.MAX_DISCHARGE_W], battery[keys.CAPACITY_WH]
    )


def _hub(hub: Mapping[str, Any] | None) -> HubFileSettings | None:
    if hub is None:
        return None
    address = hub["address"]
    addresses = (
        tuple(part for text in address for part in text) if isinstance(address, list) else address
    )
    tls = hub["tls"]
    files = tls if isinstance(tls, dict) else {}
    return HubFileSettings(
        addresses=addresses,
        token_file=_optional_path(hub.get("token_file")),
        tls=tls is True or isinstance(tls, dict),
        tls_ca=_optional_path(files.get("ca")),
        tls_cert=_optional_path(files.get("cert")),
        tls_key=_optional_path(files.get("key")),
    )


def _optional_path(text: str | None) -> Path | None:
    return None if text is None else Path(text)
