"""The real Claude Code CLI, end to end: `claude -p` -> OTLP -> /metrics, store and API.

Every case compares the collector's three views with Claude Code's own JSON result (usage,
total_cost_usd, modelUsage) and with the scripted session (fake_anthropic.py): lines from the
Write and the Edit, one commit, one PR, the edit decisions.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.api.client import API_CONFIG, INGEST_TOKEN
from tests.e2e.conftest import otel_env
from tests.e2e.expect import assert_agrees, from_results, report_view
from tests.e2e.fake_anthropic import FakeAnthropic
from tests.harness import make_config, running_collector


def _read(path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def wait_until(condition, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _check_cli_result(result: dict) -> None:
    assert result["is_error"] is False, result
    [usage] = result["modelUsage"].values()
    assert usage["costUSD"] == pytest.approx(result["total_cost_usd"], abs=1e-12)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf", "http/json"])
def test_each_protocol_delta_both_signals(protocol, collector, session) -> None:
    run = session(otel_env(collector, protocol))
    result = run.run()
    _check_cli_result(result)
    assert run.commits() == 1
    expected = from_results([result])
    assert_agrees(expected, collector)
    # per model, too
    [(model, usage)] = result["modelUsage"].items()
    assert collector.total("claude_code_cost_usd_total", model=model) == pytest.approx(
        usage["costUSD"], abs=1e-9
    )
    assert (
        collector.total("claude_code_tokens_total", model=model, type="output")
        == usage["outputTokens"]
    )
    assert (
        collector.total("claude_code_code_edit_decisions_total", tool="Write", decision="accept")
        == 1
    )
    assert (
        collector.total("claude_code_code_edit_decisions_total", tool="Edit", decision="accept")
        == 1
    )
    assert collector.total("claude_code_api_requests_total") == result["num_turns"]


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_cumulative_temporality(protocol, collector, session) -> None:
    run = session(
        otel_env(
            collector, protocol, OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE="cumulative"
        )
    )
    result = run.run()
    _check_cli_result(result)
    assert_agrees(from_results([result]), collector)


def test_gzip_and_a_bearer_token_bound_to_a_name(collector, session) -> None:
    run = session(
        otel_env(
            collector,
            "http/protobuf",
            OTEL_EXPORTER_OTLP_COMPRESSION="gzip",
            OTEL_EXPORTER_OTLP_HEADERS=f"Authorization=Bearer {INGEST_TOKEN}",
        )
    )
    result = run.run()
    _check_cli_result(result)
    assert_agrees(from_results([result]), collector)
    # The API key client sends no email: the token's name is the actor, its team the team.
    assert collector.total("claude_code_cost_usd_total", user="ci-runner", team="platform") == (
        pytest.approx(result["total_cost_usd"], abs=1e-9)
    )
    _, rows = report_view(collector)
    assert {r["actor"]["api_key_name"] for r in rows} == {"ci-runner"}
    assert {r["actor"]["type"] for r in rows} == {"api_actor"}


def test_a_denied_tool_counts_reject_decisions(collector, session) -> None:
    run = session(otel_env(collector, "grpc"), allowed_tools=("Write", "Bash"))
    result = run.run()
    assert result["permission_denials"], result
    assert_agrees(from_results([result], edit_allowed=False), collector)
    assert collector.total(
        "claude_code_code_edit_decisions_total", tool="Edit", decision="reject"
    ) == len([d for d in result["permission_denials"] if d.get("tool_name") == "Edit"])
    assert collector.total("claude_code_tool_decisions_total", tool="Edit", decision="reject") >= 1


def test_api_errors_when_retries_run_out(collector, session) -> None:
    with FakeAnthropic(fail_first=10_000) as failing:
        run = session(
            otel_env(collector, "http/protobuf"),
            fake=failing,
            extra_env={"CLAUDE_CODE_MAX_RETRIES": "1"},
        )
        result = run.run()
    assert result["is_error"] is True
    status = result["api_error_status"]
    assert collector.total("claude_code_api_errors_total", status_code=str(status)) == 1
    assert len(failing.requests) == 2  # the first try and one retry
    assert_agrees(from_results([result]), collector, check={"cost_usd", "tokens", "commits"})


def test_two_sessions_of_one_user_at_the_same_time_cumulative(collector, session, tmp_path) -> None:
    home = tmp_path / "home"
    otel = otel_env(
        collector, "grpc", OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE="cumulative"
    )
    results: list[dict] = []
    # Slower answers keep both processes running at once for several export intervals.
    with FakeAnthropic(delay=1.0) as first_api, FakeAnthropic(delay=1.0) as second_api:
        runs = [session(otel, fake=first_api, home=home), session(otel, fake=second_api, home=home)]
        threads = [threading.Thread(target=lambda r=r: results.append(r.run())) for r in runs]
        threads[0].start()
        # The first process creates the install's user id; the second must find it, or the
        # two would be different users (they race to create ~/.claude.json otherwise).
        wait_until(lambda: "userID" in _read(home / ".claude.json"), "the first user id")
        threads[1].start()
        for thread in threads:
            thread.join(180)
    assert len(results) == 2
    for result in results:
        _check_cli_result(result)
    users = {
        labels
        for (name, labels) in collector.samples()
        if name == "claude_code_user_last_seen_timestamp_seconds"
    }
    assert len(users) == 1, users  # one install, one user: the two processes collide upstream
    assert_agrees(from_results(results), collector)


@pytest.mark.parametrize(
    ("exporters", "check"),
    [
        ({"OTEL_LOGS_EXPORTER": "none"}, None),
        ({"OTEL_METRICS_EXPORTER": "none"}, {"cost_usd", "tokens", "sessions"}),
    ],
    ids=["metrics-only", "logs-only"],
)
def test_one_signal_only(exporters, check, collector, session) -> None:
    run = session({**otel_env(collector, "http/protobuf"), **exporters})
    result = run.run()
    _check_cli_result(result)
    assert_agrees(from_results([result]), collector, check=check)
    if "OTEL_METRICS_EXPORTER" in exporters:  # lines, commits, PRs exist only as metrics
        assert collector.total("claude_code_lines_of_code_total") == 0
        assert collector.total("claude_code_api_requests_total") == result["num_turns"]
    else:
        assert collector.total("claude_code_api_requests_total") == 0  # events only


def test_a_restart_between_two_sessions_keeps_every_count(session, tmp_path) -> None:
    config = make_config({**API_CONFIG, "exporters": {"store": {"path": str(tmp_path / "c.db")}}})
    results = []
    for _ in range(2):
        with running_collector(config) as collector:
            results.append(session(otel_env(collector, "grpc")).run())
            assert_agrees(from_results(results), collector)
