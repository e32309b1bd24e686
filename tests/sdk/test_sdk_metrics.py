"""Claude Code metrics sent by the real OpenTelemetry SDK, over gRPC and HTTP/protobuf.

Claude Code defaults to delta temporality but users switch to cumulative (for example to feed
a Prometheus-style backend), and the SDK exports many times per session. Whatever the mix,
/metrics must show exactly what the process recorded: deltas added once each, cumulative
values differenced, unchanged re-exports adding nothing.
"""

from __future__ import annotations

import pytest

from tests.harness import running_collector
from tests.sdk.claude_like import (
    ApiCall,
    ClaudeCodeProcess,
    Commit,
    Person,
    Start,
    assert_exact,
    expected,
    metrics_link,
    split,
    typical_session,
)

ALICE = Person(
    "alice-laptop",
    email="alice@example.com",
    organization_id="org-1",
    resource=(("team.id", "core"), ("department", "platform")),
)

WIRES = [
    # transport, temporality, gzip, max points per request
    pytest.param("grpc", "delta", False, None, id="grpc-delta"),
    pytest.param("grpc", "cumulative", False, None, id="grpc-cumulative"),
    pytest.param("http", "delta", False, None, id="http-delta"),
    pytest.param("http", "cumulative", False, None, id="http-cumulative"),
    pytest.param("grpc", "cumulative", True, None, id="grpc-gzip-cumulative"),
    pytest.param("http", "delta", True, None, id="http-gzip-delta"),
    pytest.param("grpc", "delta", False, 3, id="grpc-delta-split-requests"),
    pytest.param("http", "cumulative", False, 3, id="http-cumulative-split-requests"),
]


@pytest.mark.parametrize(("transport", "temporality", "gzip", "max_batch"), WIRES)
def test_session_exported_in_several_flushes_is_exact(
    transport, temporality, gzip, max_batch
) -> None:
    """Record, flush, record more, flush...: each export carries a part (delta) or the running
    sum (cumulative) of the same streams, and new streams appear midway. With `max_batch` the
    SDK splits every export into several small requests."""
    steps = typical_session(seed=1)
    with running_collector() as collector:
        link = metrics_link(collector, transport, temporality, gzip=gzip, max_batch=max_batch)
        with ClaudeCodeProcess(ALICE, metrics=link) as claude:
            for part in split(steps, 4):
                claude.run(part)
                claude.flush()
        claude.assert_exports_ok()
        assert link.sent >= 4  # one export per flush at least
        want = expected(ALICE, steps, metrics=steps, events=None)
        assert_exact(collector, want, user="alice@example.com", team="core")


@pytest.mark.parametrize("temporality", ["delta", "cumulative"])
def test_idle_reexports_add_nothing(temporality) -> None:
    """A cumulative SDK re-sends every stream at each interval even when nothing changed (and a
    delta one sends nothing): twenty idle exports must leave the totals alone."""
    steps = typical_session(seed=2, calls=3)
    with running_collector() as collector:
        link = metrics_link(collector, "grpc", temporality)
        with ClaudeCodeProcess(ALICE, metrics=link) as claude:
            claude.run(steps)
            for _ in range(20):
                claude.flush()
        claude.assert_exports_ok()
        want = expected(ALICE, steps, metrics=steps, events=None)
        assert_exact(collector, want, user="alice@example.com", team="core")


@pytest.mark.parametrize("temporality", ["delta", "cumulative"])
def test_sdk_reader_thread_exporting_while_recording(temporality) -> None:
    """The SDK's own timer exports every 5 ms while the process records: collection races
    recording, exactly as in a live Claude Code, and nothing may be lost or doubled."""
    steps = typical_session(seed=3, calls=40)
    with running_collector() as collector:
        link = metrics_link(collector, "http", temporality)
        with ClaudeCodeProcess(ALICE, metrics=link, metric_interval_ms=5) as claude:
            for step in steps:
                claude.run([step])
        claude.assert_exports_ok()
        want = expected(ALICE, steps, metrics=steps, events=None)
        assert_exact(collector, want, user="alice@example.com", team="core")


def test_cumulative_process_restart_counts_both_runs() -> None:
    """`claude --resume` after an exit: a new process, same attributes (same session.id), its
    cumulative streams restart from zero with a later start time. The second run's values are
    lower than the first's last ones and must be added, not read as nothing new."""
    first = [Start(), ApiCall("claude-opus-5-5", 900, 90, 9000, 900, "0.0400000"), Commit()]
    second = [Start("resume"), ApiCall("claude-opus-5-5", 100, 10, 1000, 100, "0.0012345")]
    with running_collector() as collector:
        links = []
        for steps in (first, second):
            link = metrics_link(collector, "grpc", "cumulative")
            links.append(link)
            with ClaudeCodeProcess(ALICE, metrics=link, session_id="resumed-session") as claude:
                claude.run(steps)
                claude.flush()
            claude.assert_exports_ok()
        want = expected(ALICE, first + second, metrics=first + second, events=None)
        assert_exact(collector, want, user="alice@example.com", team="core")


@pytest.mark.parametrize("temporality", ["delta", "cumulative"])
def test_retried_exports_count_once(temporality) -> None:
    """An exporter retry after a lost response re-sends a batch the collector already counted;
    a sidecar may even replay them late and out of order. Nothing may be counted twice."""
    steps = typical_session(seed=4)
    with running_collector() as collector:
        link = metrics_link(collector, "grpc", temporality)
        with ClaudeCodeProcess(ALICE, metrics=link) as claude:
            for part in split(steps, 5):
                claude.run(part)
                claude.flush()
        claude.assert_exports_ok()
        retry = metrics_link(collector, "http", temporality)
        for batch in [*reversed(link.history), *link.history]:
            assert retry.export(batch).name == "SUCCESS"
        retry.shutdown()
        want = expected(ALICE, steps, metrics=steps, events=None)
        assert_exact(collector, want, user="alice@example.com", team="core")
