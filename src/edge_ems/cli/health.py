"""``edge-ems health``: the hub's state in a few lines; the exit status says it too.

    edge-ems health --url http://homeassistant.local:8099

Exit status 0 when the hub says ``ok``, 1 when ``degraded``, 2 when it cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from .hubapi import TOKEN_VARIABLE, HubApi, HubApiError, add_api_arguments, api_from_args


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``health`` subcommand."""
    parser = subparsers.add_parser("health", help="show the hub's health (exit 1 if degraded)")
    add_api_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the hub's answer as JSON")
    parser.set_defaults(handler=_health)


def summary(health: dict[str, Any]) -> list[str]:
    """Lines for people."""
    store, gateway = health.get("store") or {}, health.get("gateway") or {}
    if "store" not in health and "gateway" not in health:
        # The hub shows its details only to a caller with its token.
        return [
            f"status      {health['status']}",
            f"version     {health.get('version')}",
            f"details     give the hub's API token (--token or ${TOKEN_VARIABLE}) to see them",
        ]
    lines = [
        f"status      {health['status']}"
        + (f" ({', '.join(health['problems'])})" if health.get("problems") else ""),
        f"version     {health.get('version')}, up {health.get('uptime_s', 0):.0f} s",
        f"gateway     port {gateway.get('port')}, {gateway.get('connected_agents')} agents, "
        f"{gateway.get('points')} points in {gateway.get('batches')} batches",
        f"store       {store.get('backend')}, {store.get('flushes')} flushes, "
        f"{store.get('rows_written')} rows, {store.get('waiting_batches')} batches waiting"
        + (f", error: {store['last_error']}" if store.get("last_error") else ""),
    ]
    for part in ("parquet", "uplink"):
        status = health.get(part)
        if status is None:
            lines.append(f"{part:<11} off")
        else:
            error = f", error: {status['last_error']}" if status.get("last_error") else ""
            figures = ", ".join(
                f"{key} {value}"
                for key, value in status.items()
                if isinstance(value, int) and not isinstance(value, bool)
            )
            lines.append(f"{part:<11} {figures}{error}")
    return lines


def _health(args: argparse.Namespace) -> int:
    url, token = api_from_args(args)

    async def fetch() -> dict[str, Any]:
        api = HubApi(url, token, timeout=args.timeout)
        try:
            answer: dict[str, Any] = await api.get("/health")
            return answer
        finally:
            await api.close()

    try:
        health = asyncio.run(fetch())
    except HubApiError as err:
        print(f"edge-ems health: {err}")  # noqa: T201
        return 2
    if args.json:
        print(json.dumps(health, indent=2))  # noqa: T201
    else:
        print("\n".join(summary(health)))  # noqa: T201
    return 0 if health.get("status") == "ok" else 1
