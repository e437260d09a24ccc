"""The gateway as the planner uses it: a site's registered assets, setpoints to the agent
that serves an asset, plans to the site's agents."""

from __future__ import annotations

from ...gateway.model import AssetInfo, PlanUpdate, SetpointResult
from ...metrics import BATTERY_POWER
from ...readings import Value
from ..gateway import GatewayServer

ISSUED_BY = "planner"


class GatewayLink:
    """:class:`~.service.SiteLink` over the hub's :class:`GatewayServer`."""

    def __init__(self, gateway: GatewayServer) -> None:
        self._gateway = gateway

    def site_assets(self, site_id: str) -> dict[str, AssetInfo]:
        """What the site's agents registered last (connected or not), here or, for the
        agents of a shared database's other hubs, there (what is registered here wins)."""
        registry = self._gateway.registry
        found: dict[str, AssetInfo] = {}
        local = [registry.registration(agent_id) for agent_id in registry.site_agents(site_id)]
        for registration in [*registry.remote_site_registrations(site_id), *local]:
            if registration is not None:
                found.update({asset.asset_id: asset for asset in registration.assets})
        return found

    async def send_setpoint(
        self, site_id: str, asset_id: str, command: str, value: Value, *, ttl_s: float
    ) -> SetpointResult:
        """Battery power as a power setpoint (any agent takes it); other commands by name."""
        if command == BATTERY_POWER and isinstance(value, int | float):
            return await self._gateway.dispatch(
                float(value), issued_by=ISSUED_BY, asset_id=asset_id, ttl=ttl_s
            )
        return await self._gateway.dispatch(
            issued_by=ISSUED_BY, asset_id=asset_id, ttl=ttl_s, command=command, value=value
        )

    def send_plan(self, site_id: str, update: PlanUpdate) -> int:
        """To every connected agent of the site."""
        return self._gateway.send_plan(site_id, update)

    def serves(self, asset_id: str) -> bool:
        """Whether an agent connected to this hub serves ``asset_id``."""
        return self._gateway.serves(asset_id)

    def served_elsewhere(self, asset_id: str) -> bool:
        """Whether only an agent connected to another hub does."""
        return self._gateway.served_elsewhere(asset_id)
