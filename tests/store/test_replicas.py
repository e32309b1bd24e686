"""Several collector replicas on one PostgreSQL database stay exact with traffic spread across
them, with no sticky routing.

A client-side round robin plays the load balancer: each request of a simulated Claude Code
process goes to the next replica, so successive points of one cumulative stream, the metrics
and the events of one session (whose spend is counted once, by high-water), and a retry of a
batch all land on different replicas. Every process exports metrics and events from separate
threads, as Claude Code's two exporters do, and all processes run at once, so the replicas'
transactions contend for the same state and aggregate rows.

What must hold: each replica's /metrics shows only what it counted itself, and their sum is the
workload, exactly; the store's `usage_daily` is the workload, exactly; no client ever sees an
error (lock conflicts are retried inside the store); a restarted replica resumes its own
counters, not the others'.
"""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult

from tests.harness import running_collector
from tests.procs import scrape
from tests.sdk.claude_like import (
    ClaudeCodeProcess,
    EventsLink,
    Expected,
    MetricsLink,
    Person,
    events_link,
    expected,
    metrics_link,
    split,
    typical_session,
)
from tests.store.workload import (
    Batch,
    Reply,
    Resender,
    ServedCollector,
    Workload,
    config,
    contract_samples,
    exposition_problems,
    round_robin,
    send,
    store_usage,
    summed,
    total,
)

REPLICAS = 3


def _replicas(stack: ExitStack, url: str, n: int) -> list[Any]:
    return [
        stack.enter_context(running_collector(config({"url": url}, f"replica-{i}")))
        for i in range(n)
    ]


def _sender(
    batches: list[Batch], replicas: list[Any], offset: int, resent: list[Batch], errors: list
) -> None:
    """One exporter of one process: request j goes to replica (offset + j) % n over gRPC or
    HTTP in turn; every other batch is then sent again to the next replica (a retry whose first
    answer was lost). Every attempt must be answered 200 at once: nothing is retried here."""
    try:
        resender = Resender()
        for j, batch in enumerate(batches):
            first = replicas[(offset + j) % len(replicas)]
            transport = ("grpc", "http")[(offset + j) % 2]
            assert resender.deliver(first, batch, transport) == 1, resender.replies[-2:]
            if j % 2 == 0:
                other = replicas[(offset + j + 1) % len(replicas)]
                other_transport = ("http", "grpc")[(offset + j) % 2]
                assert resender.deliver(other, batch, other_transport) == 1
                resent.append(batch)
    except BaseException as exc:  # surfaced by the test thread
        errors.append(exc)


def test_spread_traffic_on_three_replicas_counts_exactly(pg_url: str) -> None:
    work = Workload(processes=8, rounds=6, seed=7, users=3, tag="spread")
    plan = work.all_batches()
    resent: list[Batch] = []
    errors: list[BaseException] = []
    with ExitStack() as stack:
        replicas = _replicas(stack, pg_url, REPLICAS)
        threads = []
        for p, batches in enumerate(plan):
            for signal, offset in (("metrics", p), ("logs", p + 1)):
                mine = [b for b in batches if b.signal == signal]
                threads.append(
                    threading.Thread(
                        target=_sender, args=(mine, replicas, offset, resent, errors), daemon=True
                    )
                )
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not any(t.is_alive() for t in threads), "a sender hung"
        assert not errors, errors

        scrapes = [r.samples() for r in replicas]
        # Each replica counted part of it; the sum over replicas is the workload, exactly.
        problems = exposition_problems(summed(scrapes), work.expected())
        assert not problems, "\n".join(problems)
        for samples in scrapes:
            assert total(samples, "claude_code_tokens_total") > 0
            assert total(samples, "cc_collector_store_transactions_total", outcome="failed") == 0
        # Every item was accepted once, on one replica; every re-sent one was a duplicate.
        outcomes = {
            outcome: sum(total(s, "cc_collector_items_total", outcome=outcome) for s in scrapes)
            for outcome in ("accepted", "duplicate", "stale")
        }
        assert outcomes == {
            "accepted": work.items(),
            "duplicate": sum(b.items for b in resent),
            "stale": 0,
        }
        own = {f"replica-{i}": contract_samples(s) for i, s in enumerate(scrapes)}

    assert store_usage(pg_url) == work.expected_usage()
    with psycopg.connect(pg_url) as conn:
        stored = dict(conn.execute("SELECT replica, count(*) FROM exposition GROUP BY replica"))
    assert set(stored) == set(own)
    # A restarted replica resumes exactly its own counters, not the others' or the sum.
    with running_collector(config({"url": pg_url}, "replica-1")) as again:
        assert contract_samples(again.samples()) == own["replica-1"]


def test_replica_killed_mid_stream_clients_fail_over_and_nothing_is_lost_or_doubled(
    pg_url: str, tmp_path: Path
) -> None:
    """Two `cc-collector serve` replicas behind a round robin; one is killed with SIGKILL while
    clients stream, and restarted later. Every attempt goes to the next replica, so whatever
    the dead one did not answer (committed or not) is retried on the other: a duplicate if it
    had committed, counted once if it had not. Afterwards the sum of the two /metrics and the
    store are the workload exactly, and the restarted replica resumed its own counters."""
    work = Workload(processes=4, rounds=10, seed=17, tag="failover")
    plan = work.all_batches()
    everything = sum(len(b) for b in plan)
    acked: list[int] = []
    errors: list[BaseException] = []
    with (
        ServedCollector(tmp_path, {"url": pg_url}, "replica-a") as a,
        ServedCollector(tmp_path, {"url": pg_url}, "replica-b") as b,
    ):
        a.start()
        b.start()
        resenders = [Resender(pause=0.02) for _ in plan]

        def client(p: int) -> None:
            try:
                pick = round_robin([a, b], offset=p)
                for j, batch in enumerate(plan[p]):
                    resenders[p].deliver(pick, batch, ("grpc", "http")[(p + j) % 2])
                    acked.append(1)
            except BaseException as exc:
                errors.append(exc)

        threads = [
            threading.Thread(target=client, args=(p,), daemon=True) for p in range(len(plan))
        ]
        for thread in threads:
            thread.start()
        _wait_until(lambda: len(acked) >= everything // 3 or bool(errors), "a third of it")
        a.kill()
        _wait_until(lambda: len(acked) >= 2 * everything // 3 or bool(errors), "two thirds")
        a.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors
        assert len(acked) == everything
        assert sum(r.status is None for s in resenders for _, r in s.replies) > 0  # failed over

        scrapes = [scrape(a.metrics_url), scrape(b.metrics_url)]
        problems = exposition_problems(summed(scrapes), work.expected())
        assert not problems, "\n".join(problems) + a.output() + b.output()
        assert all(total(s, "claude_code_tokens_total") > 0 for s in scrapes)
        a.stop()
        b.stop()
    assert store_usage(pg_url) == work.expected_usage()


def _wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + 20  # stops a hang; not a performance check
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_deadlock_with_another_replica_is_retried_inside_the_store(pg_url: str) -> None:
    """A deadlock, made on purpose: another writer (playing a second replica) holds the
    `usage_daily` rows the collector is about to add to, waits until the collector's
    transaction holds its state-row locks and waits for those rows, then asks for the state
    rows itself. PostgreSQL aborts the collector's side (its deadlock_timeout is the shorter);
    the store redoes the transaction from scratch, the client gets 200, and nothing is counted
    twice or lost."""
    work = Workload(processes=1, rounds=2, seed=3, tag="deadlock")
    metrics0, logs0, metrics1, logs1 = work.batches(0)
    name = urlsplit(pg_url).path.lstrip("/")
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE \"{name}\" SET deadlock_timeout = '100ms'")
    with running_collector(config({"url": pg_url}, "replica-0")) as replica:
        assert send(replica, metrics0, "http").ok
        replies: list[Reply] = []
        with psycopg.connect(pg_url) as other, psycopg.connect(pg_url, autocommit=True) as look:
            other.execute("SET deadlock_timeout = '60s'")  # so the collector is the victim
            other.execute("SELECT 1 FROM usage_daily FOR UPDATE")
            client = threading.Thread(
                target=lambda: replies.append(send(replica, metrics1, "grpc", timeout=30))
            )
            client.start()
            me = other.info.backend_pid

            def collector_waits_for_a_row_lock() -> bool:
                return bool(
                    look.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
                        " AND pid <> %s AND wait_event_type = 'Lock'",
                        (name, me),
                    ).fetchone()[0]
                )

            _wait_until(collector_waits_for_a_row_lock, "the collector to wait for usage_daily")
            # Closes the cycle. It returns only because the collector's transaction was the
            # one PostgreSQL aborted (nothing else could end the wait).
            other.execute("SELECT 1 FROM acc_state FOR UPDATE")
            other.rollback()
            client.join(30)
        assert replies and replies[0].ok, replies
        assert send(replica, logs0, "http").ok
        assert send(replica, logs1, "grpc").ok
        samples = replica.samples()
        problems = exposition_problems(samples, work.expected())
        assert not problems, "\n".join(problems)
        assert total(samples, "cc_collector_store_transactions_total", outcome="failed") == 0
    assert store_usage(pg_url) == work.expected_usage()

    def deadlocks() -> int:  # statistics reach the view within about a second
        with psycopg.connect(pg_url) as conn:
            row = conn.execute(
                "SELECT deadlocks FROM pg_stat_database WHERE datname = %s", (name,)
            ).fetchone()
        return int(row[0])

    _wait_until(lambda: deadlocks() >= 1, "PostgreSQL to report the deadlock")


# -- the real OpenTelemetry SDK behind a round-robin load balancer -------------------------------


class RoundRobinMetrics(MetricExporter):
    """One SDK metric exporter per replica; each export goes to the next one."""

    def __init__(self, inners: list[MetricExporter]) -> None:
        super().__init__(
            preferred_temporality=inners[0]._preferred_temporality,
            preferred_aggregation=inners[0]._preferred_aggregation,
        )
        self.inners = inners
        self.exports = 0

    def export(
        self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        inner = self.inners[self.exports % len(self.inners)]
        self.exports += 1
        return inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return all(inner.force_flush(timeout_millis) for inner in self.inners)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        for inner in self.inners:
            inner.shutdown(timeout_millis=timeout_millis, **kwargs)


class RoundRobinEvents(LogRecordExporter):
    """One SDK log exporter per replica; each export goes to the next one."""

    def __init__(self, inners: list[LogRecordExporter]) -> None:
        self.inners = inners
        self.exports = 0

    def export(self, batch: Any) -> LogRecordExportResult:
        inner = self.inners[self.exports % len(self.inners)]
        self.exports += 1
        return inner.export(batch)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True

    def shutdown(self) -> None:
        for inner in self.inners:
            inner.shutdown()


FLEET = [
    # person, team, metrics temporality, batch events
    (
        Person("rr-ana", email="ana@example.com", resource=(("team.id", "web"),)),
        "cumulative",
        False,
    ),
    (Person("rr-ben", email="ben@example.com", resource=(("team.id", "web"),)), "cumulative", True),
    (Person("rr-cho", email="cho@example.com", resource=(("team.id", "ops"),)), "delta", True),
    (
        Person("rr-dev", email="dev@example.com", resource=(("team.id", "ops"),)),
        "cumulative",
        False,
    ),
]


def test_real_sdk_clients_behind_a_round_robin_stay_exact(pg_url: str) -> None:
    """Real SDK exporters (gRPC and HTTP) alternate between two replicas export by export,
    four processes at once; afterwards every batch that reached a replica is exported again to
    the other one, as a retry after a lost answer would be: nothing changes."""
    want: dict[tuple[str, str], Expected] = {}
    errors: list[BaseException] = []
    with ExitStack() as stack:
        a, b = _replicas(stack, pg_url, 2)
        processes = []
        for seed, (person, temporality, batch_events) in enumerate(FLEET):
            metrics = MetricsLink(
                RoundRobinMetrics(
                    [
                        metrics_link(a, "grpc", temporality).inner,
                        metrics_link(b, "http", temporality).inner,
                    ]
                )
            )
            events = EventsLink(
                RoundRobinEvents([events_link(b, "http").inner, events_link(a, "grpc").inner])
            )
            process = ClaudeCodeProcess(
                person, metrics=metrics, events=events, batch_events=batch_events
            )
            steps = typical_session(seed=300 + seed, calls=5)
            key = (person.email or "", dict(person.resource)["team.id"])
            want[key] = expected(person, steps, metrics=steps, events=steps)
            processes.append((process, steps))

        def work(process: ClaudeCodeProcess, steps: list) -> None:
            try:
                for part in split(steps, 4):
                    process.run(part)
                    process.flush()
                process.shutdown()
                process.assert_exports_ok()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=pair, daemon=True) for pair in processes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors

        problems = exposition_problems(summed([a.samples(), b.samples()]), want)
        assert not problems, "\n".join(problems)
        assert all(total(r.samples(), "claude_code_events_total") > 0 for r in (a, b))

        # Retries of every delivered batch, each to the replica that did not get it first.
        for process, _ in processes:
            assert process.metrics is not None and process.events is not None
            again_m = RoundRobinMetrics(
                [metrics_link(b, "http", "delta").inner, metrics_link(a, "grpc", "delta").inner]
            )
            for data in process.metrics.history:
                assert again_m.export(data) is MetricExportResult.SUCCESS
            again_e = RoundRobinEvents([events_link(a, "grpc").inner, events_link(b, "http").inner])
            for records in process.events.history:
                assert again_e.export(records) is LogRecordExportResult.SUCCESS
        problems = exposition_problems(summed([a.samples(), b.samples()]), want)
        assert not problems, "\n".join(problems)
