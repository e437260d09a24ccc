"""No URL's userinfo in what the hub shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_ems.hub.redact import display_url, has_userinfo, without_userinfo
from edge_ems.hub.store import open_store


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://user:pa55@example.com/in", "https://example.com/in"),
        ("POST https://u@h:8443/x failed; retry", "POST https://h:8443/x failed; retry"),
        ("postgresql://hub:s3cret@db:5432/edge", "postgresql://db:5432/edge"),
        ("two: http://a:b@x/ and 'ftp://c:d@y'", "two: http://x/ and 'ftp://y'"),
        ("mail me@example.com, http://example.com/", "mail me@example.com, http://example.com/"),
    ],
)
def test_userinfo_is_removed_from_any_text(text: str, shown: str) -> None:
    assert without_userinfo(text) == shown


def test_display_url_keeps_host_port_and_path_only() -> None:
    assert display_url("https://u:p@[::1]:8443/ingest?key=k#f") == "https://[::1]:8443/ingest"
    assert has_userinfo("https://u:p@h/")
    assert has_userinfo("https://u@h/")
    assert not has_userinfo("https://h/")


def test_the_store_says_what_it_is_without_credentials(tmp_path: Path) -> None:
    assert open_store(tmp_path / "s.db").backend.where == f"SQLite in WAL mode at {tmp_path}/s.db"
    timescale = open_store("postgresql://hub:s3cret@db.example:5432/edge").backend
    assert timescale.where == "PostgreSQL with TimescaleDB at postgresql://db.example:5432/edge"
