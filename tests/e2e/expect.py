"""What a scripted session must produce, from the CLI's own result and the script alone; and
the collector's view of it from /metrics, the store and the Analytics endpoint."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest

from tests.api.client import get_json
from tests.e2e.fake_anthropic import EDIT_NEW, EDIT_OLD, HELLO

TOKEN_KEYS = {
    "input": "input_tokens",
    "output": "output_tokens",
    "cache_read": "cache_read_input_tokens",
    "cache_creation": "cache_creation_input_tokens",
}


@dataclass
class Expected:
    cost_usd: float
    tokens: dict[str, int]
    lines_added: int
    lines_removed: int
    commits: int
    pull_requests: int
    sessions: int


def from_results(
    results: list[dict[str, Any]], *, edit_allowed: bool = True, sessions: int | None = None
) -> Expected:
    """Sum of the CLI results; lines, commits and PRs from the script (per finished session)."""
    finished = [r for r in results if not r.get("is_error")]
    write = len(HELLO.split("\n"))
    return Expected(
        cost_usd=sum(r["total_cost_usd"] for r in results),
        tokens={k: sum(r["usage"][v] for r in results) for k, v in TOKEN_KEYS.items()},
        lines_added=len(finished) * (write + (len(EDIT_NEW.split("\n")) if edit_allowed else 0)),
        lines_removed=len(finished) * (len(EDIT_OLD.split("\n")) if edit_allowed else 0),
        commits=len(finished),
        pull_requests=len(finished),
        sessions=len(results) if sessions is None else sessions,
    )


def metrics_view(collector) -> Expected:
    return Expected(
        cost_usd=collector.total("claude_code_cost_usd_total"),
        tokens={k: int(collector.total("claude_code_tokens_total", type=k)) for k in TOKEN_KEYS},
        lines_added=int(collector.total("claude_code_lines_of_code_total", type="added")),
        lines_removed=int(collector.total("claude_code_lines_of_code_total", type="removed")),
        commits=int(collector.total("claude_code_commits_total")),
        pull_requests=int(collector.total("claude_code_pull_requests_total")),
        sessions=int(collector.total("claude_code_sessions_total")),
    )


def store_view(collector) -> Expected:
    def read(db: Any) -> dict[tuple[str, str], int]:
        rows = db.query(
            "SELECT metric, labels, sum(amount) FROM usage_daily GROUP BY metric, labels"
        )
        return {(m, labels): int(n) for m, labels, n in rows}

    future = asyncio.run_coroutine_threadsafe(collector.service.ledger.read(read), collector.loop)
    sums = future.result(30)

    def total(metric: str, suffix: str | None = None) -> int:
        return sum(
            n
            for (m, labels), n in sums.items()
            if m == metric and (suffix is None or labels.split("\x1f")[-1] == suffix)
        )

    return Expected(
        cost_usd=total("claude_code_cost_usd_total") / 1e9,
        tokens={k: total("claude_code_tokens_total", k) for k in TOKEN_KEYS},
        lines_added=total("claude_code_lines_of_code_total", "added"),
        lines_removed=total("claude_code_lines_of_code_total", "removed"),
        commits=total("claude_code_commits_total"),
        pull_requests=total("claude_code_pull_requests_total"),
        sessions=total("claude_code_sessions_total"),
    )


def report_view(collector) -> tuple[Expected, list[dict[str, Any]]]:
    today = dt.datetime.now(dt.UTC).date()
    path = (
        f"/v1/organizations/usage_report/claude_code?starting_at={today - dt.timedelta(days=1)}"
        f"&ending_at={today}&limit=1000"
    )
    status, body = get_json(collector, path)
    assert status == 200, body
    rows = body["data"]
    models = [m for r in rows for m in r["model_breakdown"]]
    core = [r["core_metrics"] for r in rows]
    return Expected(
        cost_usd=sum(m["estimated_cost"]["amount"] for m in models) / 100,
        tokens={k: sum(m["tokens"][k] for m in models) for k in TOKEN_KEYS},
        lines_added=sum(c["lines_of_code"]["added"] for c in core),
        lines_removed=sum(c["lines_of_code"]["removed"] for c in core),
        commits=sum(c["commits_by_claude_code"] for c in core),
        pull_requests=sum(c["pull_requests_by_claude_code"] for c in core),
        sessions=sum(c["num_sessions"] for c in core),
    ), rows


def assert_agrees(expected: Expected, collector, *, check: set[str] | None = None) -> None:
    """/metrics, the store and the Analytics report all equal `expected` (cost to 1e-9 USD)."""
    views = {
        "metrics": metrics_view(collector),
        "store": store_view(collector),
        "report": report_view(collector)[0],
    }
    fields = check or set(Expected.__dataclass_fields__)
    for name, got in views.items():
        for field_name in fields:
            want, have = getattr(expected, field_name), getattr(got, field_name)
            if field_name == "cost_usd":
                assert have == pytest.approx(want, abs=1e-9), (name, field_name)
            else:
                assert have == want, (name, field_name, have, want)
