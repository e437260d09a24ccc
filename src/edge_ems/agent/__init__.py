"""The agent: one site's outbound link to the hub, used by Home Assistant and the CLI."""

from .buffer import BufferStats, TelemetryBuffer
from .client import HUB_SOURCE, Agent, AgentConfig, AgentStats

__all__ = [
    "HUB_SOURCE",
    "Agent",
    "AgentConfig",
    "AgentStats",
    "BufferStats",
    "TelemetryBuffer",
]
