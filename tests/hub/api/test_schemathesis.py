"""Schemathesis over ``/openapi.json`` against a live hub with an agent connected: no 5xx,
every answer as documented, no route but ``/health`` served without the token.

Schemathesis is synchronous (requests), so it runs in a thread while the event loop serves
the hub and the agent.
"""

from __future__ import annotations

import asyncio
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from ..gateway.conftest import SiteFactory
from .conftest import AUTH, LiveHub

pytestmark = pytest.mark.slow

EXAMPLES = 40
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def fuzz_operation(url: str, operation: Any, mode: GenerationMode) -> bool:
    """Run one operation in one generation mode; ``False`` when no such data exists."""
    checks = [*CHECKS, ignored_auth if mode is GenerationMode.POSITIVE else negative_data_rejection]

    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        response = case.call(base_url=url, headers=AUTH, timeout=30)
        case.validate_response(response, checks=checks, headers=AUTH)

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        return False
    return True


def fuzz(url: str) -> list[str]:
    """Run every operation in both generation modes; return what was exercised."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", headers=AUTH, timeout=30)
    operations = [result.ok() for result in schema.get_all_operations()]
    return [
        f"{mode.value} {operation.label}"
        for operation in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        if fuzz_operation(url, operation, mode)
    ]


async def test_schemathesis_finds_no_5xx_and_no_route_without_auth(
    hub_maker,
    site_factory: SiteFactory,  # type: ignore[no-untyped-def]
) -> None:
    live: LiveHub = await hub_maker(max_body_bytes=16 * 1024)
    await site_factory(live.address, agent_id="agent-1", site_id="farm")
    exercised = await asyncio.to_thread(fuzz, live.url)
    assert "positive POST /dispatch" in exercised
    assert "negative GET /measurements" in exercised
    document = await live.json("/openapi.json")
    routes = {
        f"positive {method.upper()} {path}"
        for path, operations in document["paths"].items()
        for method in operations
    }
    assert routes - set(exercised) <= {"positive GET /openapi.json"}
