"""Split a site setpoint across its batteries: capacity-weighted, clamped, deterministic."""

from __future__ import annotations

from collections.abc import Mapping

from .policy import AssetLimits


def split_site_power(power_w: float, assets: Mapping[str, AssetLimits]) -> dict[str, float]:
    """Share ``power_w`` (+ discharge, - charge) among ``assets`` by usable capacity.

    Each asset's share is clamped to its own limits; what a clamped asset cannot take is
    offered again to the others, by capacity, until it is placed or nobody has headroom.
    Assets are taken in sorted id order, so the same inputs always give the same split.
    Assets without capacity share equally when none has a capacity.
    """
    order = sorted(assets)
    shares = dict.fromkeys(order, 0.0)
    remaining = power_w
    open_assets = [asset for asset in order if _headroom(assets[asset], power_w) > 0]
    while open_assets and abs(remaining) > 1e-9:
        weights = {asset: assets[asset].capacity_wh for asset in open_assets}
        total = sum(weights.values())
        if total <= 0:
            weights = dict.fromkeys(open_assets, 1.0)
            total = float(len(open_assets))
        placed = 0.0
        still_open = []
        for asset in open_assets:
            # The fraction first: a product with a tiny capacity would underflow.
            wanted = shares[asset] + remaining * (weights[asset] / total)
            clamped = assets[asset].clamp(wanted)
            placed += clamped - shares[asset]
            shares[asset] = clamped
            if clamped == wanted:
                still_open.append(asset)
        remaining -= placed
        if still_open == open_assets:
            break
        open_assets = still_open
    return {asset: round(share, 3) for asset, share in shares.items()}


def _headroom(limits: AssetLimits, power_w: float) -> float:
    return limits.max_discharge_w if power_w >= 0 else limits.max_charge_w
