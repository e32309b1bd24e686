"""The Analytics-compatible report against a real collector and store.

Expected numbers come from the telemetry each test sends (or the CLI's own claude_result.json
for the replayed capture), never from the collector.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from urllib.parse import urlencode

import pytest

from tests.api.client import API_CONFIG, INGEST_TOKEN, get, get_json, post_otlp
from tests.builders import (
    SECOND,
    T0,
    api_request,
    claude_metric,
    event,
    logs_request,
    metrics_request,
)
from tests.harness import make_config, running_collector
from tests.replay import FIXTURES, expected, replay

PATH = "/v1/organizations/usage_report/claude_code"
DAY0 = dt.datetime.fromtimestamp(T0 / 1e9, dt.UTC).date()
DAY = 86400 * SECOND


def report(collector, **params):
    return get_json(collector, f"{PATH}?{urlencode(params)}")


@pytest.fixture
def collector():
    with running_collector(make_config(API_CONFIG)) as running:
        yield running


def _activity(
    collector,
    who: dict,
    *,
    day: int = 0,
    terminal: str = "vscode",
    cost: float = 0.0123,
    tokens: int = 100,
    request_id: str,
    token: str | None = None,
    lines: int = 0,
    decision: tuple[str, str] | None = None,
) -> None:
    """One API call (event) plus optional lines and an edit decision (metrics), for `who`."""
    t = T0 + day * DAY + SECOND
    extra = {**who, "terminal.type": terminal, "session.id": f"s-{request_id}"}
    post_otlp(
        collector,
        "logs",
        logs_request(
            api_request(
                request_id,
                time_ns=t,
                input_tokens=tokens,
                output_tokens=tokens // 10,
                cost_usd=cost,
                extra=extra,
            )
        ),
        token,
    )
    metrics = []
    if lines:
        metrics.append(
            claude_metric("lines_of_code.count", lines, time_ns=t, extra={**extra, "type": "added"})
        )
    if decision:
        metrics.append(
            claude_metric(
                "code_edit_tool.decision",
                1,
                time_ns=t,
                extra={
                    **extra,
                    "tool_name": decision[0],
                    "decision": decision[1],
                    "source": "user",
                },
            )
        )
    if metrics:
        post_otlp(collector, "metrics", metrics_request(*metrics), token)


def test_report_of_the_captured_session_matches_the_cli() -> None:
    with running_collector(make_config(API_CONFIG)) as collector:
        replay("http-protobuf", collector)
        result = expected("http-protobuf")
        first = json.loads(
            (FIXTURES / "http-protobuf" / "otlp" / "index.jsonl").read_text().split("\n")[0]
        )
        day = dt.datetime.fromtimestamp(first["t"], dt.UTC).date()
        status, body = report(collector, starting_at=day.isoformat())
    assert status == 200
    assert body["has_more"] is False and body["next_page"] is None
    [row] = body["data"]
    assert row["date"] == f"{day.isoformat()}T00:00:00Z"
    assert row["actor"]["type"] == "api_actor"
    assert row["actor"]["api_key_name"].startswith("device:")
    assert row["organization_id"] == "org-test"
    assert (row["customer_type"], row["subscription_type"], row["is_remote"]) == (
        "api",
        None,
        False,
    )
    assert row["terminal_type"] == "xterm-256color"
    assert row["core_metrics"] == {
        "num_sessions": 1,
        "lines_of_code": {"added": 11 + 3, "removed": 2},
        "commits_by_claude_code": 1,
        "pull_requests_by_claude_code": 1,
    }
    assert row["tool_actions"] == {
        "edit_tool": {"accepted": 1, "rejected": 0},
        "multi_edit_tool": {"accepted": 0, "rejected": 0},
        "write_tool": {"accepted": 1, "rejected": 0},
        "notebook_edit_tool": {"accepted": 0, "rejected": 0},
    }
    [model] = row["model_breakdown"]
    usage = result["usage"]
    assert model["model"] == next(iter(result["modelUsage"]))
    assert model["tokens"] == {
        "input": usage["input_tokens"],
        "output": usage["output_tokens"],
        "cache_read": usage["cache_read_input_tokens"],
        "cache_creation": usage["cache_creation_input_tokens"],
    }
    assert model["estimated_cost"]["currency"] == "USD"
    assert model["estimated_cost"]["amount"] == pytest.approx(
        result["total_cost_usd"] * 100, abs=1e-7
    )


def test_actor_types_terminals_and_days(collector) -> None:
    _activity(collector, {"user.email": "Dev@Example.com"}, request_id="a", terminal="vscode")
    _activity(collector, {"user.email": "dev@example.com"}, request_id="b", terminal="cursor")
    _activity(collector, {}, request_id="c", token=INGEST_TOKEN)
    _activity(collector, {"user.id": "ab12cd34" + "0" * 56}, request_id="d", day=1)
    status, body = report(collector, starting_at=DAY0.isoformat())
    assert status == 200
    rows = {
        (r["actor"].get("email_address") or r["actor"].get("api_key_name"), r["terminal_type"]): r
        for r in body["data"]
    }
    assert set(rows) == {
        ("dev@example.com", "cursor"),
        ("dev@example.com", "vscode"),
        ("ci-runner", "vscode"),
    }
    assert rows[("dev@example.com", "vscode")]["actor"] == {
        "type": "user_actor",
        "email_address": "dev@example.com",
    }
    assert rows[("dev@example.com", "vscode")]["customer_type"] == "subscription"
    assert rows[("ci-runner", "vscode")]["actor"] == {
        "type": "api_actor",
        "api_key_name": "ci-runner",
    }
    assert rows[("ci-runner", "vscode")]["customer_type"] == "api"
    status, body = report(collector, starting_at=(DAY0 + dt.timedelta(days=1)).isoformat())
    assert [r["actor"] for r in body["data"]] == [
        {"type": "api_actor", "api_key_name": "device:ab12cd34"}
    ]
    # A range covers both days, one row per (day, actor, terminal).
    status, body = report(
        collector, starting_at=DAY0.isoformat(), ending_at=(DAY0 + dt.timedelta(days=1)).isoformat()
    )
    assert len(body["data"]) == 4
    assert [r["date"][:10] for r in body["data"]] == [DAY0.isoformat()] * 3 + [
        (DAY0 + dt.timedelta(days=1)).isoformat()
    ]


def test_costs_in_cents_and_tool_actions(collector) -> None:
    costs = [0.0276558, 0.0271492, 0.0000001]
    for i, cost in enumerate(costs):
        _activity(
            collector,
            {"user.email": "a@x.io"},
            request_id=f"r{i}",
            cost=cost,
            tokens=10 * (i + 1),
            lines=i + 1,
            decision=("Edit" if i else "NotebookEdit", "reject" if i == 2 else "accept"),
        )
    _, body = report(collector, starting_at=DAY0.isoformat())
    [row] = body["data"]
    [model] = row["model_breakdown"]
    nano = sum(round(c * 1e9) for c in costs)
    assert model["estimated_cost"]["amount"] == pytest.approx(nano / 1e7, abs=1e-9)
    assert model["tokens"]["input"] == 10 + 20 + 30
    assert row["core_metrics"]["lines_of_code"]["added"] == 1 + 2 + 3
    assert row["tool_actions"]["edit_tool"] == {"accepted": 1, "rejected": 1}
    assert row["tool_actions"]["notebook_edit_tool"] == {"accepted": 1, "rejected": 0}


def test_a_day_without_data(collector) -> None:
    _activity(collector, {"user.email": "a@x.io"}, request_id="r")
    status, body = report(collector, starting_at="2020-01-01")
    assert (status, body) == (200, {"data": [], "has_more": False, "next_page": None})


def test_pagination_misses_and_repeats_nothing_while_data_arrives(collector) -> None:
    names = [f"user{i}@x.io" for i in (3, 1, 4, 5, 9, 2, 6)]
    for i, email in enumerate(names):
        _activity(collector, {"user.email": email}, request_id=f"p{i}")
    seen: list[str] = []
    page = None
    while True:
        params = {"starting_at": DAY0.isoformat(), "limit": 2}
        if page:
            params["page"] = page
        status, body = report(collector, **params)
        assert status == 200
        seen += [r["actor"]["email_address"] for r in body["data"]]
        # New actors sorting before, between and after the cursor keep arriving.
        for j, email in enumerate(("user0@x.io", "user55@x.io", "user99@x.io")):
            _activity(collector, {"user.email": email}, request_id=f"new-{len(seen)}-{j}")
        if not body["has_more"]:
            assert body["next_page"] is None
            break
        page = body["next_page"]
        assert page.startswith("page_")
    assert seen == sorted(names)
    # A fresh first page sees the newcomers.
    _, body = report(collector, starting_at=DAY0.isoformat(), limit=1000)
    assert len(body["data"]) == len(names) + 3


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"starting_at": "2026-13-01"},
        {"starting_at": "yesterday"},
        {"starting_at": "2026-11-21", "limit": "0"},
        {"starting_at": "2026-11-21", "limit": "1001"},
        {"starting_at": "2026-11-21", "limit": "ten"},
        {"starting_at": "2026-11-21", "page": "garbage"},
        {"starting_at": "2026-11-21", "page": "page_bm90IGpzb24"},
        {"starting_at": "2026-11-21", "ending_at": "2026-11-20"},
        {"starting_at": "2026-11-21", "group_by": "model"},
        {"starting_at": "2026-11-21", "format": "xml"},
    ],
)
def test_invalid_requests_get_anthropics_error(collector, params) -> None:
    status, body = report(collector, **params)
    assert status == 400
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"]


def test_a_cursor_only_fits_its_own_query(collector) -> None:
    for i in range(3):
        _activity(collector, {"user.email": f"u{i}@x.io"}, request_id=f"c{i}")
    _, body = report(collector, starting_at=DAY0.isoformat(), limit=1)
    status, other = report(
        collector, starting_at=DAY0.isoformat(), group_by="team", limit=1, page=body["next_page"]
    )
    assert status == 400 and other["error"]["type"] == "invalid_request_error"


def test_group_by_team(collector) -> None:
    _activity(collector, {"user.email": "a@x.io", "team.id": "payments"}, request_id="1", lines=5)
    _activity(
        collector,
        {"user.email": "b@x.io", "team.id": "payments"},
        request_id="2",
        lines=7,
        terminal="cursor",
    )
    _activity(collector, {"user.email": "c@x.io", "team.id": "search"}, request_id="3", lines=1)
    _, body = report(collector, starting_at=DAY0.isoformat(), group_by="team")
    rows = {r["actor"]["team"]: r for r in body["data"]}
    assert set(rows) == {"payments", "search"}
    assert rows["payments"]["actor"] == {"type": "team", "team": "payments"}
    assert rows["payments"]["core_metrics"]["lines_of_code"]["added"] == 12
    assert rows["payments"]["core_metrics"]["num_sessions"] == 2
    assert rows["search"]["core_metrics"]["lines_of_code"]["added"] == 1


def test_csv_export_is_rfc4180_and_neutralizes_formulas(collector) -> None:
    _activity(
        collector, {"user.email": '=HYPERLINK("http://x")@evil.io'}, request_id="e", terminal="+cmd"
    )
    _activity(collector, {"user.email": "plain@x.io"}, request_id="p", cost=0.5)
    status, text, headers = get(collector, f"{PATH}?starting_at={DAY0.isoformat()}&format=csv")
    assert status == 200
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "\r\n" in text
    rows = list(csv.DictReader(io.StringIO(text)))
    by_actor = {r["actor"]: r for r in rows}
    assert '\'=hyperlink("http://x")@evil.io' in by_actor
    assert by_actor['\'=hyperlink("http://x")@evil.io']["terminal_type"] == "'+cmd"
    assert float(by_actor["plain@x.io"]["estimated_cost_cents"]) == pytest.approx(50.0)
    assert by_actor["plain@x.io"]["actor_type"] == "user_actor"


def test_event_counts_do_not_leak_into_the_report(collector) -> None:
    """Only the report's own series count: other events add nothing to it."""
    t = T0 + SECOND
    post_otlp(
        collector, "logs", logs_request(event("user_prompt", {"user.email": "q@x.io"}, time_ns=t))
    )
    _, body = report(collector, starting_at=DAY0.isoformat())
    [row] = body["data"]
    assert row["model_breakdown"] == []
    assert row["core_metrics"]["num_sessions"] == 1
