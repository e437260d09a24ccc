"""docs/api.md, the integrators' guide, covers every route of the OpenAPI document."""

from __future__ import annotations

import re
from pathlib import Path

from edge_ems.hub.api.openapi import document

API_DOC = Path(__file__).parents[3] / "docs" / "api.md"
METHODS = ("get", "post", "put", "patch", "delete")


def test_every_route_of_the_openapi_document_is_in_the_api_guide() -> None:
    text = API_DOC.read_text(encoding="utf-8")
    documented = set(re.findall(r"^### `([A-Z]+ /\S*)`$", text, re.MULTILINE))
    routes = {
        f"{method.upper()} {path}"
        for path, operations in document()["paths"].items()
        for method in operations
        if method in METHODS
    }
    assert routes - documented == set(), "routes missing from docs/api.md"
