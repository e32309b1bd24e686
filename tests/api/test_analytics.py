"""The Analytics-compatible usage report against a real collector and a real store.

Telemetry goes in through the real OpenTelemetry SDK exporters, shaped like Claude Code's
(tests/sdk/claude_like.py), or as the replayed captures of a real Claude Code run. Every
expected number comes from what the test sent (claude_like.expected) or from the CLI's own
totals (claude_result.json), never from the collector.

Days: the collector dates an increment by the UTC day of its point or event time. Events
are stamped with a fixed clock on chosen days wherever a test is about days; metric points
carry the SDK's export time, so the test that sends metrics finds its days from a wall-clock
bracket around the sending.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
import re
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.api.client import VIEWER_KEY
from tests.harness import RunningCollector, make_config, running_collector
from tests.pg import PgCluster
from tests.replay import FIXTURES, replay
from tests.replay import expected as cli_totals
from tests.sdk.claude_like import (
    ApiCall,
    ClaudeCodeProcess,
    Expected,
    Person,
    Start,
    Step,
    events_link,
    expected,
    metrics_link,
    split,
    typical_session,
)

PATH = "/v1/organizations/usage_report/claude_code"
ORG = "org-test"
CI_TOKEN = "ci-token-for-analytics"
OPS_TOKEN = "ops-token-for-analytics"
CONFIG: dict[str, Any] = {
    "extensions": {
        "api": {
            "keys": [{"name": "viewer", "key": VIEWER_KEY, "role": "viewer"}],
            "organization_id": ORG,
        }
    },
    "receivers": {
        "otlp": {
            "auth": {
                "required": False,
                "tokens": [
                    {"name": "ci", "token": CI_TOKEN, "user": "ci-bot", "team": "platform"},
                    {"name": "-ops", "token": OPS_TOKEN},
                ],
            }
        }
    },
}
#: the report's fields in Anthropic's order.
FIELDS = [
    "date",
    "actor",
    "organization_id",
    "customer_type",
    "subscription_type",
    "terminal_type",
    "is_remote",
    "core_metrics",
    "tool_actions",
    "model_breakdown",
]
#: Claude Code's tool names -> Anthropic's tool_actions keys (spelled out, not imported).
TOOLS = {
    "Edit": "edit_tool",
    "MultiEdit": "multi_edit_tool",
    "Write": "write_tool",
    "NotebookEdit": "notebook_edit_tool",
}
TOKEN_TYPES = ("input", "output", "cache_read", "cache_creation")
#: A day for tests whose events are stamped with a fixed clock.
DAY = dt.date(2026, 10, 1)
OPUS = "claude-opus-5-5"

ALICE = Person("alice-mbp", email="Alice@Example.com", organization_id="org-a", terminal="vscode")
ALICE_DESK = Person(
    "alice-desk", email="alice@example.com", organization_id="org-a", terminal="cursor"
)
DANA = Person("dana-laptop", account_uuid="0b6f3d52-8a6e-4b4e-9d1c-2f3a4b5c6d7e", terminal="vscode")
CI = Person("ci-runner-7", terminal="tmux")  # API-key auth: only user.id; identity from the token
FRANK = Person("frank-box")  # only user.id: a device actor


# -- helpers ---------------------------------------------------------------------------------


def fetch(
    collector: RunningCollector, params: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[int, str, dict[str, str]]:
    """GET the report with a viewer key (and any extra headers): status, body, headers."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{collector.service.ports.metrics}{PATH}?{urlencode(params)}",
        headers={"x-api-key": VIEWER_KEY, **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), dict(error.headers)


def report(collector: RunningCollector, **params: Any) -> tuple[int, Any]:
    """The JSON report, with numbers read as exact Decimals (never through a float).

    Also checks that every fractional number is written without float noise: at most 7
    decimals (the nano-USD resolution of cents), or an exponent for tiny amounts.
    """
    status, body, _ = fetch(collector, params)
    fractions: list[str] = []

    def exact(text: str) -> Decimal:
        fractions.append(text)
        return Decimal(text)

    payload = json.loads(body, parse_float=exact)
    for text in fractions:
        assert re.fullmatch(r"\d+(\.\d{1,7})?(e-\d+)?", text), f"float noise: {text}"
    return status, payload


def walk(collector: RunningCollector, between: Callable[[], None] = lambda: None, **params: Any):
    """Every row of a report, page by page; `between` runs between two pages."""
    rows: list[dict[str, Any]] = []
    page = None
    while True:
        status, body = report(collector, **params, **({"page": page} if page else {}))
        assert status == 200, body
        rows += body["data"]
        if not body["has_more"]:
            assert body["next_page"] is None
            return rows
        page = body["next_page"]
        assert isinstance(page, str) and page.startswith("page_")
        assert body["data"], "a page that says more follows is not empty"
        between()


def clock_on(day: dt.date, hour: int = 12) -> Callable[[], int]:
    """Event timestamps on `day` at `hour` UTC, one millisecond apart."""
    start = dt.datetime(day.year, day.month, day.day, hour, tzinfo=dt.UTC)
    base = int(start.timestamp()) * 10**9
    ticks = itertools.count()
    return lambda: base + next(ticks) * 1_000_000


def send_events(
    collector: RunningCollector,
    person: Person,
    steps: list[Step],
    day: dt.date = DAY,
    token: str | None = None,
) -> Expected:
    """One Claude Code process that only exports events, stamped on `day`; what it sent."""
    with ClaudeCodeProcess(
        person, events=events_link(collector, "http", token=token), clock=clock_on(day)
    ) as process:
        process.run(steps)
    process.assert_exports_ok()
    return expected(person, steps, metrics=None, events=steps)


def small_session(i: int, model: str = OPUS) -> list[Step]:
    """A session start and one API call with numbers that differ per `i`."""
    return [
        Start(),
        ApiCall(
            model=model,
            input=100 + i,
            output=10 + i,
            cache_read=1000 * i,
            cache_creation=7 * i,
            cost=str(Decimal(123_457 + i) / 10**7),
        ),
    ]


def expected_fields(want: Expected) -> dict[str, Any]:
    """core_metrics, tool_actions and model_breakdown as the report must show `want`."""
    series = want.series
    lines = series.get("claude_code_lines_of_code_total", Counter())
    decisions = series.get("claude_code_code_edit_decisions_total", Counter())
    tokens = series.get("claude_code_tokens_total", Counter())
    cost = series.get("claude_code_cost_usd_total", Counter())
    models = sorted({labels[0] for labels in tokens} | {labels[0] for labels in cost})
    return {
        "core_metrics": {
            "num_sessions": want.total("claude_code_sessions_total"),
            "lines_of_code": {"added": lines[("added",)], "removed": lines[("removed",)]},
            "commits_by_claude_code": want.total("claude_code_commits_total"),
            "pull_requests_by_claude_code": want.total("claude_code_pull_requests_total"),
        },
        "tool_actions": {
            key: {"accepted": decisions[(tool, "accept")], "rejected": decisions[(tool, "reject")]}
            for tool, key in TOOLS.items()
        },
        "model_breakdown": [
            {
                "model": model,
                "tokens": {kind: tokens[(model, kind)] for kind in TOKEN_TYPES},
                # USD -> cents, exactly: the steps' costs are decimal strings.
                "estimated_cost": {"currency": "USD", "amount": Decimal(cost[(model,)]) * 100},
            }
            for model in models
        ],
    }


def numbers(row: dict[str, Any]) -> dict[str, Any]:
    return {key: row[key] for key in ("core_metrics", "tool_actions", "model_breakdown")}


def name_of(actor: dict[str, str]) -> str:
    return actor.get("email_address") or actor.get("api_key_name") or actor["team"]


def merged(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The numbers of several rows added up (one actor's rows over several days)."""
    core: Counter[str] = Counter()
    lines: Counter[str] = Counter()
    tools: dict[str, Counter[str]] = {key: Counter() for key in TOOLS.values()}
    tokens: dict[str, Counter[str]] = {}
    cost: Counter[str] = Counter()
    for row in rows:
        for key, value in row["core_metrics"].items():
            if key == "lines_of_code":
                lines.update(value)
            else:
                core[key] += value
        for key, outcomes in row["tool_actions"].items():
            tools[key].update(outcomes)
        for model in row["model_breakdown"]:
            tokens.setdefault(model["model"], Counter()).update(model["tokens"])
            cost[model["model"]] += Decimal(model["estimated_cost"]["amount"])
    return {
        "core_metrics": {
            "num_sessions": core["num_sessions"],
            "lines_of_code": {"added": lines["added"], "removed": lines["removed"]},
            "commits_by_claude_code": core["commits_by_claude_code"],
            "pull_requests_by_claude_code": core["pull_requests_by_claude_code"],
        },
        "tool_actions": {
            key: {"accepted": c["accepted"], "rejected": c["rejected"]} for key, c in tools.items()
        },
        "model_breakdown": [
            {
                "model": model,
                "tokens": {kind: tokens[model][kind] for kind in TOKEN_TYPES},
                "estimated_cost": {"currency": "USD", "amount": cost[model]},
            }
            for model in sorted(tokens)
        ],
    }


def utc_day(ns: int) -> dt.date:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).date()


@pytest.fixture
def collector() -> Iterator[RunningCollector]:
    with running_collector(make_config(CONFIG)) as running:
        yield running


# -- the shape -------------------------------------------------------------------------------


def test_report_of_the_captured_session_matches_the_cli() -> None:
    """A real Claude Code run (API-key auth: only a device id) against the CLI's own totals."""
    with running_collector(make_config(CONFIG)) as collector:
        replay("http-protobuf", collector)
        result = cli_totals("http-protobuf")
        index = (FIXTURES / "http-protobuf" / "otlp" / "index.jsonl").read_text()
        first = json.loads(index.splitlines()[0])
        day = dt.datetime.fromtimestamp(first["t"], dt.UTC).date()
        status, body = report(collector, starting_at=day.isoformat())
    assert status == 200
    assert (body["has_more"], body["next_page"]) == (False, None)
    [row] = body["data"]
    assert list(row) == FIELDS
    assert row["date"] == f"{day.isoformat()}T00:00:00Z"
    assert row["actor"]["type"] == "api_actor"
    assert re.fullmatch(r"device:[0-9a-f]{8}", row["actor"]["api_key_name"])
    assert row["organization_id"] == ORG
    assert (row["customer_type"], row["subscription_type"], row["is_remote"]) == (
        "api",
        None,
        False,
    )
    assert row["terminal_type"] == "xterm-256color"
    # What the capture holds (tests/fixtures/.../case.txt): hello.py written (11 lines), an
    # edit adding 3 and removing 2, one commit, one PR, in one session.
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
    # The CLI's total is a float sum (0.10985160000000001); its 7-decimal value is exact.
    total = Decimal(repr(result["total_cost_usd"])).quantize(Decimal("1e-7"))
    assert model["estimated_cost"] == {"currency": "USD", "amount": total * 100}


def test_a_fleet_through_the_sdk_exporters() -> None:
    """Five installs send metrics and events at once through the real SDK exporters. Rows are
    per (day, actor, terminal), actors and customer types follow the identity, and every
    number equals what was sent: tokens, cost in exact cents, sessions, lines, commits, PRs,
    and edit decisions of all four tools (MultiEdit through the same instrument, as builds
    that had the tool sent it).
    """
    # person, metrics transport, ingest token, actor, customer_type, organization_id
    fleet = [
        (ALICE, "grpc", None, {"type": "user_actor", "email_address": "alice@example.com"}),
        (ALICE_DESK, "http", None, {"type": "user_actor", "email_address": "alice@example.com"}),
        (DANA, "http", None, {"type": "api_actor", "api_key_name": DANA.account_uuid}),
        (CI, "grpc", CI_TOKEN, {"type": "api_actor", "api_key_name": "ci-bot"}),
        (FRANK, "http", None, {"type": "api_actor", "api_key_name": FRANK.device}),
    ]
    customer = {ALICE: "subscription", ALICE_DESK: "subscription", DANA: "subscription"}
    organization = {ALICE: "org-a", ALICE_DESK: "org-a"}
    models = {DANA: "claude-x[1m]", CI: "claude-haiku-4-5"}
    with running_collector(make_config(CONFIG)) as collector:
        started = time.time_ns()
        runs = []
        for seed, (person, transport, token, _) in enumerate(fleet):
            steps = typical_session(seed=300 + seed, model=models.get(person, OPUS), calls=5)
            process = ClaudeCodeProcess(
                person,
                metrics=metrics_link(collector, transport, "delta", token=token),
                events=events_link(collector, transport, token=token),
            )
            runs.append(
                (process, split(steps, 3), expected(person, steps, metrics=steps, events=steps))
            )
        for turn in range(3):  # everyone works at once
            for process, parts, _ in runs:
                process.run(parts[turn])
                process.flush()
        # MultiEdit decisions from Alice's laptop: 2 accepted, 1 rejected.
        alice_process, _, alice_want = runs[0]
        for decision in ("accept", "reject", "accept"):
            alice_process._add(
                "claude_code.code_edit_tool.decision",
                1,
                decision=decision,
                source="config",
                tool_name="MultiEdit",
                language="Python",
            )
            alice_want.add("claude_code_code_edit_decisions_total", ("MultiEdit", decision), 1)
        for process, _, _ in runs:
            process.shutdown()
            process.assert_exports_ok()
        finished = time.time_ns()

        # Every timestamp the SDK put on the data lies in [started, finished].
        first, last = utc_day(started), utc_day(finished)
        params: dict[str, Any] = {"starting_at": first.isoformat()}
        if last != first:  # the test ran across midnight UTC
            params["ending_at"] = last.isoformat()
        status, body = report(collector, **params, limit=1000)
    assert status == 200
    assert (body["has_more"], body["next_page"]) == (False, None)
    rows = body["data"]
    days = {f"{(first + dt.timedelta(days=n)).isoformat()}T00:00:00Z" for n in range(2)}
    for row in rows:
        assert list(row) == FIELDS
        assert row["date"] in days
        assert (row["subscription_type"], row["is_remote"]) == (None, False)
        assert list(row["tool_actions"]) == list(TOOLS.values())
    # Ordered by day, then actor and terminal by code point.
    order = [(r["date"], name_of(r["actor"]), r["terminal_type"]) for r in rows]
    assert order == sorted(order)

    for (person, _, _, actor), (_, _, want) in zip(fleet, runs, strict=True):
        mine = [r for r in rows if r["actor"] == actor and r["terminal_type"] == person.terminal]
        assert mine, (actor, person.terminal)
        for row in mine:
            assert row["customer_type"] == customer.get(person, "api")
            assert row["organization_id"] == organization.get(person, ORG)
        assert merged(mine) == expected_fields(want), person.name
    assert len({(name_of(r["actor"]), r["terminal_type"]) for r in rows}) == len(fleet)
    # The context-window suffix is not a model of its own.
    assert {m["model"] for r in rows for m in r["model_breakdown"]} == {
        OPUS,
        "claude-haiku-4-5",
        "claude-x",
    }


def test_cents_are_exact() -> None:
    """Costs whose USD float sums drift (0.1 + 0.2), sub-cent and 1-nano-cent amounts, and a
    whole number of cents: each model's amount is the exact decimal number of cents."""
    costs = {OPUS: ["0.1", "0.2", "0.0276558"], "claude-haiku-4-5": ["0.0000001"], "m3": ["2.33"]}
    person = Person("cents", email="cents@x.io")
    steps: list[Step] = [Start()]
    for model, values in costs.items():
        steps += [
            ApiCall(model, input=1, output=1, cache_read=0, cache_creation=0, cost=v)
            for v in values
        ]
    with running_collector(make_config(CONFIG)) as collector:
        send_events(collector, person, steps)
        status, body = report(collector, starting_at=DAY.isoformat())
        _, text, _ = fetch(collector, {"starting_at": DAY.isoformat()})
    assert status == 200
    [row] = body["data"]
    amounts = {m["model"]: m["estimated_cost"]["amount"] for m in row["model_breakdown"]}
    assert amounts == {
        model: sum(Decimal(v) for v in values) * 100 for model, values in costs.items()
    }
    assert amounts[OPUS] == Decimal("32.76558")
    assert amounts["claude-haiku-4-5"] == Decimal("0.00001")
    # A whole number of cents is an integer, as in Anthropic's examples.
    assert '"amount": 233}' in text or '"amount":233}' in text


def test_a_day_without_data(collector) -> None:
    send_events(collector, ALICE, small_session(1))
    for day in (DAY - dt.timedelta(days=1), DAY + dt.timedelta(days=1)):
        status, body = report(collector, starting_at=day.isoformat())
        assert (status, body) == (200, {"data": [], "has_more": False, "next_page": None})


def test_days_and_ranges(collector) -> None:
    """Rows are per UTC day of the events; `ending_at` makes an inclusive range."""
    day2, day3 = DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2)
    alice1 = send_events(collector, ALICE, small_session(1), DAY)
    frank1 = send_events(collector, FRANK, small_session(2), DAY)
    alice3 = send_events(collector, ALICE, small_session(3), day3)
    ci3 = send_events(collector, CI, small_session(4), day3, token=CI_TOKEN)

    _, one = report(collector, starting_at=DAY.isoformat())
    assert [(name_of(r["actor"]), r["date"]) for r in one["data"]] == [
        ("alice@example.com", "2026-10-01T00:00:00Z"),
        (FRANK.device, "2026-10-01T00:00:00Z"),
    ]
    assert [numbers(r) for r in one["data"]] == [expected_fields(alice1), expected_fields(frank1)]
    _, same = report(collector, starting_at=DAY.isoformat(), ending_at=DAY.isoformat())
    assert same == one
    _, empty = report(collector, starting_at=day2.isoformat(), ending_at=day2.isoformat())
    assert empty == {"data": [], "has_more": False, "next_page": None}

    _, whole = report(collector, starting_at=DAY.isoformat(), ending_at=day3.isoformat())
    assert [(r["date"][:10], name_of(r["actor"]), r["terminal_type"]) for r in whole["data"]] == [
        ("2026-10-01", "alice@example.com", "vscode"),
        ("2026-10-01", FRANK.device, "xterm-256color"),
        ("2026-10-03", "alice@example.com", "vscode"),
        ("2026-10-03", "ci-bot", "tmux"),
    ]
    assert [numbers(r) for r in whole["data"]] == [
        expected_fields(w) for w in (alice1, frank1, alice3, ci3)
    ]
    # Paging through a range crosses days without missing or repeating a row.
    assert (
        walk(collector, starting_at=DAY.isoformat(), ending_at=day3.isoformat(), limit=3)
        == (whole["data"])
    )


# -- pagination ------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_pagination_walks_every_row_once_while_data_arrives(collector, limit) -> None:
    """Between page requests new actors keep arriving (sorting before, between and after the
    rows already listed) and listed and unlisted actors keep getting data. The walk lists
    exactly the rows that existed at its first page, each once, in order; listed values are
    current (they include data sent before the row's page). A new walk sees everyone."""
    names = [f"user{i}@x.io" for i in (3, 1, 4, 5, 9, 2, 6)]
    want = {
        name: send_events(collector, Person(name, email=name), small_session(i))
        for i, name in enumerate(names)
    }
    pages = itertools.count()

    def arrivals() -> None:
        n = next(pages)
        for name in (f"aaa{n}@x.io", f"user4{n}@x.io", f"zzz{n}@x.io"):
            want[name] = send_events(collector, Person(name, email=name), small_session(50 + n))
        # More for an actor already listed (user1) and one listed last (user9).
        for name in ("user1@x.io", "user9@x.io"):
            want[name] = want[name] + send_events(
                collector, Person(f"{name}-{n}", email=name), small_session(70 + n)
            )

    rows = walk(collector, arrivals, starting_at=DAY.isoformat(), limit=limit)
    assert [name_of(r["actor"]) for r in rows] == sorted(names)
    # user9 is on the last page, after every arrival: its values include all of them.
    assert numbers(rows[-1]) == expected_fields(want["user9@x.io"])

    everyone = walk(collector, starting_at=DAY.isoformat(), limit=1000)
    assert [name_of(r["actor"]) for r in everyone] == sorted(want)
    for row in everyone:
        assert numbers(row) == expected_fields(want[name_of(row["actor"])])


def test_a_cursor_only_fits_its_own_query(collector) -> None:
    for i in range(3):
        send_events(collector, Person(f"u{i}", email=f"u{i}@x.io"), small_session(i))
    day = DAY.isoformat()
    _, body = report(collector, starting_at=day, limit=1)
    cursor = body["next_page"]
    for other in (
        {"starting_at": day, "group_by": "team"},
        {"starting_at": day, "ending_at": (DAY + dt.timedelta(days=1)).isoformat()},
        {"starting_at": (DAY - dt.timedelta(days=1)).isoformat(), "ending_at": day},
    ):
        status, error = report(collector, **other, limit=1, page=cursor)
        assert status == 400 and error["error"]["type"] == "invalid_request_error", other
    # The same query with another limit or format may continue it.
    status, rest = report(collector, starting_at=day, limit=1000, page=cursor)
    assert status == 200
    assert [name_of(r["actor"]) for r in rest["data"]] == ["u1@x.io", "u2@x.io"]
    status, _, headers = fetch(collector, {"starting_at": day, "format": "csv", "page": cursor})
    assert status == 200 and headers["X-Has-More"] == "false"


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"starting_at": ""},
        {"starting_at": "2026-13-01"},
        {"starting_at": "2026-02-30"},
        {"starting_at": "yesterday"},
        {"starting_at": "20261121"},
        {"starting_at": "2026-11-21T00:00:00Z"},
        {"starting_at": "2026-11-21", "limit": "0"},
        {"starting_at": "2026-11-21", "limit": "-1"},
        {"starting_at": "2026-11-21", "limit": "1001"},
        {"starting_at": "2026-11-21", "limit": "ten"},
        {"starting_at": "2026-11-21", "limit": "2.5"},
        {"starting_at": "2026-11-21", "page": "garbage"},
        {"starting_at": "2026-11-21", "page": "page_bm90IGpzb24"},  # "not json"
        {"starting_at": "2026-11-21", "page": "page_%%%"},
        {"starting_at": "2026-11-21", "page": "page_eyJiIjoieCJ9"},  # {"b":"x"}
        {"starting_at": "2026-11-21", "ending_at": "2026-11-20"},
        {"starting_at": "2026-11-21", "ending_at": "2026-11"},
        {"starting_at": "2025-01-01", "ending_at": "2026-01-02"},  # more than 366 days
        {"starting_at": "2026-11-21", "group_by": "model"},
        {"starting_at": "2026-11-21", "format": "xml"},
        {"starting_at": "2026-11-21", "format": "csv", "limit": "0"},
    ],
)
def test_invalid_requests_get_anthropics_error(collector, params) -> None:
    status, body = report(collector, **params)
    assert status == 400
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


def test_unknown_parameters_and_the_version_header_are_accepted(collector) -> None:
    status, body, _ = fetch(
        collector,
        {"starting_at": "2026-11-21", "unknown": "x", "limit": "1000"},
        {"anthropic-version": "2023-06-01"},
    )
    assert (status, json.loads(body)) == (200, {"data": [], "has_more": False, "next_page": None})
    # The longest range: 366 days, both ends included.
    status, _ = report(collector, starting_at="2025-01-01", ending_at="2026-01-01")
    assert status == 200


def test_only_get_is_allowed(collector) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{collector.service.ports.metrics}{PATH}?starting_at=2026-11-21",
        data=b"{}",
        headers={"x-api-key": VIEWER_KEY},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 405
    assert json.loads(refused.value.read())["error"]["type"] == "invalid_request_error"
    refused.value.close()


def test_without_a_store_the_report_is_unavailable() -> None:
    with running_collector(make_config({**CONFIG, "exporters": {"store": {"memory": True}}})) as c:
        status, body = report(c, starting_at="2026-11-21")
    assert status == 503
    assert body["type"] == "error" and body["error"]["type"] == "api_error"


# -- extensions ------------------------------------------------------------------------------


def test_group_by_team(collector) -> None:
    """Rows per (day, team): every member, terminal and model of a team added up."""
    pay = (("team.id", "payments"),)
    a = Person("a", email="a@x.io", resource=pay, terminal="vscode")
    b = Person("b", email="b@x.io", resource=pay, terminal="cursor")
    c = Person("c", email="c@x.io", resource=(("team.id", "search"),))
    payments = send_events(collector, a, small_session(1)) + send_events(
        collector, b, small_session(2, model="claude-haiku-4-5")
    )
    search = send_events(collector, c, small_session(3))
    platform = send_events(collector, CI, small_session(4), token=CI_TOKEN)  # the token's team
    unassigned = send_events(collector, FRANK, small_session(5))

    status, body = report(collector, starting_at=DAY.isoformat(), group_by="team")
    assert status == 200
    teams = {"payments": payments, "platform": platform, "search": search}
    teams["unassigned"] = unassigned
    assert [r["actor"] for r in body["data"]] == [
        {"type": "team", "team": t} for t in sorted(teams)
    ]
    for row in body["data"]:
        assert list(row) == FIELDS
        assert row["date"] == "2026-10-01T00:00:00Z"
        assert row["organization_id"] == ORG
        assert (row["customer_type"], row["subscription_type"], row["terminal_type"]) == (
            None,
            None,
            None,
        )
        assert numbers(row) == expected_fields(teams[row["actor"]["team"]])
    assert walk(collector, starting_at=DAY.isoformat(), group_by="team", limit=1) == body["data"]


def test_csv_export(collector) -> None:
    """RFC 4180 (CRLF, quotes doubled), a header row, flattened columns, and text cells that a
    spreadsheet would run as a formula (= + - @) neutralized by a leading apostrophe."""
    evil = Person("evil", email='=HYPERLINK("http://x")@evil.io', terminal="+cmd")
    ops = Person("ops-box", resource=(("team.id", "@ops"),))
    plain = Person("plain", email="plain@x.io", terminal="vscode")
    # In the order of the rows: by actor, "-ops" (the token's name) < "=..." < "plain...".
    sent = {
        "-ops": send_events(collector, ops, small_session(2), token=OPS_TOKEN),
        '=hyperlink("http://x")@evil.io': send_events(collector, evil, small_session(1)),
        "plain@x.io": send_events(collector, plain, small_session(3))
        + send_events(collector, plain, small_session(4, model="claude-haiku-4-5")),
    }
    day = DAY.isoformat()
    status, text, headers = fetch(collector, {"starting_at": day, "format": "csv"})
    assert status == 200
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    assert headers["Content-Disposition"].startswith("attachment; filename=")
    assert headers["X-Has-More"] == "false" and "X-Next-Page" not in headers
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    assert '"\'=hyperlink(""http://x"")@evil.io"' in text  # quoted, quotes doubled

    table = list(csv.reader(io.StringIO(text, newline="")))
    header = ["date", "actor_type", "actor", "organization_id", "customer_type"]
    header += ["subscription_type", "terminal_type", "is_remote", "num_sessions"]
    header += ["lines_added", "lines_removed", "commits_by_claude_code"]
    header += ["pull_requests_by_claude_code"]
    header += [f"{key}_{o}" for key in TOOLS.values() for o in ("accepted", "rejected")]
    header += [f"{kind}_tokens" for kind in TOKEN_TYPES]
    header += ["estimated_cost_cents", "models"]
    assert table[0] == header
    rows = [dict(zip(header, line, strict=True)) for line in table[1:]]
    assert [r["actor"] for r in rows] == [
        "'-ops",
        '\'=hyperlink("http://x")@evil.io',
        "plain@x.io",
    ]
    assert [r["terminal_type"] for r in rows] == ["xterm-256color", "'+cmd", "vscode"]
    assert [r["actor_type"] for r in rows] == ["api_actor", "user_actor", "user_actor"]
    assert [r["customer_type"] for r in rows] == ["api", "subscription", "subscription"]
    for row, want in zip(rows, sent.values(), strict=True):
        fields = expected_fields(want)
        breakdown = fields["model_breakdown"]
        assert row["date"] == day
        assert (row["organization_id"], row["subscription_type"], row["is_remote"]) == (
            ORG,
            "",
            "false",
        )
        assert int(row["num_sessions"]) == fields["core_metrics"]["num_sessions"]
        for kind in TOKEN_TYPES:
            assert int(row[f"{kind}_tokens"]) == sum(m["tokens"][kind] for m in breakdown)
        assert Decimal(row["estimated_cost_cents"]) == sum(
            m["estimated_cost"]["amount"] for m in breakdown
        )
        assert row["models"] == ";".join(m["model"] for m in breakdown)
        assert row["edit_tool_accepted"] == row["multi_edit_tool_rejected"] == "0"
    assert rows[2]["models"] == f"claude-haiku-4-5;{OPUS}"

    # By team: the team name is neutralized too; columns a team row lacks are empty.
    _, text, _ = fetch(collector, {"starting_at": day, "format": "csv", "group_by": "team"})
    teams = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [(t["actor_type"], t["actor"]) for t in teams] == [
        ("team", "'@ops"),
        ("team", "unassigned"),
    ]
    assert (teams[0]["customer_type"], teams[0]["terminal_type"]) == ("", "")

    # With a limit, CSV pages too: the cursor travels in headers.
    listed: list[str] = []
    params: dict[str, Any] = {"starting_at": day, "format": "csv", "limit": 1}
    while True:
        status, text, headers = fetch(collector, params)
        assert status == 200
        listed += [r["actor"] for r in csv.DictReader(io.StringIO(text, newline=""))]
        if headers["X-Has-More"] == "false":
            assert "X-Next-Page" not in headers
            break
        params["page"] = headers["X-Next-Page"]
    assert listed == [r["actor"] for r in rows]

    # JSON keeps the values as sent: neutralizing is for spreadsheets only.
    _, body = report(collector, starting_at=day)
    assert body["data"][0]["actor"] == {"type": "api_actor", "api_key_name": "-ops"}
    assert body["data"][1]["actor"]["email_address"] == '=hyperlink("http://x")@evil.io'
    assert body["data"][1]["terminal_type"] == "+cmd"


# -- PostgreSQL ------------------------------------------------------------------------------


@pytest.fixture
def locale_pg_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A database whose default collation is a locale's (ICU en-US), not byte order: there
    `ORDER BY` puts `_infra` between `alpha` and `Zeta`, as many production databases do."""
    name = f"analytics_icu_{time.time_ns()}"
    pg_cluster.psql(
        f"CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
        " LOCALE 'C.UTF-8'"
    )
    try:
        yield pg_cluster.url(name)
    finally:
        pg_cluster.drop_database(name)


def test_postgresql_serves_the_same_report_as_sqlite(locale_pg_url) -> None:
    """The same telemetry into SQLite and into PostgreSQL with a locale collation: identical
    reports, pages, team rows, ranges and CSV, in code point order on both."""
    people = [
        (Person("p1", email="zed@x.io", terminal="Vscode", resource=(("team.id", "Zeta"),)), 1),
        (Person("p2", email="zed@x.io", terminal="cursor", resource=(("team.id", "Zeta"),)), 2),
        (Person("p3", email="_bot@x.io", resource=(("team.id", "_infra"),)), 3),
        (Person("p4", email="adam@x.io", resource=(("team.id", "alpha"),)), 4),
        (Person("p5", email="Bea@x.io", resource=(("team.id", "alpha"),)), 5),
    ]
    day, next_day = DAY.isoformat(), (DAY + dt.timedelta(days=1)).isoformat()
    reports = []
    for store in ({}, {"exporters": {"store": {"url": locale_pg_url}}}):
        with running_collector(make_config({**CONFIG, **store})) as collector:
            for person, i in people:
                send_events(collector, person, small_session(i))
                send_events(collector, person, small_session(i + 10), DAY + dt.timedelta(days=1))
            reports.append(
                {
                    "page": report(collector, starting_at=day)[1]["data"],
                    "walk": walk(collector, starting_at=day, limit=1),
                    "teams": walk(collector, starting_at=day, group_by="team", limit=1),
                    "range": walk(collector, starting_at=day, ending_at=next_day, limit=2),
                    "csv": fetch(collector, {"starting_at": day, "format": "csv"})[1],
                }
            )
    on_sqlite, on_postgres = reports
    walked = [(name_of(r["actor"]), r["terminal_type"]) for r in on_sqlite["walk"]]
    assert walked == [
        ("_bot@x.io", "xterm-256color"),
        ("adam@x.io", "xterm-256color"),
        ("bea@x.io", "xterm-256color"),
        ("zed@x.io", "Vscode"),
        ("zed@x.io", "cursor"),
    ]
    assert [r["actor"]["team"] for r in on_sqlite["teams"]] == ["Zeta", "_infra", "alpha"]
    assert on_sqlite["page"] == on_sqlite["walk"]
    assert len(on_sqlite["range"]) == 10
    assert on_postgres == on_sqlite
