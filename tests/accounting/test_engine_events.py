"""Accountant.account_logs: Claude Code events to contract increments and observations."""

from __future__ import annotations

from collections import Counter

import pytest

from collector import contract as c
from collector.accounting.engine import Accountant, event_key
from collector.accounting.records import Accounted
from collector.decoding.metrics import MAX_VALUE
from collector.identity import IdentityResolver
from collector.model import Event
from tests.builders import (
    MODEL,
    SECOND,
    SESSION_ID,
    T0,
    api_request,
    decoded_logs,
    event,
    logs_request,
)

NOW = T0 + 60 * SECOND


def _account(*records, accountant: Accountant | None = None) -> Accounted:
    accountant = accountant or Accountant(IdentityResolver())
    return accountant.account_logs(decoded_logs(logs_request(*records)), None, NOW)


def _totals(*outs: Accounted) -> Counter:
    totals: Counter = Counter()
    for out in outs:
        for inc in out.increments:
            totals[(inc.metric.name, inc.labels)] += inc.amount
    return totals


def _metric(out: Accounted, metric: c.Metric) -> Counter:
    totals: Counter = Counter()
    for inc in out.increments:
        if inc.metric is metric:
            totals[inc.labels] += inc.amount
    return totals


# -- dedupe ----------------------------------------------------------------------------------


def test_api_request_deduplicated_by_request_id() -> None:
    first = api_request("req_1", time_ns=T0, input_tokens=100, sequence=5)
    # a retry re-sends it with its own timestamp; other attributes do not matter
    again = api_request("req_1", time_ns=T0, input_tokens=100, sequence=9)
    other = api_request("req_2", time_ns=T0, input_tokens=7, sequence=5)
    out = _account(first, again, other)
    assert (out.accepted, out.duplicate) == (2, 1)
    assert _metric(out, c.API_REQUESTS) == Counter({(MODEL,): 2})
    assert _metric(out, c.TOKENS)[(MODEL, "input")] == 107


def test_request_id_at_another_second_is_another_event() -> None:
    """Dedupe keys start with the record's second (ADR 0008): the same id sent with another
    timestamp is no retry, and counts; within one second the timestamp does not matter."""
    out = _account(
        api_request("req_1", time_ns=T0, input_tokens=100),
        api_request("req_1", time_ns=T0 + SECOND, input_tokens=100),
        api_request("req_1", time_ns=T0 + SECOND + 1, input_tokens=100),
    )
    assert (out.accepted, out.duplicate) == (2, 1)
    assert _metric(out, c.TOKENS)[(MODEL, "input")] == 200


def test_api_error_deduplicated_by_request_id_apart_from_api_request() -> None:
    error = {"request_id": "req_1", "model": MODEL, "status_code": 529, "error": "overloaded"}
    out = _account(
        api_request("req_1", time_ns=T0),
        event("api_error", error, time_ns=T0, sequence=1),
        event("api_error", error, time_ns=T0, sequence=2),
    )
    assert (out.accepted, out.duplicate) == (2, 1)
    assert _metric(out, c.API_ERRORS) == Counter({(MODEL, "529"): 1})
    assert _metric(out, c.API_REQUESTS) == Counter({(MODEL,): 1})


def test_tool_events_deduplicated_by_tool_use_id_and_name() -> None:
    use = {"tool_use_id": "toolu_1", "tool_name": "Write"}
    decision = {**use, "decision": "accept", "source": "config"}
    result = {**use, "success": "true", "duration_ms": "13"}
    out = _account(
        event("tool_decision", decision, time_ns=T0, sequence=7),
        event("tool_result", result, time_ns=T0, sequence=8),  # same id, other name: kept
        event("tool_result", result, time_ns=T0, sequence=10),  # retry: dropped
        event("tool_result", {**result, "tool_use_id": "toolu_2"}, time_ns=T0, sequence=8),
    )
    assert (out.accepted, out.duplicate) == (3, 1)
    assert _metric(out, c.TOOL_DECISIONS) == Counter({("Write", "accept", "config"): 1})
    assert _metric(out, c.TOOL_CALLS) == Counter({("Write", "true"): 2})


def test_other_events_deduplicated_by_user_session_name_timestamp_sequence() -> None:
    base = {"prompt_length": "62", "event.timestamp": "2026-11-21T23:32:45.706Z"}
    prompt = event("user_prompt", base, time_ns=T0, sequence=4)
    variants = [
        event("user_prompt", base, time_ns=T0, sequence=5),
        event("user_prompt", {**base, "session.id": "other"}, time_ns=T0, sequence=4),
        event("user_prompt", {**base, "user.id": "f" * 64}, time_ns=T0, sequence=4),
        event(
            "user_prompt",
            {**base, "event.timestamp": "2026-11-21T23:32:45.707Z"},
            time_ns=T0,
            sequence=4,
        ),
        event("plugin_loaded", base, time_ns=T0, sequence=4),
    ]
    out = _account(prompt, prompt, *variants)
    assert (out.accepted, out.duplicate) == (1 + len(variants), 1)


def test_prompt_and_message_ids_keep_two_processes_of_one_session_apart() -> None:
    """A resumed session in two terminals shares session.id and restarts event.sequence;
    prompt.id / message.uuid tell their events apart, and a retry still matches."""
    base = {"event.timestamp": "2026-11-21T23:32:45.706Z"}
    one = event("user_prompt", {**base, "prompt.id": "p-1"}, time_ns=T0, sequence=0)
    two = event("user_prompt", {**base, "prompt.id": "p-2"}, time_ns=T0, sequence=0)
    reply_a = event("assistant_response", {**base, "message.uuid": "m-a"}, time_ns=T0, sequence=1)
    reply_b = event("assistant_response", {**base, "message.uuid": "m-b"}, time_ns=T0, sequence=1)
    out = _account(one, two, one, reply_a, reply_b, reply_b)
    assert (out.accepted, out.duplicate) == (4, 2)


def test_without_event_timestamp_the_record_time_decides() -> None:
    a = event("user_prompt", {"event.timestamp": None}, time_ns=T0, sequence=1)
    b = event("user_prompt", {"event.timestamp": None}, time_ns=T0 + 1, sequence=1)
    out = _account(a, a, b)
    assert (out.accepted, out.duplicate) == (2, 1)


def test_assistant_response_with_a_request_id_is_not_keyed_by_it() -> None:
    """Only api_request/api_error are keyed by request_id; other events carrying it are not
    duplicates of each other."""
    extra = {"request_id": "req_1", "model": MODEL}
    out = _account(
        event("assistant_response", extra, time_ns=T0, sequence=6),
        event("assistant_response", extra, time_ns=T0 + 1, sequence=7),
    )
    assert (out.accepted, out.duplicate) == (2, 0)


def test_dedupe_spans_batches() -> None:
    accountant = Accountant(IdentityResolver())
    record = api_request("req_1", time_ns=T0, output_tokens=109)
    first = _account(record, accountant=accountant)
    retry = _account(record, accountant=accountant)
    assert (first.accepted, retry.accepted, retry.duplicate) == (1, 0, 1)
    assert retry.increments == []
    assert retry.observations == []
    assert retry.seen == set()


def test_event_key_rules_directly() -> None:
    def ev(name: str, **a: object) -> Event:
        return Event(name, T0, dict(a))

    assert event_key(ev("api_request", request_id="r")) == event_key(
        ev("api_request", request_id="r", **{"event.sequence": 3})
    )
    assert event_key(ev("api_request", request_id="r")) != event_key(
        ev("api_error", request_id="r")
    )
    assert event_key(ev("tool_result", tool_use_id="t")) != event_key(
        ev("tool_decision", tool_use_id="t")
    )
    # without a request_id, api_request falls back to the generic key
    assert event_key(ev("api_request", **{"event.sequence": 1})) != event_key(
        ev("api_request", **{"event.sequence": 2})
    )


# -- unknown and all known events ------------------------------------------------------------


def test_every_event_counts_in_events_total_known_or_not() -> None:
    out = _account(
        event("plugin_loaded", time_ns=T0, sequence=1),
        event("plugin_loaded", time_ns=T0, sequence=2),
        event("brand_new_event", time_ns=T0, sequence=3),
        event("user_prompt", time_ns=T0, sequence=4),
    )
    assert out.accepted == 4
    assert _metric(out, c.EVENTS) == Counter(
        {("plugin_loaded",): 2, ("brand_new_event",): 1, ("user_prompt",): 1}
    )
    assert _metric(out, c.PROMPTS) == Counter({(): 1})
    # no handler, no other metric
    names = {i.metric.name for i in out.increments}
    assert names == {c.EVENTS.name, c.PROMPTS.name, c.SESSIONS.name}


def test_api_request_increments_and_observation() -> None:
    record = api_request(
        "req_0759d7a066d64892a263e32c",
        time_ns=T0,
        model="claude-opus-4-5[1m]",
        input_tokens=1259,
        output_tokens=109,
        cache_read_tokens=7550,
        cache_creation_tokens=3775,
        cost_usd=0.027601,
        duration_ms=1035,
        sequence=5,
    )
    out = _account(record)
    model = "claude-opus-4-5"
    assert _totals(out) == Counter(
        {
            (c.EVENTS.name, ("api_request",)): 1,
            (c.SESSIONS.name, ("xterm-256color",)): 1,
            (c.API_REQUESTS.name, (model,)): 1,
            (c.TOKENS.name, (model, "input")): 1259,
            (c.TOKENS.name, (model, "output")): 109,
            (c.TOKENS.name, (model, "cache_read")): 7550,
            (c.TOKENS.name, (model, "cache_creation")): 3775,
            (c.COST.name, (model,)): 27_601_000,
        }
    )
    (obs,) = out.observations
    assert (obs.metric, obs.labels, obs.seconds) == (c.API_DURATION, (model,), 1.035)
    assert all(i.session == SESSION_ID for i in out.increments)


def test_api_error_labels_and_unknowns() -> None:
    out = _account(
        event("api_error", {"request_id": "r1", "status_code": "429"}, time_ns=T0),
        event("api_error", {"request_id": "r2", "model": "m[1m]"}, time_ns=T0),
    )
    assert _metric(out, c.API_ERRORS) == Counter({("unknown", "429"): 1, ("m", "unknown"): 1})


def test_tool_result_success_spellings_and_duration() -> None:
    rows = [
        ("true", "true"),
        (True, "true"),
        ("false", "false"),
        (False, "false"),
        (None, "unknown"),
    ]
    records = [
        event(
            "tool_result",
            {"tool_use_id": f"t{i}", "tool_name": "Bash", "success": raw, "duration_ms": 250},
            time_ns=T0,
        )
        for i, (raw, _) in enumerate(rows)
    ]
    out = _account(*records)
    assert _metric(out, c.TOOL_CALLS) == Counter(
        {("Bash", "true"): 2, ("Bash", "false"): 2, ("Bash", "unknown"): 1}
    )
    assert [(o.metric, o.labels, o.seconds) for o in out.observations] == [
        (c.TOOL_DURATION, ("Bash",), 0.25)
    ] * len(rows)


@pytest.mark.parametrize("duration", [-5, None], ids=["negative", "missing"])
def test_negative_or_missing_duration_adds_no_sample_but_the_event_counts(duration) -> None:
    """docs/metrics.md: "A negative or missing `duration_ms` adds no histogram sample; the
    event is still counted." """
    out = _account(
        api_request("r", time_ns=T0, duration_ms=duration),
        event("tool_result", {"tool_use_id": "t", "tool_name": "Bash"}, time_ns=T0)
        if duration is None
        else event(
            "tool_result",
            {"tool_use_id": "t", "tool_name": "Bash", "duration_ms": str(duration)},
            time_ns=T0,
        ),
    )
    assert out.accepted == 2
    assert out.observations == []
    assert _metric(out, c.API_REQUESTS) == Counter({(MODEL,): 1})
    assert _metric(out, c.TOOL_CALLS) == Counter({("Bash", "unknown"): 1})


def test_api_error_durations_are_not_observed() -> None:
    out = _account(event("api_error", {"request_id": "r", "duration_ms": 900}, time_ns=T0))
    assert out.accepted == 1
    assert out.observations == []


def test_tool_decision_labels() -> None:
    out = _account(
        event(
            "tool_decision",
            {
                "tool_use_id": "t",
                "tool_name": "Edit",
                "decision": "reject",
                "source": "user_reject",
            },
            time_ns=T0,
        ),
        event("tool_decision", {"tool_use_id": "u"}, time_ns=T0),
    )
    assert _metric(out, c.TOOL_DECISIONS) == Counter(
        {("Edit", "reject", "user_reject"): 1, ("unknown", "unknown", "unknown"): 1}
    )


# -- coercion and rejection ------------------------------------------------------------------


def test_string_numbers_are_coerced() -> None:
    record = api_request(
        "req_1",
        time_ns=T0,
        input_tokens="1259",
        output_tokens=" 109 ",
        cache_read_tokens="7550.0",
        cache_creation_tokens=3775.0,
        cost_usd="0.027601",
        duration_ms="1035",
    )
    out = _account(record)
    assert out.rejected.count == 0
    assert _metric(out, c.TOKENS) == Counter(
        {
            (MODEL, "input"): 1259,
            (MODEL, "output"): 109,
            (MODEL, "cache_read"): 7550,
            (MODEL, "cache_creation"): 3775,
        }
    )
    assert _metric(out, c.COST) == Counter({(MODEL,): 27_601_000})
    assert [o.seconds for o in out.observations] == [1.035]


@pytest.mark.parametrize(
    "field", ["input_tokens", "output_tokens", "cache_read_tokens", "cost_usd", "cost_usd_micros"]
)
def test_api_request_with_a_non_numeric_field_is_rejected(field: str) -> None:
    bad = api_request("req_bad", time_ns=T0, **{"input_tokens": 5, field: "lots"})
    good = api_request("req_good", time_ns=T0, input_tokens=3)
    out = _account(bad, good)
    assert out.rejected.count == 1
    assert out.rejected.reasons == {f"api_request: {field} is not a number": 1}
    assert out.accepted == 1
    assert _metric(out, c.API_REQUESTS) == Counter({(MODEL,): 1})
    assert _metric(out, c.TOKENS)[(MODEL, "input")] == 3
    assert _metric(out, c.EVENTS) == Counter({("api_request",): 1})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("input_tokens", -5),
        ("output_tokens", "-1"),
        ("cost_usd", -0.5),
        ("cost_usd_micros", -10),
        ("cache_read_tokens", MAX_VALUE * 10),
    ],
)
def test_api_request_with_a_negative_or_huge_spend_field_is_rejected(field: str, value) -> None:
    """A negative amount would make the high-water total, and so a counter, go down."""
    out = _account(api_request("r", time_ns=T0, **{field: value}))
    assert out.rejected.reasons == {f"api_request: {field} is negative or over {MAX_VALUE:g}": 1}
    assert out.accepted == 0
    assert out.increments == []


def test_a_rejected_event_is_not_remembered_as_seen() -> None:
    accountant = Accountant(IdentityResolver())
    bad = _account(api_request("req_1", time_ns=T0, output_tokens="NaN"), accountant=accountant)
    assert bad.rejected.count == 1
    good = _account(api_request("req_1", time_ns=T0, output_tokens=10), accountant=accountant)
    assert (good.accepted, good.duplicate) == (1, 0)
    assert _metric(good, c.TOKENS)[(MODEL, "output")] == 10


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("api_error", {"request_id": "r", "duration_ms": "slow"}),
        ("tool_result", {"tool_use_id": "t", "duration_ms": "slow"}),
    ],
)
def test_non_numeric_duration_only_drops_the_histogram_sample(name: str, extra: dict) -> None:
    """A bad duration must not cost the event itself (it may carry spend or an error)."""
    out = _account(event(name, extra, time_ns=T0))
    assert out.rejected.count == 0
    assert out.accepted == 1
    assert _metric(out, c.EVENTS) == Counter({(name,): 1})
    assert out.observations == []


def test_api_request_with_a_non_numeric_duration_keeps_its_spend() -> None:
    out = _account(api_request("req_1", time_ns=T0, input_tokens=7, duration_ms="slow"))
    assert out.rejected.count == 0
    assert _metric(out, c.TOKENS)[(MODEL, "input")] == 7
    assert out.observations == []


def test_empty_numeric_fields_are_absent_not_invalid() -> None:
    out = _account(api_request("req_1", time_ns=T0, input_tokens="", duration_ms=""))
    assert out.rejected.count == 0
    assert _metric(out, c.API_REQUESTS) == Counter({(MODEL,): 1})
    assert out.observations == []


# -- cost ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cost_usd", "micros", "nano"),
    [
        pytest.param(0.0276558, 27656, 27_655_800, id="double-preferred-over-micros"),
        pytest.param(0.027601, 27601, 27_601_000, id="both-agree"),
        pytest.param(None, 27656, 27_656_000, id="micros-only"),
        pytest.param("0.0276558", 27656, 27_655_800, id="string-double"),
        pytest.param(None, "27656", 27_656_000, id="string-micros"),
    ],
)
def test_cost_from_cost_usd_preferred_over_micros(cost_usd, micros, nano: int) -> None:
    out = _account(api_request("r", time_ns=T0, cost_usd=cost_usd, cost_usd_micros=micros))
    assert _metric(out, c.COST) == Counter({(MODEL,): nano})


def test_cost_of_many_requests_is_exact() -> None:
    records = [api_request(f"r{i}", time_ns=T0 + i, cost_usd=0.0276558) for i in range(2000)]
    out = _account(*records)
    assert _metric(out, c.COST) == Counter({(MODEL,): 2000 * 27_655_800})


# -- sessions from events, seen --------------------------------------------------------------


def test_sessions_from_events_when_metrics_are_off() -> None:
    accountant = Accountant(IdentityResolver())
    first = _account(
        event("user_prompt", time_ns=T0, sequence=1),
        api_request("r1", time_ns=T0),
        event("tool_result", {"tool_use_id": "t1"}, time_ns=T0),
        accountant=accountant,
    )
    later = _account(
        api_request("r2", time_ns=T0 + SECOND),
        event("user_prompt", {"session.id": "s2", "terminal.type": "vscode"}, time_ns=T0),
        event("plugin_loaded", {"session.id": None}, time_ns=T0, sequence=9),  # no session
        accountant=accountant,
    )
    assert _metric(first, c.SESSIONS) == Counter({("xterm-256color",): 1})
    assert _metric(later, c.SESSIONS) == Counter({("vscode",): 1})


def test_seen_holds_the_identities_of_accepted_events() -> None:
    alice = {"user.email": "Alice@Example.com"}
    bob = {
        "user.email": "bob@example.com",
        "team.id": "payments",
        "user.id": "b" * 64,
        "session.id": "bob-session",
    }
    out = _account(
        event("user_prompt", alice, time_ns=T0, sequence=1),
        event("user_prompt", alice, time_ns=T0, sequence=2),
        event("user_prompt", bob, time_ns=T0, sequence=1),
        api_request("r", time_ns=T0, input_tokens="x", extra={"user.email": "carol@example.com"}),
    )
    assert {(i.actor, i.kind, i.team) for i in out.seen} == {
        ("alice@example.com", "email", "core"),
        ("bob@example.com", "email", "payments"),
    }


def test_events_use_resource_attributes_when_the_record_lacks_them() -> None:
    """Resource-only identity (a record without the copies) still resolves."""
    record = event("user_prompt", {"team.id": None, "department": None}, time_ns=T0)
    resource = {"service.name": "claude-code", "team.id": "from-resource"}
    out = Accountant(IdentityResolver()).account_logs(
        decoded_logs(logs_request(record, resource=resource)), None, NOW
    )
    assert {i.team for i in out.seen} == {"from-resource"}
