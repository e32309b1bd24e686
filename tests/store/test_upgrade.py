"""Upgrading a store written before schema version 4 (ADR 0008).

Version 4 puts the record's own second in front of the dedupe keys of delta points and
events. Keys a collector stored before that have the old form (kind + digest), and a client
retrying across the upgrade must still get a duplicate: the collector looks both forms up
until the last old key expires. These tests make a store as an older collector left it (the
same keys in their old form, no version 4), start the current collector on it and retry.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from collector.accounting.claims import DEDUPE_KINDS, legacy_dedupe_key
from collector.config import Config
from exporters.store.backend import Backend
from tests.harness import RunningCollector, running_collector
from tests.replay import expected, replay
from tests.store.workload import config

CASE = "http-protobuf"
#: an old high-water row that outlives every dedupe key: the horizon must not follow it.
OTHER_KIND_ROW = (b"S" + bytes(range(16)), 5, 5)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Config]]:
    """(backend target, collector config) for an empty store of each kind."""
    if request.param == "sqlite":
        path = tmp_path / "c.db"
        yield f"sqlite:///{path}", config({"path": str(path)}, "r1")
    else:
        url = request.getfixturevalue("pg_url")
        yield url, config({"url": url}, "r1")


def _as_version_3(target: str) -> tuple[int, int]:
    """Rewrite the store as a collector before version 4 left it; returns how many dedupe
    keys it rewrote and the latest expiry among them."""

    def work(db: Backend) -> tuple[int, int]:
        rows = db.query("SELECT key, expires_at FROM acc_state")
        dedupe = [(bytes(key), expires) for key, expires in rows if key[0] in DEDUPE_KINDS]
        for key, _ in dedupe:
            db.execute("UPDATE acc_state SET key = ? WHERE key = ?", (legacy_dedupe_key(key), key))
        latest = max(expires for _, expires in dedupe)
        db.execute(
            "INSERT INTO acc_state (key, a, b, expires_at) VALUES (?, ?, ?, ?)",
            (*OTHER_KIND_ROW, latest + 10**12),
        )
        db.execute("DROP TABLE store_meta")
        db.execute("DELETE FROM schema_version WHERE version >= 4")
        return len(dedupe), latest

    backend = Backend.open(target)
    try:
        return backend.transaction(work)
    finally:
        backend.close()


def _horizon(target: str) -> int:
    backend = Backend.open(target)
    try:
        return backend.transaction(Backend.legacy_dedupe_until)
    finally:
        backend.close()


def _totals(collector: RunningCollector) -> tuple[float, ...]:
    return (
        collector.total("claude_code_cost_usd_total"),
        collector.total("claude_code_tokens_total"),
        collector.total("claude_code_events_total"),
        collector.total("claude_code_sessions_total"),
        collector.total("claude_code_api_request_duration_seconds_count"),
    )


def test_retries_across_the_upgrade_are_duplicates(store: tuple[str, Config]) -> None:
    target, cfg = store
    with running_collector(cfg) as old:
        assert all(s in (200, grpc.StatusCode.OK) for s in replay(CASE, old))
        before = _totals(old)
        accepted = old.total("cc_collector_items_total", outcome="accepted")
    assert before[0] == pytest.approx(expected(CASE)["total_cost_usd"], abs=1e-9)
    assert _horizon(target) == 0  # a store that never had old keys never looks them up

    rewritten, latest = _as_version_3(target)
    assert rewritten > 0
    with running_collector(cfg) as new:
        assert _horizon(target) == latest
        assert _totals(new) == before
        assert all(s in (200, grpc.StatusCode.OK) for s in replay(CASE, new))
        assert _totals(new) == before
        assert new.total("cc_collector_items_total", outcome="accepted") == 0
        assert new.total("cc_collector_items_total", outcome="duplicate") == accepted


def test_old_keys_past_their_expiry_are_not_looked_up(store: tuple[str, Config]) -> None:
    """Old keys that expired before the upgrade set no horizon: nothing is looked up twice,
    and a record whose key expired counts again, as `dedupe_ttl` says."""
    target, cfg = store
    with running_collector(cfg) as old:
        replay(CASE, old)
        accepted = old.total("cc_collector_items_total", outcome="accepted")
    _as_version_3(target)
    backend = Backend.open(target)
    try:
        backend.transaction(
            lambda db: db.execute(
                "UPDATE acc_state SET expires_at = 1 WHERE key <> ?", (OTHER_KIND_ROW[0],)
            )
        )
    finally:
        backend.close()
    with running_collector(cfg) as new:
        assert _horizon(target) == 1
        replay(CASE, new)
        assert new.total("cc_collector_items_total", outcome="accepted") == accepted
