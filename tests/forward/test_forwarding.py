"""OTLP forwarding, end to end: a real collector forwards to a real OTLP sink.

Why: the forwarder promises the downstream exactly the numbers of /metrics, whatever the
temporality and transport, through outages and restarts. Each test drives Claude-Code-like
processes (the real OpenTelemetry SDK, tests/sdk/claude_like.py) into a collector whose
`exporters.otlp` targets point at `OtlpSink`, and compares what the sink received (last
cumulative value, or sum of deltas) with what the workload sent, computed from its steps.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import pytest

from collector.config import OtlpTarget
from collector.contract import BUCKETS, COUNTERS, HISTOGRAMS, USER_INFO, USER_LAST_SEEN
from exporters.otlp_forward import Forwarding
from exporters.prometheus import ExpositionState
from tests.forward.sink import (
    CUMULATIVE,
    DELTA,
    OtlpSink,
    Point,
    SinkTls,
    free_port,
    make_certificates,
)
from tests.harness import RunningCollector, make_config, running_collector
from tests.sdk.claude_like import (
    ClaudeCodeProcess,
    Expected,
    Person,
    events_link,
    expected,
    metrics_link,
    mismatches,
    split,
    typical_session,
)

INTERVAL = "200ms"
SECRET = "s3cret-forwarding-token"
CAROL = Person(
    "carol-mbp",
    email="carol@example.com",
    resource=(("team.id", "core"), ("department", "platform")),
)
#: an API-key install: no email, identified by its device id, team from the attribute.
DEVBOX = Person("dev-box-7", resource=(("team.id", "payments"),))
PEOPLE = ((CAROL, "carol@example.com", "core"), (DEVBOX, DEVBOX.device, "payments"))
#: the names the collector may forward: exactly the /metrics contract's names.
CONTRACT_NAMES = {m.name for m in (*COUNTERS, *HISTOGRAMS, USER_LAST_SEEN, USER_INFO)}


def target(
    name: str, sink: OtlpSink, protocol: str, temporality: str, **extra: Any
) -> dict[str, Any]:
    grpc = protocol == "grpc"
    return {
        "name": name,
        "protocol": protocol,
        "endpoint": sink.grpc_endpoint if grpc else sink.http_endpoint,
        **({"tls": {"insecure": True}} if grpc else {}),
        "temporality": temporality,
        "interval": INTERVAL,
        "timeout": "500ms",
        "headers": {"Authorization": "Bearer ${env:FWD_SECRET}", "X-Scope-OrgID": "tenant-7"},
        **extra,
    }


def config_with(*targets: dict[str, Any], **store: Any) -> Any:
    overrides: dict[str, Any] = {"exporters": {"otlp": list(targets)}}
    if store:
        overrides["exporters"]["store"] = store
    return make_config(overrides, environ={"FWD_SECRET": SECRET})


def run_workload(collector: RunningCollector, seed: int, parts: int = 1) -> Expected:
    """Carol (metrics over gRPC delta, events over HTTP) and a device-only install (metrics
    over HTTP cumulative, events over gRPC), one session each; what they must add up to."""
    want = Expected()
    for i, (person, transports) in enumerate(
        ((CAROL, ("grpc", "delta", "http")), (DEVBOX, ("http", "cumulative", "grpc")))
    ):
        steps = typical_session(seed=seed + i, calls=5)
        metrics = metrics_link(collector, transports[0], transports[1])  # type: ignore[arg-type]
        events = events_link(collector, transports[2])  # type: ignore[arg-type]
        with ClaudeCodeProcess(person, metrics=metrics, events=events) as cc:
            for part in split(steps, parts):
                cc.run(part)
                cc.flush()
        cc.assert_exports_ok()
        want = want + expected(person, steps, metrics=steps, events=steps)
    return want


def per_person(seed: int) -> dict[str, Expected]:
    """What each person of `run_workload(seed)` sent, by user label."""
    out = {}
    for i, (person, user, _) in enumerate(PEOPLE):
        steps = typical_session(seed=seed + i, calls=5)
        out[user] = expected(person, steps, metrics=steps, events=steps)
    return out


def problems(view: dict[Any, float], seeds: list[int]) -> list[str]:
    """Every family, per user, per team and over everything, as tests/sdk compares /metrics."""
    found: list[str] = []
    total = Expected()
    for _, user, team in PEOPLE:
        want = Expected()
        for seed in seeds:
            want = want + per_person(seed)[user]
        found += mismatches(view, want, user=user, team=team)
        found += mismatches(view, want, team=team)
        total = total + want
    return found + mismatches(view, total)


def of(name: str) -> Callable[[Point], bool]:
    """Points that came from target `name` (each target in these tests has its own
    transport on the sink, or its own sink)."""
    protocol = "grpc" if name.startswith("g") else "http"
    return lambda p: p.protocol == protocol


def wait_exact(sink: OtlpSink, where: Callable[[Point], bool], seeds: list[int]) -> None:
    ok = sink.wait(lambda: not problems(sink.view(where), seeds), timeout=20)
    assert ok, "\n".join(problems(sink.view(where), seeds))


def assert_delta_intervals_contiguous(points: list[Point]) -> None:
    """Each delta point starts where the previous one of its series ended: no gap, no
    overlap, so no amount is in two points or in none."""
    by_series: dict[tuple[str, Any], list[Point]] = {}
    for p in points:
        if p.kind != "gauge":
            by_series.setdefault((p.metric, p.labels), []).append(p)
    for series, ps in by_series.items():
        ps.sort(key=lambda p: p.time_ns)
        for before, after in itertools.pairwise(ps):
            assert after.start_ns == before.time_ns, series
        assert all(p.start_ns < p.time_ns for p in ps), series


def scraped_contract(collector: RunningCollector) -> dict[Any, float]:
    """The collector's own /metrics, reduced to what is forwarded."""
    return {
        (name, labels): value
        for (name, labels), value in collector.samples().items()
        if name.removesuffix("_total").removesuffix("_count").removesuffix("_sum")
        in {n.removesuffix("_total") for n in CONTRACT_NAMES}
    }


def differences(view: dict[Any, float], scraped: dict[Any, float]) -> list[str]:
    out = [f"only forwarded: {k}" for k in set(view) - set(scraped)]
    out += [f"only on /metrics: {k}" for k in set(scraped) - set(view)]
    out += [
        f"{k}: forwarded {view[k]!r}, /metrics {v!r}"
        for k, v in scraped.items()
        if k in view and abs(view[k] - v) > 1e-9
    ]
    return out


# -- exact totals, both temporalities, both transports ----------------------------------------


@pytest.mark.parametrize(
    ("grpc_temporality", "http_temporality"),
    [
        pytest.param("cumulative", "delta", id="grpc-cumulative+http-delta"),
        pytest.param("delta", "cumulative", id="grpc-delta+http-cumulative"),
    ],
)
def test_two_targets_receive_exactly_the_workload(grpc_temporality, http_temporality) -> None:
    """Two targets at once, one per transport: each receives the workload's totals exactly,
    under the /metrics names and labels, with its temporality, headers and resource."""
    with OtlpSink() as sink:
        config = config_with(
            target("g", sink, "grpc", grpc_temporality),
            target("h", sink, "http/protobuf", http_temporality),
        )
        with running_collector(config) as collector:
            run_workload(collector, seed=40, parts=3)
            for name in ("g", "h"):
                wait_exact(sink, of(name), [40])
            # The same numbers as the collector's own /metrics, series for series (gauges
            # included: last seen moves with requests that add nothing, such as a process's
            # final export, so the next export carries it).
            scraped = scraped_contract(collector)
            for name in ("g", "h"):
                assert sink.wait(lambda n=name: not differences(sink.view(of(n)), scraped)), (
                    differences(sink.view(of(name)), scraped)
                )
        points, requests = sink.snapshot()

    for name, temporality in (("g", grpc_temporality), ("h", http_temporality)):
        mine = [p for p in points if of(name)(p)]
        # Names: exactly the contract's, as on /metrics (underscores, _total), never the
        # raw dotted Claude Code names.
        assert {p.metric for p in mine} == CONTRACT_NAMES
        wanted = DELTA if temporality == "delta" else CUMULATIVE
        for p in mine:
            assert p.resource == (
                ("service.instance.id", collector.service.config.replica_id),
                ("service.name", "claude-code-collector"),
                ("service.version", "0.1.0"),
            )
            assert p.scope == "claude_code_collector"
            if p.kind == "gauge":
                continue
            assert p.temporality == wanted and p.monotonic, p
            if p.kind == "histogram":
                assert sum(p.bucket_counts) == p.count
                assert len(p.bucket_counts) == len(p.bounds) + 1
        units = {p.metric: p.unit for p in mine}
        assert units["claude_code_cost_usd_total"] == "{USD}"
        assert units["claude_code_tokens_total"] == "{token}"
        assert units["claude_code_active_time_seconds_total"] == "s"
        assert units["claude_code_api_request_duration_seconds"] == "s"
        by_name = {p.metric: p for p in mine}
        assert by_name["claude_code_tokens_total"].is_int
        assert not by_name["claude_code_cost_usd_total"].is_int
        hist = by_name["claude_code_tool_duration_seconds"]
        assert hist.bounds == tuple(float(b) for b in BUCKETS[HISTOGRAMS[1]])
        assert {k for k, _ in by_name["claude_code_tokens_total"].labels} == {
            "user",
            "team",
            "model",
            "type",
        }
        assert {k for k, _ in by_name["claude_code_tool_calls_total"].labels} == {
            "team",
            "tool",
            "success",
        }
        if temporality == "delta":
            assert_delta_intervals_contiguous(mine)
        else:
            # One start time for the whole target, before every point.
            starts = {p.start_ns for p in mine if p.kind != "gauge"}
            assert len(starts) == 1
            assert max(starts) < min(p.time_ns for p in mine)
    # Headers from the config (with ${env:...}) reach the downstream on both transports.
    for protocol in ("grpc", "http"):
        sent = [r for r in requests if r.protocol == protocol]
        assert sent
        assert all(r.headers.get("authorization") == f"Bearer {SECRET}" for r in sent)
        assert all(r.headers.get("x-scope-orgid") == "tenant-7" for r in sent)
    assert sink.compressed_bodies > 0  # gzip by default


def test_small_requests_and_memory_store() -> None:
    """`max_points_per_request` splits an export into several requests, each acknowledged
    on its own; without a store (memory) forwarding is exact as well."""
    with OtlpSink() as sink:
        config = config_with(
            target("g", sink, "grpc", "delta", max_points_per_request=7, compression="none"),
            memory=True,
        )
        with running_collector(config) as collector:
            run_workload(collector, seed=50)
            wait_exact(sink, of("g"), [50])
        points, requests = sink.snapshot()
    assert max(r.points for r in requests) <= 7
    assert len(requests) > 5
    assert_delta_intervals_contiguous(points)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_mutual_tls(protocol, tmp_path) -> None:
    """`tls.ca_file` verifies the downstream, `cert_file`/`key_file` present a client
    certificate; a sink that requires one receives the exact totals."""
    certs = make_certificates(tmp_path)
    tls = SinkTls(certs["server.pem"], certs["server.key"], client_ca=certs["ca.pem"])
    with OtlpSink(tls=tls) as sink:
        item = target("t", sink, protocol, "delta")
        item.pop("tls", None)  # gRPC to host:port: TLS by default
        item["tls"] = {
            "ca_file": str(certs["ca.pem"]),
            "cert_file": str(certs["client.pem"]),
            "key_file": str(certs["client.key"]),
        }
        with running_collector(config_with(item)) as collector:
            run_workload(collector, seed=55)
            wait_exact(sink, lambda p: True, [55])
        _, requests = sink.snapshot()
    assert requests
    assert all(r.headers.get(":client-certificate") == "client" for r in requests)


def test_environment_headers_never_reach_a_target(monkeypatch) -> None:
    """Claude Code's setup exports OTEL_EXPORTER_OTLP_HEADERS with the collector's ingest
    token, often in the shell that starts the collector. The SDK exporters would send it
    along (the HTTP one merges it into every request); targets take headers from the config
    only, and the environment is left as it was."""
    leak = "Authorization=Bearer the-ingest-token"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", leak)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_HEADERS", leak)
    with OtlpSink() as sink:
        quiet = [target("g", sink, "grpc", "delta"), target("h", sink, "http/protobuf", "delta")]
        for item in quiet:
            del item["headers"]
        with running_collector(config_with(*quiet)) as collector:
            run_workload(collector, seed=57)
            for name in ("g", "h"):
                wait_exact(sink, of(name), [57])
        _, requests = sink.snapshot()
    assert {r.protocol for r in requests} == {"grpc", "http"}
    assert not [r for r in requests if "authorization" in r.headers]
    assert os.environ["OTEL_EXPORTER_OTLP_HEADERS"] == leak


# -- a downstream that is down ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "temporality", "outage"),
    [
        pytest.param("grpc", "delta", "stopped", id="grpc-delta-not-listening"),
        pytest.param("http/protobuf", "delta", "refusing", id="http-delta-answering-503"),
        pytest.param("http/protobuf", "cumulative", "stopped", id="http-cumulative-not-listening"),
        pytest.param("grpc", "cumulative", "refusing", id="grpc-cumulative-unavailable"),
    ],
)
def test_downstream_down_does_not_block_ingest_and_catches_up(
    protocol, temporality, outage, caplog
) -> None:
    """While the downstream is down (not listening, or refusing every export), ingest keeps
    answering at once, failures are counted and logged once; when it is back, it receives
    exactly the totals: the missed deltas in the next export, nothing twice."""
    caplog.set_level(logging.INFO)
    name = "g" if protocol == "grpc" else "h"
    sink = OtlpSink(free_port(), free_port())
    if outage == "refusing":
        sink.refuse = True
        sink.start()
    config = config_with(target(name, sink, protocol, temporality))
    try:
        with running_collector(config) as collector:
            started = time.monotonic()
            run_workload(collector, seed=60, parts=4)  # every export to the collector: OK
            assert time.monotonic() - started < 15

            def failures() -> float:
                return collector.total(
                    "cc_collector_forward_exports_total", target=name, outcome="failure"
                )

            assert sink.wait(lambda: failures() >= 3, timeout=20), failures()
            # Ingest still answers promptly while the forwarder keeps failing.
            started = time.monotonic()
            run_workload(collector, seed=70)
            assert time.monotonic() - started < 15
            assert sink.wait(lambda: failures() >= 5, timeout=20)
            assert not sink.snapshot()[0]  # nothing accepted so far

            if outage == "refusing":
                assert sink.refused >= 5
                sink.refuse = False
            else:
                sink.start()
            wait_exact(sink, of(name), [60, 70])
            assert collector.total(
                "cc_collector_forward_exports_total", target=name, outcome="success"
            )
            # Stays exact: later exports add nothing that was already delivered.
            time.sleep(1.0)
            assert not problems(sink.view(of(name)), [60, 70])
    finally:
        sink.stop()
    if temporality == "delta":
        assert_delta_intervals_contiguous(sink.snapshot()[0])

    forward_logs = [
        r
        for r in caplog.records
        if r.name == "cc_collector.forward" and r.levelno >= logging.WARNING
    ]
    assert len(forward_logs) == 1, [r.getMessage() for r in forward_logs]
    message = forward_logs[0].getMessage()
    assert f"forwarding to {name}" in message and "ingest is not affected" in message
    # The SDK exporter's own per-attempt lines are folded into ours, not logged.
    assert not [
        r
        for r in caplog.records
        if r.name.startswith("opentelemetry.exporter") and r.levelno >= logging.WARNING
    ]
    assert any("recovered" in r.getMessage() for r in caplog.records)


# -- restarts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_restarts_neither_reset_nor_resend_nor_lose(store, request) -> None:
    """Same store (SQLite, or PostgreSQL for replicas) across restarts of the collector:

    1. stopping makes a last export: the sink has everything without waiting;
    2. after a restart, cumulative series go on with the same start time and values (no
       reset) and delta series send nothing again (no resend);
    3. a stop while the downstream is down loses the last export; after the next restart
       the delta target catches up from the store: exactly once.
    """
    sink = OtlpSink().start()
    section = {"url": request.getfixturevalue("pg_url")} if store == "postgresql" else {}
    config = config_with(
        target("g", sink, "grpc", "cumulative"),
        target("h", sink, "http/protobuf", "delta"),
        **section,
    )
    try:
        with running_collector(config) as first:
            run_workload(first, seed=80)
        # 1. No wait: the stop's final export delivered it.
        for name in ("g", "h"):
            assert not problems(sink.view(of(name)), [80]), name
        points_before, _ = sink.snapshot()
        cumulative_start = {p.start_ns for p in points_before if of("g")(p) and p.kind != "gauge"}
        assert len(cumulative_start) == 1

        with running_collector(config) as second:
            time.sleep(1.2)  # six intervals with nothing new
            points, _ = sink.snapshot()
            new = points[len(points_before) :]
            # 2. Cumulative: same start, same values: no reset downstream.
            again = [p for p in new if of("g")(p) and p.kind != "gauge"]
            assert again, "the cumulative target keeps exporting"
            assert {p.start_ns for p in again} == cumulative_start
            assert not problems(sink.view(of("g")), [80])
            # ... and delta: nothing resent (gauges only).
            assert not [p for p in new if of("h")(p) and p.kind != "gauge"]
            run_workload(second, seed=81)
            for name in ("g", "h"):
                wait_exact(sink, of(name), [80, 81])
            sink.stop()
            run_workload(second, seed=82)  # the downstream is down: only the store knows
        # 3. The final export of that stop failed; the next start catches up.
        sink.start()
        with running_collector(config):
            for name in ("g", "h"):
                wait_exact(sink, of(name), [80, 81, 82])
            time.sleep(1.0)
            for name in ("g", "h"):
                assert not problems(sink.view(of(name)), [80, 81, 82]), name
        points, _ = sink.snapshot()
        assert {p.start_ns for p in points if of("g")(p) and p.kind != "gauge"} == (
            cumulative_start
        )
        assert_delta_intervals_contiguous([p for p in points if of("h")(p)])
    finally:
        sink.stop()


# -- a user who goes idle and comes back ------------------------------------------------------


@pytest.mark.parametrize("temporality", ["delta", "cumulative"])
def test_idle_user_leaves_and_comes_back(temporality) -> None:
    """A user idle past `user_idle_timeout` leaves the exposition (their counters restart
    from zero if they return, docs/metrics.md). Downstream: delta adds the new amount to the
    old one, nothing lost; cumulative starts the series over with a new start time, which
    OTLP consumers read as a reset, not as a drop of the total."""
    hour = 3600 * 10**9
    clock = [time.time_ns()]
    state = ExpositionState(user_idle_ns=hour)
    series = ("c", "claude_code_commits_total", "ann@example.com", "core")

    async def scenario(sink: OtlpSink) -> None:
        forwarding = Forwarding(
            [
                OtlpTarget(
                    "g",
                    sink.grpc_endpoint,
                    insecure=True,
                    temporality=temporality,
                    interval_ns=100 * 10**6,
                    timeout_ns=500 * 10**6,
                )
            ],
            "replica-a",
            state,
            submit=None,
            clock=lambda: clock[0],
        )
        await forwarding.start()
        try:
            state.add({series: 5}, [("ann@example.com", "core", "", clock[0])], clock[0])
            await until(lambda: commits(sink) == [5])
            clock[0] += 2 * hour  # the next snapshot sweeps her out
            state.sweep(clock[0])
            await asyncio.sleep(0.5)
            state.add({series: 2}, [("ann@example.com", "core", "", clock[0])], clock[0])
            await until(lambda: commits(sink)[-1:] == [2])
        finally:
            await forwarding.stop()

    def commits(sink: OtlpSink) -> list[float]:
        points, _ = sink.snapshot()
        return [p.value for p in points if p.metric == "claude_code_commits_total"]

    async def until(predicate: Callable[[], bool]) -> None:
        for _ in range(200):
            if predicate():
                return
            await asyncio.sleep(0.05)
        raise AssertionError("timed out")

    with OtlpSink() as sink:
        asyncio.run(scenario(sink))
        points = [p for p in sink.snapshot()[0] if p.metric == "claude_code_commits_total"]
    if temporality == "delta":
        assert [p.value for p in points] == [5, 2]  # 7 in all: nothing lost, nothing twice
        assert points[1].start_ns > points[0].time_ns  # a new series, after the old one
    else:
        assert {p.value for p in points} == {5, 2}
        old = [p for p in points if p.value == 5]
        new = [p for p in points if p.value == 2]
        assert len({p.start_ns for p in old}) == 1 and len({p.start_ns for p in new}) == 1
        assert new[0].start_ns > max(p.time_ns for p in old)  # reset: a new start time
