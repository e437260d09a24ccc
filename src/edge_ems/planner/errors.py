"""What the planner raises: bad input (fix it and try again) or a source that failed (retry).

Both sit in the library's one hierarchy (:mod:`edge_ems.exceptions`), so callers that catch
:class:`~edge_ems.exceptions.EdgeEmsError` catch these too.
"""

from __future__ import annotations

from ..exceptions import ConfigError, EdgeEmsError


class PlanInputError(ConfigError):
    """A scenario, tariff, price file or asset description is invalid; names what and why."""


class SourceError(EdgeEmsError):
    """A price or forecast source failed; the last good data stays in use."""


class SourceConnectionError(SourceError):
    """The source could not be reached or did not answer in time."""


class SourceAuthError(SourceError):
    """The source refused the credentials (a missing or wrong API token)."""


class SourceRateLimitError(SourceError):
    """The source asks to be called less often."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SourceDataError(SourceError):
    """The source answered with something that is not usable data: a garbled payload, the
    wrong zone or currency, missing intervals."""
