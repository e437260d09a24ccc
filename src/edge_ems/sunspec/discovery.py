"""Find a SunSpec register map and walk its chain of models, in as few reads as it takes.

A SunSpec map starts with the marker "SunS" (0x5375 0x6E53) at one of a few well-known
addresses, followed by models, each a header (ID, length) and ``length`` registers, up to
an end marker with ID 0xFFFF. The common model 1 comes first and describes the device; a
chain may hold several devices (an inverter and the meters wired to it), each introduced
by a model 1 of its own.

The chain is read in blocks as large as the device takes (125 registers, or the cap a
:class:`~edge_ems.modbus.reader.ReadCap` learned), one after the other: the headers come
inside what is read, and so do the models' registers, which connecting needs next
(:attr:`Chain.registers`). Devices that refuse reads past the end of their chain, or reads
touching registers they do not serve, are met by reading no further than the next header
known to exist until the refused stretch is passed, and by stepping over a model's body
whose registers the device refuses (after which the walk reads model by model: a device
with holes in one model's registers has them in others).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..device import DeviceIdentity
from ..exceptions import (
    DeviceError,
    DeviceProtocolError,
    DeviceTimeoutError,
    IdentificationError,
)
from .transport import MAX_READ, is_refusal, read_holding

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
COMMON_SPAN = 72
"""The marker, the common model's header, its 66 registers and the next model's header: all
there in any map whose common model has its full length, however short the chain."""


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
    registers: Mapping[int, int] = field(
        default_factory=lambda: MappingProxyType({}), compare=False, repr=False
    )
    """Registers read while walking it, by address."""

    @property
    def end(self) -> int:
        """Address of the end marker's length register: the last of the map."""
        return (self.models[-1].end if self.models else self.base + 1) + 2

    def devices(self) -> tuple[tuple[FoundModel, ...], ...]:
        """The chain split into devices, each starting at its common model."""
        devices: list[list[FoundModel]] = []
        for model in self.models:
            if model.id == COMMON_MODEL or not devices:
                devices.append([])
            devices[-1].append(model)
        return tuple(tuple(device) for device in devices)

    def as_json(self) -> dict[str, Any]:
        """The chain's layout as JSON-ready data (without the registers read)."""
        return {"base": self.base, "models": [[m.id, m.address, m.length] for m in self.models]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Chain:
        """A chain from :meth:`as_json`. Raises ``ValueError`` for anything that is no chain
        a walk could have found."""
        try:
            base = int(data["base"])
            models = tuple(FoundModel(int(i), int(a), int(n)) for i, a, n in data["models"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"not a SunSpec chain: {err}") from err
        address = base + 2
        for model in models:
            if model.address != address or model.id in (0, END_MODEL) or model.end > LAST_ADDRESS:
                raise ValueError(f"not a SunSpec chain: model {model.id} at {model.address}")
            address = model.end + 1
        if not models or models[0].id != COMMON_MODEL or len(models) > MAX_MODELS:
            raise ValueError("not a SunSpec chain: it must start with the common model")
        return cls(base, models)


class _Walk:
    """The registers read so far, and how far reads may reach without being refused."""

    def __init__(self, unit: Registers, base: int, size: int) -> None:
        self.unit = unit
        self.base = base
        self.size = max(2, min(size, MAX_READ))
        self.registers: dict[int, int] = {}
        self.bound: int | None = None
        """The end of a refused read whose cause lies somewhere before it: reads stay within
        what is known to exist until the walk passes it."""
        self.holey = False
        """The device refused registers inside a model: reads stay within what is known to
        exist for the rest of the walk, since more such models are likely."""

    async def read(self, address: int, count: int) -> None:
        words = await read_holding(self.unit, address, count)
        self.registers.update(enumerate(words, start=address))

    def refused_at(self, last: int) -> None:
        self.bound = last if self.bound is None else min(self.bound, last)

    async def advance(self, cursor: int, header: int) -> int:
        """Read on from ``cursor`` towards the header at ``header``; where to read next.

        Raises the refusal when the header itself is refused."""
        known = header + 1  # the last register known to exist
        if self.bound is not None and known >= self.bound:
            self.bound = None
        count = min(self.size, LAST_ADDRESS - cursor + 1)
        if self.bound is not None or self.holey:
            count = min(count, known - cursor + 1)
        try:
            await self.read(cursor, count)
        except DeviceError as err:
            if not is_refusal(err) or (cursor + count - 1 <= known and cursor >= header):
                raise
            if cursor + count - 1 > known:
                self.refused_at(cursor + count - 1)
                return cursor
            self.holey = True
            return header  # a body the device will not serve: step over it
        return cursor + count

    @property
    def marked(self) -> bool:
        """Whether the marker was read at the base."""
        return (self.registers.get(self.base), self.registers.get(self.base + 1)) == MARKER

    async def start(self) -> None:
        """Read from the base: a full block, else the common model's span, else the marker."""
        base = self.base
        sizes = sorted({min(self.size, LAST_ADDRESS - base + 1), COMMON_SPAN, 2}, reverse=True)
        for count in sizes:
            if count > self.size and count != 2:
                continue
            try:
                await self.read(base, count)
            except DeviceError as err:
                if count == 2 or not is_refusal(err):
                    raise
                self.refused_at(base + count - 1)
                continue
            return


async def find_base(
    unit: Registers, bases: tuple[int, ...] = BASE_ADDRESSES, *, size: int = MAX_READ
) -> int:
    """The first of ``bases`` that holds the SunSpec marker (see :func:`discover`)."""
    return (await _find(unit, bases, size)).base


async def _find(unit: Registers, bases: tuple[int, ...], size: int) -> _Walk:
    """A walk started at the first of ``bases`` that holds the marker.

    An exception reply means "not here". A timeout may mean the same on devices that stay
    silent on addresses they do not serve, so the other bases are still tried; if none
    answers with the marker the timeout is raised, since it says more than "not found".
    """
    timeout: DeviceTimeoutError | None = None
    for base in bases:
        walk = _Walk(unit, base, size)
        try:
            await walk.start()
        except DeviceTimeoutError as err:
            timeout = timeout or err
            continue
        except DeviceError as err:
            if not is_refusal(err):
                raise
            continue
        if walk.marked:
            return walk
    if timeout is not None:
        raise timeout
    where = ", ".join(str(base) for base in bases)
    raise IdentificationError(f"no SunSpec marker 'SunS' at {where}")


async def walk_chain(unit: Registers, base: int, *, size: int = MAX_READ) -> Chain:
    """Read the chain after the marker at ``base`` up to the end marker, in blocks of at most
    ``size`` registers.

    The walk stops at the end marker, or at an exception reply to a model's header once a
    model has been found (some devices end their chains that way). Raises
    :class:`~edge_ems.exceptions.IdentificationError` when the first model is not the
    common model, and :class:`~edge_ems.exceptions.DeviceProtocolError` for a chain that
    leaves the address space, holds model ID 0 or does not end within
    :data:`MAX_MODELS` models.
    """
    walk = _Walk(unit, base, size)
    await walk.start()
    return await _walk(walk)


async def _walk(walk: _Walk) -> Chain:
    base, got = walk.base, walk.registers
    models: list[FoundModel] = []
    header = base + 2  # the next header to parse
    cursor = max(got) + 1  # the next register to read
    while True:
        while header in got:
            if got[header] == END_MODEL and models:
                return Chain(base, tuple(models), MappingProxyType(dict(got)))
            if header + 1 not in got:
                break
            model = _model(base, header, got[header], got[header + 1], models)
            models.append(model)
            header = model.end + 1
        if header + 1 > LAST_ADDRESS:
            raise DeviceProtocolError(
                f"SunSpec chain from {base} runs past the last register without an end marker"
            )
        cursor = min(cursor, header + 1)
        while cursor in got:
            cursor += 1
        try:
            cursor = await walk.advance(cursor, header)
        except DeviceError as err:
            if not is_refusal(err):
                raise
            if models:  # the header itself refused: some devices end their chains so
                return Chain(base, tuple(models), MappingProxyType(dict(got)))
            raise DeviceProtocolError(
                f"SunSpec marker at {base} but no model header at {header}"
            ) from err


def _model(
    base: int, address: int, model_id: int, length: int, models: list[FoundModel]
) -> FoundModel:
    """The model whose header was read at ``address``, after checking it can be one."""
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
    return model


async def discover(unit: Registers, base: int | None = None, *, size: int = MAX_READ) -> Chain:
    """Find the marker (at ``base``, or at :data:`BASE_ADDRESSES`) and walk the chain, in
    reads of at most ``size`` registers (a device's learned cap, say)."""
    return await _walk(await _find(unit, BASE_ADDRESSES if base is None else (base,), size))


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
