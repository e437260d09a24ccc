"""The hub's configuration: the app's ``/data/options.json``, a YAML file, or the environment.

One flat schema (voluptuous) serves every source, because the app's options UI is flat too.
The environment overrides any scalar key as ``EDGE_EMS_<KEY>`` (``EDGE_EMS_API_PORT=8099``),
``DATABASE_URL`` selects PostgreSQL, and ``EDGE_EMS_AGENTS`` (``id=token,id=token``) adds
agents, which is how containers pass secrets. Loading reads files: call it before the event
loop runs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import voluptuous as vol
import yaml

from ..exceptions import ConfigError
from .redact import has_userinfo
from .sessions import InventoryAsset, load_inventory, parse_inventory

ADDON_OPTIONS = Path("/data/options.json")
"""Where the Supervisor writes the app's options."""

ENV_PREFIX = "EDGE_EMS_"
MIN_TOKEN_LENGTH = 16
MAX_MEASUREMENT_POINTS = 200_000
"""Default for the most buckets (series times buckets in the range) one ``/measurements``
request may return: about 20 MB of JSON. 24 h of 500 series is 720,000 at minute resolution,
144,000 at 5 minutes."""

_PORT = vol.All(vol.Coerce(int), vol.Range(min=0, max=65535))
_TOKEN = vol.All(
    str,
    vol.Length(min=MIN_TOKEN_LENGTH, msg=f"a token needs at least {MIN_TOKEN_LENGTH} characters"),
)
_PATH = vol.All(str, vol.Length(min=1))
_POSITIVE = vol.All(vol.Coerce(float), vol.Range(min=0, min_included=False))


def _boolean(value: Any) -> bool:
    """Booleans from YAML and JSON, and the strings an environment variable holds."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"0", "false", "no", "off"}:
        return False
    raise vol.Invalid(f"expected a boolean, got {value!r}")


_AGENT = vol.Schema(
    {vol.Required("id"): vol.All(str, vol.Length(min=1)), vol.Required("token"): _TOKEN}
)

# Keys whose value is a single scalar: these are the ones the environment can override.
_SCALARS: dict[Any, Any] = {
    vol.Optional("api_host", default="127.0.0.1"): _PATH,
    vol.Optional("api_port", default=8099): _PORT,
    vol.Required("api_token"): _TOKEN,
    vol.Optional("trust_ingress", default=False): _boolean,
    vol.Optional("grpc_host", default="127.0.0.1"): _PATH,
    vol.Optional("grpc_port", default=50051): _PORT,
    vol.Optional("store_path", default="edge_ems.sqlite"): _PATH,
    vol.Optional("database_url"): vol.Any(None, str),
    vol.Optional("inventory_file"): vol.Any(None, str),
    vol.Optional("parquet_dir"): vol.Any(None, str),
    vol.Optional("uplink_url"): vol.Any(None, str),
    vol.Optional("uplink_token"): vol.Any(None, str),
    vol.Optional("uplink_budget_mb", default=100.0): _POSITIVE,
    vol.Optional("uplink_ca_file"): vol.Any(None, str),
    vol.Optional("hub_id"): vol.Any(None, vol.All(str, vol.Length(max=128))),
    vol.Optional("tls_certfile"): vol.Any(None, str),
    vol.Optional("tls_keyfile"): vol.Any(None, str),
    vol.Optional("tls_client_ca"): vol.Any(None, str),
    vol.Optional("rate_limit", default=20.0): _POSITIVE,
    vol.Optional("rate_burst", default=40): vol.All(vol.Coerce(int), vol.Range(min=1)),
    vol.Optional("max_body_kib", default=64): vol.All(vol.Coerce(int), vol.Range(min=1, max=4096)),
    vol.Optional("max_measurement_points", default=MAX_MEASUREMENT_POINTS): vol.All(
        vol.Coerce(int), vol.Range(min=1)
    ),
    vol.Optional("setpoint_timeout", default=10.0): _POSITIVE,
    vol.Optional("max_sub_agents", default=64): vol.All(vol.Coerce(int), vol.Range(min=0)),
    vol.Optional("log_level", default="info"): vol.All(
        vol.Lower, vol.In(["debug", "info", "warning", "error"])
    ),
    vol.Optional("log_format", default="json"): vol.All(vol.Lower, vol.In(["json", "text"])),
}
_SCHEMA = vol.Schema(
    {
        **_SCALARS,
        vol.Optional("agents", default=[]): [_AGENT],
        vol.Optional("assets", default=[]): list,
    }
)
SCALAR_KEYS = tuple(str(key) for key in _SCALARS)


@dataclass(frozen=True, slots=True)
class HubConfig:
    """A validated hub configuration."""

    api_token: str
    api_host: str = "127.0.0.1"
    api_port: int = 8099
    trust_ingress: bool = False
    """Trust requests the Supervisor's ingress proxy forwards (the app sets it)."""
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    agents: Mapping[str, str] = field(default_factory=dict)
    """Agent id to its token."""
    inventory: tuple[InventoryAsset, ...] = ()
    store_path: str = "edge_ems.sqlite"
    database_url: str | None = None
    parquet_dir: str | None = None
    uplink_url: str | None = None
    uplink_token: str | None = None
    uplink_budget_mb: float = 100.0
    uplink_ca_file: str | None = None
    hub_id: str | None = None
    """Names this hub upstream (part of every uplink batch's idempotency key); unset, a
    random one is made on first start and kept in the store."""
    tls_certfile: str | None = None
    tls_keyfile: str | None = None
    tls_client_ca: str | None = None
    rate_limit: float = 20.0
    """Requests per second each client may make, on average."""
    rate_burst: int = 40
    max_body_kib: int = 64
    max_measurement_points: int = MAX_MEASUREMENT_POINTS
    """Most buckets one ``/measurements`` answer may hold; larger requests are refused."""
    setpoint_timeout: float = 10.0
    max_sub_agents: int = 64
    """Sub-agents (``<id>/<name>``) one agent's token may have connected at once."""
    log_level: str = "info"
    log_format: str = "json"

    def __repr__(self) -> str:  # never print secrets into a log
        api, grpc = f"{self.api_host}:{self.api_port}", f"{self.grpc_host}:{self.grpc_port}"
        return f"HubConfig(api={api}, grpc={grpc}, agents={sorted(self.agents)})"


def parse_config(data: Any, *, source: str = "<config>") -> HubConfig:
    """Validate a configuration mapping; :class:`ConfigError` names the key and the reason."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping of options")
    try:
        valid = _SCHEMA(dict(data))
    except vol.Invalid as err:
        where = ".".join(str(part) for part in err.path) or "(top)"
        raise ConfigError(f"{source}: {where}: {err.msg}") from None
    agents: dict[str, str] = {}
    for agent in valid["agents"]:
        if agent["id"] in agents:
            raise ConfigError(f"{source}: agents: {agent['id']!r} is listed twice")
        agents[agent["id"]] = agent["token"]
    inventory = parse_inventory(valid["assets"], source=f"{source}: assets")
    if valid.get("inventory_file"):
        inventory += load_inventory(valid["inventory_file"])
    ids = [asset.asset_id for asset in inventory]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{source}: assets: an asset id is configured twice")
    if bool(valid.get("tls_certfile")) != bool(valid.get("tls_keyfile")):
        raise ConfigError(f"{source}: tls_certfile and tls_keyfile go together")
    _check_uplink(valid, source)
    scalars = {
        key: valid[key]
        for key in SCALAR_KEYS
        if key != "inventory_file" and valid.get(key) not in (None, "")
    }
    return HubConfig(**scalars, agents=agents, inventory=inventory)


def _check_uplink(valid: Mapping[str, Any], source: str) -> None:
    url = valid.get("uplink_url")
    if not url:
        return
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigError(f"{source}: uplink_url: expected an http(s) URL")
    if has_userinfo(url) and valid.get("uplink_token"):
        # aiohttp refuses to send both, so the uplink would fail on every batch.
        raise ConfigError(
            f"{source}: uplink_url carries a user and password and uplink_token is set too: "
            "give one of them (the token is sent as a bearer token)"
        )


def read_file(path: Path) -> Any:
    """A JSON (``.json``) or YAML file's content."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: {err}") from None
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'}: {err}") from None


def environment_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """The options the environment sets."""
    found: dict[str, Any] = {
        key: env[ENV_PREFIX + key.upper()] for key in SCALAR_KEYS if ENV_PREFIX + key.upper() in env
    }
    if env.get("DATABASE_URL"):
        found.setdefault("database_url", env["DATABASE_URL"])
    agents = env.get(ENV_PREFIX + "AGENTS", "")
    if agents.strip():
        parsed = []
        for entry in agents.split(","):
            agent_id, sep, token = entry.strip().partition("=")
            if not sep:
                raise ConfigError(f"{ENV_PREFIX}AGENTS: {entry.strip()!r} is not id=token")
            parsed.append({"id": agent_id, "token": token})
        found["agents"] = parsed
    return found


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> HubConfig:
    """The configuration from ``path`` (else the app's options file, if there is one), with
    the environment's overrides on top."""
    env = os.environ if env is None else env
    source = Path(path) if path is not None else ADDON_OPTIONS
    data: Any = {}
    name = "the environment"
    if path is not None or source.exists():
        name = str(source)
        data = read_file(source)
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: expected a mapping of options")
    overrides = environment_overrides(env)
    agents = list(data.get("agents") or []) + overrides.pop("agents", [])
    return parse_config({**data, **overrides, "agents": agents}, source=name)
