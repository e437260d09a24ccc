"""Audit records, agent sessions, the uplink outbox and marks: what lives beside the minutes."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_ems.dispatch.audit import AuditRecord, Outcome, Reason
from edge_ems.hub.claims import ClaimKind
from edge_ems.hub.sessions import SessionRecord
from edge_ems.hub.store import (
    AuditQuery,
    MinuteStore,
    OutboxBatch,
    QueryError,
    SchemaError,
    StoreError,
    open_store,
)

from .conftest import T0, Clock


def record(
    n: int,
    *,
    site: str = "farm",
    outcome: Outcome = Outcome.APPLIED,
    reason: Reason = Reason.WRITTEN,
) -> AuditRecord:
    return AuditRecord(
        site_id=site,
        device_id=f"bess-{n % 2 + 1}",
        command="set_battery_power",
        requested=float(n),
        applied=float(n),
        outcome=outcome,
        reason=reason,
        message="",
        requested_by="test",
        source="hub_api",
        timestamp=1000.0 + n // 2,  # pairs share a timestamp: paging must order by id too
        id=f"rec-{n:03d}",
    )


async def test_audit_pages_newest_first_without_gaps_or_repeats(store: MinuteStore) -> None:
    records = [record(n) for n in range(25)]
    await store.backend.add_audit(records)
    await store.backend.add_audit(records[:3])  # stored again: ignored
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.backend.audit(AuditQuery(limit=7, cursor=cursor))
        seen += [r.id for r in page.records]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    expected = [r.id for r in sorted(records, key=lambda r: (r.timestamp, r.id), reverse=True)]
    assert seen == expected
    first = (await store.backend.audit(AuditQuery(limit=1))).records[0]
    assert first == max(records, key=lambda r: (r.timestamp, r.id))


async def test_audit_filters(store: MinuteStore) -> None:
    await store.backend.add_audit(
        [
            record(1),
            record(2, site="barn"),
            record(3, outcome=Outcome.REFUSED, reason=Reason.CONTROL_DISABLED),
            record(4, outcome=Outcome.REFUSED, reason=Reason.RATE_LIMITED),
        ]
    )
    barn = await store.backend.audit(AuditQuery(site_id="barn"))
    assert [r.id for r in barn.records] == ["rec-002"]
    refused = await store.backend.audit(AuditQuery(outcome=Outcome.REFUSED))
    assert [r.id for r in refused.records] == ["rec-004", "rec-003"]
    control_off = await store.backend.audit(AuditQuery(reason=Reason.CONTROL_DISABLED))
    assert [r.id for r in control_off.records] == ["rec-003"]
    both = AuditQuery(outcome=Outcome.REFUSED, reason=Reason.RATE_LIMITED, device_id="bess-1")
    assert [r.id for r in (await store.backend.audit(both)).records] == ["rec-004"]
    window = await store.backend.audit(AuditQuery(since=1001.0, until=1002.0))
    assert [r.id for r in window.records] == ["rec-003", "rec-002"]
    device = await store.backend.audit(AuditQuery(device_id="bess-2"))
    assert [r.id for r in device.records] == ["rec-003", "rec-001"]


@pytest.mark.parametrize("cursor", ["", "nonsense", "nan~x", "12.5~"])
async def test_a_forged_audit_cursor_is_a_query_error(store: MinuteStore, cursor: str) -> None:
    with pytest.raises(QueryError, match="not an audit cursor"):
        await store.backend.audit(AuditQuery(cursor=cursor))


async def test_sessions_are_kept_and_open_ones_can_be_ended(store: MinuteStore) -> None:
    backend = store.backend
    await backend.save_session(SessionRecord("s1", "agent-1", "ipv4:1", 10.0, 20.0, "gone"))
    await backend.save_session(SessionRecord("s2", "agent-1", "ipv4:2", 30.0))
    await backend.save_session(SessionRecord("s3", "agent-2", "ipv4:3", 40.0))
    assert [s.session_id for s in await backend.sessions("agent-1", 10)] == ["s2", "s1"]
    assert [s.session_id for s in await backend.sessions(None, 2)] == ["s3", "s2"]
    assert await backend.end_sessions(50.0, "hub stopped") == 2
    ended = await backend.sessions(None, 10)
    assert {(s.session_id, s.ended, s.end_reason) for s in ended} == {
        ("s1", 20.0, "gone"),
        ("s2", 50.0, "hub stopped"),
        ("s3", 50.0, "hub stopped"),
    }


async def test_reopening_the_store_ends_the_sessions_a_previous_run_left_open(
    stores: Callable[..., MinuteStore], clock: Clock
) -> None:
    first = stores()
    await first.open()
    await first.backend.save_session(SessionRecord("s1", "agent-1", "ipv4:1", 10.0))
    await first.close()
    clock.at(T0 + 5000)
    second = stores()
    await second.open()
    [ended] = await second.backend.sessions("agent-1", 1)
    assert (ended.ended, ended.end_reason) == ((T0 + 5000) / 1000, "hub stopped")


async def test_the_outbox_drops_its_oldest_batches_past_the_budget(store: MinuteStore) -> None:
    backend = store.backend

    def body(n: int, size: int = 100) -> OutboxBatch:
        return OutboxBatch(f"key-{n}", n * 300_000, 1.0, bytes([n]) * size)

    for n in range(5):
        assert await backend.outbox_put(body(n), budget_bytes=350, marks={"uplink": n}) == (
            1 if n >= 3 else 0
        )
    assert [b.key for b in await backend.outbox_head(10)] == ["key-2", "key-3", "key-4"]
    assert await backend.get_mark("uplink") == 4
    # The same key again is not queued twice; a batch larger than the budget is dropped.
    assert await backend.outbox_put(body(4), budget_bytes=350, marks={}) == 0
    assert await backend.outbox_put(body(9, 400), budget_bytes=350, marks={}) == 1
    await backend.outbox_remove("key-3")
    stats = await backend.outbox_stats()
    assert (stats.batches, stats.bytes, stats.dropped) == (2, 200, 3)
    assert (await backend.outbox_head(1))[0].body == bytes([2]) * 100


async def test_marks(store: MinuteStore) -> None:
    assert await store.backend.get_mark("parquet") is None
    await store.backend.set_mark("parquet", 5)
    await store.backend.set_mark("parquet", 7)
    assert await store.backend.get_mark("parquet") == 7


async def test_claims_bind_to_the_first_credential_all_or_nothing(
    stores: Callable[..., MinuteStore],
) -> None:
    farm, barn = (ClaimKind.SITE, "farm"), (ClaimKind.SITE, "barn")
    bess = (ClaimKind.ASSET, "bess-1")
    store = stores()
    await store.open()
    backend = store.backend
    assert await backend.claim([farm, bess], "agent-1", 1.0) == {farm: "agent-1", bess: "agent-1"}
    assert await backend.claim([farm, bess], "agent-1", 2.0) == {farm: "agent-1", bess: "agent-1"}
    # A conflict on one claim binds none of the others.
    assert await backend.claim([barn, bess], "agent-2", 3.0) == {barn: "agent-2", bess: "agent-1"}
    assert await backend.claim([barn], "agent-3", 4.0) == {barn: "agent-3"}
    await store.close()
    reopened = stores()
    await reopened.open()
    assert await reopened.backend.claim([farm, barn], "agent-2", 5.0) == {
        farm: "agent-1",
        barn: "agent-3",
    }


async def test_a_setting_keeps_its_first_value(store: MinuteStore) -> None:
    assert await store.backend.keep_first("hub_id", "hub-a") == "hub-a"
    assert await store.backend.keep_first("hub_id", "hub-b") == "hub-a"


async def test_a_version_1_file_gains_the_tables_of_version_2(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with open_store(path) as store:
        await store.backend.set_mark("kept", 7)
    with sqlite3.connect(path) as db:  # what version 1 wrote
        for table in ("settings", "claims", "hubs", "registrations"):
            db.execute(f"DROP TABLE {table}")
        db.execute("ALTER TABLE sessions DROP COLUMN hub")
        db.execute("PRAGMA user_version = 1")
    db.close()
    async with open_store(path) as store:
        assert await store.backend.get_mark("kept") == 7
        assert await store.backend.keep_first("hub_id", "hub-a") == "hub-a"
        assert await store.backend.claim([(ClaimKind.SITE, "farm")], "a", 1.0) == {
            (ClaimKind.SITE, "farm"): "a"
        }
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    db.close()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    store = open_store(path)
    with pytest.raises(SchemaError, match="schema version 99"):
        await store.open()
    await store.close()


async def test_an_unusable_path_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    store = open_store(tmp_path / "file" / "store.db")
    with pytest.raises(StoreError):
        await store.open()
    await store.close()
