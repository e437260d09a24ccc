"""The hub's configuration: the app's ``/data/options.json``, a YAML file, or the environment.

One flat schema (voluptuous) serves every source, because the app's options UI is flat too.
The environment overrides any scalar key as ``EDGE_EMS_<KEY>`` (``EDGE_EMS_API_PORT=8099``),
``DATABASE_URL`` selects PostgreSQL, and ``EDGE_EMS_AGENTS`` (``id=token,id=token``) adds
agents, which is how containers pass secrets. The planner is configured by a ``planner:``
section, or a file of its own named by ``planner_file`` (how the app's options can name
one); see :mod:`.planning.config`. Loading reads files: call it before the event loop runs.

The app's options spell the gateway's TLS as Home Assistant's own apps do (``ssl``,
``certfile`` and ``keyfile`` in ``/ssl``); :func:`app_config` turns them into the hub's keys:
with ``ssl`` the certificate from ``/ssl``, without it one the hub makes and keeps.
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
from .planning.config import PlannerConfig, parse_planner_config
from .redact import has_userinfo
from .sessions import InventoryAsset, load_inventory, parse_inventory

ADDON_OPTIONS = Path("/data/options.json")
"""Where the Supervisor writes the app's options."""

ENV_PREFIX = "EDGE_EMS_"
MIN_TOKEN_LENGTH = 16
TOKEN_PATTERN = "^[!-~]{16,}$"  # noqa: S105 - a pattern, not a secret
"""A token: 16 or more visible ASCII characters, as HTTP and gRPC headers carry them. The
app's options schema uses the same pattern, and both match it as the Supervisor does
(:func:`re.match`, so a trailing newline passes, and is dropped)."""
APP_TLS_OPTIONS = ("ssl", "certfile", "keyfile")
"""The app's TLS options (Home Assistant's spelling); see :func:`app_config`."""
APP_SSL_DIR = "/ssl"
APP_SELF_SIGNED_DIR = "/data/gateway-tls"
APP_CERTIFICATE_COPY = "/share/edge_ems/gateway.crt"
MAX_MEASUREMENT_POINTS = 200_000
"""Default for the most buckets (series times buckets in the range) one ``/measurements``
request may return: about 20 MB of JSON. 24 h of 500 series is 720,000 at minute resolution,
144,000 at 5 minutes."""

_PORT = vol.All(vol.Coerce(int), vol.Range(min=0, max=65535))
_TOKEN = vol.All(
    str,
    vol.Match(
        TOKEN_PATTERN,
        msg=f"a token needs at least {MIN_TOKEN_LENGTH} characters, all visible ASCII (no spaces)",
    ),
    lambda token: token.rstrip("\n"),
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
    {
        vol.Required("id"): vol.All(
            str,
            vol.Match(
                r"^[^/\s]+$",
                msg="an agent id has no '/' or spaces (its token serves <id>/<name> sub-agents)",
            ),
        ),
        vol.Required("token"): _TOKEN,
    }
)

# Keys whose value is a single scalar: these are the ones the environment can override.
_SCALARS: dict[Any, Any] = {
    vol.Optional("api_host", default="127.0.0.1"): _PATH,
    vol.Optional("api_port", default=8099): _PORT,
    vol.Required("api_token"): _TOKEN,
    vol.Optional("trust_ingress", default=False): _boolean,
    vol.Optional("grpc_host", default="127.0.0.1"): _PATH,
    vol.Optional("grpc_port", default=50051): _PORT,
    vol.Optional("grpc_internal_port"): vol.Any(None, _PORT),
    vol.Optional("store_path", default="edge_ems.sqlite"): _PATH,
    vol.Optional("database_url"): vol.Any(None, str),
    vol.Optional("journal_dir"): vol.Any(None, _PATH),
    vol.Optional("instance_name"): vol.Any(None, vol.All(str, vol.Length(max=128))),
    vol.Optional("inventory_file"): vol.Any(None, str),
    vol.Optional("planner_file"): vol.Any(None, str),
    vol.Optional("parquet_dir"): vol.Any(None, str),
    vol.Optional("uplink_url"): vol.Any(None, str),
    vol.Optional("uplink_token"): vol.Any(None, str),
    vol.Optional("uplink_budget_mb", default=100.0): _POSITIVE,
    vol.Optional("uplink_ca_file"): vol.Any(None, str),
    vol.Optional("hub_id"): vol.Any(None, vol.All(str, vol.Length(max=128))),
    vol.Optional("tls_certfile"): vol.Any(None, str),
    vol.Optional("tls_keyfile"): vol.Any(None, str),
    vol.Optional("tls_client_ca"): vol.Any(None, str),
    vol.Optional("tls_self_signed_dir"): vol.Any(None, str),
    vol.Optional("tls_certificate_copy"): vol.Any(None, str),
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
        vol.Optional("tls_names", default=[]): [vol.All(str, vol.Length(min=1, max=253))],
        vol.Optional("planner"): vol.Any(None, dict),
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
    grpc_internal_port: int | None = None
    """A second, plaintext gateway port on ``grpc_host`` for agents on a trusted network (the
    app: Home Assistant over the Supervisor's internal network), when the main one has TLS."""
    agents: Mapping[str, str] = field(default_factory=dict)
    """Agent id to its token."""
    inventory: tuple[InventoryAsset, ...] = ()
    store_path: str = "edge_ems.sqlite"
    database_url: str | None = None
    journal_dir: str | None = None
    """Where accepted telemetry is journaled until the store writes its minutes (agents are
    acknowledged once it is journaled); by default beside the store file, one per hub."""
    instance_name: str | None = None
    """Names this hub process among hubs sharing one database (``DATABASE_URL``); by
    default its host name and gateway port."""
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
    tls_self_signed_dir: str | None = None
    """Without ``tls_certfile``: serve TLS with a certificate the hub makes (and keeps) here."""
    tls_names: tuple[str, ...] = ()
    """Host names and addresses agents dial, put in that certificate besides the usual ones."""
    tls_certificate_copy: str | None = None
    """Where to write a copy of that certificate, for agents to trust."""
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
    planner: PlannerConfig | None = None
    """The planner's section; ``None`` leaves the planner off."""

    def __repr__(self) -> str:  # never print secrets into a log
        api, grpc = f"{self.api_host}:{self.api_port}", f"{self.grpc_host}:{self.grpc_port}"
        return f"HubConfig(api={api}, grpc={grpc}, agents={sorted(self.agents)})"


def parse_config(data: Any, *, source: str = "<config>", base_dir: Path | None = None) -> HubConfig:
    """Validate a configuration mapping; :class:`ConfigError` names the key and the reason.
    Relative paths in the planner's section are taken from ``base_dir``."""
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
    if valid.get("tls_client_ca") and not (
        valid.get("tls_certfile") or valid.get("tls_self_signed_dir")
    ):
        raise ConfigError(f"{source}: tls_client_ca needs the gateway to serve TLS")
    _check_uplink(valid, source)
    planner = _planner(valid, source, base_dir)
    scalars = {
        key: valid[key]
        for key in SCALAR_KEYS
        if key not in ("inventory_file", "planner_file") and valid.get(key) not in (None, "")
    }
    return HubConfig(
        **scalars, agents=agents, inventory=inventory, tls_names=tuple(valid["tls_names"]),
        planner=planner,
    )  # fmt: skip


def _planner(valid: Mapping[str, Any], source: str, base_dir: Path | None) -> PlannerConfig | None:
    """The planner's section, inline or from ``planner_file`` (not both)."""
    inline, file = valid.get("planner"), valid.get("planner_file")
    if inline is not None and file:
        raise ConfigError(f"{source}: give planner or planner_file, not both")
    if file:
        path = Path(file) if Path(file).is_absolute() or base_dir is None else base_dir / file
        return parse_planner_config(read_file(path), source=str(path), base_dir=path.parent)
    if inline is None:
        return None
    return parse_planner_config(inline, source=source, base_dir=base_dir)


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
    found = _scalar_overrides(env)
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


def load_config(
    path: str | Path | None = None, env: Mapping[str, str] | None = None, *, app: bool = False
) -> HubConfig:
    """The configuration from ``path`` (else the app's options file, if there is one), with
    the environment's overrides on top; with ``app``, ``path`` holds the app's options
    (see :func:`app_config`)."""
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
    if app:
        return app_config(data, env, source=name)
    base_dir = source.parent if name != "the environment" else None
    return _with_environment(data, env, name, base_dir)


def app_config(
    options: Mapping[str, Any], env: Mapping[str, str], *, source: str = "the app's options"
) -> HubConfig:
    """The hub's configuration from the app's options (and the environment its run script
    sets): ``ssl`` with ``certfile`` and ``keyfile`` in ``/ssl`` give the gateway that
    certificate; without ``ssl`` the hub makes one, keeps it in ``/data`` and copies it to
    ``/share/edge_ems/gateway.crt`` for agents to trust."""
    data = {key: value for key, value in options.items() if key not in APP_TLS_OPTIONS}
    if options.get("ssl"):
        for option, key in (("certfile", "tls_certfile"), ("keyfile", "tls_keyfile")):
            name = options.get(option)
            if not isinstance(name, str) or not name:
                raise ConfigError(f"{source}: ssl: {option} names no file in {APP_SSL_DIR}")
            data[key] = str(Path(APP_SSL_DIR) / name)
    else:
        data["tls_self_signed_dir"] = APP_SELF_SIGNED_DIR
        data["tls_certificate_copy"] = APP_CERTIFICATE_COPY
    return _with_environment(data, env, source)


def _with_environment(
    data: Mapping[str, Any], env: Mapping[str, str], source: str, base_dir: Path | None = None
) -> HubConfig:
    overrides = environment_overrides(env)
    agents = list(data.get("agents") or []) + overrides.pop("agents", [])
    return parse_config({**data, **overrides, "agents": agents}, source=source, base_dir=base_dir)


@dataclass(frozen=True, slots=True)
class ApiFallback:
    """What the API needs to report a configuration error, from whatever of it is valid."""

    api_host: str = "127.0.0.1"
    api_port: int = 8099
    api_token: str | None = None
    trust_ingress: bool = False
    rate_limit: float = 20.0
    rate_burst: int = 40
    log_level: str = "info"
    log_format: str = "json"


def api_fallback(path: str | Path | None, env: Mapping[str, str] | None = None) -> ApiFallback:
    """The API's own settings from a configuration that failed as a whole: each taken when
    it is valid by itself, its default otherwise."""
    env = os.environ if env is None else env
    data: Any = {}
    if path is not None:
        try:
            data = read_file(Path(path))
        except ConfigError:
            data = {}
    if not isinstance(data, Mapping):
        data = {}
    merged = {**data, **_scalar_overrides(env)}  # agents left out: they may be what is broken
    found: dict[str, Any] = {}
    for field_name in ApiFallback.__dataclass_fields__:
        marker = next(key for key in _SCALARS if str(key) == field_name)
        if field_name not in merged:
            continue
        try:
            found[field_name] = _SCALARS[marker](merged[field_name])
        except vol.Invalid:
            continue
    return ApiFallback(**found)


def _scalar_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    return {
        key: env[ENV_PREFIX + key.upper()] for key in SCALAR_KEYS if ENV_PREFIX + key.upper() in env
    }
