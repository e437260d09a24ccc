"""The simulator's register image, served by a real server, reads back as the values it holds."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modbus_connection import ModbusUnit

from edge_ems.readings import Quality, Value
from edge_ems.sim.sunspec_image import (
    INVERTER_IDENTITY,
    INVERTER_MODELS,
    METER_IDENTITY,
    METER_MODELS,
    ImageDevice,
    hybrid_inverter,
    sunspec_image,
)
from edge_ems.sunspec import SunSpecDevice

from .conftest import RegisterServer

INVERTER: dict[str, Value] = {
    "ac_power_w": 4321,
    "ac_current_a": 18.75,
    "ac_current_l1_a": 6.25,
    "ac_voltage_l1_v": 230.4,
    "ac_voltage_l1_l2_v": 399.1,
    "ac_frequency_hz": 50.01,
    "ac_apparent_power_va": 4400,
    "ac_reactive_power_var": -350,
    "ac_power_factor": 0.98,
    "ac_energy_out_wh": 12_345_678,
    "dc_voltage_v": 612.5,
    "pv_power_w": 5120,
    "heatsink_temperature_c": 41.5,
    "inverter_state": "throttled",
    "device_alarms": 0b101,
    "rated_power_w": 8000,
    "pv1_power_w": 2600,
    "pv1_voltage_v": 580.2,
    "pv1_current_a": 4.48,
    "pv2_power_w": 2520,
    "battery_power_w": -1200,
    "battery_current_a": -23.4,
    "battery_voltage_v": 51.2,
    "soc_pct": 55.5,
    "battery_state": "charging",
    "battery_capacity_wh": 10_240,
    "active_power_limit_pct": 80,
    "active_power_limit_enabled": True,
    "control_revert_timeout_s": 600,
}
METER: dict[str, Value] = {
    "grid_power_w": -850,
    "grid_power_l1_w": -300,
    "grid_import_energy_wh": 1_234_567,
    "grid_export_energy_wh": 7_654_321,
    "ac_voltage_l2_v": 231.2,
    "ac_power_factor": -0.5,
}


async def read_back(
    server: RegisterServer, unit: ModbusUnit, registers: dict[int, int], index: int = 0
) -> dict[str, Value]:
    server.registers = registers
    device = SunSpecDevice(unit, device_index=index)
    await device.connect()
    readings = await device.read()
    assert all(reading.quality is Quality.GOOD for reading in readings.values())
    return {metric: reading.value for metric, reading in readings.items()}


async def test_a_hybrid_inverter_and_its_meter_round_trip(
    server: RegisterServer, unit: ModbusUnit
) -> None:
    registers = hybrid_inverter(INVERTER, meter=METER)
    inverter = await read_back(server, unit, registers)
    assert {metric: inverter[metric] for metric in INVERTER} == INVERTER
    assert inverter["device_serial"] == INVERTER_IDENTITY.serial
    meter = await read_back(server, unit, registers, index=1)
    assert {metric: meter[metric] for metric in METER} == METER
    assert meter["device_model"] == METER_IDENTITY.model


async def test_the_chain_holds_the_simulated_models(
    server: RegisterServer, unit: ModbusUnit
) -> None:
    server.registers = hybrid_inverter({}, meter={}, strings=4, base=0)
    device = SunSpecDevice(unit)
    await device.connect()
    assert device.chain is not None
    assert device.chain.base == 0
    assert tuple(m.id for m in device.chain.models) == INVERTER_MODELS + METER_MODELS
    readings = await device.read()
    assert readings["pv4_power_w"].value is None  # four modules, no values
    assert "pv5_power_w" not in readings
    assert set(device.commands) == {
        "active_power_limit_pct",
        "active_power_limit_enabled",
        "control_revert_timeout_s",
        "battery_power_setpoint_w",
        "battery_power_control_enabled",
    }
    assert readings["battery_power_setpoint_w"].value is None  # 124 window not in force
    assert readings["battery_power_control_enabled"].value is False


def _decimals(low: str, high: str, places: int) -> st.SearchStrategy[float]:
    return st.decimals(Decimal(low), Decimal(high), places=places).map(float)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.fixed_dictionaries(
        {
            "ac_power_w": st.integers(-20_000, 20_000),
            "ac_voltage_l1_v": _decimals("0", "500", 1),
            "ac_voltage_l2_v": _decimals("0", "500", 1),
            "ac_frequency_hz": _decimals("45", "65", 2),
            "ac_energy_out_wh": st.integers(1, 4_000_000_000),
            "pv1_power_w": st.integers(0, 30_000),
            "pv2_power_w": st.integers(0, 30_000),
            "battery_power_w": st.integers(-10_000, 10_000),
            "soc_pct": _decimals("0", "100", 1),
        }
    )
)
async def test_any_values_round_trip(
    server: RegisterServer, unit: ModbusUnit, values: dict[str, Value]
) -> None:
    decoded = await read_back(server, unit, hybrid_inverter(values))
    assert {metric: decoded[metric] for metric in values} == values


INVERTER_FAMILY: dict[str, Value] = {
    "ac_power_w": 2500,
    "ac_voltage_l1_v": 230.1,
    "ac_current_a": 10.9,
    "ac_power_factor": -0.95,
    "ac_energy_out_wh": 123_456,
    "inverter_state": "mppt",
}
DER_FAMILY: dict[str, Value] = {
    "ac_power_w": -2500,  # absorbing
    "ac_voltage_l1_l2_v": 400.2,
    "ac_power_factor": -0.95,
    "ac_energy_out_wh": 123_456,
    "ac_energy_in_wh": 654_321,
    "inverter_state": "running",
    "rated_power_w": 10_000,
}
METER_FAMILY: dict[str, Value] = {
    "grid_power_w": -850,
    "grid_import_energy_wh": 1000,
    "grid_export_energy_wh": 2000,
    "ac_voltage_l1_v": 230.1,
    "ac_voltage_l1_l2_v": 400.2,
    "ac_power_factor": 0.9,
}
STORAGE_FAMILY: dict[str, Value] = {
    "battery_power_w": 3000,
    "soc_pct": 80.5,
    "battery_state": "discharging",
    "battery_voltage_v": 400.5,
    "battery_capacity_wh": 13_500,
}


@pytest.mark.parametrize(
    ("models", "values"),
    [
        *(((1, model), INVERTER_FAMILY) for model in (101, 102, 103, 111, 112, 113)),
        ((1, 701, 702), DER_FAMILY),
        *(((1, model), METER_FAMILY) for model in (201, 202, 203, 204)),
        ((1, 124, 802), STORAGE_FAMILY),
    ],
)
async def test_every_model_family_round_trips(
    server: RegisterServer, unit: ModbusUnit, models: tuple[int, ...], values: dict[str, Value]
) -> None:
    registers = sunspec_image([ImageDevice(models, INVERTER_IDENTITY, values)])
    decoded = await read_back(server, unit, registers)
    assert {metric: decoded[metric] for metric in values} == values


async def test_a_meter_that_counts_export_as_positive(
    server: RegisterServer, unit: ModbusUnit
) -> None:
    server.registers = hybrid_inverter({}, meter={"grid_power_w": 850, "grid_power_l1_w": 300})
    device = SunSpecDevice(unit, device_index=1, meter_import_positive=False)
    await device.connect()
    readings = await device.read()
    assert readings["grid_power_w"].value == -850
    assert readings["grid_power_l1_w"].value == -300
