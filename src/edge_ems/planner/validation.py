"""Checking planner files (scenarios, tariffs, price files) with voluptuous, one error at a
time, worded for the person who wrote the file: which file, which key, what is wrong."""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import voluptuous as vol

from ..pointmap.validators import dotted, integer, number
from .errors import PlanInputError

__all__ = ["apply", "integer", "iso_time", "number", "zone"]

_EXTRA_KEY_MESSAGES = frozenset({"not a valid option", "extra keys not allowed"})


def iso_time(value: Any) -> datetime:
    """An ISO 8601 time with its UTC offset."""
    if not isinstance(value, str):
        raise vol.Invalid("expected an ISO 8601 time")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise vol.Invalid(f"{value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise vol.Invalid(f"{value!r} has no UTC offset")
    return moment


def zone(value: Any) -> zoneinfo.ZoneInfo:
    """An IANA time zone name (``Europe/Prague``)."""
    if not isinstance(value, str):
        raise vol.Invalid("expected an IANA time zone name")
    try:
        return zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise vol.Invalid(f"unknown time zone {value!r}") from None


def apply(schema: vol.Schema, data: Any, *, source: str) -> dict[str, Any]:
    """``data`` checked by ``schema``; :class:`PlanInputError` names the first error's path
    (the first by path, so a file gives the same error every time)."""
    if not isinstance(data, Mapping):
        raise PlanInputError(f"{source}: expected a mapping at the top")
    try:
        checked: dict[str, Any] = schema(dict(data))
    except vol.MultipleInvalid as err:
        first = min(err.errors, key=lambda error: (dotted(error.path), str(error.msg)))
        reason = str(first.msg)
        if reason in _EXTRA_KEY_MESSAGES:
            reason = "unknown key (misspelt, or not part of the format)"
        where = f"{source}: {dotted(first.path)}" if first.path else source
        raise PlanInputError(f"{where}: {reason}") from None
    return checked
