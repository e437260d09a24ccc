"""JSON logs: one object per line, which the Supervisor's log view and log shippers both read.

Fields: ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``msg``, ``exc`` when there is a
traceback, and whatever a call passes in ``extra=``. Either format drops any URL's userinfo
(``user:password@``) from what it writes, whichever library's message carried it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, ClassVar, TextIO

from .redact import without_userinfo


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON."""

    # Attributes every LogRecord has; anything else came in through ``extra=``.
    _STANDARD: ClassVar[frozenset[str]] = frozenset(
        vars(logging.LogRecord("", 0, "", 0, "", (), None))
    ) | {"message", "asctime", "taskName"}

    def format(self, record: logging.LogRecord) -> str:
        """One JSON object, no newlines inside."""
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": without_userinfo(record.getMessage()),
        }
        entry |= {
            key: without_userinfo(value) if isinstance(value, str) else value
            for key, value in vars(record).items()
            if key not in self._STANDARD and not key.startswith("_")
        }
        if record.exc_info:
            entry["exc"] = without_userinfo(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """One plain line per record (tracebacks follow it), without userinfo."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The line, with any URL's ``user:password@`` removed."""
        return without_userinfo(super().format(record))


def setup_logging(
    level: str = "info", *, json_format: bool = True, stream: TextIO | None = None
) -> None:
    """Send every log record to ``stream`` (stderr), as JSON or as plain text."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if json_format:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # aiohttp's access log says nothing the request metrics do not, at a line per request.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


class RefusalLog:
    """Logs refusals at most once per client address and ``interval`` seconds, with how many
    more there were since, so a flood of bad requests cannot flood the log."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        interval: float = 60.0,
        *,
        max_addresses: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._what = what
        self._interval = interval
        self._max = max_addresses
        self._clock = clock
        self._seen: OrderedDict[str, tuple[float, int]] = OrderedDict()
        """Per address: when it was last logged, and the refusals not logged since."""

    def note(self, address: str, reason: str) -> None:
        """Count a refusal of something from ``address``; log it unless one was lately."""
        now = self._clock()
        entry = self._seen.pop(address, None)
        if entry is not None and now - entry[0] < self._interval:
            self._seen[address] = (entry[0], entry[1] + 1)
            return
        more = entry[1] if entry is not None else 0
        self._seen[address] = (now, 0)
        while len(self._seen) > self._max:
            self._seen.popitem(last=False)
        self._logger.warning(
            "Refused %s from %s: %s%s",
            self._what,
            address,
            reason,
            f" (and {more} more since the last such line)" if more else "",
            extra={"peer": address, "refused_since": more},
        )
