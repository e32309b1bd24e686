"""The store on a real PostgreSQL server: same exactness as SQLite, across restarts."""

from __future__ import annotations

import grpc
import psycopg
import pytest

from tests.harness import make_config, running_collector
from tests.replay import CASES, expected, replay

CASES_NO_AUTH = [c for c in CASES if c != "gzip-headers"]


def _pg(url: str, replica: str = "r1"):
    return make_config({"exporters": {"store": {"url": url, "replica_id": replica}}})


def _spend(collector) -> dict[str, float]:
    return {
        "cost": collector.total("claude_code_cost_usd_total"),
        **{
            t: collector.total("claude_code_tokens_total", type=t)
            for t in ("input", "output", "cache_read", "cache_creation")
        },
        "sessions": collector.total("claude_code_sessions_total"),
        "lines": collector.total("claude_code_lines_of_code_total"),
    }


@pytest.mark.parametrize("case", CASES_NO_AUTH)
def test_replay_twice_matches_the_cli_once(pg_url: str, case: str) -> None:
    result = expected(case)
    with running_collector(_pg(pg_url)) as collector:
        for _ in range(2):
            assert all(s in (200, grpc.StatusCode.OK) for s in replay(case, collector))
        spend = _spend(collector)
    assert spend["cost"] == pytest.approx(result["total_cost_usd"], abs=1e-9)
    assert spend["input"] == result["usage"]["input_tokens"]
    assert spend["cache_read"] == result["usage"]["cache_read_input_tokens"]
    assert spend["sessions"] == 1


def test_restart_resumes_counters_and_dedupes_retries(pg_url: str) -> None:
    with running_collector(_pg(pg_url)) as first:
        replay("grpc", first)
        before = _spend(first)
    with running_collector(_pg(pg_url)) as second:
        assert _spend(second) == before
        replay("grpc", second)
        assert _spend(second) == before
        assert second.total("cc_collector_items_total", outcome="duplicate") > 0


def test_migrations_are_idempotent(pg_url: str) -> None:
    for _ in range(2):
        with running_collector(_pg(pg_url)):
            pass
    with psycopg.connect(pg_url) as conn:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY 1")]
    assert versions == [1]


def test_sqlite_and_postgresql_expose_the_same_numbers(pg_url: str) -> None:
    with running_collector(_pg(pg_url)) as on_pg:
        replay("http-json", on_pg)
        pg_samples = {
            k: v
            for k, v in on_pg.samples().items()
            if k[0].startswith("claude_code_") and "timestamp" not in k[0]
        }
    with running_collector(make_config()) as on_sqlite:
        replay("http-json", on_sqlite)
        sqlite_samples = {
            k: v
            for k, v in on_sqlite.samples().items()
            if k[0].startswith("claude_code_") and "timestamp" not in k[0]
        }
    assert pg_samples == sqlite_samples
    assert pg_samples
