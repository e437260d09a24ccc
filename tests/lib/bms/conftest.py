"""Fixtures for the BMS tests: a real mosquitto broker on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import Mosquitto, allow_loopback_sockets, free_port


@pytest.fixture(autouse=True)
def _loopback_sockets() -> None:
    allow_loopback_sockets()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One broker for the whole session; tests keep to their own topics."""
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"), free_port())
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker of the test's own, for tests that stop and restart it."""
    broker = Mosquitto(tmp_path, free_port())
    broker.start()
    yield broker
    broker.stop()
