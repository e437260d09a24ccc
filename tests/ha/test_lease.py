"""Setpoints as leases through the actions: lapse and safe-mode return, release, site split.

Leases run in real time (the library's dispatcher keeps its own monotonic clock), so the
lapse tests use a short time to live and wait for the simulated device to change.
"""

from __future__ import annotations

import pytest
from custom_components.edge_ems.const import EVENT_AUDIT
from custom_components.edge_ems.services import ATTR_RECORDS, MIN_TTL
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from pytest_homeassistant_custom_component.common import MockUser, async_capture_events

from edge_ems.sim.site import SimulatedSite

from .support import (
    BESS,
    DEYE,
    LIVE,
    SUNSPEC,
    call,
    deye_register,
    eventually,
    ha_device_id,
    setup_battery_site,
)

pytestmark = pytest.mark.ha

WORK_MODE_ADDRESS = 142
SAFE_WORK_MODE = 2
"""The Deye map's safe mode: zero export to the CT."""


def sunspec_idle(site: SimulatedSite) -> bool:
    """The SunSpec battery is commanded no power: its own control, or a window pinned at 0 W."""
    assert site.sunspec is not None
    assert site.plant.sunspec is not None
    controls = site.sunspec.controls(site.plant.sunspec)
    return controls.mode == 0 or controls.discharge_pct == controls.charge_pct == 0


def bess_command_w(site: SimulatedSite) -> float:
    """The power the OPC UA BESS simulator was told to run at."""
    assert site.opcua is not None
    return site.opcua.battery.command_w


async def test_a_lapsed_lease_returns_the_battery_to_safe_mode(
    hass: HomeAssistant, sim_site: SimulatedSite, hass_admin_user: MockUser
) -> None:
    entry = await setup_battery_site(hass, sim_site, options=LIVE)
    events = async_capture_events(hass, EVENT_AUDIT)
    context = Context(user_id=hass_admin_user.id)
    response = await call(hass, "dispatch", context=context,
                          device_id=ha_device_id(hass, entry, SUNSPEC),
                          power_w=-1200, ttl=MIN_TTL)  # fmt: skip
    assert response[ATTR_RECORDS][0]["outcome"] == "applied"
    assert not sunspec_idle(sim_site)

    released = await eventually(
        lambda: [e for e in events if e.data["record"]["outcome"] == "released"]
    )
    record = released[0].data["record"]
    assert (record["device_id"], record["reason"], record["source"]) == (
        SUNSPEC,
        "lease_expired",
        "lease",
    )
    assert record["requested_by"] == f"user:{hass_admin_user.id} ({hass_admin_user.name})"
    # The lapse is the lease's doing, not part of the call that started it.
    assert released[0].context.id != context.id
    assert released[0].context.user_id is None
    await eventually(lambda: sunspec_idle(sim_site))
    assert SUNSPEC not in entry.runtime_data.dispatcher.leases()


async def test_a_renewed_lease_holds(hass: HomeAssistant, sim_site: SimulatedSite) -> None:
    entry = await setup_battery_site(hass, sim_site, options=LIVE)
    device_id = ha_device_id(hass, entry, BESS)
    await call(hass, "dispatch", device_id=device_id, power_w=800, ttl=MIN_TTL)
    await call(hass, "dispatch", device_id=device_id, power_w=900, ttl=600)
    value, left = entry.runtime_data.dispatcher.leases()[BESS]
    assert value == 900
    assert left > MIN_TTL
    await eventually(lambda: bess_command_w(sim_site) == 900)


async def test_a_power_setpoint_written_as_a_command_is_a_lease_too(
    hass: HomeAssistant, sim_site: SimulatedSite
) -> None:
    entry = await setup_battery_site(hass, sim_site, options={**LIVE, "lease_ttl": 30})
    response = await call(hass, "write_point", device_id=ha_device_id(hass, entry, BESS),
                          command="battery_power_setpoint_w", value="-700")  # fmt: skip
    (record,) = response[ATTR_RECORDS]
    assert (record["outcome"], record["applied"], record["ttl"]) == ("applied", -700, 30)
    assert entry.runtime_data.dispatcher.leases()[BESS][0] == -700


async def test_release_returns_a_device_to_safe_mode_now(
    hass: HomeAssistant, sim_site: SimulatedSite
) -> None:
    entry = await setup_battery_site(hass, sim_site, options=LIVE)
    device_id = ha_device_id(hass, entry, SUNSPEC)
    await call(hass, "dispatch", device_id=device_id, power_w=1000, ttl=600)
    assert not sunspec_idle(sim_site)
    response = await call(hass, "release", device_id=device_id)
    records = response[ATTR_RECORDS]
    assert records
    assert {(r["device_id"], r["outcome"], r["reason"]) for r in records} == {
        (SUNSPEC, "released", "release_requested")
    }
    assert sunspec_idle(sim_site)
    assert entry.runtime_data.dispatcher.leases() == {}


async def test_release_of_the_site_covers_every_device(
    hass: HomeAssistant, sim_site: SimulatedSite
) -> None:
    entry = await setup_battery_site(hass, sim_site, options=LIVE)
    await call(hass, "write_point", device_id=ha_device_id(hass, entry, DEYE),
               command="work_mode", value="selling_first")  # fmt: skip
    await call(hass, "dispatch", power_w=-2000, ttl=600)
    response = await call(hass, "release", config_entry_id=entry.entry_id)
    released = {record["device_id"] for record in response[ATTR_RECORDS]}
    assert released == {BESS, DEYE, SUNSPEC}
    assert deye_register(sim_site, WORK_MODE_ADDRESS) == SAFE_WORK_MODE
    assert sunspec_idle(sim_site)
    await eventually(lambda: bess_command_w(sim_site) == 0)


async def test_release_is_refused_while_control_is_off(
    hass: HomeAssistant, sim_site: SimulatedSite
) -> None:
    await setup_battery_site(hass, sim_site, options={})
    with pytest.raises(ServiceValidationError) as raised:
        await call(hass, "release")
    assert raised.value.translation_key == "refused_control_disabled"


async def test_a_site_setpoint_is_split_by_capacity(
    hass: HomeAssistant, sim_site: SimulatedSite
) -> None:
    entry = await setup_battery_site(hass, sim_site, options=LIVE)
    response = await call(hass, "dispatch", config_entry_id=entry.entry_id, power_w=-3000)
    shares = {record["device_id"]: record["applied"] for record in response[ATTR_RECORDS]}
    # 5 kWh and 20 kWh: a fifth and four fifths.
    assert shares == {BESS: -2400, SUNSPEC: -600}
    await eventually(lambda: bess_command_w(sim_site) == -2400)
    assert entry.runtime_data.dispatcher.leases().keys() == {BESS, SUNSPEC}


async def test_a_site_setpoint_beyond_one_battery_goes_to_the_other(
    hass: HomeAssistant, sim_site: SimulatedSite
) -> None:
    entry = await setup_battery_site(hass, sim_site, options=LIVE)
    response = await call(hass, "dispatch", config_entry_id=entry.entry_id, power_w=-10_000)
    shares = {record["device_id"]: record["applied"] for record in response[ATTR_RECORDS]}
    # The BESS takes at most 5 kW; the rest is offered to the SunSpec battery, up to its 2.5 kW.
    assert shares == {BESS: -5000, SUNSPEC: -2500}


async def test_unloading_the_site_returns_leased_devices_to_safe_mode(
    hass: HomeAssistant, sim_site: SimulatedSite
) -> None:
    entry = await setup_battery_site(hass, sim_site, options=LIVE)
    events = async_capture_events(hass, EVENT_AUDIT)
    await call(hass, "dispatch", device_id=ha_device_id(hass, entry, BESS), power_w=700, ttl=600)
    assert await hass.config_entries.async_unload(entry.entry_id)
    released = [e.data["record"] for e in events if e.data["record"]["outcome"] == "released"]
    assert [(r["device_id"], r["applied"]) for r in released] == [(BESS, 0)]
    await eventually(lambda: bess_command_w(sim_site) == 0)
