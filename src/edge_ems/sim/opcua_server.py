"""A simulated battery energy storage system (BESS) on an OPC UA server (asyncua).

The server exposes an object ``BESS`` in namespace :data:`NAMESPACE` with telemetry variables
(state of charge, power, voltage, current, temperature, energy counters), identity strings and
one writable variable, ``PowerSetpoint`` (W, + discharge), which the server clamps to the
battery's power rating as it is written, as a real BESS does. Every ``interval`` seconds the
battery takes the setpoint as its command (limited by its power and state-of-charge limits),
integrates its state of charge and publishes the new telemetry. The bundled node map
``sim_bess`` (``edge_ems.opcua``) describes it::

    async with OpcUaBessSimulator(port=4840) as sim:
        device = OpcUaDevice("bess", load_catalog()["sim_bess"], url=sim.url)

Security: pass ``security`` (certificate, key and the policies to offer) to require signed or
encrypted channels, and ``users`` to require a user name and password instead of anonymous
access. Building OPC UA's standard address space takes a second or two; with
``address_space_cache`` (a file path) asyncua builds it once and loads it from there after.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shelve
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, Self

from asyncua import ua
from asyncua.common.node import Node
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.address_space import NodeData
from asyncua.server.server import Server
from asyncua.server.user_managers import UserManager
from asyncua.ua.attribute_ids import AttributeIds

from .bms_mqtt import bms_values
from .physics import Battery

NAMESPACE = "urn:edge-ems:sim:bess"
"""Namespace URI of the simulator's nodes; node ids are ``nsu=<NAMESPACE>;s=BESS.<Name>``."""
APPLICATION_URI = "urn:edge-ems:sim:bess:server"
"""The server's application URI, which its certificate must carry."""
SETPOINT = "PowerSetpoint"

# Telemetry variable -> the metric it shows.
TELEMETRY: Mapping[str, str] = MappingProxyType(
    {
        "Soc": "soc_pct",
        "Soh": "soh_pct",
        "Power": "battery_power_w",
        "Voltage": "battery_voltage_v",
        "Current": "battery_current_a",
        "Temperature": "battery_temperature_c",
        "ChargeEnergy": "battery_charge_energy_wh",
        "DischargeEnergy": "battery_discharge_energy_wh",
        "Capacity": "battery_capacity_wh",
        "MaxChargeCurrent": "battery_charge_current_limit_a",
        "MaxDischargeCurrent": "battery_discharge_current_limit_a",
    }
)


@dataclass(frozen=True, slots=True)
class ServerSecurity:
    """The server's certificate and key, and the security policies it offers."""

    certificate: Path
    private_key: Path
    policies: Sequence[str] = ("Basic256Sha256_SignAndEncrypt", "Basic256Sha256_Sign")
    """Names of :class:`asyncua.ua.SecurityPolicyType` members (``NoSecurity`` allows plain)."""


class _PasswordUsers(UserManager):
    """Accepts the given user names with their passwords, nobody else."""

    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = dict(users)

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        if username is not None and self._users.get(username) == password:
            return User(role=UserRole.User, name=username)
        return None


class OpcUaBessSimulator:
    """An OPC UA server whose BESS follows its power setpoint."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 4840,
        battery: Battery | None = None,
        interval: float = 0.5,
        security: ServerSecurity | None = None,
        users: Mapping[str, str] | None = None,
        serial: str = "SIM-BESS-0001",
        address_space_cache: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.battery = battery or Battery()
        self.url = f"opc.tcp://{host}:{port}/edge-ems/bess"
        self._interval = interval
        self._security = security
        self._users = users
        self._cache = address_space_cache
        self._identity = {"Manufacturer": "Edge EMS", "Model": "Simulated BESS", "Serial": serial}
        self._clock = clock
        self._server: Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start serving (a new server each time, so a stopped simulator can start again)."""
        if self._server is not None:
            return
        user_manager = _PasswordUsers(self._users) if self._users is not None else None
        server = Server(user_manager=user_manager)
        await server.init(self._cache)
        await server.set_application_uri(APPLICATION_URI)
        server.set_endpoint(self.url)
        server.set_server_name("Edge EMS simulated BESS")
        if self._users is not None:
            server.set_identity_tokens([ua.UserNameIdentityToken])
        if self._security is not None:
            await server.load_certificate(str(self._security.certificate))
            await server.load_private_key(str(self._security.private_key))
            server.set_security_policy(
                [ua.SecurityPolicyType[name] for name in self._security.policies]
            )
        else:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        nodes, setpoint = await self._build(server)
        await server.start()
        self._server = server
        self._task = asyncio.create_task(self._run(nodes, setpoint), name="edge-ems sim opcua")

    async def stop(self) -> None:
        """Stop serving; clients see the server go away."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        server, self._server = self._server, None
        if server is not None:
            await server.stop()
            close_address_space_cache(server)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _build(self, server: Server) -> tuple[dict[str, Node], Node]:
        index = ua.Int16(await server.register_namespace(NAMESPACE))

        def node_id(name: str) -> ua.NodeId:
            return ua.NodeId(ua.String(name), index)

        bess = await server.nodes.objects.add_object(node_id("BESS"), "BESS")
        values = bms_values(self.battery)
        nodes = {}
        for name, metric in TELEMETRY.items():
            initial = ua.Variant(float(values[metric] or 0.0), ua.VariantType.Double)
            nodes[name] = await bess.add_variable(node_id(f"BESS.{name}"), name, initial)
        for name, text in self._identity.items():
            await bess.add_variable(node_id(f"BESS.{name}"), name, text)
        setpoint = await bess.add_variable(
            node_id(f"BESS.{SETPOINT}"),
            SETPOINT,
            ua.Variant(0.0, ua.VariantType.Double),
        )
        await setpoint.set_writable()
        server.set_attribute_value_setter(setpoint.nodeid, self._clamp_setpoint)
        return nodes, setpoint

    def _clamp_setpoint(self, node: NodeData, attr: AttributeIds, value: ua.DataValue) -> None:
        """Store a written setpoint within the battery's power rating."""
        requested = value.Value.Value if value.Value is not None else None
        limited = min(
            self.battery.max_discharge_w, max(-self.battery.max_charge_w, requested or 0.0)
        )
        stored = ua.Variant(float(limited), ua.VariantType.Double)
        node.attributes[attr].value = dataclasses.replace(value, Value=stored)

    async def _run(self, nodes: Mapping[str, Node], setpoint: Node) -> None:
        while True:
            self.battery.command(float(await setpoint.read_value()))
            self.battery.advance(self._clock())
            values = bms_values(self.battery)
            for name, node in nodes.items():
                value = values[TELEMETRY[name]]
                await node.write_value(ua.Variant(float(value or 0.0), ua.VariantType.Double))
            await asyncio.sleep(self._interval)


def close_address_space_cache(server: Server) -> None:
    """Close the shelve a cached address space reads from, here on the loop's thread.

    asyncua offers no close for it and leaves it to garbage collection, and Python 3.14's
    sqlite-backed shelve refuses to close on any thread but the one that opened it.
    """
    source = getattr(server.iserver.aspace._nodes, "source", None)
    if isinstance(source, shelve.Shelf):
        source.close()
