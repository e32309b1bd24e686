"""The /metrics contract: ExpositionState + ContractCollector rendered and parsed back."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.openmetrics import parser as openmetrics_parser
from prometheus_client.parser import text_string_to_metric_families

from collector import contract as c
from collector.accounting.engine import Accountant
from collector.accounting.records import Accounted
from collector.identity import IdentityResolver
from exporters.labels import OTHER
from exporters.prometheus import ContractCollector, ExpositionState
from tests.builders import (
    SECOND,
    T0,
    api_request,
    claude_metric,
    decoded_logs,
    decoded_metrics,
    event,
    logs_request,
    metrics_request,
)

MINUTE = 60 * SECOND
NOW = T0 + MINUTE

#: The contract as documented: metric name -> label names, in order.
DOCUMENTED = {
    "claude_code_cost_usd_total": ("user", "team", "model"),
    "claude_code_tokens_total": ("user", "team", "model", "type"),
    "claude_code_sessions_total": ("user", "team", "terminal"),
    "claude_code_lines_of_code_total": ("user", "team", "type"),
    "claude_code_commits_total": ("user", "team"),
    "claude_code_pull_requests_total": ("user", "team"),
    "claude_code_code_edit_decisions_total": ("user", "team", "tool", "decision"),
    "claude_code_tool_decisions_total": ("team", "tool", "decision", "source"),
    "claude_code_active_time_seconds_total": ("user", "team", "type"),
    "claude_code_prompts_total": ("user", "team"),
    "claude_code_api_requests_total": ("user", "team", "model"),
    "claude_code_api_errors_total": ("team", "model", "status_code"),
    "claude_code_tool_calls_total": ("team", "tool", "success"),
    "claude_code_events_total": ("event",),
    "claude_code_api_request_duration_seconds": ("model",),
    "claude_code_tool_duration_seconds": ("tool",),
    "claude_code_user_last_seen_timestamp_seconds": ("user", "team"),
    "claude_code_user_info": ("user", "team", "department"),
}
FORBIDDEN = {
    "session.id",
    "session_id",
    "prompt.id",
    "prompt_id",
    "request_id",
    "user.id",
    "user_id",
    "tool_use_id",
}


def _registry(state: ExpositionState, now: int) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ContractCollector(state, clock=lambda: now))
    return registry


def _scrape(state: ExpositionState, now: int = NOW) -> dict:
    text = generate_latest(_registry(state, now)).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def _family_name(metric: c.Metric) -> str:
    return metric.name.removesuffix("_total") if metric.kind is c.Kind.COUNTER else metric.name


def _values(families: dict, metric: c.Metric, suffix: str = "") -> dict[tuple, float]:
    """Samples of `metric` as {label values in contract order: value}."""
    family = families[_family_name(metric)]
    name = metric.name + suffix
    return {
        tuple(s.labels[n] for n in metric.labels): s.value for s in family.samples if s.name == name
    }


def _everything(accountant: Accountant, now: int = NOW) -> list[Accounted]:
    """One request of each signal that touches every contract metric."""
    metrics = metrics_request(
        claude_metric("session.count", 1, time_ns=T0),
        claude_metric("token.usage", 1259, time_ns=T0, extra={"model": "a", "type": "input"}),
        claude_metric("token.usage", 7550, time_ns=T0, extra={"model": "a", "type": "cacheRead"}),
        claude_metric("cost.usage", 0.027601, time_ns=T0, extra={"model": "a"}),
        claude_metric("lines_of_code.count", 11, time_ns=T0, extra={"type": "added"}),
        claude_metric("lines_of_code.count", 2, time_ns=T0, extra={"type": "removed"}),
        claude_metric("commit.count", 1, time_ns=T0),
        claude_metric("pull_request.count", 1, time_ns=T0),
        claude_metric(
            "code_edit_tool.decision",
            2,
            time_ns=T0,
            extra={"tool_name": "Edit", "decision": "accept"},
        ),
        claude_metric("active_time.total", 2.5, time_ns=T0, extra={"type": "cli"}),
    )
    logs = logs_request(
        event("user_prompt", {"prompt.id": "p1"}, time_ns=T0, sequence=1),
        api_request(
            "req_1",
            time_ns=T0,
            model="b[1m]",
            input_tokens=5,
            output_tokens=109,
            cost_usd=0.0276558,
            duration_ms=1035,
            extra={"prompt.id": "p1"},
        ),
        event(
            "api_error",
            {"request_id": "req_2", "model": "b", "status_code": 529},
            time_ns=T0,
        ),
        event(
            "tool_decision",
            {"tool_use_id": "t1", "tool_name": "Bash", "decision": "accept", "source": "config"},
            time_ns=T0,
        ),
        event(
            "tool_result",
            {"tool_use_id": "t1", "tool_name": "Bash", "success": "true", "duration_ms": "13"},
            time_ns=T0,
        ),
        event("plugin_loaded", time_ns=T0, sequence=2),
    )
    return [
        accountant.account_metrics(decoded_metrics(metrics), None, now),
        accountant.account_logs(decoded_logs(logs), None, now),
    ]


def _state_with_everything(**kwargs: int) -> ExpositionState:
    state = ExpositionState(**kwargs)
    for out in _everything(Accountant(IdentityResolver())):
        state.apply(out, NOW)
    return state


# -- the contract ----------------------------------------------------------------------------


def test_documented_table_matches_the_contract_module() -> None:
    metrics = (*c.COUNTERS, *c.HISTOGRAMS, c.USER_LAST_SEEN, c.USER_INFO)
    assert {m.name: m.labels for m in metrics} == DOCUMENTED


def test_every_contract_metric_is_present_with_exactly_the_documented_labels() -> None:
    families = _scrape(_state_with_everything())
    for metric in c.COUNTERS:
        family = families[_family_name(metric)]
        assert family.type == "counter", metric.name
        assert family.documentation == metric.help
        assert family.samples, metric.name
        for s in family.samples:
            assert s.name == metric.name
            assert sorted(s.labels) == sorted(DOCUMENTED[metric.name]), metric.name
    for metric in c.HISTOGRAMS:
        family = families[metric.name]
        assert family.type == "histogram"
        assert family.samples, metric.name
        for s in family.samples:
            expected = DOCUMENTED[metric.name]
            if s.name == metric.name + "_bucket":
                expected = (*expected, "le")
            else:
                assert s.name in (metric.name + "_count", metric.name + "_sum")
            assert sorted(s.labels) == sorted(expected), s
    gauge = families[c.USER_LAST_SEEN.name]
    assert gauge.type == "gauge"
    assert [sorted(s.labels) for s in gauge.samples] == [["team", "user"]]
    info = families[c.USER_INFO.name]
    assert info.type == "gauge"
    assert [(sorted(s.labels), s.value) for s in info.samples] == [
        (["department", "team", "user"], 1.0)
    ]
    assert set(families) == {_family_name(m) for m in (*c.COUNTERS, *c.HISTOGRAMS)} | {
        c.USER_LAST_SEEN.name,
        c.USER_INFO.name,
    }


def test_no_per_session_or_per_request_label_ever_appears() -> None:
    families = _scrape(_state_with_everything())
    allowed = {name for labels in DOCUMENTED.values() for name in labels} | {"le"}
    for family in families.values():
        for s in family.samples:
            assert not FORBIDDEN & set(s.labels), s
            assert set(s.labels) <= allowed, s
            assert "p1" not in s.labels.values()
            assert "req_1" not in s.labels.values()


def test_values_are_scaled_to_base_units() -> None:
    families = _scrape(_state_with_everything())
    user, team = "device:e9f10e16", "core"
    assert _values(families, c.COST) == {(user, team, "a"): 0.027601, (user, team, "b"): 0.0276558}
    assert _values(families, c.ACTIVE_TIME) == {(user, team, "cli"): 2.5}
    assert _values(families, c.TOKENS) == {
        (user, team, "a", "input"): 1259,
        (user, team, "a", "cache_read"): 7550,
        (user, team, "b", "input"): 5,
        (user, team, "b", "output"): 109,
    }
    assert _values(families, c.SESSIONS) == {(user, team, "xterm-256color"): 1}
    assert _values(families, c.LINES) == {(user, team, "added"): 11, (user, team, "removed"): 2}
    assert _values(families, c.CODE_EDIT_DECISIONS) == {(user, team, "Edit", "accept"): 2}
    assert _values(families, c.TOOL_DECISIONS) == {(team, "Bash", "accept", "config"): 1}
    assert _values(families, c.TOOL_CALLS) == {(team, "Bash", "true"): 1}
    assert _values(families, c.API_ERRORS) == {(team, "b", "529"): 1}
    assert _values(families, c.API_REQUESTS) == {(user, team, "b"): 1}
    assert _values(families, c.PROMPTS) == {(user, team): 1}
    assert _values(families, c.EVENTS) == {
        ("user_prompt",): 1,
        ("api_request",): 1,
        ("api_error",): 1,
        ("tool_decision",): 1,
        ("tool_result",): 1,
        ("plugin_loaded",): 1,
    }
    assert _values(families, c.USER_LAST_SEEN) == {(user, team): NOW / 1e9}
    assert _values(families, c.API_DURATION, "_sum") == {("b",): 1.035}
    assert _values(families, c.TOOL_DURATION, "_sum") == {("Bash",): 0.013}


def test_cost_sum_is_exact_in_usd() -> None:
    state = ExpositionState()
    accountant = Accountant(IdentityResolver())
    for i in range(1000):
        request = logs_request(api_request(f"r{i}", time_ns=T0 + i, cost_usd=0.0276558))
        state.apply(accountant.account_logs(decoded_logs(request), None, NOW), NOW)
    (value,) = _values(_scrape(state), c.COST).values()
    assert value == 27.6558


# -- escaping and formats --------------------------------------------------------------------

NASTY_EMAIL = 'a"b\\c\nd@example.com'
NASTY_TEAM = 'te"am\\x\ny'
NASTY_MODEL = 'mo"del\\\nx'


def _nasty_state() -> ExpositionState:
    state = ExpositionState()
    extra = {"user.email": NASTY_EMAIL, "team.id": NASTY_TEAM, "model": NASTY_MODEL}
    request = metrics_request(claude_metric("cost.usage", 1.25, time_ns=T0, extra=extra))
    out = Accountant(IdentityResolver()).account_metrics(decoded_metrics(request), None, NOW)
    state.apply(out, NOW)
    return state


def test_label_values_are_escaped_and_parse_back_identically() -> None:
    state = _nasty_state()
    text = generate_latest(_registry(state, NOW)).decode()
    assert '\\"' in text and "\\\\" in text and "\\n" in text
    for line in text.splitlines():  # a raw newline inside a value would split a sample
        assert line.startswith(("#", "claude_code_")), line
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert _values(families, c.COST) == {(NASTY_EMAIL, NASTY_TEAM, NASTY_MODEL): 1.25}
    assert _values(families, c.USER_LAST_SEEN) == {(NASTY_EMAIL, NASTY_TEAM): NOW / 1e9}


def test_openmetrics_rendering_parses() -> None:
    registry = _registry(_state_with_everything(), NOW)
    text = openmetrics.generate_latest(registry).decode()
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in openmetrics_parser.text_string_to_metric_families(text)}
    for metric in (*c.COUNTERS, *c.HISTOGRAMS, c.USER_LAST_SEEN):
        assert families[_family_name(metric)].samples, metric.name
    cost = _values(families, c.COST)
    assert cost[("device:e9f10e16", "core", "a")] == 0.027601


def test_openmetrics_escaping_round_trips() -> None:
    text = openmetrics.generate_latest(_registry(_nasty_state(), NOW)).decode()
    families = {f.name: f for f in openmetrics_parser.text_string_to_metric_families(text)}
    assert _values(families, c.COST) == {(NASTY_EMAIL, NASTY_TEAM, NASTY_MODEL): 1.25}


# -- histograms ------------------------------------------------------------------------------


def test_histogram_buckets_are_cumulative_and_match_count_and_sum() -> None:
    durations_ms = [100, 300, 1035, 7000, 500_000, 250]
    records = [
        api_request(f"r{i}", time_ns=T0, model="m", duration_ms=ms)
        for i, ms in enumerate(durations_ms)
    ]
    state = ExpositionState()
    out = Accountant(IdentityResolver()).account_logs(
        decoded_logs(logs_request(*records)), None, NOW
    )
    state.apply(out, NOW)
    families = _scrape(state)
    seconds = [ms / 1000.0 for ms in durations_ms]

    family = families[c.API_DURATION.name]
    buckets = [
        (float(s.labels["le"]), s.value) for s in family.samples if s.name.endswith("_bucket")
    ]
    bounds = [*map(float, c.BUCKETS[c.API_DURATION]), float("inf")]
    assert [b for b, _ in buckets] == bounds
    assert [n for _, n in buckets] == [sum(1 for x in seconds if x <= b) for b in bounds]
    counts = [n for _, n in buckets]
    assert counts == sorted(counts)
    (count,) = _values(families, c.API_DURATION, "_count").values()
    (total,) = _values(families, c.API_DURATION, "_sum").values()
    assert count == buckets[-1][1] == len(seconds)
    assert total == pytest.approx(sum(seconds), rel=1e-12)


def test_tool_histogram_bucket_bounds_follow_the_contract() -> None:
    families = _scrape(_state_with_everything())
    les = [s.labels["le"] for s in families[c.TOOL_DURATION.name].samples if "le" in s.labels]
    assert [float(x) for x in les] == [*map(float, c.BUCKETS[c.TOOL_DURATION]), float("inf")]
    counts = [s.value for s in families[c.TOOL_DURATION.name].samples if "le" in s.labels]
    assert counts == [1.0 if b >= 0.013 else 0.0 for b in c.BUCKETS[c.TOOL_DURATION]] + [1.0]


# -- caps and idle users ---------------------------------------------------------------------


def _commit_by(email: str, accountant: Accountant, t: int) -> Accounted:
    request = metrics_request(
        claude_metric(
            "commit.count",
            1,
            start_ns=t - SECOND,
            time_ns=t,
            extra={"user.email": email, "session.id": email},
        )
    )
    return accountant.account_metrics(decoded_metrics(request), None, t)


def test_user_cap_sends_newcomers_to_other_and_counts_the_overflow() -> None:
    state = ExpositionState(max_users=3)
    accountant = Accountant(IdentityResolver())
    users = [f"u{i}@example.com" for i in range(5)]
    for i, user in enumerate(users):
        t = NOW + i * SECOND
        state.apply(_commit_by(user, accountant, t), t)
    families = _scrape(state, NOW + 10 * SECOND)
    assert _values(families, c.COMMITS) == {
        ("u0@example.com", "core"): 1,
        ("u1@example.com", "core"): 1,
        ("u2@example.com", "core"): 1,
        (OTHER, "core"): 2,
    }
    assert set(_values(families, c.USER_LAST_SEEN)) == {
        ("u0@example.com", "core"),
        ("u1@example.com", "core"),
        ("u2@example.com", "core"),
        (OTHER, "core"),
    }
    assert state.label_overflow()["user"] == 2
    # a known user keeps their own series after the cap is reached
    state.apply(_commit_by(users[1], accountant, NOW + 20 * SECOND), NOW + 20 * SECOND)
    assert _values(_scrape(state, NOW + 21 * SECOND), c.COMMITS)[("u1@example.com", "core")] == 2


def test_label_value_cap_on_team_and_model() -> None:
    state = ExpositionState(max_label_values=2)
    accountant = Accountant(IdentityResolver())
    for i in range(3):
        extra = {"model": f"m{i}", "team.id": f"t{i}", "session.id": f"s{i}"}
        request = metrics_request(claude_metric("cost.usage", 1.0, time_ns=T0 + i, extra=extra))
        state.apply(accountant.account_metrics(decoded_metrics(request), None, NOW), NOW)
    cost = _values(_scrape(state), c.COST)
    assert cost == {
        ("device:e9f10e16", "t0", "m0"): 1.0,
        ("device:e9f10e16", "t1", "m1"): 1.0,
        ("device:e9f10e16", OTHER, OTHER): 1.0,
    }
    overflow = state.label_overflow()
    assert overflow["model"] == 1
    assert overflow["team"] >= 1


def test_idle_users_leave_the_scrape_after_the_sweep_and_restart_from_zero() -> None:
    idle = 10 * MINUTE
    state = ExpositionState(user_idle_ns=idle)
    accountant = Accountant(IdentityResolver())
    state.apply(_commit_by("old@example.com", accountant, NOW), NOW)
    later = NOW + 5 * MINUTE
    state.apply(_commit_by("new@example.com", accountant, later), later)

    users = {k[0] for k in _values(_scrape(state, later + MINUTE), c.COMMITS)}
    assert users == {"old@example.com", "new@example.com"}

    # old has been idle for longer than user_idle_ns; the scrape itself sweeps
    families = _scrape(state, NOW + idle + MINUTE)
    for metric in (*c.COUNTERS, c.USER_LAST_SEEN):
        if "user" in metric.labels:
            assert all(k[0] != "old@example.com" for k in _values(families, metric)), metric.name
    assert _values(families, c.COMMITS) == {("new@example.com", "core"): 1}
    assert set(_values(families, c.USER_LAST_SEEN)) == {("new@example.com", "core")}
    assert "old@example.com" not in state.limiters["user"].values

    # back again: a fresh counter (Prometheus reads it as a reset, no increment lost)
    back = NOW + idle + 2 * MINUTE
    state.apply(_commit_by("old@example.com", accountant, back), back)
    assert _values(_scrape(state, back), c.COMMITS)[("old@example.com", "core")] == 1


def test_idle_users_free_room_under_the_cap() -> None:
    state = ExpositionState(max_users=1, user_idle_ns=10 * MINUTE)
    accountant = Accountant(IdentityResolver())
    state.apply(_commit_by("first@example.com", accountant, NOW), NOW)
    _scrape(state, NOW + 11 * MINUTE)  # sweep: first goes
    t = NOW + 12 * MINUTE
    state.apply(_commit_by("second@example.com", accountant, t), t)
    assert _values(_scrape(state, t), c.COMMITS) == {("second@example.com", "core"): 1}


def test_scrape_is_a_read_rendering_twice_gives_the_same_text() -> None:
    registry = _registry(_state_with_everything(), NOW)
    render: Callable[[], bytes] = lambda: generate_latest(registry)  # noqa: E731
    assert render() == render()


def test_label_value_cap_on_client_chosen_type_decision_and_success() -> None:
    """`type`, `decision` and `success` come from client attributes too, so they are capped."""
    state = ExpositionState(max_label_values=2)
    accountant = Accountant(IdentityResolver())
    for i in range(3):
        extra = {"type": f"kind{i}", "session.id": "s"}
        request = metrics_request(
            claude_metric("lines_of_code.count", 1.0, time_ns=T0 + i, extra=extra)
        )
        state.apply(accountant.account_metrics(decoded_metrics(request), None, NOW), NOW)
        decision = event(
            "tool_decision",
            {"tool_use_id": f"t{i}", "decision": f"d{i}", "tool_name": "Bash", "source": "config"},
            time_ns=T0 + i,
        )
        result = event(
            "tool_result",
            {"tool_use_id": f"t{i}", "success": f"s{i}", "tool_name": "Bash"},
            time_ns=T0 + i,
        )
        state.apply(
            accountant.account_logs(decoded_logs(logs_request(decision, result)), None, NOW), NOW
        )
    lines = _values(_scrape(state), c.LINES)
    assert sorted(labels[-1] for labels in lines) == sorted(["kind0", "kind1", OTHER])
    decisions = _values(_scrape(state), c.TOOL_DECISIONS)
    assert sorted(labels[2] for labels in decisions) == sorted(["d0", "d1", OTHER])
    calls = _values(_scrape(state), c.TOOL_CALLS)
    # as_bool maps "s0".."s2" to no boolean, so success is "unknown" for all: one value, no overflow
    assert [labels[-1] for labels in calls] == ["unknown"]
    overflow = state.label_overflow()
    assert overflow["type"] == 1
    assert overflow["decision"] == 1
