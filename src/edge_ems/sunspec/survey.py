"""Every device of a SunSpec chain: an inverter, then the meters wired to it, each starting with
a common model of its own. What a setup flow or the scanner offers, one entry per device;
:class:`~edge_ems.sunspec.device.SunSpecDevice` takes the entry's ``index`` as its
``device_index``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..device import DeviceIdentity
from ..exceptions import DeviceError
from ..modbus.reader import ReadCap
from .codec import decode_model
from .discovery import COMMON_MODEL, Chain, FoundModel, discover, identity_of
from .layout import model_layout
from .models import model_definition
from .transport import BlockReader

if TYPE_CHECKING:
    from .transport import Registers


@dataclass(frozen=True, slots=True)
class ChainDevice:
    """One device of a chain."""

    index: int
    """Its place in the chain, from 0: ``SunSpecDevice(device_index=...)``."""
    models: tuple[FoundModel, ...]
    identity: DeviceIdentity | None
    """Who its common model says it is; ``None`` when that model is unreadable."""

    @property
    def first(self) -> int:
        """Address of its first model's header."""
        return self.models[0].address

    @property
    def last(self) -> int:
        """Last register of its last model."""
        return self.models[-1].end

    def as_json(self) -> dict[str, Any]:
        """The device as plain data."""
        identity = self.identity
        return {
            "index": self.index,
            "models": [model.id for model in self.models],
            "first": self.first,
            "last": self.last,
            "identity": None if identity is None else {
                "manufacturer": identity.manufacturer, "model": identity.model,
                "serial": identity.serial, "firmware": identity.firmware,
            },
        }  # fmt: skip


async def survey(
    unit: Registers, base: int | None = None, *, cap: ReadCap | None = None
) -> tuple[Chain, tuple[ChainDevice, ...]]:
    """Walk the chain (at ``base``, or at the usual base addresses) and identify each device.

    Reads stay within ``cap`` (and teach it). Common models the walk did not read whole are
    read afterwards; one the device will not serve leaves that device's identity ``None``.
    Raises what :func:`~edge_ems.sunspec.discovery.discover` raises.
    """
    cap = cap or ReadCap()
    chain = await discover(unit, base, size=cap.limit())
    common = await asyncio.to_thread(model_definition, COMMON_MODEL)
    reader = BlockReader(unit, cap=cap)
    devices: list[ChainDevice] = []
    for index, models in enumerate(chain.devices()):
        head = models[0]
        identity = None
        if head.id == COMMON_MODEL:
            layout = model_layout(common, head.address, head.length)
            registers = dict(chain.registers)
            atoms = list(layout.root.spans())
            missing = [a for a in atoms if any(r not in registers for r in range(a[0], a[1] + 1))]
            try:
                if missing:
                    registers |= await reader.read(missing)
                identity = identity_of(decode_model(layout, registers))
            except DeviceError:  # unreadable, or naming no maker
                identity = None
        devices.append(ChainDevice(index, models, identity))
    return chain, tuple(devices)
