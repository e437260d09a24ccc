"""The gateway protocol between agents and the hub: messages, conversions, TLS, errors."""

from .errors import (
    AuthenticationError,
    GatewayError,
    ProtocolViolationError,
    RoutingError,
    SetpointTimeoutError,
)
from .model import AssetInfo, Registration, SetpointResult
from .tls import ClientTls, ServerTls

__all__ = [
    "AssetInfo",
    "AuthenticationError",
    "ClientTls",
    "GatewayError",
    "ProtocolViolationError",
    "Registration",
    "RoutingError",
    "ServerTls",
    "SetpointResult",
    "SetpointTimeoutError",
]
