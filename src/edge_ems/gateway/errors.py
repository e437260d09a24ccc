"""What goes wrong between agents and the hub, in the library's exception hierarchy."""

from __future__ import annotations

from ..exceptions import EdgeEmsError


class GatewayError(EdgeEmsError):
    """The gateway protocol or the link to the other side failed."""


class ProtocolViolationError(GatewayError):
    """A message breaks the gateway protocol (malformed, out of order, not for this agent)."""


class RoutingError(GatewayError):
    """A setpoint has nowhere to go.

    ``reason`` is a stable key for upper layers (the REST API maps it to a status):
    ``unknown_asset``, ``unknown_site``, ``not_connected``, ``ambiguous_site``,
    ``disconnected`` (the agent went away before it acknowledged).
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class SetpointTimeoutError(GatewayError):
    """The agent did not acknowledge a setpoint in time; it may still have executed it."""

    def __init__(self, message: str, *, command_id: str) -> None:
        super().__init__(message)
        self.command_id = command_id


class AuthenticationError(GatewayError):
    """The hub refused the agent's credentials; retrying with the same ones will not help."""
