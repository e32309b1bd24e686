"""The store on a real PostgreSQL server: the same exactness as SQLite, across restarts.

Every test gets its own fresh database on the session's throwaway server (tests/pg.py).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest

from exporters.store.schema import POSTGRES, migrations
from tests.harness import running_collector
from tests.replay import CASES, captured, expected, replay
from tests.store.workload import (
    Resender,
    Workload,
    config,
    contract_samples,
    exposition_problems,
    store_usage,
    total,
)

TOKEN_TYPES = {
    "input": "input_tokens",
    "output": "output_tokens",
    "cache_read": "cache_read_input_tokens",
    "cache_creation": "cache_creation_input_tokens",
}


def _auth_for(case: str, required: bool = True) -> dict[str, Any]:
    """The gzip-headers capture was sent with a bearer token: accept it, as its replay does."""
    if case != "gzip-headers":
        return {}
    token = captured(case)[0].headers["authorization"].split()[1]
    auth = {"required": required, "tokens": [{"name": "laptop", "token": token}]}
    return {"receivers": {"otlp": {"auth": auth}}}


def _token(case: str) -> str | None:
    return "test-token" if case == "gzip-headers" else None


@pytest.mark.parametrize("case", CASES)
def test_replay_twice_matches_the_cli_once(pg_url: str, case: str) -> None:
    result = expected(case)
    with running_collector(config({"url": pg_url}, "r1", **_auth_for(case))) as collector:
        for _ in range(2):
            statuses = replay(case, collector, _token(case))
            assert all(s in (200, grpc.StatusCode.OK) for s in statuses), statuses
        samples = collector.samples()
    for label, key in TOKEN_TYPES.items():
        assert total(samples, "claude_code_tokens_total", type=label) == result["usage"][key]
    assert total(samples, "claude_code_cost_usd_total") == pytest.approx(
        result["total_cost_usd"], abs=1e-9
    )
    assert total(samples, "claude_code_sessions_total") == 1
    assert total(samples, "claude_code_api_requests_total") == result["num_turns"]
    assert total(samples, "claude_code_lines_of_code_total", type="added") == 11 + 3
    assert total(samples, "claude_code_lines_of_code_total", type="removed") == 2
    assert total(samples, "claude_code_commits_total") == 1
    assert total(samples, "claude_code_pull_requests_total") == 1
    # The store holds the same, in integer units (nano-USD).
    stored: dict[tuple[str, str], int] = {}
    for (_, metric, labels), amount in store_usage(pg_url).items():
        stored[(metric, labels)] = stored.get((metric, labels), 0) + amount
    model = next(iter(result["modelUsage"]))
    for label, key in TOKEN_TYPES.items():
        assert stored[("claude_code_tokens_total", f"{model}\x1f{label}")] == result["usage"][key]
    assert stored[("claude_code_cost_usd_total", model)] == round(result["total_cost_usd"] * 1e9)


def test_restart_mid_stream_resumes_counters_streams_and_dedupe(pg_url: str) -> None:
    """Half of every process's exports, a restart, then the client sends everything again from
    the start: /metrics resumes where it was, re-sent requests are duplicates (or stale
    cumulative points), and the second half's cumulative points count only what they add."""
    work = Workload(processes=4, rounds=6, seed=21, tag="restart")
    plan = work.all_batches()
    half = [batches[: len(batches) // 2] for batches in plan]
    resender = Resender()
    with running_collector(config({"url": pg_url}, "r1")) as first:
        for p, batches in enumerate(half):
            for j, batch in enumerate(batches):
                resender.deliver(first, batch, ("grpc", "http")[(p + j) % 2])
        before = contract_samples(first.samples())
    with running_collector(config({"url": pg_url}, "r1")) as second:
        assert contract_samples(second.samples()) == before
        for p, batches in enumerate(plan):
            for j, batch in enumerate(batches):
                resender.deliver(second, batch, ("http", "grpc")[(p + j) % 2])
        samples = second.samples()
    problems = exposition_problems(samples, work.expected())
    assert not problems, "\n".join(problems)
    assert total(samples, "cc_collector_items_total", outcome="accepted") == sum(
        b.items for batches, done in zip(plan, half, strict=True) for b in batches[len(done) :]
    )
    assert total(samples, "cc_collector_items_total", outcome="duplicate") > 0
    assert store_usage(pg_url) == work.expected_usage()


#: every schema version, each applied once (exporters/store/schema.py).
ALL_VERSIONS = list(range(1, len(migrations(POSTGRES)) + 1))


def _schema(url: str) -> tuple[list[int], list[str]]:
    with psycopg.connect(url) as conn:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY 1")]
        tables = [
            t
            for (t,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            )
        ]
    return versions, tables


def test_migrations_are_idempotent_and_keep_the_data(pg_url: str) -> None:
    work = Workload(processes=1, rounds=2, seed=5, tag="migrate")
    with running_collector(config({"url": pg_url}, "r1")) as first:
        for batch in work.batches(0):
            Resender().deliver(first, batch, "http")
    schema = _schema(pg_url)
    assert schema[0] == ALL_VERSIONS
    for _ in range(2):
        with running_collector(config({"url": pg_url}, "r1")) as again:
            problems = exposition_problems(again.samples(), work.expected())
            assert not problems, "\n".join(problems)
    assert _schema(pg_url) == schema
    assert store_usage(pg_url) == work.expected_usage()


def test_replicas_starting_at_once_on_an_empty_database_migrate_once(pg_url: str) -> None:
    """Three replicas start together on an empty database: one migrates (advisory lock), the
    others wait for it and find the schema done; all of them serve."""
    barrier = threading.Barrier(3, timeout=60)
    errors: list[BaseException] = []
    work = Workload(processes=3, rounds=1, seed=9, tag="together")

    def replica(i: int) -> None:
        try:
            barrier.wait()
            with running_collector(config({"url": pg_url}, f"r{i}")) as collector:
                for batch in work.batches(i):
                    Resender().deliver(collector, batch, "grpc")
                barrier.wait()  # everyone up at the same time
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=replica, args=(i,), daemon=True) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert not errors, errors
    versions, tables = _schema(pg_url)
    assert versions == ALL_VERSIONS
    assert {"acc_state", "usage_daily", "exposition", "schema_version"} <= set(tables)
    assert store_usage(pg_url) == work.expected_usage()


_ROW = (
    "SELECT day, actor, actor_kind, team, department, terminal, organization, metric, labels,"
    " amount FROM usage_daily ORDER BY day, actor, terminal, organization, metric, labels"
)


def _run_everything(collector: Any, work: Workload) -> None:
    for case in CASES:
        replay(case, collector, _token(case))
    resender = Resender()
    for _ in range(2):
        for p, batches in enumerate(work.all_batches()):
            for j, batch in enumerate(batches):
                resender.deliver(collector, batch, ("grpc", "http")[(p + j) % 2])


def test_sqlite_and_postgresql_give_identical_metrics_and_rows(pg_url: str, tmp_path: Path) -> None:
    """All captures and a multi-user workload, everything sent twice, on each store: the same
    /metrics (every claude_code_* sample but timestamps) and the same usage_daily rows."""
    work = Workload(processes=5, rounds=4, seed=33, tag="parity")
    auth = _auth_for("gzip-headers", required=False)
    sqlite_path = tmp_path / "collector.db"
    with running_collector(config({"url": pg_url}, "r1", **auth)) as on_pg:
        _run_everything(on_pg, work)
        pg_samples = contract_samples(on_pg.samples())
    with running_collector(config({"path": str(sqlite_path)}, "r1", **auth)) as on_sqlite:
        _run_everything(on_sqlite, work)
        sqlite_samples = contract_samples(on_sqlite.samples())
    assert pg_samples == sqlite_samples
    assert total(pg_samples, "claude_code_sessions_total") == 4 + work.processes
    with psycopg.connect(pg_url) as conn:
        pg_rows = [tuple(r) for r in conn.execute(_ROW).fetchall()]
    conn = sqlite3.connect(sqlite_path)
    try:
        sqlite_rows = [tuple(r) for r in conn.execute(_ROW).fetchall()]
    finally:
        conn.close()
    assert pg_rows == sqlite_rows
    assert len(pg_rows) > 50
