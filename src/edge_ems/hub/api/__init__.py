"""The hub's REST API (aiohttp): health, metrics, inventory, telemetry, measurements,
exports, dispatch and audit, behind a bearer token and per-client rate limits."""

from .audit_trail import AuditTrail
from .server import ApiServer, ApiSettings, create_app
from .services import HubServices

__all__ = ["ApiServer", "ApiSettings", "AuditTrail", "HubServices", "create_app"]
