"""Which SunSpec point is which canonical metric, and which points may be written.

The tables are in priority order: when a device carries several models that give the same
metric, the first present wins (the IEEE 1547 DER models 7xx before the older 1xx and
80x storage before 124).

Signs and units, converted here so every device speaks :mod:`edge_ems.metrics`:

* Inverters 101-103, 111-113 and DER 701 report ``W`` positive when delivering to the
  AC side (701: "positive for DER generation"): our asset convention as is.
* Meters 201-204 define no sign for ``W``. Metering practice is positive on import
  (delivered by the grid), our grid convention, and evcc reads 203's ``W`` that way
  for hybrid inverters' meters. Some vendors invert it (SolarEdge: positive on export),
  so the device takes a ``meter_import_positive`` option that flips every point marked
  ``meter_power``. Energy counters are named by direction (``TotWhImp``/``TotWhExp``)
  and need no sign.
* Battery 802 ``W`` and ``A`` are positive on discharge, as evcc and the inverters that
  implement 802 read them: our battery convention as is.
* ``PF`` in 101-103, 111-113 and 201-204 is in percent (units ``Pct``) by the models,
  but devices differ: SolarEdge sends 95.83, FIMER -1.0 (scale -4). Values beyond +-1
  are taken as percent (``pf_percent``); 701's ``PF`` is a fraction by definition.
* Model 124 has no power point; its charge and discharge rates are percentages of
  ``WChaMax``. :data:`STORAGE_SETPOINT` turns our battery power setpoint into that window.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..metrics import BATTERY_POWER, BATTERY_POWER_CONTROL, PHASE_PAIRS, PHASES, PV_STRINGS


@dataclass(frozen=True, slots=True)
class ReadingPoint:
    """A point read as a metric."""

    metric: str
    model: int
    point: str
    group: str | None = None
    """Repeating group holding the point (160's ``module``); ``None`` for the model's top."""
    index: int = 0
    """Instance of ``group``, from 0."""
    pf_percent: bool = False
    """A power factor SunSpec defines in percent. Many devices send a fraction instead
    (FIMER at scale -4, Kostal at -3), so only magnitudes above 1 are divided by 100."""
    meter_power: bool = False
    """A meter's power: its sign follows the device's ``meter_import_positive`` option."""
    symbols_from: int | None = None
    """Model whose definition names this enum's values, where the point's own model
    misnames them: sunspec/models' 111 calls 101's MPPT "ggMPPT"."""
    any_bit: bool = False
    """A bitfield read as a flag: on while any of its bits is set."""


@dataclass(frozen=True, slots=True)
class ControlPoint:
    """A point that may be written, as a metric: the write allowlist."""

    metric: str
    model: int
    point: str
    limits: tuple[float, float] | None = None
    """Engineering limits the point's meaning sets, beyond what its type can hold."""
    on: int | None = None
    """A bitfield switched as one flag: the raw value written for on (off writes 0). It
    reads on while any bit is set, so off means none of what it governs is in force."""


INVERTER_MODELS = (101, 102, 103, 111, 112, 113)
METER_MODELS = (201, 202, 203, 204)

_PHASE_LETTERS = ("A", "B", "C")
_PAIR_LETTERS = ("AB", "BC", "CA")


def _inverter() -> tuple[ReadingPoint, ...]:
    points = {
        "A": "ac_current_a", "W": "ac_power_w", "Hz": "ac_frequency_hz",
        "VA": "ac_apparent_power_va", "VAr": "ac_reactive_power_var", "WH": "ac_energy_out_wh",
        "DCA": "dc_current_a", "DCV": "dc_voltage_v", "DCW": "pv_power_w",
        "TmpCab": "device_temperature_c", "TmpSnk": "heatsink_temperature_c",
        "St": "inverter_state", "Evt1": "device_alarms",
    }  # fmt: skip
    for phase, letter in zip(PHASES, _PHASE_LETTERS, strict=True):
        points[f"Aph{letter}"] = f"ac_current_{phase}_a"
        points[f"PhVph{letter}"] = f"ac_voltage_{phase}_v"
    for pair, letters in zip(PHASE_PAIRS, _PAIR_LETTERS, strict=True):
        points[f"PPVph{letters}"] = f"ac_voltage_{pair}_v"
    rows = [
        ReadingPoint(
            metric, model, point, symbols_from=101 if (model, point) == (111, "St") else None
        )
        for model in INVERTER_MODELS
        for point, metric in points.items()
    ]
    rows += [
        ReadingPoint("ac_power_factor", model, "PF", pf_percent=True) for model in INVERTER_MODELS
    ]
    return tuple(rows)


def _der() -> tuple[ReadingPoint, ...]:
    points = {
        "W": "ac_power_w", "VA": "ac_apparent_power_va", "Var": "ac_reactive_power_var",
        "PF": "ac_power_factor", "A": "ac_current_a", "Hz": "ac_frequency_hz",
        "TotWhInj": "ac_energy_out_wh", "TotWhAbs": "ac_energy_in_wh",
        "TmpCab": "device_temperature_c", "TmpSnk": "heatsink_temperature_c",
        "InvSt": "inverter_state", "Alrm": "device_alarms",
    }  # fmt: skip
    for number, phase in enumerate(PHASES, start=1):
        points[f"WL{number}"] = f"ac_power_{phase}_w"
        points[f"AL{number}"] = f"ac_current_{phase}_a"
        points[f"VL{number}"] = f"ac_voltage_{phase}_v"
    for pair, name in zip(PHASE_PAIRS, ("VL1L2", "VL2L3", "VL3L1"), strict=True):
        points[name] = f"ac_voltage_{pair}_v"
    return (
        *(ReadingPoint(metric, 701, point) for point, metric in points.items()),
        ReadingPoint("rated_power_w", 702, "WMaxRtg"),
    )


def _meter() -> tuple[ReadingPoint, ...]:
    rows: list[ReadingPoint] = []
    for model in METER_MODELS:
        # 201 names its line-to-line voltages PPVph.., 202-204 PhVph..
        pair_prefix = "PPVph" if model == 201 else "PhVph"
        rows += [
            ReadingPoint("grid_power_w", model, "W", meter_power=True),
            ReadingPoint("grid_import_energy_wh", model, "TotWhImp"),
            ReadingPoint("grid_export_energy_wh", model, "TotWhExp"),
            ReadingPoint("ac_current_a", model, "A"),
            ReadingPoint("ac_frequency_hz", model, "Hz"),
            ReadingPoint("ac_apparent_power_va", model, "VA"),
            ReadingPoint("ac_reactive_power_var", model, "VAR"),
            ReadingPoint("ac_power_factor", model, "PF", pf_percent=True),
            ReadingPoint("device_alarms", model, "Evt"),
        ]
        for phase, letter in zip(PHASES, _PHASE_LETTERS, strict=True):
            rows += [
                ReadingPoint(f"grid_power_{phase}_w", model, f"Wph{letter}", meter_power=True),
                ReadingPoint(f"ac_current_{phase}_a", model, f"Aph{letter}"),
                ReadingPoint(f"ac_voltage_{phase}_v", model, f"PhVph{letter}"),
            ]
        rows += [
            ReadingPoint(f"ac_voltage_{pair}_v", model, f"{pair_prefix}{letters}")
            for pair, letters in zip(PHASE_PAIRS, _PAIR_LETTERS, strict=True)
        ]
    return tuple(rows)


def _storage() -> tuple[ReadingPoint, ...]:
    return (
        ReadingPoint("battery_power_w", 802, "W"),
        ReadingPoint("battery_current_a", 802, "A"),
        ReadingPoint("battery_voltage_v", 802, "V"),
        ReadingPoint("soc_pct", 802, "SoC"),
        ReadingPoint("soh_pct", 802, "SoH"),
        ReadingPoint("battery_state", 802, "ChaSt"),
        ReadingPoint("battery_capacity_wh", 802, "WHRtg"),
        ReadingPoint("battery_capacity_ah", 802, "AHRtg"),
        ReadingPoint("cell_voltage_max_v", 802, "CellVMax"),
        ReadingPoint("cell_voltage_min_v", 802, "CellVMin"),
        ReadingPoint("battery_charge_current_limit_a", 802, "AChaMax"),
        ReadingPoint("battery_discharge_current_limit_a", 802, "ADisChaMax"),
        ReadingPoint("soc_min_pct", 802, "SoCRsvMin"),
        ReadingPoint("soc_max_pct", 802, "SocRsvMax"),
        ReadingPoint("bms_alarms", 802, "Evt1"),
        ReadingPoint("soc_pct", 124, "ChaState"),
        ReadingPoint("battery_voltage_v", 124, "InBatV"),
        ReadingPoint("battery_state", 124, "ChaSt"),
        ReadingPoint("soc_min_pct", 124, "MinRsvPct"),
        ReadingPoint("battery_capacity_wh", 120, "WHRtg"),
        ReadingPoint("battery_capacity_ah", 120, "AhrRtg"),
    )


def _mppt() -> tuple[ReadingPoint, ...]:
    return tuple(
        ReadingPoint(f"{string}_{quantity}", 160, point, group="module", index=index)
        for index, string in enumerate(PV_STRINGS)
        for point, quantity in (("DCW", "power_w"), ("DCV", "voltage_v"), ("DCA", "current_a"))
    )


READINGS: tuple[ReadingPoint, ...] = (
    *_der(),
    *_inverter(),
    ReadingPoint("rated_power_w", 120, "WRtg"),
    *_storage(),
    *_mppt(),
    *_meter(),
)
"""Points read as metrics, in priority order. Control points are read as well."""

STORAGE_SETPOINT = BATTERY_POWER
"""Written through model 124: charge limit ``InWRte`` and discharge limit ``OutWRte``,
both as percentages of ``WChaMax``, with both limits active (``StorCtl_Mod`` = 3). A
setpoint P (positive discharges) sets ``OutWRte`` = P and ``InWRte`` = -P, so the window
narrows to P: a negative charge limit forces discharge, a negative discharge limit forces
charge (the window Fronius documents for its hybrids)."""
STORAGE_BASE = "WChaMax"
STORAGE_DISCHARGE = "OutWRte"
STORAGE_CHARGE = "InWRte"
STORAGE_MODE = "StorCtl_Mod"
STORAGE_BOTH_LIMITS = 0b11
"""``StorCtl_Mod`` with its CHARGE (bit 0) and DiSCHARGE (bit 1) limits active."""
STORAGE_CONTROL = BATTERY_POWER_CONTROL
"""``StorCtl_Mod`` as a flag: off (0) hands the battery back to the inverter's own
control, on puts both limits of the window in force. It reads on while either limit is,
so off is read only when the battery is wholly the inverter's again."""

CONTROLS: tuple[ControlPoint, ...] = (
    ControlPoint("active_power_limit_pct", 704, "WMaxLimPct", limits=(0, 100)),
    ControlPoint("active_power_limit_pct", 123, "WMaxLimPct", limits=(0, 100)),
    ControlPoint("active_power_limit_enabled", 704, "WMaxLimPctEna"),
    ControlPoint("active_power_limit_enabled", 123, "WMaxLim_Ena"),
    # Stand-ins until the vocabulary has an AC power setpoint and its enable (see report).
    ControlPoint("active_power_limit_w", 704, "WSet"),
    ControlPoint("control_enabled", 704, "WSetEna"),
    # Every revert timer the device has: one lease, refreshed by the dispatch layer.
    ControlPoint("control_revert_timeout_s", 704, "WMaxLimPctRvrtTms"),
    ControlPoint("control_revert_timeout_s", 704, "WSetRvrtTms"),
    ControlPoint("control_revert_timeout_s", 123, "WMaxLimPct_RvrtTms"),
    ControlPoint("control_revert_timeout_s", 124, "InOutWRte_RvrtTms"),
    # Model 124's charge/discharge window, written as one battery power setpoint.
    ControlPoint("battery_power_setpoint_w", 124, "OutWRte", limits=(-100, 100)),
    ControlPoint("battery_power_setpoint_w", 124, "InWRte", limits=(-100, 100)),
    ControlPoint("battery_power_setpoint_w", 124, "StorCtl_Mod"),
    # Switching the window off without touching its rates: what a lapsed lease writes.
    ControlPoint(STORAGE_CONTROL, 124, STORAGE_MODE, on=STORAGE_BOTH_LIMITS),
)
"""The write allowlist, in priority order. Nothing else is ever written."""

FAN_OUT = frozenset({"control_revert_timeout_s", "battery_power_setpoint_w"})
"""Metrics written to every allowlisted point the device has, not only the first."""

REVERT_TIMER = "control_revert_timeout_s"
"""The metric of the device's own revert timers (``*RvrtTms``), refreshed by dispatch."""

READ_POINTS: tuple[ReadingPoint, ...] = (
    *READINGS,
    *(
        ReadingPoint(control.metric, control.model, control.point, any_bit=control.on is not None)
        for control in CONTROLS
        if control.metric != STORAGE_SETPOINT
    ),
)
"""Every point read: the mapped ones and the allowlisted controls (the storage window's
setpoint is derived from its rates)."""
