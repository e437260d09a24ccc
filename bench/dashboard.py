"""The hub's dashboard with 500 series: time to the first chart, and frame times while the
page updates.

Run: ``scripts/in-env python bench/dashboard.py``. A hub in this process (SQLite store, the
gRPC gateway, the REST API) with an inventory of ``ASSETS`` assets of five sparkline metrics
each (active, PV, battery and grid power, state of charge): ``SERIES`` series, an hour of
minutes stored for each, and new samples of every series accepted every second while the
page is open, as agents would send them. Headless chromium (Debian's) opens the Sparklines
page, the heaviest: a card and a 60-minute chart per series.

- ``first_chart_ms``: from navigation to the first chart drawn (the page's own
  ``edge-ems:first-chart`` mark), the median of ``LOADS`` loads; ``page_load_ms`` the
  ``load`` event of the same loads.
- Frame times: for ``WATCH_S`` seconds the page polls as it does (new values every 5 s,
  stored minutes every 30 s) while the person scrolls down the page and back (so charts
  are made as they come into view); every animation frame's time is taken with
  ``requestAnimationFrame``. ``frame_ms_p50``, ``frame_ms_p95``, ``frame_ms_max``, and
  ``long_frames`` (over 50 ms: what people notice as a stall) of ``frames``.
- ``charts_drawn``: charts made by the end (the page makes them only in view).
"""

from __future__ import annotations

import asyncio
import math
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playwright.async_api import Page
from scripts.hass_demo.browser import chromium

from _common import emit, median, progress
from edge_ems.gateway.model import SeriesSamples, TelemetryBatch
from edge_ems.hub.api import ApiServer, ApiSettings, AuditTrail, HubServices, create_app
from edge_ems.hub.gateway import GatewayServer
from edge_ems.hub.sessions import InventoryAsset
from edge_ems.hub.store import open_store

ASSETS = 100
METRICS = ("ac_power_w", "pv_power_w", "battery_power_w", "grid_power_w", "soc_pct")
SERIES = ASSETS * len(METRICS)
TOKEN = "bench-dashboard-token-0123456789"
LOADS = 5
WATCH_S = 20.0
LONG_FRAME_MS = 50.0
AGENT = "bench"

FRAMES = """async ([seconds]) => {
    const times = [];
    const end = performance.now() + seconds * 1000;
    const height = () => document.documentElement.scrollHeight - innerHeight;
    let last = performance.now();
    await new Promise((done) => {
        const frame = (now) => {
            times.push(now - last);
            last = now;
            // Down the page and back up once over the watch, as a person would look.
            const left = (end - now) / (seconds * 1000);
            window.scrollTo(0, height() * (1 - Math.abs(2 * left - 1)));
            if (now < end) requestAnimationFrame(frame);
            else done();
        };
        requestAnimationFrame(frame);
    });
    return { times, drawn: document.querySelector("edge-ems-sparklines").drawn };
}"""


def value(metric: str, asset: int, moment: float) -> float:
    """A value that moves: a slow wave per asset, with noise."""
    wave = math.sin(moment / 300 + asset)
    if metric == "soc_pct":
        return round(50 + 40 * wave, 1)
    return round(3000 * wave + random.uniform(-100, 100), 1)


def batch(seq: int, moments: Sequence[float]) -> TelemetryBatch:
    series = [
        SeriesSamples(
            f"asset-{asset:03d}",
            metric,
            [round(moment * 1000) for moment in moments],
            [value(metric, asset, moment) for moment in moments],
        )
        for asset in range(ASSETS)
        for metric in METRICS
    ]
    return TelemetryBatch(AGENT, "bench-site", seq, series)


async def first_chart(page: Page) -> float:
    """When the page marked its first chart (ms from navigation). Polled with evaluate: the
    page's CSP (no unsafe-eval) refuses wait_for_function's string predicates."""
    async with asyncio.timeout(60):
        while True:
            mark = await page.evaluate(
                "() => performance.getEntriesByName('edge-ems:first-chart')[0]?.startTime ?? null"
            )
            if mark is not None:
                return float(mark)
            await asyncio.sleep(0.05)


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def run(folder: Path) -> dict[str, object]:
    store = open_store(folder / "store.db")
    await store.open()
    audit = AuditTrail(store.backend)
    inventory = [
        InventoryAsset(f"asset-{n:03d}", "bench-site", name=f"Inverter {n:03d}",
                       site_name="Bench", type="hybrid_inverter")
        for n in range(ASSETS)
    ]  # fmt: skip
    gateway = GatewayServer(store, {AGENT: TOKEN}, inventory=inventory, claims=store.backend)
    grpc_port = await gateway.start("127.0.0.1:0")
    services = HubServices(gateway, store, audit, grpc_port)
    api = ApiServer(create_app(services, ApiSettings(TOKEN, rate_limit=1000, rate_burst=1000)))
    port = await api.start("127.0.0.1", 0)
    url = f"http://127.0.0.1:{port}"
    seq = 0
    try:
        now = time.time()
        progress(f"storing an hour of {SERIES} series...")
        for minute in range(60, 0, -1):
            seq += 1
            await store.accept(batch(seq, [now - minute * 60 + 30]))
        await store.flush(full=True)

        async def feed() -> None:
            nonlocal seq
            while True:
                seq += 1
                await store.accept(batch(seq, [time.time()]))
                await asyncio.sleep(1.0)

        feeding = asyncio.create_task(feed())
        try:
            async with chromium() as browser:
                context = await browser.new_context(viewport={"width": 1280, "height": 900})
                page = await context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))
                await page.goto(f"{url}/#token={TOKEN}")  # the token into the tab's storage
                await page.wait_for_url(f"{url}/#/overview")
                first, loaded = [], []
                await page.goto(f"{url}/#/sparklines")
                for n in range(LOADS):
                    await page.reload()  # a new document each time, the token kept
                    first.append(await first_chart(page))
                    loaded.append(
                        await page.evaluate(
                            "() => performance.getEntriesByType('navigation')[0].loadEventEnd"
                        )
                    )
                    progress(f"load {n + 1}: first chart at {first[-1]:.0f} ms")
                cards = await page.locator(".spark").count()
                progress(f"watching frames for {WATCH_S:.0f} s with {cards} cards...")
                watched = await page.evaluate(FRAMES, [WATCH_S])
                frames = [t for t in watched["times"][1:] if t > 0]
                if errors:
                    raise RuntimeError(f"the page failed: {errors}")
        finally:
            feeding.cancel()
    finally:
        await api.stop()
        await gateway.stop()
        await audit.stop()
        await store.close()
    return {
        "series": SERIES,
        "cards": cards,
        "first_chart_ms": round(median(first), 1),
        "page_load_ms": round(median(loaded), 1),
        "frames": len(frames),
        "frame_ms_p50": round(median(frames), 2),
        "frame_ms_p95": round(percentile(frames, 0.95), 2),
        "frame_ms_max": round(max(frames), 1),
        "long_frames": sum(1 for t in frames if t > LONG_FRAME_MS),
        "charts_drawn": watched["drawn"],
    }


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="edge-ems-dashboard-") as folder:
        emit(asyncio.run(run(Path(folder))))


if __name__ == "__main__":
    main()
