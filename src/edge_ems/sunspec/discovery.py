"""Find a SunSpec register map and walk its chain of models.

A SunSpec map starts with the marker "SunS" (0x5375 0x6E53) at one of a few well-known
addresses, followed by models, each a header (ID, length) and ``length`` registers, up to
an end marker with ID 0xFFFF. The common model 1 comes first and describes the device; a
chain may hold several devices (an inverter and the meters wired to it), each introduced
by a model 1 of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..device import DeviceIdentity
from ..exceptions import (
    DeviceError,
    DeviceProtocolError,
    DeviceTimeoutError,
    IdentificationError,
)
from .transport import is_refusal, read_holding

if TYPE_CHECKING:
    from .codec import GroupValues
    from .transport import Registers

BASE_ADDRESSES = (40000, 0, 50000)
"""Where SunSpec maps start, most common first."""
MARKER = (0x5375, 0x6E53)
"""'SunS' in two registers."""
COMMON_MODEL = 1
END_MODEL = 0xFFFF
MAX_MODELS = 100
"""More models than any device carries: a longer chain is garbage."""
LAST_ADDRESS = 0xFFFF


@dataclass(frozen=True, slots=True)
class FoundModel:
    """A model header found in the chain."""

    id: int
    address: int
    """Address of the model's ID register."""
    length: int
    """Registers after the ID and length registers."""

    @property
    def end(self) -> int:
        """Last register of the model."""
        return self.address + self.length + 1


@dataclass(frozen=True, slots=True)
class Chain:
    """The models of one SunSpec map, in address order."""

    base: int
    models: tuple[FoundModel, ...]

    def devices(self) -> tuple[tuple[FoundModel, ...], ...]:
        """The chain split into devices, each starting at its common model."""
        devices: list[list[FoundModel]] = []
        for model in self.models:
            if model.id == COMMON_MODEL or not devices:
                devices.append([])
            devices[-1].append(model)
        return tuple(tuple(device) for device in devices)


async def find_base(unit: Registers, bases: tuple[int, ...] = BASE_ADDRESSES) -> int:
    """The first of ``bases`` that holds the SunSpec marker.

    An exception reply means "not here". A timeout may mean the same on devices that stay
    silent on addresses they do not serve, so the other bases are still tried; if none
    answers with the marker the timeout is raised, since it says more than "not found".
    """
    timeout: DeviceTimeoutError | None = None
    for base in bases:
        try:
            words = await read_holding(unit, base, 2)
        except DeviceTimeoutError as err:
            timeout = timeout or err
            continue
        except DeviceError as err:
            if not is_refusal(err):
                raise
            continue
        if tuple(words) == MARKER:
            return base
    if timeout is not None:
        raise timeout
    where = ", ".join(str(base) for base in bases)
    raise IdentificationError(f"no SunSpec marker 'SunS' at {where}")


async def walk_chain(unit: Registers, base: int) -> Chain:
    """Read the model headers after the marker at ``base`` up to the end marker.

    The walk stops at the end marker, or at an exception reply once a model has been
    found (some devices end their chains that way). Raises
    :class:`~edge_ems.exceptions.IdentificationError` when the first model is not the
    common model, and :class:`~edge_ems.exceptions.DeviceProtocolError` for a chain that
    leaves the address space, holds model ID 0 or does not end within
    :data:`MAX_MODELS` models.
    """
    models: list[FoundModel] = []
    address = base + 2
    while True:
        if address + 1 > LAST_ADDRESS:
            raise DeviceProtocolError(
                f"SunSpec chain from {base} runs past the last register without an end marker"
            )
        try:
            model_id, length = await read_holding(unit, address, 2)
        except DeviceError as err:
            if not is_refusal(err):
                raise
            if models:
                break
            raise DeviceProtocolError(
                f"SunSpec marker at {base} but no model header at {address}"
            ) from err
        if model_id == END_MODEL and models:
            break
        if not models and model_id != COMMON_MODEL:
            raise IdentificationError(
                f"SunSpec map at {base} starts with model {model_id}, not the common model"
            )
        if model_id == 0:
            raise DeviceProtocolError(f"SunSpec chain from {base}: model ID 0 at {address}")
        if len(models) == MAX_MODELS:
            raise DeviceProtocolError(
                f"SunSpec chain from {base} does not end within {MAX_MODELS} models"
            )
        model = FoundModel(model_id, address, length)
        if model.end > LAST_ADDRESS:
            raise DeviceProtocolError(
                f"SunSpec model {model_id} at {address} is {length} registers long, "
                "past the last register"
            )
        models.append(model)
        address = model.end + 1
    return Chain(base, tuple(models))


async def discover(unit: Registers, base: int | None = None) -> Chain:
    """Find the marker (at ``base``, or at :data:`BASE_ADDRESSES`) and walk the chain."""
    found = await find_base(unit, BASE_ADDRESSES if base is None else (base,))
    return await walk_chain(unit, found)


def identity_of(common: GroupValues) -> DeviceIdentity:
    """Who the device is, from its decoded common model.

    ``Vr`` is the device's version; ``Opt`` (manufacturer specific, often the version of a
    communication option) stands in when ``Vr`` is empty.
    """
    values = common.values
    manufacturer, model = values.get("Mn"), values.get("Md")
    if not isinstance(manufacturer, str) or not isinstance(model, str):
        raise IdentificationError("SunSpec common model names no manufacturer or model")
    serial, version, option = values.get("SN"), values.get("Vr"), values.get("Opt")
    firmware = version if isinstance(version, str) else option
    return DeviceIdentity(
        manufacturer=manufacturer,
        model=model,
        serial=serial if isinstance(serial, str) else None,
        firmware=firmware if isinstance(firmware, str) else None,
    )
