"""The hub process: gRPC gateway, minute store, planner, Parquet export, uplink and REST API
together.

:class:`Hub` starts the parts in dependency order (store, audit trail, gateway, planner,
exporters, API) and stops them in reverse, so that on SIGTERM no telemetry arrives after the
store's last flush: agents keep and resend whatever was not yet acknowledged as durable.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from ..exceptions import ConfigError
from ..gateway.tls import ServerTls
from ..pointmap import PointMap, load_catalog
from .api import ApiServer, ApiSettings, AuditTrail, HubServices, create_app
from .api.services import StatusSource
from .config import HubConfig
from .gateway import GatewayServer, GatewaySettings
from .redact import display_url
from .session_log import SessionLog
from .store import MinuteStore, open_store
from .tasks import Supervisor
from .tls import GatewayCertificate, describe, self_signed

if TYPE_CHECKING:
    from .planning.parts import PlannerParts

_LOGGER = logging.getLogger(__name__)

HUB_ID = "hub_id"
"""The store setting holding the hub id made on first start."""


class Hub:
    """One hub: start it, serve until told to stop, stop it.

    ``restart_backoff`` is the base and cap (seconds) of the waits before a failed
    background task (Parquet export, uplink) is started again.
    """

    def __init__(
        self, config: HubConfig, *, restart_backoff: tuple[float, float] = (1.0, 300.0)
    ) -> None:
        self.config = config
        self.hub_id: str | None = None
        self.instance = ""
        """This process's name among hubs sharing a database ("" on SQLite)."""
        self.store: MinuteStore | None = None
        self.audit: AuditTrail | None = None
        self.gateway: GatewayServer | None = None
        self.sessions: SessionLog | None = None
        self.planner: PlannerParts | None = None
        self.api: ApiServer | None = None
        self.api_port: int | None = None
        self.grpc_port: int | None = None
        self.tasks = Supervisor(backoff_base=restart_backoff[0], backoff_cap=restart_backoff[1])
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the store and start every part; on failure, stop what started."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        config = self.config
        database: str | Path = config.database_url or Path(config.store_path)
        # A SQLite file is one hub's own; PostgreSQL may be shared by several.
        self.instance = (
            config.instance_name or f"{socket.gethostname()}:{config.grpc_port}"
            if config.database_url
            else ""
        )
        journal = journal_dir(config, self.instance)
        self.store = open_store(database, instance=self.instance, journal=journal)
        await self.store.open()
        backend = self.store.backend
        shared = f", shared as hub {self.instance}" if self.instance else ""
        _LOGGER.info(
            "Store: %s%s; ingest journal in %s",
            backend.where,
            shared,
            journal,
            extra={"store": backend.name},
        )
        self.hub_id = config.hub_id or await backend.keep_first(
            HUB_ID, f"hub-{secrets.token_hex(8)}"
        )
        self.store.start()
        self.audit = AuditTrail(self.store.backend)
        self.audit.start()
        certificate = await asyncio.to_thread(gateway_certificate, config)
        self.gateway = GatewayServer(
            self.store,
            config.agents,
            inventory=config.inventory,
            tls=None if certificate is None else certificate.tls,
            settings=GatewaySettings(
                setpoint_timeout=config.setpoint_timeout, max_sub_agents=config.max_sub_agents
            ),
            on_audit=self.audit.report,
            claims=self.store.backend,
        )
        internal = config.grpc_internal_port
        self.grpc_port = await self.gateway.start(
            f"{config.grpc_host}:{config.grpc_port}",
            internal=None if internal is None else f"{config.grpc_host}:{internal}",
        )
        self.sessions = SessionLog(
            self.gateway.registry,
            self.store.backend,
            instance=self.instance,
            on_remote_connect=self.gateway.remote_site_connected,
        )
        self.sessions.start()
        await self._planner(database)
        maps: list[PointMap] = list((await asyncio.to_thread(load_catalog)).values())
        services = HubServices(
            gateway=self.gateway,
            store=self.store,
            audit=self.audit,
            grpc_port=self.grpc_port,
            registermaps=maps,
            parquet=self._parquet(),
            uplink=self._uplink(),
            tasks=self.tasks,
            gateway_tls=certificate,
            planner=None if self.planner is None else self.planner.service,
        )
        settings = ApiSettings(
            token=config.api_token,
            trust_ingress=config.trust_ingress,
            rate_limit=config.rate_limit,
            rate_burst=config.rate_burst,
            max_body_bytes=config.max_body_kib * 1024,
            max_points=config.max_measurement_points,
        )
        self.api = ApiServer(create_app(services, settings))
        self.api_port = await self.api.start(config.api_host, config.api_port)
        _LOGGER.info(
            "Hub ready: REST API on port %d, gateway on port %d, store %s",
            self.api_port,
            self.grpc_port,
            self.store.backend.name,
            extra={"api_port": self.api_port, "grpc_port": self.grpc_port},
        )

    async def _planner(self, database: str | Path) -> None:
        config = self.config.planner
        if config is None:
            return
        from .planning.parts import open_planner  # numpy and HiGHS load only with it

        assert self.store is not None
        assert self.gateway is not None
        assert self.audit is not None
        self.planner = await open_planner(
            config,
            database=database,
            instance=f"{self.hub_id} {self.instance}".strip(),
            store=self.store,
            gateway=self.gateway,
            audit=self.audit.add,
        )
        for name, job in self.planner.jobs():
            self.tasks.spawn(name, job)

    def _parquet(self) -> StatusSource | None:
        if not self.config.parquet_dir:
            return None
        from .parquet import ParquetExporter  # pyarrow loads only when Parquet is on

        assert self.store is not None
        exporter = ParquetExporter(self.store, Path(self.config.parquet_dir))
        self.tasks.spawn("parquet", exporter.run)
        return exporter

    def _uplink(self) -> StatusSource | None:
        if not self.config.uplink_url:
            return None
        from .uplink import Uplink, UplinkSettings

        assert self.store is not None
        assert self.hub_id is not None
        settings = UplinkSettings(
            url=self.config.uplink_url,
            token=self.config.uplink_token,
            hub_id=self.hub_id,
            ca_file=self.config.uplink_ca_file,
            budget_bytes=round(self.config.uplink_budget_mb * 1024 * 1024),
        )
        self._session = aiohttp.ClientSession()
        uplink = Uplink(self.store, settings, self._session)
        self.tasks.spawn("uplink", uplink.run)
        _LOGGER.info("Uplink to %s as hub %s", display_url(settings.url), settings.hub_id)
        return uplink

    async def stop(self) -> None:
        """Stop taking requests and agents, then flush the store and close it."""
        if self.api is not None:
            await self.api.stop()
            self.api = None
        await self.tasks.stop()
        if self.planner is not None:  # its jobs have stopped: no setpoint goes out any more
            if self.gateway is not None:
                self.gateway.planner = None
            await self.planner.close()
            self.planner = None
        if self.gateway is not None:
            await self.gateway.stop()
            self.gateway = None
        if self.sessions is not None:  # after the gateway: its sessions have ended now
            await self.sessions.stop()
            self.sessions = None
        if self.audit is not None:
            await self.audit.stop()
            self.audit = None
        if self.store is not None:
            await self.store.close()
            self.store = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        _LOGGER.info("Hub stopped")


def gateway_certificate(config: HubConfig) -> GatewayCertificate | None:
    """The certificate the gateway serves: the configured one, or the one the hub keeps
    (made on first start), or none (blocking: reads and writes files)."""
    if config.tls_certfile and config.tls_keyfile:
        tls = ServerTls.from_files(config.tls_certfile, config.tls_keyfile, config.tls_client_ca)
        certificate = describe(tls)
        where = f"certificate {config.tls_certfile}"
    elif config.tls_self_signed_dir:
        client_ca = None
        if config.tls_client_ca:
            try:
                client_ca = Path(config.tls_client_ca).read_bytes()
            except OSError as err:
                raise ConfigError(
                    f"cannot read the client CA {config.tls_client_ca}: {err}"
                ) from None
        certificate = self_signed(config.tls_self_signed_dir, config.tls_names, client_ca=client_ca)
        where = f"self-signed certificate the hub made, in {config.tls_self_signed_dir}"
        if config.tls_certificate_copy:
            where += f" (a copy for agents to trust: {config.tls_certificate_copy})"
            _copy(certificate.tls.certificate_chain, Path(config.tls_certificate_copy))
    else:
        return None
    _LOGGER.info(
        "Gateway TLS: %s, SHA-256 fingerprint %s, for %s",
        where,
        certificate.fingerprint,
        ", ".join(certificate.names) or "no names",
        extra={"tls_fingerprint": certificate.fingerprint},
    )
    return certificate


def _copy(certificate: bytes, target: Path) -> None:
    try:
        if target.exists() and target.read_bytes() == certificate:
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(certificate)
    except OSError as err:
        raise ConfigError(f"cannot write the gateway's certificate to {target}: {err}") from None


def journal_dir(config: HubConfig, instance: str) -> Path:
    """Where this hub journals accepted telemetry: ``journal_dir``, else beside the store
    file (hubs sharing a database each in their own, named by their instance)."""
    if config.journal_dir:
        return Path(config.journal_dir)
    own = "." + re.sub(r"[^A-Za-z0-9._-]", "_", instance) if instance else ""
    return Path(f"{config.store_path}{own}.journal")
