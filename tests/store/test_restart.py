"""Store continuity: counters resume after a restart and retries across it count once."""

from __future__ import annotations

import grpc
import pytest

from tests.harness import make_config, running_collector
from tests.replay import CASES, expected, replay


def _spend(collector) -> tuple[float, float, float]:
    return (
        collector.total("claude_code_cost_usd_total"),
        collector.total("claude_code_tokens_total", type="input"),
        collector.total("claude_code_sessions_total"),
    )


@pytest.mark.parametrize("case", [c for c in CASES if c != "gzip-headers"])
def test_counters_resume_and_retries_after_restart_count_once(case: str, tmp_path) -> None:
    config = make_config({"exporters": {"store": {"path": str(tmp_path / "c.db")}}})
    result = expected(case)
    with running_collector(config) as first:
        assert all(s in (200, grpc.StatusCode.OK) for s in replay(case, first))
        before = _spend(first)
        histogram = first.total("claude_code_api_request_duration_seconds_count")
    assert before[0] == pytest.approx(result["total_cost_usd"], abs=1e-9)
    with running_collector(config) as second:
        # Same replica, same store: /metrics resumes exactly where it was (no counter reset).
        assert _spend(second) == before
        assert second.total("claude_code_api_request_duration_seconds_count") == histogram
        # The client retries everything after the restart: all of it is a duplicate.
        replay(case, second)
        assert _spend(second) == before
        assert second.total("cc_collector_items_total", outcome="accepted") == 0
        assert second.total("cc_collector_items_total", outcome="duplicate") > 0
