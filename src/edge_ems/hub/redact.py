"""Secrets out of what the hub shows: no URL's userinfo in health, logs, errors or metrics.

An uplink endpoint or a ``DATABASE_URL`` may carry ``user:password@``; whatever names such
a URL (a status, an exception's text, a log line) passes through :func:`without_userinfo`.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#@'\"]*@")


def without_userinfo(text: str) -> str:
    """``text`` with the ``user:password@`` of every URL in it removed."""
    return _USERINFO.sub(r"\1", text) if "@" in text else text


def has_userinfo(url: str) -> bool:
    """Whether ``url`` names a user (and perhaps a password)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "@" in url
    return parts.username is not None or parts.password is not None


def display_url(url: str) -> str:
    """``url`` as shown to people: without userinfo, query or fragment (tokens hide there)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return without_userinfo(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port is None else f"{host}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
