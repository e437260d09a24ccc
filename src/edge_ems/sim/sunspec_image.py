"""The register image of a simulated SunSpec hybrid inverter, from SunSpec's definitions.

The reverse of :mod:`edge_ems.sunspec` decoding: metric values go through the same mapping
table backwards, each scale factor is chosen as the finest that holds every value sharing
it, and every point without a value reads "not implemented". A simulator serves the image
(address to register value) from any Modbus server.

The inverter carries the common model 1, the three-phase inverter 103 (the integer model
nearly every hybrid implements, and the one 120-124 were written for), nameplate 120,
settings 121, status 122, controls 123, storage controls 124, the MPPT strings of 160 and
the battery 802 (124 has no battery power). A grid meter, when asked for, follows as a
second device of the chain (its own model 1 and a three-phase meter 203), the way
inverters expose the meters wired to them.

Building an image loads model definitions: blocking file I/O the first time (cached).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from ..device import DeviceIdentity
from ..readings import Value
from ..sunspec.codec import SF_RANGE, encode_raw, raw_range, unscaled
from ..sunspec.discovery import END_MODEL, MARKER
from ..sunspec.layout import GroupLayout, model_layout
from ..sunspec.mapping import READ_POINTS, ReadingPoint
from ..sunspec.models import GroupDef, ModelDef, PointDef, model_definition
from ..sunspec.readout import ENUM_TYPES, is_flag

INVERTER_MODELS = (1, 103, 120, 121, 122, 123, 124, 160, 802)
METER_MODELS = (1, 203)
FINEST_EXPONENT = -3
"""Scale factors start here: three decimals are all a simulator needs."""

DEFAULT_POINTS: Mapping[tuple[int, str], Value] = MappingProxyType(
    {
        (123, "WMaxLimPct"): 100, (123, "WMaxLim_Ena"): 0, (123, "WMaxLimPct_RvrtTms"): 0,
        (124, "WChaMax"): 5000, (124, "StorCtl_Mod"): 0, (124, "OutWRte"): 100,
        (124, "InWRte"): 100, (124, "InOutWRte_RvrtTms"): 0,
    }
)  # fmt: skip
"""Controls as a device leaves them at start: no limit in force, full charge and
discharge rates, no revert timer."""

INVERTER_IDENTITY = DeviceIdentity("Edge EMS", "Simulated hybrid inverter", "SIM-0001", "1.0.0")
METER_IDENTITY = DeviceIdentity("Edge EMS", "Simulated grid meter", "SIM-0002", "1.0.0")

type _Key = tuple[str | None, int, str]
"""A point in a model: (repeating group or None, instance, point name)."""


@dataclass(frozen=True, slots=True)
class ImageDevice:
    """One device of a simulated chain."""

    models: tuple[int, ...]
    identity: DeviceIdentity
    values: Mapping[str, Value] = field(default_factory=dict)
    """Metric values, as the device would read them."""
    points: Mapping[tuple[int, str], Value] = field(default_factory=dict)
    """Values of top-level points by (model, point), in engineering units."""
    strings: int = 2
    """MPPT inputs (model 160 modules)."""


def _repeating_instances(group: GroupDef, strings: int) -> int:
    if group.count is None:
        return 1
    if group.count == 0:
        return strings
    raise ValueError(f"group {group.name}: counted groups are not simulated")


def _length(model: ModelDef, strings: int) -> int:
    size = model.group.size + sum(
        _repeating_instances(group, strings) * group.size for group in model.group.groups
    )
    return size - 2


def _point_value(reading: ReadingPoint, point: PointDef, value: Value) -> Value:
    """A metric's value as the point holds it: the mapping table read backwards."""
    if value is None or (isinstance(value, str) and point.type not in ENUM_TYPES):
        return value
    if point.type in ENUM_TYPES and not is_flag(point):
        named = point
        if reading.symbols_from is not None:
            named = model_definition(reading.symbols_from).group.point(point.name) or point
        codes = {name.lower(): code for code, name in named.symbols.items()}
        return codes[str(value).lower()]
    if isinstance(value, bool | str):
        return int(bool(value))
    return value * 100 if reading.pf_percent else value


def _values(model: ModelDef, device: ImageDevice) -> dict[_Key, Value]:
    """Point values by key: defaults, then metric values, then explicit point values."""
    values: dict[_Key, Value] = {(None, 0, "ID"): model.id}
    for (model_id, name), value in DEFAULT_POINTS.items():
        if model_id == model.id:
            values[(None, 0, name)] = value
    for reading in READ_POINTS:
        if reading.model == model.id and reading.metric in device.values:
            group = model.group if reading.group is None else _child(model.group, reading.group)
            point = group.point(reading.point)
            assert point is not None
            key = (reading.group, reading.index, reading.point)
            values[key] = _point_value(reading, point, device.values[reading.metric])
    identity = device.identity
    if model.id == 1:
        values |= {
            (None, 0, "Mn"): identity.manufacturer, (None, 0, "Md"): identity.model,
            (None, 0, "SN"): identity.serial, (None, 0, "Vr"): identity.firmware,
            (None, 0, "DA"): 1,
        }  # fmt: skip
    if model.id == 160:
        values[(None, 0, "N")] = device.strings
        for index in range(device.strings):
            values[("module", index, "ID")] = index + 1
            values[("module", index, "IDStr")] = f"PV{index + 1}"
    for (model_id, name), value in device.points.items():
        if model_id == model.id:
            values[(None, 0, name)] = value
    return values


def _child(group: GroupDef, name: str) -> GroupDef:
    return next(child for child in group.groups if child.name == name)


def _placed(
    layout: GroupLayout, key: tuple[str | None, int], scope: tuple[GroupLayout, ...]
) -> Iterator[tuple[_Key, PointDef, int, tuple[GroupLayout, ...]]]:
    """Every placed point with its key, address and the groups its scale factor may be in."""
    scope = (*scope, layout)
    for name, address in layout.points.items():
        point = layout.group.point(name)
        assert point is not None
        yield (*key, name), point, address, scope
    for group_name, instances in layout.groups.items():
        for index, instance in enumerate(instances):
            yield from _placed(instance, (group_name, index), scope)


def _owner(name: str, scope: tuple[GroupLayout, ...]) -> tuple[int, str]:
    """The scale-factor point ``name`` as (address of its group instance, name)."""
    owner = next(layout for layout in reversed(scope) if layout.group.point(name) is not None)
    return owner.address, name


def _exponent(point: PointDef, values: Sequence[float]) -> int:
    """The finest exponent at which every value fits ``point``'s type."""
    low, high = raw_range(point)
    for exponent in range(FINEST_EXPONENT, SF_RANGE[1] + 1):
        if all(low <= unscaled(value, exponent) <= high for value in values):
            return exponent
    raise ValueError(f"{point.name}: {max(values, key=abs)} does not fit at any scale")


def model_image(model: ModelDef, address: int, device: ImageDevice) -> dict[int, int]:
    """The registers of ``model`` at ``address`` for ``device``."""
    layout = model_layout(model, address, _length(model, device.strings))
    values = _values(model, device)
    values[(None, 0, "L")] = layout.length
    placed = list(_placed(layout.root, (None, 0), ()))
    shared: dict[tuple[int, str], list[float]] = {}
    for key, point, _, scope in placed:
        value = values.get(key)
        if isinstance(point.sf, str) and isinstance(value, int | float):
            shared.setdefault(_owner(point.sf, scope), []).append(float(value))
    exponents = {
        owner: _exponent(point, shared[owner])
        for key, point, _, scope in placed
        if isinstance(point.sf, str) and (owner := _owner(point.sf, scope)) in shared
    }
    registers: dict[int, int] = {}
    for key, point, address_of, scope in placed:
        value = values.get(key)
        if point.type == "sunssf":
            value = exponents.get((scope[-1].address, point.name), 0)
        elif isinstance(point.sf, str) and isinstance(value, int | float):
            value = unscaled(value, exponents[_owner(point.sf, scope)])
        elif isinstance(value, float) and point.type not in {"float32", "float64"}:
            value = round(value)
        raw = value if isinstance(value, int | float | str) else None
        words = encode_raw(point, raw)
        registers.update(zip(range(address_of, address_of + point.size), words, strict=True))
    return registers


def sunspec_image(devices: Sequence[ImageDevice], *, base: int = 40000) -> dict[int, int]:
    """The register image of a SunSpec chain of ``devices`` starting at ``base``."""
    registers = dict(zip((base, base + 1), MARKER, strict=True))
    address = base + 2
    for device in devices:
        for model_id in device.models:
            image = model_image(model_definition(model_id), address, device)
            registers |= image
            address = max(image) + 1
    registers |= {address: END_MODEL, address + 1: 0}
    return registers


def hybrid_inverter(
    values: Mapping[str, Value],
    *,
    points: Mapping[tuple[int, str], Value] | None = None,
    strings: int = 2,
    meter: Mapping[str, Value] | None = None,
    base: int = 40000,
) -> dict[int, int]:
    """A hybrid inverter reading ``values``, and a grid meter reading ``meter`` if given."""
    devices = [ImageDevice(INVERTER_MODELS, INVERTER_IDENTITY, values, points or {}, strings)]
    if meter is not None:
        devices.append(ImageDevice(METER_MODELS, METER_IDENTITY, meter))
    return sunspec_image(devices, base=base)
