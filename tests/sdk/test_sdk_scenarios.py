"""Whole deployments, driven by the real OpenTelemetry SDK: signal mixes, loss, parallel
processes, many users and teams.

Why: Claude Code reports the same spend twice (token/cost metrics and api_request events),
either pipeline can be off or lose data, one person runs several processes at once, and an
org has people identified by email, account, ingest token or only a device id. In each case
/metrics must show every family exactly, for the right user and team.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.harness import make_config, running_collector
from tests.sdk.claude_like import (
    ApiCall,
    ApiError,
    ClaudeCodeProcess,
    Expected,
    OtherEvent,
    Person,
    Prompt,
    Start,
    Step,
    assert_exact,
    events_link,
    expected,
    metrics_link,
    mismatches,
    scraped_total,
    split,
    typical_session,
)

CAROL = Person(
    "carol-mbp",
    email="carol@example.com",
    account_uuid="5d2a4c1e-0000-4000-8000-00000000c001",
    organization_id="org-42",
    resource=(("team.id", "core"), ("department", "platform"), ("cost_center", "cc-42")),
)

MODES = [
    "metrics_only",
    "events_only",
    "both",
    "both_events_lossy",
    "both_metrics_lost_midway",
    "both_metrics_dead_at_end",
]
WIRING = [
    # temporality, metrics transport, events transport, batch events
    pytest.param("delta", "grpc", "http", False, id="delta-grpc-metrics-http-simple-events"),
    pytest.param(
        "cumulative", "http", "grpc", True, id="cumulative-http-metrics-grpc-batch-events"
    ),
]


@pytest.mark.parametrize(("temporality", "m_transport", "e_transport", "batch"), WIRING)
@pytest.mark.parametrize("mode", MODES)
def test_signal_mix_and_loss(mode, temporality, m_transport, e_transport, batch) -> None:
    """Spend is exact and counted once whatever reaches the collector, as long as one signal
    carried all of it; the families only one signal reports show what that signal delivered.

    - both: the same spend arrives twice and is counted once.
    - both_events_lossy: every other api_request event is lost; metrics carry the spend.
    - both_metrics_lost_midway: the second of four metric exports is lost. Delta loses that
      part of the session for good, cumulative repairs it with the next export; events carry
      the spend either way.
    - both_metrics_dead_at_end: the metrics exporter dies after two exports (and the one at
      exit is lost too); events carry the spend.
    """
    steps = typical_session(seed=20, calls=8)
    parts = split(steps, 4)
    calls = [s for s in steps if isinstance(s, ApiCall)]
    lost_calls = calls[::2] if mode == "both_events_lossy" else []
    with running_collector() as collector:
        metrics = (
            None if mode == "events_only" else metrics_link(collector, m_transport, temporality)
        )
        events = None if mode == "metrics_only" else events_link(collector, e_transport)
        if events is not None:
            events.lose_requests = {c.request_id for c in lost_calls}
        with ClaudeCodeProcess(CAROL, metrics=metrics, events=events, batch_events=batch) as cc:
            for i, part in enumerate(parts):
                if metrics is not None and mode == "both_metrics_lost_midway":
                    metrics.lose = i == 1
                if metrics is not None and mode == "both_metrics_dead_at_end":
                    metrics.lose = i >= 2
                cc.run(part)
                cc.flush()
        cc.assert_exports_ok()

        delivered_metrics: list[Step] | None = None if metrics is None else steps
        if mode == "both_metrics_lost_midway" and temporality == "delta":
            delivered_metrics = parts[0] + parts[2] + parts[3]
        if mode == "both_metrics_dead_at_end":
            delivered_metrics = parts[0] + parts[1]
        delivered_events: list[Step] | None = None
        if events is not None:
            delivered_events = [s for s in steps if s not in lost_calls]
        # The loss really happened, so the exact totals below prove the reconciliation.
        if lost_calls:
            assert events is not None and events.lost == len(lost_calls) == 4
        if mode.startswith("both_metrics"):
            assert metrics is not None and metrics.lost >= 1

        want = expected(CAROL, steps, metrics=delivered_metrics, events=delivered_events)
        assert_exact(collector, want, user="carol@example.com", team="core")


@pytest.mark.parametrize(
    ("temporality", "with_events"),
    [
        pytest.param("cumulative", False, id="cumulative-metrics"),
        pytest.param("delta", False, id="delta-metrics"),
        pytest.param("cumulative", True, id="cumulative-metrics-and-events"),
    ],
)
def test_two_processes_same_user_same_session(temporality, with_events) -> None:
    """Two `claude` processes of one person with identical attributes (same session.id, e.g. a
    resumed session open in two terminals), each with its own MeterProvider and so its own
    start times, export interleaved five times each. Their identical streams must not be read
    as counter resets of each other (the 'peer stacks' inflation): totals are the sum of both
    workloads, exactly.

    With events on, only events that carry their own id are used (api_request by request_id,
    tool events by tool_use_id); events keyed by timestamp and per-process sequence are the
    subject of test_two_processes_same_session_events_in_the_same_millisecond.
    """

    def workload(seed: int) -> list[Step]:
        steps = typical_session(seed=seed, calls=7)
        if with_events:
            steps = [s for s in steps if not isinstance(s, Prompt | ApiError | OtherEvent)]
        return steps

    first, second = workload(31), workload(32)
    with running_collector() as collector:
        processes = []
        for transport in ("grpc", "http"):
            processes.append(
                ClaudeCodeProcess(
                    CAROL,
                    metrics=metrics_link(collector, transport, temporality),
                    events=events_link(collector, transport) if with_events else None,
                    session_id="shared-session-0001",
                )
            )
            time.sleep(0.002)  # distinct SDK start times, as two real launches have
        for part_one, part_two in zip(split(first, 5), split(second, 5), strict=True):
            processes[0].run(part_one)
            processes[1].run(part_two)
            processes[1].flush()
            processes[0].flush()
        for process in processes:
            process.shutdown()
            process.assert_exports_ok()
        events_one = first if with_events else None
        events_two = second if with_events else None
        want = expected(CAROL, first, metrics=first, events=events_one) + expected(
            CAROL, second, metrics=second, events=events_two
        )
        assert want.total("claude_code_sessions_total") == 2
        assert_exact(collector, want, user="carol@example.com", team="core")


# -- many users, teams and identity sources ---------------------------------------------------

ALICE = Person("alice-laptop", email="Alice@Example.COM", resource=(("team.id", "core"),))
DANA = Person("dana-desktop", account_uuid="0b6f3d52-8a6e-4b4e-9d1c-2f3a4b5c6d7e")
CI = Person("ci-runner-7")  # API-key auth in CI: only user.id, identity from the token
FARM = Person("build-farm-3", resource=(("department", "qa"),))
FRANK = Person("frank-box")
IVAN = Person("ivan-phone", terminal="vscode")
GINA = Person("gina-vm", resource=(("team.id", "core"),))
HANK = Person("hank-nowhere")

CI_TOKEN = "ci-secret-123"
FARM_TOKEN = "farm-secret-456"


def _directory(tmp_path: Path) -> Path:
    """An HR-style export: by email, account uuid, token name, device prefix and full user.id."""
    path = tmp_path / "people.csv"
    path.write_text(
        "key,team,department\n"
        "alice@example.com,payments,finance-eng\n"
        f"{DANA.account_uuid},research,science\n"
        "build-farm,infra,engineering\n"
        f"{FRANK.device},infra,engineering\n"
        f"{IVAN.user_id},mobile,engineering\n"
    )
    return path


def test_many_users_and_teams(tmp_path: Path) -> None:
    """Eight installs at once, each resolved to its actor and team:

    - email (sent in mixed case) -> lowercased email; team from the directory, which wins over
      the install's own `team.id`;
    - account uuid -> the uuid; team from the directory;
    - ingest token bound to a user and team -> that user and team (bearer sent by the SDK
      exporter's `headers`);
    - ingest token with only a name -> the name; team from the directory by token name;
    - user.id only -> `device:<8 hex>`; team from the directory by device prefix, by full
      user.id, from the `team.id` attribute, or `unassigned`.

    Dana's model carries a context-window suffix (`[1m]`), which must not split her spend
    into a second model. Every user gets a last-seen gauge stamped during the test.
    """
    config = make_config(
        {
            "receivers": {
                "otlp": {
                    "auth": {
                        "required": False,
                        "tokens": [
                            {"name": "ci", "token": CI_TOKEN, "user": "ci-bot", "team": "platform"},
                            {"name": "build-farm", "token": FARM_TOKEN},
                        ],
                    }
                }
            },
            "processors": {"claude_code": {"directory": str(_directory(tmp_path))}},
        }
    )
    # person, expected user label, expected team, transport, temporality, token, model
    fleet = [
        (ALICE, "alice@example.com", "payments", "grpc", "delta", None, "claude-opus-5-5"),
        (DANA, DANA.account_uuid, "research", "http", "cumulative", None, "claude-x[1m]"),
        (CI, "ci-bot", "platform", "grpc", "cumulative", CI_TOKEN, "claude-haiku-4-5"),
        (FARM, "build-farm", "infra", "http", "delta", FARM_TOKEN, "claude-haiku-4-5"),
        (FRANK, FRANK.device, "infra", "grpc", "delta", None, "claude-opus-5-5"),
        (IVAN, IVAN.device, "mobile", "http", "cumulative", None, "claude-opus-5-5"),
        (GINA, GINA.device, "core", "grpc", "cumulative", None, "claude-opus-5-5"),
        (HANK, HANK.device, "unassigned", "http", "delta", None, "claude-opus-5-5"),
    ]
    started = time.time()
    with running_collector(config) as collector:
        runs = []
        for seed, (person, user, team, transport, temporality, token, model) in enumerate(fleet):
            steps = typical_session(seed=100 + seed, model=model, calls=4)
            process = ClaudeCodeProcess(
                person,
                metrics=metrics_link(collector, transport, temporality, token=token),
                events=events_link(collector, transport, token=token, gzip=seed % 2 == 0),
                batch_events=seed % 3 == 0,
            )
            runs.append(
                (
                    process,
                    split(steps, 3),
                    user,
                    team,
                    expected(person, steps, metrics=steps, events=steps),
                )
            )
        for turn in range(3):  # everyone works at once
            for process, parts, *_ in runs:
                process.run(parts[turn])
                process.flush()
        for process, *_ in runs:
            process.shutdown()
            process.assert_exports_ok()
        finished = time.time()

        samples = collector.samples()
        problems: list[str] = []
        teams: dict[str, Expected] = {}
        everyone = Expected()
        for _, _, user, team, want in runs:
            problems += mismatches(samples, want, user=user, team=team)
            teams[team] = teams.get(team, Expected()) + want
            everyone = everyone + want
        for team, want in teams.items():
            problems += mismatches(samples, want, team=team)
        problems += mismatches(samples, everyone)
        assert not problems, "\n".join(problems)

        # Exactly these users, each with a fresh last-seen stamp under the right team.
        users = {
            dict(labels)["user"]
            for (name, labels), _ in samples.items()
            if name == "claude_code_cost_usd_total"
        }
        assert users == {user for _, _, user, _, _ in runs}
        for _, _, user, team, _ in runs:
            seen = scraped_total(
                samples, "claude_code_user_last_seen_timestamp_seconds", user=user, team=team
            )
            assert started <= seen <= finished + 1, (user, team, seen)
        seen_series = [
            labels
            for (name, labels), _ in samples.items()
            if name == "claude_code_user_last_seen_timestamp_seconds"
        ]
        assert len(seen_series) == len(fleet), seen_series
        # The context-window suffix never reaches a label.
        assert scraped_total(samples, "claude_code_cost_usd_total", model="claude-x[1m]") == 0
        assert scraped_total(samples, "claude_code_cost_usd_total", model="claude-x") > 0


def test_two_processes_same_session_events_in_the_same_millisecond() -> None:
    """Two processes of one session (a session resumed in two terminals, or parallel
    `claude -p --session-id X` jobs) emit their first prompt, an API error and a response in
    the same millisecond. Their events have the same name, event.timestamp and per-process
    event.sequence, but they are different events: different prompt.id (and message ids).
    Both processes' prompts and errors must count.
    """
    frozen_ms = time.time_ns() // 10**6 * 10**6
    steps: list[Step] = [
        Start(),
        Prompt(length=40),
        ApiError("claude-opus-5-5", "529"),
        OtherEvent("assistant_response", (("response_length", 27),)),
    ]
    with running_collector() as collector:
        want = Expected()
        for transport in ("grpc", "http"):
            with ClaudeCodeProcess(
                CAROL,
                metrics=metrics_link(collector, transport, "delta"),
                events=events_link(collector, transport),
                session_id="shared-session-0002",
                clock=lambda: frozen_ms,
            ) as claude:
                claude.run(steps)
            claude.assert_exports_ok()
            want = want + expected(CAROL, steps, metrics=steps, events=steps)
        assert want.total("claude_code_prompts_total") == 2
        assert_exact(collector, want, user="carol@example.com", team="core")
