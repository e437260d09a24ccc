"""The gateway agent: one site's outbound link to the hub, used by Home Assistant and the CLI."""

from .buffer import BufferStats, TelemetryBuffer
from .client import HUB_SOURCE, AgentConfig, AgentStats, GatewayAgent

__all__ = [
    "HUB_SOURCE",
    "AgentConfig",
    "AgentStats",
    "BufferStats",
    "GatewayAgent",
    "TelemetryBuffer",
]
