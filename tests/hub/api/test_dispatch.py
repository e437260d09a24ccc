"""``POST /dispatch`` through the gateway to an agent's guarded dispatch, and ``/audit``."""

from __future__ import annotations

from typing import Any

from edge_ems.metrics import BATTERY_POWER

from ..gateway.conftest import Proxy, SiteFactory
from .conftest import HubMaker, LiveHub


async def _audit(live: LiveHub, **params: Any) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = (await live.json("/audit", **params))["records"]
    return records


async def test_asset_dispatch_moves_the_battery_and_is_audited(
    live: LiveHub, site_factory: SiteFactory
) -> None:
    site = await site_factory(live.address, agent_id="agent-1", site_id="farm")
    response = await live.post(
        "/dispatch", {"asset_id": "bess-2", "power_w": -3000, "ttl_s": 60, "requested_by": "ops"}
    )
    assert response.status == 200, await response.text()
    answer = await response.json()
    assert (answer["agent_id"], answer["error"], answer["applied"]) == ("agent-1", None, True)
    [record] = answer["records"]
    assert (record["device_id"], record["command"], record["applied"]) == (
        "bess-2",
        BATTERY_POWER,
        -3000,
    )
    assert record["requested_by"] == "ops"
    assert site.batteries["bess-2"].battery.command_w == -3000
    assert site.batteries["bess-1"].battery.command_w == 0
    # The answer's record is in the store's audit table by the time the answer arrives.
    stored = await _audit(live, device_id="bess-2")
    assert [r["id"] for r in stored] == [record["id"]]
    assert stored[0] == record


async def test_site_dispatch_splits_in_the_agent_and_megawatts_are_accepted(
    live: LiveHub, site_factory: SiteFactory
) -> None:
    site = await site_factory(live.address, agent_id="agent-1", site_id="farm")
    response = await live.post("/dispatch", {"site_id": "farm", "mw": 0.009})
    answer = await response.json()
    assert response.status == 200, answer
    assert {r["device_id"]: r["applied"] for r in answer["records"]} == {
        "bess-1": 3000,
        "bess-2": 6000,
    }
    assert site.batteries["bess-2"].battery.command_w == 6000
    release = await live.post("/dispatch", {"site_id": "farm", "release": True})
    assert release.status == 200
    assert {r["outcome"] for r in (await release.json())["records"]} == {"released"}
    assert site.batteries["bess-2"].battery.command_w == 0
    assert len(await _audit(live, site_id="farm")) == 4


async def test_unknown_and_unserved_targets_are_refused_and_audited(live: LiveHub) -> None:
    unknown = await live.post("/dispatch", {"asset_id": "ghost", "power_w": 100})
    assert unknown.status == 404
    body = await unknown.json()
    assert body["error"]["code"] == "unknown_asset"
    assert (body["audit"]["outcome"], body["audit"]["reason"]) == ("refused", "unknown_device")
    no_site = await live.post("/dispatch", {"site_id": "moon", "power_w": 100})
    assert no_site.status == 404
    offline = await live.post("/dispatch", {"asset_id": "spare", "power_w": 100})
    assert offline.status == 409
    offline_body = await offline.json()
    assert offline_body["error"]["code"] == "not_connected"
    assert offline_body["audit"]["site_id"] == "depot"
    records = await _audit(live, outcome="refused")
    assert [r["device_id"] for r in records] == ["spare", None, "ghost"]  # newest first
    unknown_device = await _audit(live, outcome="refused", reason="unknown_device")
    assert [r["device_id"] for r in unknown_device] == ["ghost"]
    wrong = await live.get("/audit", reason="bored")
    assert wrong.status == 400
    assert "reason: one of" in (await wrong.json())["error"]["message"]


async def test_an_agent_that_does_not_answer_gives_504(
    hub_maker: HubMaker, site_factory: SiteFactory, proxy_factory: Any
) -> None:
    hub = await hub_maker(setpoint_timeout=0.5)
    proxy: Proxy = await proxy_factory(hub.grpc_port)
    site = await site_factory(proxy.address, agent_id="agent-1", site_id="farm")
    proxy.stall()
    response = await hub.post("/dispatch", {"asset_id": "bess-1", "power_w": 500})
    assert response.status == 504
    body = await response.json()
    assert body["error"]["code"] == "agent_timeout"
    assert body["audit"]["outcome"] == "failed"
    assert body["command_id"]
    proxy.resume()
    assert site.batteries["bess-1"].battery.command_w in (0, 500)  # it may arrive late


async def test_hostile_bodies_are_refused_with_4xx(live: LiveHub) -> None:
    cases: list[tuple[Any, int]] = [
        ([1, 2], 400),
        ("power", 400),
        ({"asset_id": "bess-1"}, 400),
        ({"asset_id": 7, "power_w": 1}, 400),
        ({"asset_id": "bess-1", "power_w": True}, 400),
        ({"asset_id": "bess-1", "power_w": "100"}, 400),
        ({"asset_id": "bess-1", "power_w": 1e300}, 400),
        ({"asset_id": "bess-1", "power_w": 1, "mw": 1}, 400),
        ({"asset_id": "bess-1", "power_w": 1, "mw": None}, 400),
        ({"asset_id": None, "site_id": "farm", "release": True}, 400),
        ({"asset_id": "bess-1", "power_w": 1, "ttl_s": -1}, 400),
        ({"asset_id": "bess-1", "power_w": 1, "surprise": 1}, 400),
        ({"asset_id": "", "power_w": 1}, 400),
        ({"asset_id": "x" * 200, "power_w": 1}, 400),
        ({"power_w": 1}, 400),
    ]
    for body, status in cases:
        response = await live.post("/dispatch", body)
        assert response.status == status, body
        assert (await response.json())["error"]["status"] == status
    headers = {"Authorization": "Bearer api-token-0123456789abcdef"}
    for raw, content_type, status in [
        (b"{not json", "application/json", 400),
        (b"[" * 3000 + b"]" * 3000, "application/json", 413),
        (b"[" * 2000 + b"]" * 2000, "application/json", 400),
        (b'{"asset_id": "bess-1", "power_w": 1}', "text/plain", 400),
        (b"x" * 100_000, "application/json", 413),
        (b"\xff\xfe", "application/json", 400),
    ]:
        async with live.http.post(
            live.url + "/dispatch",
            data=raw,
            headers=headers | {"Content-Type": content_type},
        ) as response:
            assert response.status == status, (raw[:20], content_type)


async def test_audit_pages_and_filters(live: LiveHub) -> None:
    for n in range(5):
        await live.post("/dispatch", {"asset_id": f"ghost-{n}", "power_w": n})
    first = await live.json("/audit", limit=2)
    assert [r["device_id"] for r in first["records"]] == ["ghost-4", "ghost-3"]
    second = await live.json("/audit", limit=2, cursor=first["next_cursor"])
    assert [r["device_id"] for r in second["records"]] == ["ghost-2", "ghost-1"]
    last = await live.json("/audit", limit=2, cursor=second["next_cursor"])
    assert ([r["device_id"] for r in last["records"]], last["next_cursor"]) == (["ghost-0"], None)
    for params in ({"cursor": "nonsense"}, {"limit": "0"}, {"outcome": "maybe"}, {"since": "x"}):
        response = await live.get("/audit", **params)
        assert response.status == 400, params
