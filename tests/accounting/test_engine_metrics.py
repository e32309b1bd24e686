"""Accountant.account_metrics: Claude Code metrics to contract increments."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from collector import contract as c
from collector.accounting.engine import Accountant, AccountingSettings, token_type
from collector.accounting.records import Accounted
from collector.decoding.logs import decode_logs
from collector.decoding.metrics import MAX_VALUE, decode_metrics
from collector.decoding.wire import Signal, parse_json, parse_protobuf
from collector.identity import Identity, IdentityResolver, TokenIdentity
from tests.builders import (
    CUMULATIVE,
    SECOND,
    SESSION_ID,
    T0,
    UNSPECIFIED,
    api_request,
    attrs,
    claude_metric,
    decoded_logs,
    decoded_metrics,
    event,
    gauge_metric,
    histogram_metric,
    logs_request,
    metrics_request,
    point,
    sum_metric,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "claude-code-2.1.330"
NOW = T0 + 60 * SECOND
DEVICE = Identity(
    actor="device:e9f10e16",
    kind="device",
    team="core",
    department="platform",
    terminal="xterm-256color",
    organization="",
)


def _accountant(**settings: int) -> Accountant:
    return Accountant(IdentityResolver(), AccountingSettings(**settings))


def _totals(*outs: Accounted) -> Counter:
    """Sum of increments by (metric name, own labels)."""
    totals: Counter = Counter()
    for out in outs:
        for inc in out.increments:
            totals[(inc.metric.name, inc.labels)] += inc.amount
    return totals


def _by_metric(*outs: Accounted) -> Counter:
    totals: Counter = Counter()
    for out in outs:
        for inc in out.increments:
            totals[inc.metric.name] += inc.amount
    return totals


# -- one point of each metric ---------------------------------------------------------------

EIGHT = [
    # claude_code metric, value, own attributes, contract metric, labels, amount
    ("session.count", 1, {}, c.SESSIONS, ("xterm-256color",), 1),
    (
        "token.usage",
        7550,
        {"model": "claude-opus-4-5[1m]", "type": "cacheRead"},
        c.TOKENS,
        ("claude-opus-4-5", "cache_read"),
        7550,
    ),
    (
        "cost.usage",
        0.027601,
        {"model": "claude-opus-4-5[1m]", "query_source": "main"},
        c.COST,
        ("claude-opus-4-5",),
        27_601_000,
    ),
    (
        "lines_of_code.count",
        11,
        {"type": "added", "model": "claude-opus-5-5"},
        c.LINES,
        ("added",),
        11,
    ),
    ("commit.count", 1, {}, c.COMMITS, (), 1),
    ("pull_request.count", 1, {}, c.PULL_REQUESTS, (), 1),
    (
        "code_edit_tool.decision",
        1,
        {"decision": "accept", "source": "config", "tool_name": "Write", "language": "Python"},
        c.CODE_EDIT_DECISIONS,
        ("Write", "accept"),
        1,
    ),
    ("active_time.total", 2.5, {"type": "cli"}, c.ACTIVE_TIME, ("cli",), 2_500_000),
]


@pytest.mark.parametrize(
    ("name", "value", "extra", "metric", "labels", "amount"),
    EIGHT,
    ids=[row[0] for row in EIGHT],
)
def test_each_claude_code_metric_maps_to_its_contract_metric(
    name: str, value: float, extra: dict, metric: c.Metric, labels: tuple, amount: int
) -> None:
    time_ns = T0 + SECOND
    request = metrics_request(claude_metric(name, value, time_ns=time_ns, extra=extra))
    out = _accountant().account_metrics(decoded_metrics(request), None, NOW)

    assert out.accepted == 1
    assert out.rejected.count == 0
    assert len(out.increments) == 1
    inc = out.increments[0]
    assert inc.metric is metric
    assert inc.labels == labels
    assert len(inc.labels) == len(metric.own)
    assert inc.amount == amount
    assert isinstance(inc.amount, int)
    assert inc.identity == DEVICE
    assert inc.session == SESSION_ID
    assert inc.time_ns == time_ns
    assert out.seen == {DEVICE}


def test_all_eight_metrics_in_one_request() -> None:
    metrics = [
        claude_metric(name, value, time_ns=T0 + SECOND, extra=extra)
        for name, value, extra, *_ in EIGHT
    ]
    out = _accountant().account_metrics(decoded_metrics(metrics_request(*metrics)), None, NOW)
    assert out.accepted == 8
    assert _totals(out) == Counter(
        {(metric.name, labels): amount for *_, metric, labels, amount in EIGHT}
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("input", "input"),
        ("output", "output"),
        ("cacheRead", "cache_read"),
        ("cacheCreation", "cache_creation"),
        (None, "unknown"),
    ],
)
def test_token_types_are_snake_case(raw: str | None, expected: str) -> None:
    assert token_type(raw) == expected
    request = metrics_request(
        claude_metric("token.usage", 42, time_ns=T0 + SECOND, extra={"model": "m", "type": raw})
    )
    out = _accountant().account_metrics(decoded_metrics(request), None, NOW)
    assert _totals(out) == Counter({(c.TOKENS.name, ("m", expected)): 42})


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("claude-opus-4-5[1m]", "claude-opus-4-5"),
        ("claude-sonnet-4-5-20250929[1m]", "claude-sonnet-4-5-20250929"),
        ("claude-haiku-4-5", "claude-haiku-4-5"),
        (None, "unknown"),
    ],
)
def test_model_context_suffix_is_stripped(model: str | None, expected: str) -> None:
    request = metrics_request(
        claude_metric("cost.usage", 0.5, time_ns=T0 + SECOND, extra={"model": model})
    )
    out = _accountant().account_metrics(decoded_metrics(request), None, NOW)
    assert _totals(out) == Counter({(c.COST.name, (expected,)): 500_000_000})


def test_missing_own_labels_become_unknown() -> None:
    metrics = [
        claude_metric("lines_of_code.count", 3, time_ns=T0 + SECOND),
        claude_metric("code_edit_tool.decision", 1, time_ns=T0 + SECOND),
        claude_metric("active_time.total", 1.0, time_ns=T0 + SECOND),
    ]
    out = _accountant().account_metrics(decoded_metrics(metrics_request(*metrics)), None, NOW)
    assert _totals(out) == Counter(
        {
            (c.LINES.name, ("unknown",)): 3,
            (c.CODE_EDIT_DECISIONS.name, ("unknown", "unknown")): 1,
            (c.ACTIVE_TIME.name, ("unknown",)): 1_000_000,
        }
    )


def test_terminal_label_of_sessions_comes_from_terminal_type() -> None:
    request = metrics_request(
        claude_metric("session.count", 1, time_ns=T0 + SECOND, extra={"terminal.type": "vscode"}),
        claude_metric(
            "session.count",
            1,
            time_ns=T0 + SECOND,
            extra={"terminal.type": None, "session.id": "other"},
        ),
    )
    out = _accountant().account_metrics(decoded_metrics(request), None, NOW)
    assert _totals(out) == Counter(
        {(c.SESSIONS.name, ("vscode",)): 1, (c.SESSIONS.name, ("unknown",)): 1}
    )


# -- exact integer cost ---------------------------------------------------------------------


def test_cost_is_exact_integer_nano_usd_over_many_additions() -> None:
    n, usd = 10_000, 0.0276558
    assert sum([usd] * n) != 276.558  # what float accumulation would give
    extra = attrs({"model": "claude-opus-5-5"})
    points = [
        point(usd, start_ns=T0 + i * SECOND, time_ns=T0 + (i + 1) * SECOND, attributes=extra)
        for i in range(n)
    ]
    request = metrics_request(sum_metric("claude_code.cost.usage", *points))
    out = _accountant().account_metrics(decoded_metrics(request), None, NOW)
    assert out.accepted == n
    assert all(isinstance(i.amount, int) and i.amount == 27_655_800 for i in out.increments)
    total = sum(i.amount for i in out.increments)
    assert total == 276_558_000_000
    assert total / c.COST.scale == 276.558


def test_cumulative_cost_accumulated_in_float_by_the_client_is_exact_at_the_end() -> None:
    accountant = _accountant()
    value, total = 0.0, 0
    for i in range(1, 501):
        value += 0.0276558  # what the SDK's cumulative aggregation holds
        request = metrics_request(
            claude_metric(
                "cost.usage",
                value,
                time_ns=T0 + i * SECOND,
                extra={"model": "m"},
                temporality=CUMULATIVE,
            )
        )
        out = accountant.account_metrics(decoded_metrics(request), None, NOW)
        total += sum(inc.amount for inc in out.increments)
    assert total == round(value * 10**9)
    assert total == 500 * 27_655_800


# -- ignored and rejected -------------------------------------------------------------------


def test_unknown_metric_names_are_ignored_and_counted() -> None:
    p = {"time_ns": T0 + SECOND}
    request = metrics_request(
        sum_metric("claude_code.brand_new.count", point(1, **p), point(2, **p)),
        gauge_metric("process.cpu.utilization", point(0.5, **p)),
        histogram_metric("http.client.duration", **p),
        sum_metric("cost.usage", point(1.0, **p)),  # no claude_code. prefix: not ours
        claude_metric("commit.count", 1, **p),
    )
    batch = decoded_metrics(request)
    assert batch.ignored == 5
    out = _accountant().account_metrics(batch, None, NOW)
    assert out.ignored == 5
    assert out.accepted == 1
    assert out.rejected.count == 0
    assert _totals(out) == Counter({(c.COMMITS.name, ()): 1})


COST = "claude_code.cost.usage"
BAD_VALUE = f"value missing, negative, not finite or over {MAX_VALUE:g}"


@pytest.mark.parametrize(
    ("metric", "reason", "count"),
    [
        pytest.param(
            sum_metric(COST, point(1.0, time_ns=T0), temporality=UNSPECIFIED),
            f"{COST}: aggregation temporality unspecified",
            1,
            id="temporality-unspecified",
        ),
        pytest.param(
            gauge_metric(COST, point(1.0, time_ns=T0), point(2.0, time_ns=T0)),
            f"{COST}: expected a Sum, got gauge",
            2,
            id="gauge",
        ),
        pytest.param(
            histogram_metric(COST, time_ns=T0),
            f"{COST}: expected a Sum, got histogram",
            1,
            id="histogram",
        ),
        pytest.param(
            sum_metric(COST, point(-0.5, time_ns=T0)),
            f"{COST}: {BAD_VALUE}",
            1,
            id="negative-double",
        ),
        pytest.param(
            sum_metric(COST, point(-3, time_ns=T0)),
            f"{COST}: {BAD_VALUE}",
            1,
            id="negative-int",
        ),
        pytest.param(
            sum_metric(COST, point(math.nan, time_ns=T0)),
            f"{COST}: {BAD_VALUE}",
            1,
            id="nan",
        ),
        pytest.param(
            sum_metric(COST, point(math.inf, time_ns=T0)),
            f"{COST}: {BAD_VALUE}",
            1,
            id="inf",
        ),
        pytest.param(
            sum_metric(COST, point(MAX_VALUE * 1.000001, time_ns=T0)),
            f"{COST}: {BAD_VALUE}",
            1,
            id="over-max-value",
        ),
        pytest.param(
            sum_metric(COST, point(None, time_ns=T0)),
            f"{COST}: {BAD_VALUE}",
            1,
            id="no-value",
        ),
        pytest.param(
            sum_metric(COST, point(1.0, time_ns=0)),
            f"{COST}: time_unix_nano missing",
            1,
            id="no-time",
        ),
    ],
)
def test_unusable_claude_code_points_are_rejected_with_a_reason(
    metric, reason: str, count: int
) -> None:
    good = claude_metric("commit.count", 1, time_ns=T0 + SECOND)
    out = _accountant().account_metrics(decoded_metrics(metrics_request(metric, good)), None, NOW)
    assert out.rejected.count == count
    assert out.rejected.reasons == {reason: count}
    assert out.rejected.message() == f"{count} rejected: {reason} ({count})"
    assert out.accepted == 1  # the good point of the same request still counts
    assert _totals(out) == Counter({(c.COMMITS.name, ()): 1})


def test_max_value_itself_is_accepted() -> None:
    request = metrics_request(claude_metric("commit.count", int(MAX_VALUE), time_ns=T0 + SECOND))
    out = _accountant().account_metrics(decoded_metrics(request), None, NOW)
    assert out.rejected.count == 0
    assert _totals(out) == Counter({(c.COMMITS.name, ()): int(MAX_VALUE)})


def test_zero_is_a_valid_value_but_adds_nothing() -> None:
    out = _accountant().account_metrics(
        decoded_metrics(metrics_request(claude_metric("commit.count", 0, time_ns=T0 + SECOND))),
        None,
        NOW,
    )
    assert out.accepted == 1
    assert out.rejected.count == 0
    assert out.increments == []
    assert out.seen == {DEVICE}


# -- duplicates, stale points, seen -----------------------------------------------------------


def test_delta_retry_is_counted_once_and_tallied_as_duplicate() -> None:
    accountant = _accountant()
    request = metrics_request(
        claude_metric(
            "token.usage", 1259, time_ns=T0 + SECOND, extra={"model": "m", "type": "input"}
        )
    )
    first = accountant.account_metrics(decoded_metrics(request), None, NOW)
    retry = accountant.account_metrics(decoded_metrics(request), None, NOW + SECOND)
    assert (first.accepted, first.duplicate) == (1, 0)
    assert (retry.accepted, retry.duplicate) == (0, 1)
    assert retry.increments == []
    assert retry.seen == set()
    assert _totals(first, retry) == Counter({(c.TOKENS.name, ("m", "input")): 1259})


def test_cumulative_stale_and_resend_are_tallied() -> None:
    accountant = _accountant()

    def send(time_ns: int, value: int) -> Accounted:
        request = metrics_request(
            claude_metric("commit.count", value, time_ns=time_ns, temporality=CUMULATIVE)
        )
        return accountant.account_metrics(decoded_metrics(request), None, NOW)

    first = send(T0 + 2 * SECOND, 3)
    stale = send(T0 + SECOND, 1)
    resend = send(T0 + 3 * SECOND, 3)
    assert (stale.accepted, stale.stale, stale.increments) == (0, 1, [])
    # nothing new, but an accepted point: the exporter is alive
    assert (resend.accepted, resend.increments, resend.seen) == (1, [], {DEVICE})
    assert _totals(first, stale, resend) == Counter({(c.COMMITS.name, ()): 3})


def test_delta_retry_still_deduplicated_after_a_capacity_eviction() -> None:
    """Dedupe capacity 3: after points 4..6 (p4 forced a wipe of p1..p3), p4..p6 fit, so a
    retry of p4 must still be recognised."""
    accountant = _accountant(max_dedupe_keys=3)
    requests = [
        metrics_request(
            claude_metric(
                "commit.count", 1, start_ns=T0 + i * SECOND, time_ns=T0 + (i + 1) * SECOND
            )
        )
        for i in range(6)
    ]
    for request in requests:
        assert accountant.account_metrics(decoded_metrics(request), None, NOW).accepted == 1
    retry = accountant.account_metrics(decoded_metrics(requests[3]), None, NOW)
    assert (retry.accepted, retry.duplicate) == (0, 1)


def test_token_identity_applies_when_points_carry_no_user() -> None:
    extra = {"user.id": None}
    request = metrics_request(claude_metric("commit.count", 1, time_ns=T0 + SECOND, extra=extra))
    out = _accountant().account_metrics(
        decoded_metrics(request), TokenIdentity("ci-runner", team="platform"), NOW
    )
    (inc,) = out.increments
    assert (inc.identity.actor, inc.identity.kind, inc.identity.team) == (
        "ci-runner",
        "token",
        "platform",
    )


# -- sessions: session.count reconciled with events -----------------------------------------


def _sessions(*outs: Accounted) -> int:
    return _by_metric(*outs)[c.SESSIONS.name]


def _session_events(session: str, t: int) -> ExportLogsServiceRequest:
    return logs_request(
        event("user_prompt", {"session.id": session, "prompt_length": "62"}, time_ns=t, sequence=1),
        event("api_request", {"session.id": session, "request_id": f"req-{session}"}, time_ns=t),
    )


def test_session_count_and_events_of_the_same_session_count_one_session() -> None:
    accountant = _accountant()
    metric = metrics_request(claude_metric("session.count", 1, time_ns=T0 + SECOND))
    m = accountant.account_metrics(decoded_metrics(metric), None, NOW)
    e = accountant.account_logs(decoded_logs(_session_events(SESSION_ID, T0)), None, NOW)
    assert _sessions(m, e) == 1


def test_events_before_session_count_still_count_one_session() -> None:
    accountant = _accountant()
    e = accountant.account_logs(decoded_logs(_session_events(SESSION_ID, T0)), None, NOW)
    metric = metrics_request(claude_metric("session.count", 1, time_ns=T0 + SECOND))
    m = accountant.account_metrics(decoded_metrics(metric), None, NOW)
    assert _sessions(e) == 1
    assert _sessions(m) == 0
    assert [i.labels for i in e.increments if i.metric is c.SESSIONS] == [("xterm-256color",)]


def test_sessions_differ_by_session_id_and_by_actor() -> None:
    accountant = _accountant()
    metric = metrics_request(
        claude_metric("session.count", 1, time_ns=T0 + SECOND),
        claude_metric("session.count", 1, time_ns=T0 + SECOND, extra={"session.id": "s2"}),
        claude_metric(
            "session.count",
            1,
            time_ns=T0 + SECOND,
            extra={"user.email": "dev@example.com", "user.id": "d" * 64},
        ),
    )
    m = accountant.account_metrics(decoded_metrics(metric), None, NOW)
    e = accountant.account_logs(decoded_logs(_session_events("s2", T0)), None, NOW)
    e3 = accountant.account_logs(decoded_logs(_session_events("s3", T0)), None, NOW)
    assert _sessions(m) == 3
    assert _sessions(e) == 0  # s2 already counted from metrics
    assert _sessions(e3) == 1


def test_metrics_and_events_pair_on_user_id_even_when_the_actors_differ() -> None:
    """OTEL_METRICS_INCLUDE_ACCOUNT_UUID=false can drop an identity attribute from one signal:
    the high-water key is the raw user.id + session.id, so spend still counts once."""
    accountant = _accountant()
    metric = metrics_request(
        claude_metric("token.usage", 100, time_ns=T0 + 1, extra={"model": "m", "type": "input"}),
        claude_metric("session.count", 1, time_ns=T0 + 1),
    )
    events = logs_request(
        api_request(
            "r1",
            time_ns=T0,
            model="m",
            input_tokens=100,
            extra={"user.account_uuid": "5c0e7a52-8f44-4c1b-9a55-8f7fa0c6a5e1"},
        )
    )
    e = accountant.account_logs(decoded_logs(events), None, NOW)
    m = accountant.account_metrics(decoded_metrics(metric), None, NOW)
    assert {i.identity.kind for i in e.increments} == {"account"}
    assert _totals(m, e)[(c.TOKENS.name, ("m", "input"))] == 100
    assert _sessions(m, e) == 1


def test_without_session_id_on_both_signals_spend_is_still_counted_once() -> None:
    """OTEL_METRICS_INCLUDE_SESSION_ID=false drops session.id from metrics and events alike."""
    accountant = _accountant()
    no_session = {"session.id": None, "model": "m"}
    metric = metrics_request(
        claude_metric("token.usage", 100, time_ns=T0 + 1, extra={**no_session, "type": "input"}),
        claude_metric("cost.usage", 0.25, time_ns=T0 + 1, extra=no_session),
        claude_metric("session.count", 1, time_ns=T0 + 1, extra=no_session),
    )
    events = logs_request(
        event(
            "api_request",
            {
                **no_session,
                "request_id": "r1",
                "input_tokens": 100,
                "cost_usd": 0.25,
                "cost_usd_micros": 250_000,
            },
            time_ns=T0,
        ),
        event("user_prompt", no_session, time_ns=T0, sequence=1),
    )
    m = accountant.account_metrics(decoded_metrics(metric), None, NOW)
    e = accountant.account_logs(decoded_logs(events), None, NOW)
    totals = _totals(m, e)
    assert totals[(c.TOKENS.name, ("m", "input"))] == 100
    assert totals[(c.COST.name, ("m",))] == 250_000_000
    assert _sessions(m, e) == 1


# -- the real captures: metrics, events or both give the CLI's own totals ---------------------


def _captured(case: str) -> list[tuple[str, object]]:
    folder = FIXTURES / case / "otlp"
    out = []
    for line in (folder / "index.jsonl").read_text().splitlines():
        entry = json.loads(line)
        body = (folder / entry["raw"]).read_bytes()
        signal = Signal(entry["signal"])
        parse = parse_json if entry["format"] == "json" else parse_protobuf
        out.append((entry["signal"], parse(signal, body)))
    return out


@pytest.mark.parametrize("case", ["grpc", "http-protobuf", "http-json", "gzip-headers"])
@pytest.mark.parametrize("signals", [("metrics",), ("logs",), ("metrics", "logs")])
def test_real_captures_account_to_the_cli_totals(case: str, signals: tuple[str, ...]) -> None:
    result = json.loads((FIXTURES / case / "claude_result.json").read_text())
    accountant = _accountant()
    outs = []
    for i, (signal, message) in enumerate(_captured(case)):
        if signal not in signals:
            continue
        now = T0 + i * SECOND
        if signal == "metrics":
            outs.append(accountant.account_metrics(decode_metrics(message), None, now))
        else:
            outs.append(accountant.account_logs(decode_logs(message), None, now))
    totals = _totals(*outs)
    usage = result["usage"]
    (model,) = result["modelUsage"]
    assert totals[(c.TOKENS.name, (model, "input"))] == usage["input_tokens"]
    assert totals[(c.TOKENS.name, (model, "output"))] == usage["output_tokens"]
    assert totals[(c.TOKENS.name, (model, "cache_read"))] == usage["cache_read_input_tokens"]
    assert (
        totals[(c.TOKENS.name, (model, "cache_creation"))] == usage["cache_creation_input_tokens"]
    )
    assert totals[(c.COST.name, (model,))] == round(result["total_cost_usd"] * 10**9)
    assert _by_metric(*outs)[c.SESSIONS.name] == 1
    assert all(out.rejected.count == 0 for out in outs)
    actors = {i.identity.actor for out in outs for i in out.increments}
    assert len(actors) == 1
    assert actors.pop().startswith("device:")
    if "metrics" in signals:
        assert totals[(c.LINES.name, ("added",))] == 11 + 3
        assert totals[(c.LINES.name, ("removed",))] == 2
        assert totals[(c.COMMITS.name, ())] == 1
        assert totals[(c.PULL_REQUESTS.name, ())] == 1
    if "logs" in signals:
        assert totals[(c.API_REQUESTS.name, (model,))] == result["num_turns"]
