"""Who holds which site and asset: the credential that registered it first.

A credential is a configured agent id: the owner of a token. Its sub-agents ``<id>/<name>``
(the several sites of one Home Assistant) share it. The first registration of a site or an
asset binds it to the registering credential, and every later registration of it by another
credential is refused, so a token cannot take over what another one serves: not its
asset's place in ``/assets``, nor its setpoints, nor its stored series. The store keeps the
claims (across restarts, and for every hub on a shared database); :class:`MemoryClaims`
keeps them for a gateway without a store.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Protocol


class ClaimKind(StrEnum):
    """What a claim is on."""

    SITE = "site"
    ASSET = "asset"


type Claim = tuple[ClaimKind, str]


class ClaimStore(Protocol):
    """Where claims are kept (the store's backends implement it)."""

    async def claim(self, claims: Sequence[Claim], credential: str, at: float) -> dict[Claim, str]:
        """Bind every unheld claim to ``credential``, unless one is held by another
        credential (then bind none); return each claim's holder."""


class MemoryClaims:
    """Claims in memory, for a gateway without a store."""

    def __init__(self) -> None:
        self._holders: dict[Claim, str] = {}

    async def claim(self, claims: Sequence[Claim], credential: str, at: float) -> dict[Claim, str]:
        """See :meth:`ClaimStore.claim`."""
        held = {claim: self._holders.get(claim, credential) for claim in claims}
        if all(holder == credential for holder in held.values()):
            self._holders.update(held)
        return held


def credential_of(agent_id: str) -> str:
    """The configured agent whose token ``agent_id`` shows: ``a/b`` and ``a`` show ``a``'s."""
    owner, _, name = agent_id.partition("/")
    return owner if name else agent_id
