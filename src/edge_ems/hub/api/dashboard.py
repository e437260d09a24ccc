"""The dashboard's files: built from ``frontend/src/hub`` (``make frontend``) into ``static/``,
read once at import (before any event loop runs), each with the digest browsers revalidate by.

They hold no secret, so they are served to anyone (see :data:`.auth.PUBLIC_PATHS`): the page
asks the person for the API token, or finds none needed through Home Assistant's ingress.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True, slots=True)
class StaticFile:
    """One file of the dashboard."""

    body: bytes
    content_type: str
    etag: str


def _load(name: str, content_type: str) -> StaticFile:
    body = (resources.files(__package__) / "static" / name).read_bytes()
    return StaticFile(body, content_type, f'"{hashlib.sha256(body).hexdigest()[:32]}"')


DASHBOARD = {
    "/": _load("index.html", "text/html"),
    "/dashboard.js": _load("dashboard.js", "text/javascript"),
    "/dashboard.css": _load("dashboard.css", "text/css"),
}
"""The dashboard's files by the path they are served at."""
