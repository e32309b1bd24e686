"""Replays of the real Claude Code 2.1.330 captures over every protocol.

Expected totals come from each run's `claude_result.json` (the CLI's own usage and cost) and
from the scripted session (11 + 3 lines added, 2 removed, one commit, one PR).
"""

from __future__ import annotations

import grpc
import pytest

from tests.harness import make_config, running_collector
from tests.replay import CASES, captured, expected, replay

TOKEN_TYPES = {
    "input": "input_tokens",
    "output": "output_tokens",
    "cache_read": "cache_read_input_tokens",
    "cache_creation": "cache_creation_input_tokens",
}


def _config_for(case: str):
    if case != "gzip-headers":
        return make_config()
    token = captured(case)[0].headers["authorization"].split()[1]
    return make_config(
        {"receivers": {"otlp": {"auth": {"tokens": [{"name": "capture-laptop", "token": token}]}}}}
    )


def _assert_matches_cli(collector, case: str) -> None:
    result = expected(case)
    for label, key in TOKEN_TYPES.items():
        assert collector.total("claude_code_tokens_total", type=label) == result["usage"][key]
    assert collector.total("claude_code_cost_usd_total") == pytest.approx(
        result["total_cost_usd"], abs=1e-9
    )
    for model, usage in result["modelUsage"].items():
        assert collector.total("claude_code_cost_usd_total", model=model) == pytest.approx(
            usage["costUSD"], abs=1e-9
        )
        assert (
            collector.total("claude_code_tokens_total", model=model, type="output")
            == usage["outputTokens"]
        )
    assert collector.total("claude_code_sessions_total") == 1
    assert collector.total("claude_code_api_requests_total") == result["num_turns"]
    assert collector.total("claude_code_lines_of_code_total", type="added") == 11 + 3
    assert collector.total("claude_code_lines_of_code_total", type="removed") == 2
    assert collector.total("claude_code_commits_total") == 1
    assert collector.total("claude_code_pull_requests_total") == 1
    assert collector.total("claude_code_code_edit_decisions_total", decision="accept") == 2


@pytest.mark.parametrize("case", CASES)
def test_replay_matches_cli_totals(case: str) -> None:
    with running_collector(_config_for(case)) as collector:
        token = "test-token" if case == "gzip-headers" else None
        statuses = replay(case, collector, token)
        assert all(s in (200, grpc.StatusCode.OK) for s in statuses), statuses
        _assert_matches_cli(collector, case)


@pytest.mark.parametrize("case", CASES)
def test_replaying_everything_twice_counts_once(case: str) -> None:
    """Client retries of whole batches (traps.md #3) must not double anything."""
    with running_collector(_config_for(case)) as collector:
        token = "test-token" if case == "gzip-headers" else None
        replay(case, collector, token)
        replay(case, collector, token)
        _assert_matches_cli(collector, case)
        # The second replay is all duplicates: exactly as many as the first accepted.
        accepted = collector.total("cc_collector_items_total", outcome="accepted", signal="metrics")
        duplicates = collector.total(
            "cc_collector_items_total", outcome="duplicate", signal="metrics"
        )
        assert accepted > 0
        assert duplicates == accepted
        accepted = collector.total("cc_collector_items_total", outcome="accepted", signal="logs")
        duplicates = collector.total("cc_collector_items_total", outcome="duplicate", signal="logs")
        assert accepted > 0
        assert duplicates == accepted


def test_token_identity_names_the_actor() -> None:
    """API-key clients send no email: the token's name becomes the actor."""
    with running_collector(_config_for("gzip-headers")) as collector:
        replay("gzip-headers", collector, "test-token")
        assert collector.total(
            "claude_code_cost_usd_total", user="capture-laptop"
        ) == pytest.approx(expected("gzip-headers")["total_cost_usd"], abs=1e-9)
