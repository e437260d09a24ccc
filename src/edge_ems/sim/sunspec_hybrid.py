"""The simulated SunSpec hybrid inverter: its register image kept in step with the plant.

Every tick rebuilds the image from the plant through :mod:`edge_ems.sim.sunspec_image`,
except the registers of the controls a client may write (the allowlist of
:data:`edge_ems.sunspec.mapping.CONTROLS`, with their scale factors and ``WChaMax``), which
keep what was written, raw, so a write is never rescaled under a client's feet. The controls
take effect through :class:`~edge_ems.sim.storage.StorageControls`; a model whose revert
timer (``*RvrtTms``) runs out before the model is written again returns to its defaults.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ..exceptions import DeviceExceptionError
from ..pointmap.model import RegisterSpace
from ..readings import Value
from ..sunspec.codec import GroupValues, decode_model
from ..sunspec.discovery import discover
from ..sunspec.layout import ModelLayout, model_layout
from ..sunspec.mapping import CONTROLS, STORAGE_BASE
from ..sunspec.models import model_definition
from .ambient import frequency, line_voltage, phase_voltage
from .meter import grid_meter_values
from .modbus_server import UnitImage
from .physics import Battery
from .storage import StorageControls
from .sunspec_image import hybrid_inverter

if TYPE_CHECKING:
    from .plant import Hybrid, Plant

BASE = 40000
STRINGS = 2
LIMIT_MODEL, STORAGE_MODEL = 123, 124
REVERT_TIMERS = {LIMIT_MODEL: "WMaxLimPct_RvrtTms", STORAGE_MODEL: "InOutWRte_RvrtTms"}
_PHASES = ("l1", "l2", "l3")
_PAIRS = (("l1", "l2"), ("l2", "l3"), ("l3", "l1"))


def _battery_state(battery: Battery) -> str:
    if battery.power_w > 0:
        return "discharging"
    if battery.power_w < 0:
        return "charging"
    if battery.soc_pct >= battery.soc_max_pct:
        return "full"
    return "empty" if battery.soc_pct <= battery.soc_min_pct else "holding"


def _inverter_state(hybrid: Hybrid, timestamp: float) -> str:
    if hybrid.pv.power_w(timestamp) < hybrid.pv.available_w(timestamp):
        return "throttled"
    return "mppt" if hybrid.ac_w else "sleeping"


def inverter_values(plant: Plant) -> dict[str, Value]:
    """The SunSpec inverter's readings at the plant's latest tick, by metric."""
    hybrid, flows = plant.sunspec, plant.flows
    assert hybrid is not None
    assert flows is not None
    timestamp, battery, pv = flows.timestamp, hybrid.battery, hybrid.pv
    ac, dc = hybrid.ac_w, pv.power_w(timestamp)
    volts = pv.string_voltage(timestamp)
    cells = round(battery.nominal_voltage_v / 3.2)
    values: dict[str, Value] = {
        "ac_power_w": ac,
        "ac_apparent_power_va": abs(ac),
        "ac_reactive_power_var": 0,
        "ac_power_factor": 1.0,
        "ac_frequency_hz": frequency(timestamp),
        "ac_current_a": round(abs(ac) / phase_voltage(timestamp, "l1"), 2),
        "ac_energy_out_wh": round(hybrid.ac_energy_out_wh),
        "pv_power_w": dc,
        "dc_voltage_v": volts,
        "dc_current_a": round(dc / volts, 2) if volts else 0,
        "device_temperature_c": round(hybrid.cabinet.temperature_c, 1),
        "heatsink_temperature_c": round(hybrid.heatsink.temperature_c, 1),
        "inverter_state": _inverter_state(hybrid, timestamp),
        "device_alarms": 0,
        "rated_power_w": hybrid.rated_w,
        "battery_power_w": round(battery.power_w, 1),
        "battery_current_a": battery.current_a,
        "battery_voltage_v": battery.voltage_v,
        "soc_pct": round(battery.soc_pct, 1),
        "soh_pct": 100,
        "battery_state": _battery_state(battery),
        "battery_capacity_wh": battery.capacity_wh,
        "battery_capacity_ah": round(battery.capacity_wh / battery.nominal_voltage_v),
        "cell_voltage_max_v": round(battery.voltage_v / cells + 0.004, 3),
        "cell_voltage_min_v": round(battery.voltage_v / cells - 0.004, 3),
        "battery_charge_current_limit_a": round(battery.max_charge_w / battery.nominal_voltage_v),
        "battery_discharge_current_limit_a": round(
            battery.max_discharge_w / battery.nominal_voltage_v
        ),
        "soc_min_pct": battery.soc_min_pct,
        "soc_max_pct": battery.soc_max_pct,
        "bms_alarms": 0,
    }
    for phase in _PHASES:
        values[f"ac_current_{phase}_a"] = round(abs(ac) / 3 / phase_voltage(timestamp, phase), 2)
        values[f"ac_voltage_{phase}_v"] = phase_voltage(timestamp, phase)
    for first, second in _PAIRS:
        values[f"ac_voltage_{first}_{second}_v"] = line_voltage(timestamp, first, second)
    for index, power in enumerate(pv.string_power_w(timestamp)[:STRINGS], start=1):
        values |= {
            f"pv{index}_power_w": power,
            f"pv{index}_voltage_v": volts,
            f"pv{index}_current_a": round(power / volts, 2) if volts else 0,
        }
    return values


class _ImageRegisters:
    """A register dict as :class:`edge_ems.sunspec.transport.Registers`, to walk its chain."""

    def __init__(self, registers: Mapping[int, int]) -> None:
        self._registers = registers

    async def read_holding_registers(self, address: int, count: int) -> list[int]:
        if any(address + offset not in self._registers for offset in range(count)):
            raise DeviceExceptionError(f"{address}-{address + count - 1}: not served", code=2)
        return [self._registers[address + offset] for offset in range(count)]

    async def write_registers(self, address: int, values: list[int]) -> None:
        raise NotImplementedError("the chain is only read")


def _held(layouts: Mapping[int, ModelLayout]) -> dict[int, set[int]]:
    """The addresses of the writable controls, with their scale factors, by model."""
    held: dict[int, set[int]] = {}
    names = [(control.model, control.point) for control in CONTROLS]
    names.append((STORAGE_MODEL, STORAGE_BASE))
    for model_id, name in names:
        layout = layouts.get(model_id)
        point = None if layout is None else layout.model.group.point(name)
        if layout is None or point is None or name not in layout.root.points:
            continue
        addresses = held.setdefault(model_id, set())
        for point_name in (name, point.sf):
            if isinstance(point_name, str) and point_name in layout.root.points:
                first = layout.root.points[point_name]
                size = layout.model.group.point(point_name)
                assert size is not None
                addresses.update(range(first, first + size.size))
    return held


class SunSpecInverter:
    """The register image of the SunSpec hybrid and its meter, and the controls written to it.

    Build it with :meth:`create`; serve :attr:`image` from any Modbus server and pass every
    write that lands in it to :meth:`note_write`. ``monotonic`` times the revert timers: they
    run in real time, whatever speed the plant's clock runs at, as a client's leases do.
    """

    def __init__(
        self,
        image: UnitImage,
        layouts: Mapping[int, ModelLayout],
        pristine: Mapping[int, int],
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.image = image
        self._layouts = dict(layouts)
        self._held = _held(layouts)
        self._pristine = dict(pristine)
        self._monotonic = monotonic
        self._written_at: dict[int, float] = {}
        self._end = max(pristine)

    @classmethod
    async def create(
        cls, plant: Plant, *, monotonic: Callable[[], float] = time.monotonic
    ) -> SunSpecInverter:
        """The inverter of ``plant`` (which must hold a SunSpec hybrid), before any tick."""
        hybrid = plant.sunspec
        assert hybrid is not None
        registers = hybrid_inverter({}, points=_fixed_points(hybrid), strings=STRINGS, meter={})
        chain = await discover(_ImageRegisters(registers), BASE)
        layouts = {
            found.id: model_layout(model_definition(found.id), found.address, found.length)
            for found in chain.devices()[0]
        }
        image = UnitImage({RegisterSpace.HOLDING: registers})
        return cls(image, layouts, registers, monotonic=monotonic)

    def note_write(self, address: int, count: int) -> None:
        """Restart the revert timer of the model a write landed in."""
        last = address + count - 1
        for model_id, layout in self._layouts.items():
            if model_id in REVERT_TIMERS and address <= layout.end and last >= layout.address:
                self._written_at[model_id] = self._monotonic()

    def controls(self, hybrid: Hybrid) -> StorageControls:
        """The controls in force now, after any revert timer that ran out."""
        for model_id in REVERT_TIMERS:
            self._revert_if_due(model_id)
        limit = self._decoded(LIMIT_MODEL)
        storage = self._decoded(STORAGE_MODEL)
        defaults = StorageControls()

        def number(values: Mapping[str, Value] | None, name: str, default: float) -> float:
            value = None if values is None else values.get(name)
            return float(value) if isinstance(value, int | float) else default

        return StorageControls(
            base_w=number(storage, STORAGE_BASE, hybrid.battery.max_charge_w),
            mode=int(number(storage, "StorCtl_Mod", 0)),
            discharge_pct=number(storage, "OutWRte", defaults.discharge_pct),
            charge_pct=number(storage, "InWRte", defaults.charge_pct),
            limit_pct=number(limit, "WMaxLimPct", defaults.limit_pct),
            limit_enabled=number(limit, "WMaxLim_Ena", 0) == 1,
        )

    def refresh(self, plant: Plant) -> None:
        """Rewrite every register but the written controls from the plant's latest tick."""
        hybrid = plant.sunspec
        assert hybrid is not None
        registers = hybrid_inverter(
            inverter_values(plant),
            points=_fixed_points(hybrid),
            strings=STRINGS,
            meter=grid_meter_values(plant),
        )
        current = self._registers()
        for addresses in self._held.values():
            for address in addresses:
                registers[address] = current[address]
        self.image.write(
            RegisterSpace.HOLDING,
            BASE,
            [registers[address] for address in range(BASE, self._end + 1)],
        )

    def _registers(self) -> dict[int, int]:
        words = self.image.read(RegisterSpace.HOLDING, BASE, self._end - BASE + 1)
        return dict(enumerate(words, start=BASE))

    def _decoded(self, model_id: int) -> Mapping[str, Value] | None:
        layout = self._layouts.get(model_id)
        if layout is None:
            return None
        values: GroupValues = decode_model(layout, self._registers())
        return values.values

    def _revert_if_due(self, model_id: int) -> None:
        written = self._written_at.get(model_id)
        values = self._decoded(model_id)
        timer = None if values is None else values.get(REVERT_TIMERS[model_id])
        if written is None or not isinstance(timer, int) or timer <= 0:
            return
        if self._monotonic() - written < timer:
            return
        for address in sorted(self._held.get(model_id, ())):
            self.image.write(RegisterSpace.HOLDING, address, [self._pristine[address]])
        del self._written_at[model_id]


def _fixed_points(hybrid: Hybrid) -> dict[tuple[int, str], Value]:
    """Ratings the inverter's controls are relative to."""
    return {(121, "WMax"): hybrid.rated_w, (124, STORAGE_BASE): hybrid.battery.max_charge_w}
