"""A store that goes away mid-run: requests are refused as retryable (HTTP 503 with
Retry-After, gRPC UNAVAILABLE with RetryInfo), nothing of them is counted, and once the store is
back the clients' retries land exactly once.

PostgreSQL is taken away three ways: its database refuses connections (renamed under the
collector, since superusers ignore connection limits), its server is stopped and restarted
(a throwaway cluster of this module's own), and its connection drops after COMMIT was sent
but before the answer came back (a proxy cuts it), where the outcome is unknown to the
collector.

SQLite: a lock held by another process (a backup, the sqlite3 shell) shorter than the busy
timeout only delays requests. A lock held longer makes the group fail with 503 only after the
busy timeout, hard-coded at 30 s in SqliteBackend.connect, too slow for this suite; as root,
file permissions do not apply, and an open WAL connection keeps writing to a renamed or
unlinked file, so there is no quick, portable way to make SQLite fail here.
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import grpc
import psycopg
import pytest

from tests.harness import RunningCollector, running_collector
from tests.pg import PgCluster, _spawn_postgres
from tests.sdk.claude_like import (
    ClaudeCodeProcess,
    Expected,
    Person,
    events_link,
    expected,
    metrics_link,
    split,
    typical_session,
)
from tests.store.workload import (
    Resender,
    Workload,
    config,
    contract_samples,
    exposition_problems,
    merge_expected,
    send,
    store_usage,
    total,
)


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20  # stops a hang; not a performance check
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _assert_refused_as_retryable(replies: list[Any]) -> None:
    """Every reply: 503 + Retry-After 5 (HTTP) or UNAVAILABLE + RetryInfo 5 s (gRPC)."""
    assert replies
    for reply in replies:
        assert reply.status in (503, grpc.StatusCode.UNAVAILABLE), reply
        assert reply.retry_after == 5, reply


# -- the database refuses connections ----------------------------------------------------------


def _admin_url(url: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/postgres"))


def _take_database_away(url: str) -> str:
    """Cut the collector off: end its connections and rename its database (superusers ignore
    connection limits, so renaming is what really keeps it out). Returns the new name."""
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(_admin_url(url), autocommit=True) as admin:
        for _ in range(50):
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            try:
                admin.execute(f'ALTER DATABASE "{name}" RENAME TO "{name}_away"')
                return name + "_away"
            except psycopg.errors.ObjectInUse:
                time.sleep(0.02)
    raise AssertionError("could not take the database away")


def _bring_database_back(url: str, away: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(_admin_url(url), autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{away}" RENAME TO "{name}"')


def test_database_refusing_connections_means_503_nothing_counted_then_exact(pg_url: str) -> None:
    work = Workload(processes=3, rounds=4, seed=41, tag="away")
    plan = work.all_batches()
    resender = Resender()
    with running_collector(config({"url": pg_url}, "r1")) as collector:
        for p, batches in enumerate(plan):
            for j, batch in enumerate(batches[:4]):
                resender.deliver(collector, batch, ("grpc", "http")[(p + j) % 2])
        before = contract_samples(collector.samples())
        away = _take_database_away(pg_url)
        try:
            refused = [
                send(collector, batch, ("http", "grpc")[(p + j) % 2])
                for p, batches in enumerate(plan)
                for j, batch in enumerate(batches[4:7])
            ]
            _assert_refused_as_retryable(refused)
            samples = collector.samples()
            assert contract_samples(samples) == before  # nothing of them was counted
            assert total(samples, "cc_collector_store_transactions_total", outcome="failed") >= 1
            assert total(samples, "cc_collector_requests_total", outcome="unavailable") == len(
                refused
            )
        finally:
            _bring_database_back(pg_url, away)
        # The clients retry everything that was not acknowledged, and go on.
        for p, batches in enumerate(plan):
            for j, batch in enumerate(batches[4:], start=4):
                resender.deliver(collector, batch, ("grpc", "http")[(p + j) % 2])
        problems = exposition_problems(collector.samples(), work.expected())
        assert not problems, "\n".join(problems)
    assert store_usage(pg_url) == work.expected_usage()


# -- the server is stopped, real SDK clients retry ----------------------------------------------


@pytest.fixture
def own_cluster() -> Iterator[PgCluster]:
    """A PostgreSQL server of this test's own, to stop and start again."""
    cluster = PgCluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def _restart(cluster: PgCluster) -> None:
    cluster.process = _spawn_postgres(cluster.bindir, cluster.root, cluster.run_as, cluster.port)
    cluster._wait_ready()


ANA = Person("down-ana", email="ana@down.example", resource=(("team.id", "blue"),))
BO = Person("down-bo", email="bo@down.example", resource=(("team.id", "blue"),))


def test_postgresql_stopped_real_sdk_clients_retry_until_it_is_back(own_cluster: PgCluster) -> None:
    """The server stops while two real SDK processes export: Ana's cumulative metrics (gRPC)
    and batched events (HTTP), Bo's delta metrics (HTTP). Their exports are refused, /metrics
    does not move, and the SDK's own retries (backoff, Retry-After) land once the server is
    back: every export succeeds in the end and every total is exact."""
    url = own_cluster.new_database("down")
    ana_steps, bo_steps = typical_session(seed=51, calls=6), typical_session(seed=52, calls=6)
    ana_parts, bo_parts = split(ana_steps, 3), split(bo_steps, 3)
    probe = Workload(processes=1, rounds=1, seed=53, tag="probe")
    metrics_probe, logs_probe = probe.batches(0)
    with running_collector(config({"url": url}, "r1")) as collector:
        ana = ClaudeCodeProcess(
            ANA,
            metrics=metrics_link(collector, "grpc", "cumulative"),
            events=events_link(collector, "http"),
            batch_events=True,
        )
        bo = ClaudeCodeProcess(
            BO,
            metrics=metrics_link(collector, "http", "delta"),
            events=events_link(collector, "grpc"),
        )
        ana.run(ana_parts[0])
        bo.run(bo_parts[0])
        ana.flush()
        bo.flush()
        bo.run(bo_parts[1])  # Bo's events go now; his metrics wait for the next flush
        before = contract_samples(collector.samples())

        own_cluster._stop_process()
        probes = [send(collector, metrics_probe, "http"), send(collector, logs_probe, "grpc")]
        _assert_refused_as_retryable(probes)
        errors: list[BaseException] = []

        def flushing(process: ClaudeCodeProcess, steps: list) -> None:
            try:
                process.run(steps)
                process.flush()
            except BaseException as exc:
                errors.append(exc)

        threads = [
            threading.Thread(target=flushing, args=(ana, ana_parts[1]), daemon=True),
            threading.Thread(target=flushing, args=(bo, []), daemon=True),
        ]
        for thread in threads:
            thread.start()

        def refused_sdk_exports() -> float:
            return total(collector.samples(), "cc_collector_requests_total", outcome="unavailable")

        _wait_until(lambda: refused_sdk_exports() >= len(probes) + 3, "refused SDK exports")
        assert contract_samples(collector.samples()) == before
        _restart(own_cluster)
        for thread in threads:
            thread.join(30)
        assert not errors, errors
        for process, parts in ((ana, ana_parts), (bo, bo_parts)):
            process.run(parts[2])
            process.shutdown()
            process.assert_exports_ok()  # the SDK gave up on nothing
        resender = Resender()
        resender.deliver(collector, metrics_probe, "http")
        resender.deliver(collector, logs_probe, "grpc")

        want: dict[tuple[str, str], Expected] = merge_expected(
            probe.expected(),
            {
                ("ana@down.example", "blue"): expected(
                    ANA, ana_steps, metrics=ana_steps, events=ana_steps
                )
            },
            {
                ("bo@down.example", "blue"): expected(
                    BO, bo_steps, metrics=bo_steps, events=bo_steps
                )
            },
        )
        problems = exposition_problems(collector.samples(), want)
        assert not problems, "\n".join(problems)


# -- the connection drops after COMMIT was sent --------------------------------------------------


class CommitCutter:
    """A TCP proxy in front of PostgreSQL. Once armed, it forwards the next COMMIT to the
    server, waits for the server's answer (so the transaction *has* committed), drops that
    answer and closes the connection: the client cannot know the transaction's outcome."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.armed = threading.Event()
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            cut = threading.Event()
            threading.Thread(target=self._up, args=(client, server, cut), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, cut), daemon=True).start()

    def _up(self, client: socket.socket, server: socket.socket, cut: threading.Event) -> None:
        try:
            while data := client.recv(65536):
                if self.armed.is_set() and data[:1] == b"Q" and b"COMMIT\x00" in data:
                    self.armed.clear()
                    self.cuts += 1
                    cut.set()  # the answer to this COMMIT will be dropped
                server.sendall(data)
                if cut.is_set():
                    return
        except OSError:
            _close(client, server)

    def _down(self, server: socket.socket, client: socket.socket, cut: threading.Event) -> None:
        try:
            while data := server.recv(65536):
                if cut.is_set():
                    break  # the COMMIT's answer: the transaction is committed; drop it
                client.sendall(data)
        except OSError:
            pass
        _close(client, server)


def _close(*socks: socket.socket) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


def test_commit_whose_answer_is_lost_is_counted_once_in_the_store_and_on_metrics(
    pg_url: str,
) -> None:
    """The connection drops after the server committed a group but before the collector heard
    so: the collector answers 503 (it cannot know), the client retries, and the retry is a
    duplicate of what the store already holds. The store is exact; /metrics must be exact too,
    now, not only after a restart reloads the exposition from the store."""
    parts = urlsplit(pg_url)
    cutter = CommitCutter(parts.hostname or "127.0.0.1", parts.port or 5432)
    through_cutter = urlunsplit(
        parts._replace(netloc=f"{parts.netloc.split('@')[0]}@127.0.0.1:{cutter.port}")
    )
    work = Workload(processes=1, rounds=2, seed=61, tag="cut")
    metrics0, logs0, metrics1, logs1 = work.batches(0)
    resender = Resender()
    try:
        with running_collector(config({"url": through_cutter}, "r1")) as collector:
            resender.deliver(collector, metrics0, "http")
            resender.deliver(collector, logs0, "grpc")
            cutter.armed.set()
            lost = send(collector, metrics1, "http")
            assert cutter.cuts == 1
            _assert_refused_as_retryable([lost])
            resender.deliver(collector, metrics1, "http")  # the client's retry: a duplicate
            resender.deliver(collector, logs1, "grpc")
            live = exposition_problems(collector.samples(), work.expected())
        assert store_usage(pg_url) == work.expected_usage()
        with running_collector(config({"url": through_cutter}, "r1")) as restarted:
            after_restart = exposition_problems(restarted.samples(), work.expected())
    finally:
        cutter.close()
    assert not after_restart, "\n".join(after_restart)
    assert not live, "live /metrics (exact again only after a restart):\n" + "\n".join(live)


# -- SQLite locked by another process --------------------------------------------------------------


def test_sqlite_locked_by_another_process_briefly_delays_but_loses_nothing(tmp_path: Path) -> None:
    """Another process holds SQLite's write lock for a while (shorter than the busy timeout):
    requests wait in the group commit instead of failing, none is acknowledged before it is
    durable, and everything is counted once."""
    path = tmp_path / "collector.db"
    work = Workload(processes=3, rounds=3, seed=71, tag="locked")
    plan = work.all_batches()
    replies: list[Any] = []
    with running_collector(config({"path": str(path)}, "r1")) as collector:
        for batches in plan:
            assert send(collector, batches[0], "http").ok
        before = contract_samples(collector.samples())
        other = sqlite3.connect(path, isolation_level=None, timeout=5)
        try:
            other.execute("BEGIN EXCLUSIVE")
            threads = [
                threading.Thread(
                    target=lambda bs=batches, p=p: replies.extend(
                        send(collector, b, ("grpc", "http")[(p + j) % 2], timeout=25)
                        for j, b in enumerate(bs[1:])
                    ),
                    daemon=True,
                )
                for p, batches in enumerate(plan)
            ]
            for thread in threads:
                thread.start()
            _wait_until(lambda: _inflight(collector) >= len(plan), "requests to wait for the lock")
            assert contract_samples(collector.samples()) == before  # nothing acknowledged yet
            assert not replies
            other.execute("COMMIT")
        finally:
            other.close()
        for thread in threads:
            thread.join(30)
        assert len(replies) == sum(len(b) - 1 for b in plan)
        assert all(reply.ok for reply in replies), replies
        samples = collector.samples()
        problems = exposition_problems(samples, work.expected())
        assert not problems, "\n".join(problems)
        assert total(samples, "cc_collector_store_transactions_total", outcome="failed") == 0
    assert store_usage(str(path)) == work.expected_usage()


def _inflight(collector: RunningCollector) -> float:
    return total(collector.samples(), "cc_collector_inflight_requests")
