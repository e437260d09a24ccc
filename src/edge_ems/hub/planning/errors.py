"""What the hub's planner refuses, beside bad input (:class:`~edge_ems.planner.errors.
PlanInputError`): a site it does not plan, and anything but reading on a standby hub."""

from __future__ import annotations

from ...exceptions import EdgeEmsError


class NotLeaderError(EdgeEmsError):
    """This hub stands by: another one plans and dispatches."""


class UnknownSiteError(EdgeEmsError):
    """The planner does not plan this site."""
