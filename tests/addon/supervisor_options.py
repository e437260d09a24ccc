"""The Supervisor's validation of an app's options, ported for the types this app uses.

Source: home-assistant/supervisor, ``supervisor/addons/options.py`` (class ``AddonOptions``:
``RE_SCHEMA_ELEMENT``, ``_single_validate``, ``_nested_validate_list``,
``_nested_validate_dict``, ``_check_missing_options``; read at commit 0306915918). The
Supervisor runs these rules on the options before it starts an app and refuses to start it
when they fail; the app's defaults must pass them, and what the hub refuses they must refuse
too, or a saved option stops the app. Ported here (secrets and ``device`` left out, as the
app uses neither), with the same library (voluptuous), so the tests can apply them.

Rules worth knowing, all the Supervisor's:

- an option missing from the options is allowed only when its type ends in ``?``; an
  option present with ``null`` is refused even then;
- ``str`` and ``password`` take strings only, and their ``(min,max)`` compares the string
  with numbers, which refuses every string: a length bound is written ``match(^.{16,}$)``;
- ``match(RE)`` is :func:`re.match` (anchored at the start only) on ``str(value)``;
- ``url`` is voluptuous' ``Url`` (a scheme and a host): an empty string is refused;
- unknown options are dropped with a warning (the tests here refuse them instead).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import voluptuous as vol

SCHEMA_ELEMENT = re.compile(
    r"^(?:"
    r"|bool|email|url|port"
    r"|device(?:\((?P<filter>subsystem=[a-z]+)\))?"
    r"|str(?:\((?P<s_min>\d+)?,(?P<s_max>\d+)?\))?"
    r"|password(?:\((?P<p_min>\d+)?,(?P<p_max>\d+)?\))?"
    r"|int(?:\((?P<i_min>\d+)?,(?P<i_max>\d+)?\))?"
    r"|float(?:\((?P<f_min>[\d\.]+)?,(?P<f_max>[\d\.]+)?\))?"
    r"|match\((?P<match>.*)\)"
    r"|list\((?P<list>.+)\)"
    r")\??$"
)
"""The types the Supervisor knows; anything else is an unknown type."""


class OptionError(Exception):
    """The Supervisor would refuse these options (and not start the app)."""


def validate(schema: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """The options as the Supervisor writes them to ``/data/options.json``, or
    :class:`OptionError` naming the first option it refuses."""
    try:
        return _validate_dict(schema, options, "root")
    except vol.Invalid as err:
        raise OptionError(str(err)) from None


def _validate_dict(schema: Mapping[str, Any], options: Any, where: str) -> dict[str, Any]:
    if not isinstance(options, dict):
        raise vol.Invalid(f"invalid dict for option {where!r}")
    valid: dict[str, Any] = {}
    for key, value in options.items():
        if key not in schema:
            raise vol.Invalid(f"option {key!r} is not in the schema ({where})")
        valid[key] = _validate_element(schema[key], value, key)
    for key in set(schema) - set(valid):
        kind = schema[key]
        if isinstance(kind, list) and kind:
            kind = kind[0]
        if not (isinstance(kind, str) and kind.endswith("?")):
            raise vol.Invalid(f"missing option {key!r} in {where}")
    return valid


def _validate_element(kind: Any, value: Any, key: str) -> Any:
    if isinstance(kind, list):
        if not isinstance(value, list):
            raise vol.Invalid(f"invalid list for option {key!r}")
        return [_validate_element(kind[0], item, key) for item in value]
    if isinstance(kind, dict):
        return _validate_dict(kind, value, key)
    return _validate_single(kind, value, key)


def _validate_single(kind: str, value: Any, key: str) -> Any:
    if value is None:
        raise vol.Invalid(f"missing required option {key!r}")
    found = SCHEMA_ELEMENT.match(kind)
    if found is None:
        raise vol.Invalid(f"unknown type {kind!r} of option {key!r}")
    bounds = {
        group[2:]: float(found.group(group))
        for group in ("i_min", "i_max", "f_min", "f_max", "s_min", "s_max", "p_min", "p_max")
        if found.group(group)
    }
    try:
        if kind.startswith(("str", "password")):
            # A literal: equal to its own str(), so a string; a bound compares it with numbers.
            return vol.All(str(value), vol.Range(**bounds))(value)
        if kind.startswith("int"):
            return vol.All(vol.Coerce(int), vol.Range(**bounds))(value)
        if kind.startswith("float"):
            return vol.All(vol.Coerce(float), vol.Range(**bounds))(value)
        if kind.startswith("bool"):
            return vol.Boolean()(value)
        if kind.startswith("url"):
            return vol.Url()(value)
        if kind.startswith("match"):
            return vol.Match(found.group("match"))(str(value))
        if kind.startswith("list"):
            return vol.In(found.group("list").split("|"))(str(value))
    except vol.Invalid as err:
        raise vol.Invalid(f"option {key!r}: {err}") from None
    raise vol.Invalid(f"type {kind!r} of option {key!r} is not ported here")
