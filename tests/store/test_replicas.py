"""Several collector replicas on one PostgreSQL stay exact with traffic spread across them.

Each simulated Claude Code process sends cumulative metrics whose successive exports land on
alternating replicas, retries every export on the *other* replica, and sends its events to
yet another replica than the metrics of the same round; processes run in parallel threads so
the replicas' transactions contend for the same state rows.
"""

from __future__ import annotations

import random
import threading
from contextlib import ExitStack

import psycopg
import pytest

from tests.api.client import post_otlp
from tests.builders import (
    CUMULATIVE,
    SECOND,
    T0,
    api_request,
    claude_metric,
    logs_request,
    metrics_request,
)
from tests.harness import make_config, running_collector

PROCESSES = 6
ROUNDS = 8


def _workload(seed: int) -> list[list[tuple[int, float]]]:
    """Per process, per round: (input tokens, cost USD) of one API call."""
    rng = random.Random(seed)
    return [
        [(rng.randint(1, 5000), round(rng.uniform(0.0001, 0.05), 7)) for _ in range(ROUNDS)]
        for _ in range(PROCESSES)
    ]


def _run_process(p: int, calls: list[tuple[int, float]], replicas: list, errors: list) -> None:
    try:
        who = {
            "user.email": f"dev{p % 3}@x.io",
            "session.id": f"session-{p % 4}",
            "team.id": f"team{p % 2}",
        }
        start = T0 + p  # same attributes for p and p+4 (same user and session): start time apart
        tokens = cost = 0.0
        for k, (n, usd) in enumerate(calls):
            t = T0 + (k + 1) * SECOND + p
            tokens += n
            cost += usd
            metrics = metrics_request(
                claude_metric(
                    "token.usage",
                    tokens,
                    time_ns=t,
                    start_ns=start,
                    temporality=CUMULATIVE,
                    extra={**who, "type": "input", "model": "m"},
                ),
                claude_metric(
                    "cost.usage",
                    cost,
                    time_ns=t,
                    start_ns=start,
                    temporality=CUMULATIVE,
                    extra={**who, "model": "m"},
                ),
            )
            events = logs_request(
                api_request(
                    f"req-{p}-{k}", time_ns=t, model="m", input_tokens=n, cost_usd=usd, extra=who
                )
            )
            first, other = replicas[(p + k) % 2], replicas[(p + k + 1) % 2]
            assert post_otlp(first, "metrics", metrics) == 200
            assert post_otlp(other, "logs", events) == 200
            assert post_otlp(other, "metrics", metrics) == 200  # a retry, elsewhere
            assert post_otlp(first, "logs", events) == 200
    except BaseException as exc:  # surfaced by the test thread
        errors.append(exc)


def test_replicas_on_one_database_count_exactly(pg_url: str) -> None:
    workload = _workload(seed=7)
    with ExitStack() as stack:
        replicas = [
            stack.enter_context(
                running_collector(
                    make_config(
                        {"exporters": {"store": {"url": pg_url, "replica_id": f"replica-{i}"}}}
                    )
                )
            )
            for i in range(2)
        ]
        errors: list[BaseException] = []
        threads = [
            threading.Thread(target=_run_process, args=(p, workload[p], replicas, errors))
            for p in range(PROCESSES)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not errors, errors
        tokens = sum(n for calls in workload for n, _ in calls)
        nano = sum(round(usd * 1e9) for calls in workload for _, usd in calls)
        exposed_tokens = [r.total("claude_code_tokens_total", type="input") for r in replicas]
        exposed_cost = [r.total("claude_code_cost_usd_total") for r in replicas]
        # Each replica exposes only what it counted; the sum over replicas is the truth.
        assert sum(exposed_tokens) == tokens
        assert sum(exposed_cost) == pytest.approx(nano / 1e9, abs=1e-9)
        assert all(t > 0 for t in exposed_tokens), exposed_tokens
        assert (
            sum(r.total("claude_code_api_requests_total") for r in replicas) == PROCESSES * ROUNDS
        )
        # Sessions are keyed by (user.id, session.id); every process here has the builders'
        # one user.id, so the distinct session ids are what counts.
        assert sum(r.total("claude_code_sessions_total") for r in replicas) == len(
            {p % 4 for p in range(PROCESSES)}
        )
    with psycopg.connect(pg_url) as conn:
        stored = conn.execute(
            "SELECT sum(amount) FROM usage_daily WHERE metric = 'claude_code_tokens_total'"
            " AND labels = %s",
            ("m\x1finput",),
        ).fetchone()[0]
        stored_cost = conn.execute(
            "SELECT sum(amount) FROM usage_daily WHERE metric = 'claude_code_cost_usd_total'"
        ).fetchone()[0]
    assert stored == tokens
    assert stored_cost == nano
