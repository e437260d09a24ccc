"""``/metrics``: Prometheus exposition from a registry of the API's own (never the global one,
so several hubs in one process, as in tests, do not collide).

Request counts and latencies are instruments; the gateway's, store's, Parquet's and
uplink's figures are read when scraped, from their ``stats()``/``status()``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .errors import Handler
from .services import HubServices, plain_status, status_dict

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Status fields that only ever grow are counters; every other number is a gauge.
_COUNTERS = frozenset(
    {
        "sessions", "batches", "points", "duplicate_batches", "refused_series", "refused_streams",
        "flushes", "flush_failures", "rows_written", "dropped_samples", "future_samples",
        "resent_samples",
        "written", "dropped", "files_written",
        "sent_batches", "rejected_batches", "dropped_batches", "failed_attempts",
    }
)  # fmt: skip


class HubCollector(Collector):
    """The hub's parts' figures, read at scrape time."""

    def __init__(self, services: HubServices) -> None:
        self._services = services

    def collect(self) -> Iterator[Metric]:
        """One family per numeric field of each part's status."""
        services = self._services
        yield _gauge("gateway_connected_agents", len(services.gateway.connected_agents()))
        yield from _families("gateway", plain_status(services.gateway.stats()))
        yield from _families("store", status_dict(services.store))
        yield from _families("parquet", status_dict(services.parquet))
        yield from _families("uplink", status_dict(services.uplink))
        yield from _families(
            "audit", {"written": services.audit.written, "dropped": services.audit.dropped}
        )
        yield _gauge("uptime_seconds", time.time() - services.started)
        yield from _tasks(services)


def _tasks(services: HubServices) -> Iterator[Metric]:
    """Per background task: whether it runs, fails, and how often it failed and restarted."""
    tasks = services.tasks.status() if services.tasks is not None else {}
    running = GaugeMetricFamily(
        "edge_ems_task_running", "background task is running", labels=["task"]
    )
    failing = GaugeMetricFamily(
        "edge_ems_task_failing",
        "background task failed and is not yet running well again",
        labels=["task"],
    )
    failures = CounterMetricFamily(
        "edge_ems_task_failures", "background task failures", labels=["task"]
    )
    restarts = CounterMetricFamily(
        "edge_ems_task_restarts", "background task restarts", labels=["task"]
    )
    for name, task in tasks.items():
        running.add_metric([name], float(task.running))
        failing.add_metric([name], float(task.failing))
        failures.add_metric([name], task.failures)
        restarts.add_metric([name], task.restarts)
    yield from (running, failing, failures, restarts)


def _gauge(name: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"edge_ems_{name}", name.replace("_", " "), value=value)


def _families(part: str, status: dict[str, Any] | None) -> Iterator[Metric]:
    if status is None:
        return
    yield GaugeMetricFamily(f"edge_ems_{part}_enabled", f"{part} is running", value=1)
    for key, value in status.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        name = f"edge_ems_{part}_{key}"
        help_text = f"{part} {key.replace('_', ' ')}"
        if key in _COUNTERS:
            yield CounterMetricFamily(name, help_text, value=value)
        else:
            yield GaugeMetricFamily(name, help_text, value=value)


class ApiMetrics:
    """The registry behind ``/metrics`` and the request instruments in it."""

    def __init__(self, services: HubServices) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(HubCollector(services))
        self.requests = Counter(
            "edge_ems_api_requests",
            "API requests by route and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "edge_ems_api_request_seconds",
            "API request latency by route",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=self.registry,
        )

    def middleware(self) -> Middleware:
        """Counts and times every request (outside the error middleware, so errors count)."""

        @web.middleware
        async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
            started = time.perf_counter()
            response = await handler(request)
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "unmatched"
            self.requests.labels(route, request.method, str(response.status)).inc()
            self.latency.labels(route).observe(time.perf_counter() - started)
            return response

        return measure

    async def handler(self, request: web.Request) -> web.Response:
        """``GET /metrics``."""
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
