"""A throwaway PostgreSQL 18 server with TimescaleDB on a free loopback port.

``initdb`` refuses to run as root, so as root (inside the project environment) the cluster
belongs to the ``postgres`` user and its commands run through ``runuser``.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed")
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _run(*command: str) -> None:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=180)


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server; yield a ``postgresql://`` URL of its (empty) ``edge_ems`` database."""
    root = Path(tempfile.mkdtemp(prefix="edge-ems-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", _free_port()
    _run(_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    options = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 "
        "-c shared_preload_libraries=timescaledb -c timescaledb.telemetry_level=off "
        "-c fsync=off -c max_connections=50"
    )
    _run(_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start")
    try:
        _run(_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "edge_ems")
        yield f"postgresql://postgres@127.0.0.1:{port}/edge_ems"
    finally:
        _run(_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def fresh_database(url: str, name: str) -> str:
    """Create database ``name`` on the server of ``url``; return its URL."""
    base, _, _ = url.rpartition("/")
    host_port = base.rsplit("@", 1)[1]
    host, _, port = host_port.partition(":")
    _run(_bin("createdb"), "-h", host, "-p", port, "-U", "postgres", name)
    return f"{base}/{name}"
