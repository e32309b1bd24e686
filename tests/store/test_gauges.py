"""Store gauges on /metrics: active users per trailing window, month-to-date spend and lines,
budgets. Real collector, real store, data sent by the real OpenTelemetry SDK exporters; the
expected values are computed from the sessions that were sent.

The gauges' clock is fixed at 2026-11-02T18:00Z, so the windows are: 1d = Nov 2, 7d = Oct 27
to Nov 2, 28d = Oct 6 to Nov 2, and month to date = November 2026.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from collector.config import Budget
from exporters.store_gauges import StoreGauges
from tests.api.test_dashboard import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    EVIL_TEAM,
    EVIL_USER,
    MALLORY,
    MALLORY_TOKEN,
    Sent,
    Who,
    at,
    send_session,
)
from tests.harness import RunningCollector, make_config, running_collector
from tests.sdk.claude_like import Person, typical_session

NOW = at("2026-11-02T18:00:00Z")
#: Alice moves from core to web on November 2nd: her spend is split by team like the
#: contract counters are.
ALICE_WEB = Who(
    Person("alice-mbp", email="alice@example.com", resource=(("team.id", "web"),)),
    "alice@example.com",
    "email",
    "web",
    "",
)
ERIN = Who(
    Person("erin-mbp", email="erin@example.com", resource=(("team.id", "core"),)),
    "erin@example.com",
    "email",
    "core",
    "",
)
FRANK = Who(
    Person("frank-mbp", email="frank@example.com", resource=(("team.id", "web"),)),
    "frank@example.com",
    "email",
    "web",
    "",
)
GRACE = Who(
    Person("grace-mbp", email="grace@example.com", resource=(("team.id", "web"),)),
    "grace@example.com",
    "email",
    "web",
    "",
)
#: Sessions on both sides of every window edge.
PLAN = [
    (DAVE, "2026-10-05T23:59:59Z"),  # the last second before the 28d window
    (CAROL, "2026-10-06T00:00:00Z"),  # the first instant of the 28d window
    (BOB, "2026-10-26T23:59:59Z"),  # 28d, the last second before the 7d window
    (ERIN, "2026-10-27T00:00:00Z"),  # the first instant of the 7d window
    (ALICE, "2026-11-01T00:00:00Z"),  # this month, and today below
    (FRANK, "2026-11-01T23:59:59Z"),  # this month, the last second before today
    (MALLORY, "2026-11-02T00:00:00Z"),  # the first instant of today; escaped label values
    (ALICE_WEB, "2026-11-02T10:00:00Z"),  # today, under her new team
    # A client whose clock runs a day ahead: in this month's totals, not active yet.
    (GRACE, "2026-11-03T00:00:00Z"),
]
BUDGETS = [
    {"scope": "org", "period": "month", "usd": 5000},
    {"scope": "team", "name": "core", "period": "month", "usd": 1000.5},
    {"scope": "user", "name": EVIL_USER, "period": "day", "usd": 25},
    # The same budget twice would be a duplicate series; the last one wins.
    {"scope": "team", "name": "core", "period": "month", "usd": 1200},
]
CONFIG: dict[str, Any] = {
    "extensions": {"budgets": BUDGETS},
    "receivers": {
        "otlp": {
            "auth": {
                "required": False,
                "tokens": [
                    {
                        "name": "mallory",
                        "token": MALLORY_TOKEN,
                        "user": EVIL_USER,
                        "team": EVIL_TEAM,
                    }
                ],
            }
        }
    },
}


def populate(collector: RunningCollector) -> list[Sent]:
    return [
        send_session(collector, who, typical_session(seed, calls=3), at(when))
        for seed, (who, when) in enumerate(PLAN)
    ]


def on_loop(collector: RunningCollector, coroutine: Any) -> Any:
    return asyncio.run_coroutine_threadsafe(coroutine, collector.loop).result(30)


def gauge_samples(collector: RunningCollector) -> dict[str, dict[tuple, float]]:
    """The store gauges on a real /metrics scrape, {family: {sorted labels: value}}."""
    out: dict[str, dict[tuple, float]] = {}
    for (name, labels), value in collector.samples().items():
        if name.startswith(
            (
                "claude_code_active_users",
                "claude_code_cost_month_to_date",
                "claude_code_lines_month_to_date",
                "claude_code_budget",
                "cc_collector_store_gauges",
            )
        ):
            out.setdefault(name, {})[labels] = value
    return out


def want_gauges(sent: list[Sent]) -> dict[str, dict[tuple, float]]:
    days = {"1d": "2026-11-02", "7d": "2026-10-27", "28d": "2026-10-06"}
    active = {
        (("window", w),): float(len({s.actor for s in sent if since <= s.day <= "2026-11-02"}))
        for w, since in days.items()
    }
    cost: dict[tuple, Decimal] = {}
    lines: dict[tuple, int] = {}
    for s in sent:
        if not s.day.startswith("2026-11"):
            continue
        key = (("team", s.who.team), ("user", s.actor))
        cost[key] = cost.get(key, Decimal(0)) + s.cost
        for kind in ("added", "removed"):
            line_key = (("team", s.who.team), ("type", kind), ("user", s.actor))
            lines[line_key] = lines.get(line_key, 0) + s.lines(kind)
    return {
        "claude_code_active_users": active,
        "claude_code_cost_month_to_date_usd": {k: float(v) for k, v in cost.items()},
        "claude_code_lines_month_to_date": {k: float(v) for k, v in lines.items()},
        "claude_code_budget_usd": {
            (("name", "org"), ("period", "month"), ("scope", "org")): 5000.0,
            (("name", "core"), ("period", "month"), ("scope", "team")): 1200.0,
            (("name", EVIL_USER), ("period", "day"), ("scope", "user")): 25.0,
        },
        "cc_collector_store_gauges_refreshed_timestamp_seconds": {(): NOW / 1e9},
    }


def render(gauges: StoreGauges) -> dict[str, dict[tuple, float]]:
    """The gauges rendered on a registry of their own, parsed back from the text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(gauges.collector())
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


@pytest.fixture(scope="module")
def filled() -> Iterator[tuple[RunningCollector, list[Sent]]]:
    with running_collector(make_config(CONFIG)) as collector:
        yield collector, populate(collector)


def test_gauges_on_metrics(filled) -> None:
    collector, sent = filled
    gauges = StoreGauges(
        collector.service.ledger.read, collector.service.config.budgets, clock=lambda: NOW
    )
    rendered = gauges.collector()
    # The service's own gauges run on the real clock; this test wants a fixed one.
    wired = collector.service.store_gauges_collector
    collector.service.registry.unregister(wired)
    collector.service.registry.register(rendered)
    try:
        # Before the first refresh only the configured budgets are known.
        assert set(gauge_samples(collector)) == {"claude_code_budget_usd"}
        on_loop(collector, gauges.refresh())
        got = gauge_samples(collector)
    finally:
        collector.service.registry.unregister(rendered)
        collector.service.registry.register(wired)
    want = want_gauges(sent)
    assert got == want
    # The workload is what the windows need: each window adds someone, Dave is never in.
    assert [want["claude_code_active_users"][(("window", w),)] for w in ("1d", "7d", "28d")] == [
        2.0,
        4.0,
        6.0,
    ]
    assert (("team", "web"), ("user", "grace@example.com")) in want[
        "claude_code_cost_month_to_date_usd"
    ]
    costs = want["claude_code_cost_month_to_date_usd"]
    assert (("team", "core"), ("user", "alice@example.com")) in costs
    assert (("team", "web"), ("user", "alice@example.com")) in costs


def test_users_over_the_cap_add_up_as_other_per_team(filled) -> None:
    collector, sent = filled
    gauges = StoreGauges(collector.service.ledger.read, [], clock=lambda: NOW, max_users=1)
    on_loop(collector, gauges.refresh())
    got = render(gauges)
    november = [s for s in sent if s.day.startswith("2026-11")]
    spend: dict[str, Decimal] = {}
    for s in november:
        spend[s.actor] = spend.get(s.actor, Decimal(0)) + s.cost
    top = max(spend, key=lambda a: spend[a])
    want_cost: dict[tuple, Decimal] = {}
    want_lines: dict[tuple, int] = {}
    for s in november:
        user = s.actor if s.actor == top else "_other"
        key = (("team", s.who.team), ("user", user))
        want_cost[key] = want_cost.get(key, Decimal(0)) + s.cost
        line_key = (("team", s.who.team), ("type", "added"), ("user", user))
        want_lines[line_key] = want_lines.get(line_key, 0) + s.lines("added")
    assert got["claude_code_cost_month_to_date_usd"] == {k: float(v) for k, v in want_cost.items()}
    added = {
        k: v for k, v in got["claude_code_lines_month_to_date"].items() if ("type", "added") in k
    }
    assert added == {k: float(v) for k, v in want_lines.items()}
    assert len({dict(k)["user"] for k in want_cost}) == 2  # one kept, the rest as _other
    # The active-user counts are never capped.
    assert got["claude_code_active_users"][(("window", "28d"),)] == 6.0


def test_periodic_refresh_picks_up_new_data() -> None:
    with running_collector(make_config(CONFIG)) as collector:
        gauges = StoreGauges(collector.service.ledger.read, [], clock=lambda: NOW, interval_s=0.05)
        on_loop(collector, gauges.start())
        try:
            # start() refreshed once before returning: an empty store, zero users.
            assert gauges.snapshot is not None
            assert gauges.snapshot.active == {"1d": 0, "7d": 0, "28d": 0}
            sent = send_session(collector, BOB, typical_session(3, calls=2), NOW - 3600 * 10**9)
            want_cost = {("bob@example.com", "web"): int(sent.cost * 10**9)}
            deadline = time.monotonic() + 30
            # Until a refresh after the last request: one between two requests of the
            # session already counts Bob as active with part of the cost.
            while gauges.snapshot.cost != want_cost and time.monotonic() < deadline:
                time.sleep(0.02)
            assert gauges.snapshot.active == {"1d": 1, "7d": 1, "28d": 1}
            assert gauges.snapshot.cost == want_cost
        finally:
            on_loop(collector, gauges.stop())
        assert gauges._task is None


def test_replicas_agree_and_a_failed_refresh_keeps_the_last_values(pg_cluster) -> None:
    """Replicas sharing a database compute the same global values (so dashboards take max
    across replicas); when the database goes away the last values stay on /metrics."""
    url = pg_cluster.new_database()
    store = {"exporters": {"store": {"url": url}}}
    try:
        with (
            running_collector(make_config({**CONFIG, **store})) as first,
            running_collector(
                make_config({**CONFIG, "exporters": {"store": {"url": url, "replica_id": "r2"}}})
            ) as second,
        ):
            sent = populate(first)  # everything goes to the first replica
            views = []
            for replica in (first, second):
                gauges = StoreGauges(replica.service.ledger.read, [], clock=lambda: NOW)
                on_loop(replica, gauges.refresh())
                views.append(render(gauges))
            assert views[0] == views[1]
            want = want_gauges(sent)
            for family in (
                "claude_code_active_users",
                "claude_code_cost_month_to_date_usd",
                "claude_code_lines_month_to_date",
            ):
                assert views[1][family] == want[family]
            before = gauges.snapshot
            pg_cluster.drop_database(url)  # the database is gone under the running replica
            with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises
                on_loop(second, gauges.refresh())
            on_loop(second, gauges.start())  # a failed refresh is logged, not raised
            on_loop(second, gauges.stop())
            assert gauges.snapshot is before
            assert render(gauges) == views[1]
    finally:
        pg_cluster.drop_database(url)


def test_without_a_store_only_budgets() -> None:
    gauges = StoreGauges(None, [Budget("org", "org", "day", 12.5)])
    asyncio.run(gauges.refresh())
    assert render(gauges) == {
        "claude_code_budget_usd": {(("name", "org"), ("period", "day"), ("scope", "org")): 12.5}
    }
