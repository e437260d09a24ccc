"""SunSpec points that carry identity or secrets: redacted in register dumps.

The common model's serial number, and what the communication models (10-19) hold about the
network: addresses, masks, gateways, name servers, host and domain names, MAC addresses,
proxy and PPP credentials, a modem's IMEI, APN, number and PIN.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from ..exceptions import ConfigError
from .models import model_definition

if TYPE_CHECKING:
    from .discovery import Chain

_NETWORK = frozenset({"Addr", "Msk", "Gw", "DNS1", "DNS2", "NTP1", "NTP2", "DomNam", "HostNam"})

PRIVATE_POINTS: Mapping[int, frozenset[str]] = MappingProxyType(
    {
        1: frozenset({"SN"}),
        11: frozenset({"MAC"}),
        12: _NETWORK,
        13: _NETWORK | {"CIDR"},
        14: frozenset({"Addr", "Port", "User", "Pw"}),
        16: frozenset({"Addr", "Msk", "Gw", "DNS1", "DNS2", "MAC"}),
        18: frozenset({"IMEI", "APN", "Num", "Pin"}),
        19: frozenset({"UsrNam", "Pw"}),
    }
)
"""Private top-level points by model."""


def private_spans(chain: Chain) -> list[tuple[int, int]]:
    """Inclusive register ranges of every private point in ``chain``, within each model's
    length (blocking the first time a model's definition is loaded)."""
    spans: list[tuple[int, int]] = []
    for found in chain.models:
        names = PRIVATE_POINTS.get(found.id)
        if names is None:
            continue
        try:
            group = model_definition(found.id).group
        except ConfigError:  # no definition: hide the whole body
            spans.append((found.address + 2, found.end))
            continue
        for point in group.points:
            first = found.address + point.offset
            last = min(first + point.size - 1, found.end)
            if point.name in names and first <= last:
                spans.append((first, last))
    return spans
