"""The whole site on every protocol, read through the library's own clients."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge_ems.modbus import LinkRegistry
from edge_ems.readings import Readings
from edge_ems.sim.clients import SiteDevice, site_devices
from edge_ems.sim.config import SiteConfig
from edge_ems.sim.site import SimulatedSite

from ..bms.support import Mosquitto, eventually, free_port
from .conftest import MODBUS_ONLY, PATIENT, FakeClock

PROTOCOLS = {"Modbus TCP", "RTU over TCP", "OPC UA", "MQTT", "CAN (virtual)"}


@pytest.fixture(scope="module")
def address_space(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OPC UA's standard address space, built once for the module."""
    return tmp_path_factory.mktemp("opcua") / "address-space"


@pytest.fixture
async def full_site(clock: FakeClock, address_space: Path) -> AsyncIterator[SimulatedSite]:
    config = SiteConfig(tick=0.1)  # a CAN channel of its own
    async with SimulatedSite(config, clock=clock, opcua_cache=address_space) as running:
        yield running


@pytest.fixture
async def devices(full_site: SimulatedSite) -> AsyncIterator[dict[str, SiteDevice]]:
    registry = LinkRegistry()
    found = await site_devices(full_site.endpoints, registry, settings=PATIENT)
    try:
        for item in found:
            await item.device.connect()
        yield {item.key: item for item in found}
    finally:
        for item in found:
            await item.device.close()
        await registry.close()


async def readings_of(item: SiteDevice, *metrics: str) -> Readings:
    """The device's readings once they hold ``metrics`` (pushed devices need a moment)."""
    return await eventually(item.device.read, lambda found: all(m in found for m in metrics))


async def test_every_device_answers_on_its_own_protocol(
    full_site: SimulatedSite, devices: dict[str, SiteDevice]
) -> None:
    assert {row.protocol for row in full_site.endpoints.services()} == PROTOCOLS
    assert set(devices) == {
        "deye", "sdm630", "sunspec", "sunspec_meter", "bess", "mqtt_bms", "can_bms",
        "ev_charger", "heat_pump", "battery_inverter",
    }  # fmt: skip
    special = {"sdm630": "grid_power_w", "sunspec_meter": "grid_power_w",
               "ev_charger": "ev_state", "heat_pump": "flow_temperature_c"}  # fmt: skip
    for item in devices.values():
        metric = special.get(item.key, "soc_pct")
        assert item.device.identity is not None
        assert (await readings_of(item, metric))[metric].value is not None


async def test_each_battery_management_system_reports_its_battery(
    full_site: SimulatedSite, devices: dict[str, SiteDevice]
) -> None:
    plant = full_site.plant
    assert plant.sunspec is not None
    assert plant.bess is not None
    mqtt = await readings_of(devices["mqtt_bms"], "soc_pct", "battery_power_w")
    assert mqtt["soc_pct"].value == pytest.approx(plant.sunspec.battery.soc_pct, abs=0.05)
    assert mqtt["battery_power_w"].value == pytest.approx(plant.sunspec.battery.power_w, abs=0.5)
    can = await readings_of(devices["can_bms"], "soc_pct")
    assert can["soc_pct"].value == round(plant.physics.battery.soc_pct)
    bess = await readings_of(devices["bess"], "soc_pct")
    assert bess["soc_pct"].value == pytest.approx(plant.bess.soc_pct)


async def test_an_opcua_setpoint_moves_the_bess_and_the_site_balance(
    full_site: SimulatedSite, devices: dict[str, SiteDevice]
) -> None:
    await devices["bess"].device.write("battery_power_setpoint_w", -2000)

    async def bess_flow() -> float | None:
        flows = full_site.step()
        return flows.bess_w

    await eventually(bess_flow, lambda seen: seen == -2000)
    flows = full_site.step()
    delivered = (
        flows.deye_ac_w
        + flows.sunspec_ac_w
        + flows.bess_w
        + flows.battery_inverter_w
        + flows.ev_w
        + flows.heat_pump_w
    )
    assert flows.grid_w == pytest.approx(flows.house_w - delivered, abs=0.5)
    meter = await devices["sdm630"].device.read()
    assert meter["grid_power_w"].value == pytest.approx(flows.grid_w, abs=0.05)


async def test_the_mqtt_bms_publishes_to_a_broker_it_is_given(
    tmp_path: Path, clock: FakeClock
) -> None:
    broker = Mosquitto(tmp_path, free_port())
    broker.start()
    try:
        config = dataclasses.replace(MODBUS_ONLY, mqtt_bms="esphome_jk_bms", tick=0.1)
        async with SimulatedSite(config, clock=clock, mqtt=(broker.host, broker.port)) as site:
            assert site.endpoints.mqtt == (broker.host, broker.port)
            registry = LinkRegistry()
            found = {item.key: item for item in await site_devices(site.endpoints, registry)}
            try:
                await found["mqtt_bms"].device.connect()
                await readings_of(found["mqtt_bms"], "soc_pct")
            finally:
                await found["mqtt_bms"].device.close()
                await registry.close()
    finally:
        broker.stop()
