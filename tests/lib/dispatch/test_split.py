"""Site setpoints split capacity-weighted, clamped per asset, deterministically."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from edge_ems.dispatch import AssetLimits, split_site_power


def test_capacity_weighted() -> None:
    assets = {
        "b": AssetLimits(5000, 5000, 10_000),
        "a": AssetLimits(5000, 5000, 5_000),
    }
    assert split_site_power(3000, assets) == {"a": 1000.0, "b": 2000.0}
    assert split_site_power(-3000, assets) == {"a": -1000.0, "b": -2000.0}


def test_clamped_share_goes_to_assets_with_headroom() -> None:
    assets = {"small": AssetLimits(1000, 1000, 10_000), "big": AssetLimits(8000, 8000, 10_000)}
    assert split_site_power(6000, assets) == {"big": 5000.0, "small": 1000.0}


def test_unknown_limits_take_nothing() -> None:
    assets = {"known": AssetLimits(3000, 3000, 5000), "unknown": AssetLimits()}
    assert split_site_power(2000, assets) == {"known": 2000.0, "unknown": 0.0}


limits = st.builds(
    AssetLimits,
    st.floats(0, 20_000),
    st.floats(0, 20_000),
    st.floats(0, 50_000),
)


@given(
    st.floats(-50_000, 50_000), st.dictionaries(st.text("abcdef", min_size=1), limits, min_size=1)
)
def test_split_is_bounded_deterministic_and_complete(
    power: float, assets: dict[str, AssetLimits]
) -> None:
    shares = split_site_power(power, assets)
    assert shares == split_site_power(power, dict(reversed(assets.items())))
    assert list(shares) == sorted(assets)
    for asset, share in shares.items():
        assert -assets[asset].max_charge_w - 1e-3 <= share <= assets[asset].max_discharge_w + 1e-3
        assert share == 0 or (share > 0) == (power > 0)
    capacity = sum(
        (limit.max_discharge_w if power >= 0 else limit.max_charge_w) for limit in assets.values()
    )
    assert abs(sum(shares.values())) <= abs(power) + 0.01 * len(assets)
    if capacity >= abs(power):
        assert abs(sum(shares.values()) - power) <= 0.01 * len(assets) + 1e-6 * abs(power)
