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
        """What the site's agents registered last (connected or not)."""
        registry = self._gateway.registry
        found: dict[str, AssetInfo] = {}
        for agent_id in registry.site_agents(site_id):
            registration = registry.registration(agent_id)
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
