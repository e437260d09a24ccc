"""Quieting a protocol library's own log lines about one connection.

pymodbus logs "Failed to connect" about 22 times a minute for a device that is away, asyncua
warnings on every connect and a traceback when a session drops; the device layer reports an
outage itself, once. A :class:`QuietLogs` is one connection's filter on the library's
loggers: while the connection is *muted*, the lines logged in its context
(:meth:`QuietLogs.context`, which the tasks a library starts inside it inherit) are moved to
debug under Edge EMS's own logger (``-v`` shows them), and every other connection's lines
pass as they are.
"""

from __future__ import annotations

import contextvars
import logging
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

_ACTIVE: contextvars.ContextVar[QuietLogs | None] = contextvars.ContextVar(
    "edge_ems_quiet_logs", default=None
)
"""The connection whose exchange runs in this context (and in the tasks it starts)."""


class QuietLogs(logging.Filter):
    """One connection's filter on a library's loggers (every logger under ``prefixes``)."""

    def __init__(self, prefixes: tuple[str, ...], debug: logging.Logger) -> None:
        super().__init__()
        self._prefixes = prefixes
        self._debug = debug
        self._loggers: list[weakref.ref[logging.Logger]] = []
        self._seen = 0
        """How many loggers existed when the filter was last put on them."""

    @property
    def muted(self) -> bool:
        """Dropping the connection's lines now."""
        return bool(self._loggers)

    @contextmanager
    def context(self) -> Iterator[None]:
        """Run the connection's exchange: what the library logs in here is the connection's."""
        token = _ACTIVE.set(self)
        try:
            yield
        finally:
            _ACTIVE.reset(token)
            if self.muted:
                self.refresh()

    def mute(self, *, on: bool) -> None:
        """Drop the connection's lines (``on``), or let them through again."""
        if on == self.muted:
            return
        if on:
            self._seen = 0
            self.refresh()
        else:
            loggers, self._loggers = self._loggers, []
            for ref in loggers:
                if (held := ref()) is not None:
                    held.removeFilter(self)

    def refresh(self) -> None:
        """Put the filter on every logger under the prefixes it is not on yet (libraries make
        some as their objects are made)."""
        existing = logging.Logger.manager.loggerDict
        if len(existing) == self._seen:
            return
        self._seen = len(existing)
        names = [
            name
            for name, logger in list(existing.items())
            if name.startswith(self._prefixes) and isinstance(logger, logging.Logger)
        ]
        for name in (*self._prefixes, *names):
            logger = logging.getLogger(name)
            if self not in logger.filters:
                logger.addFilter(self)
                self._loggers.append(weakref.ref(logger))

    def filter(self, record: logging.LogRecord) -> bool:
        """Let a line through unless it was logged in this connection's context; such a
        line goes to debug instead."""
        if _ACTIVE.get() is not self:
            return True
        if self._debug.isEnabledFor(logging.DEBUG):
            self._debug.debug("%s: %s", record.name, record.getMessage(), exc_info=record.exc_info)
        return False
