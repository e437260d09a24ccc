"""The simulated site behaves physically: SOC integrates power, the grid balances the rest."""

from __future__ import annotations

from edge_ems.sim.physics import Battery, PvArray, Site

NOON = 12 * 3600.0
MIDNIGHT = 0.0


def test_pv_follows_the_sun() -> None:
    pv = PvArray(peak_w=8000)
    assert pv.power_w(MIDNIGHT) == 0
    assert 5000 < pv.power_w(NOON) <= 8000


def test_battery_soc_integrates_power_and_respects_limits() -> None:
    battery = Battery(capacity_wh=10_000, soc_pct=50, max_charge_w=5000)
    battery.advance(0)
    assert battery.command(-8000) == -5000
    battery.advance(3600)
    assert 97 <= battery.soc_pct <= 98  # 5 kWh in at 95 % efficiency
    assert battery.charge_energy_wh == 5000
    battery.advance(7200)
    assert battery.soc_pct == 100
    assert battery.command(-1000) == 0  # full: no more charge
    assert battery.command(2000) == 2000


def test_site_balances_through_the_grid() -> None:
    site = Site(self_consumption=False)
    site.battery.command(-2000)
    site.advance(NOON)
    expected = site.load.power_w(NOON) - site.pv.power_w(NOON) + 2000
    assert abs(site.grid_w(NOON) - expected) < 0.2
    site.advance(NOON + 3600)
    assert site.grid_export_wh > 0 or site.grid_import_wh > 0
