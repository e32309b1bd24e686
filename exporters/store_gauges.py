"""Gauges computed from the store, on `/metrics`: active users, month-to-date spend and lines,
and the configured budgets (docs/api.md, "Store gauges").

Why from the store: "how many people used Claude Code in the last 7 days" and "what has this
user spent this calendar month" are not answerable from counters that are per replica, capped
and forgotten when idle. The store has every (day, actor) row, so SQL answers them exactly.

Why a periodic refresh: a scrape must never wait for SQL (the store thread may be busy with
group commits, or the database down). `refresh()` runs the queries on the store's thread
every `interval_s` (and once at `start()`), and the collector renders the last snapshot. If a
refresh fails the previous snapshot stays, and `cc_collector_store_gauges_refreshed_timestamp_
seconds` shows its age, so an alert can catch stale gauges.

These are global values: every replica sharing a database computes the same numbers, so
across replicas they are aggregated with `max`, never `sum`.
"""

from __future__ import annotations

import asyncio
import calendar
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from collector.config import Budget
from exporters.store import dashboard_queries as q
from exporters.store.backend import Backend

log = logging.getLogger("cc_collector.store_gauges")
T = TypeVar("T")
#: runs `fn(backend)` on the store thread (StoreLedger.read).
Reader = Callable[[Callable[[Backend], Any]], Awaitable[Any]]
#: window label -> UTC days it covers, today included.
WINDOWS: tuple[tuple[str, int], ...] = (("1d", 1), ("7d", 7), ("28d", 28))
#: users beyond `max_users` are added up under this user label (per team), as /metrics does.
OTHER = "_other"
DEFAULT_INTERVAL_S = 30.0

ACTIVE_USERS = "claude_code_active_users"
COST_MTD = "claude_code_cost_month_to_date_usd"
LINES_MTD = "claude_code_lines_month_to_date"
BUDGET = "claude_code_budget_usd"
REFRESHED = "cc_collector_store_gauges_refreshed_timestamp_seconds"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One refresh's values; replaced whole, so a scrape sees one consistent refresh."""

    #: window label -> distinct actors
    active: dict[str, int]
    #: (user, team) -> nano-USD in the current UTC calendar month
    cost: dict[tuple[str, str], int]
    #: (user, team, type) -> lines in the current UTC calendar month
    lines: dict[tuple[str, str, str], int]
    month: str
    refreshed_ns: int


def _utc_day(ns: int) -> dt.date:
    return (dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=ns // 10**9)).date()


def _month(day: dt.date) -> tuple[dt.date, dt.date]:
    return day.replace(day=1), day.replace(day=calendar.monthrange(day.year, day.month)[1])


def cap_users(
    cost: dict[tuple[str, str], int], lines: dict[tuple[str, str, str], int], max_users: int
) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str, str], int]]:
    """Keep the `max_users` biggest spenders as themselves and add the rest up as `_other` per
    team, so team and org totals stay exact while the series count stays bounded."""
    spend: dict[str, int] = {}
    for (user, _), n in cost.items():
        spend[user] = spend.get(user, 0) + n
    for user, _, _ in lines:
        spend.setdefault(user, 0)
    if len(spend) <= max_users:
        return cost, lines
    kept = set(sorted(spend, key=lambda u: (-spend[u], u))[:max_users])
    capped_cost: dict[tuple[str, str], int] = {}
    for (user, team), n in cost.items():
        key = (user if user in kept else OTHER, team)
        capped_cost[key] = capped_cost.get(key, 0) + n
    capped_lines: dict[tuple[str, str, str], int] = {}
    for (user, team, kind), n in lines.items():
        line_key = (user if user in kept else OTHER, team, kind)
        capped_lines[line_key] = capped_lines.get(line_key, 0) + n
    return capped_cost, capped_lines


class StoreGauges:
    """Refreshes a `Snapshot` from the store and renders it through `collector()`.

    `reader` is StoreLedger.read (None without a store: only the budgets are rendered).
    """

    def __init__(
        self,
        reader: Reader | None,
        budgets: Sequence[Budget],
        *,
        clock: Callable[[], int] = time.time_ns,
        interval_s: float = DEFAULT_INTERVAL_S,
        max_users: int = 10_000,
    ) -> None:
        self.reader = reader
        self.clock = clock
        self.interval_s = interval_s
        self.max_users = max_users
        self.snapshot: Snapshot | None = None
        self._task: asyncio.Task[None] | None = None
        # One series per (scope, name, period): a repeated budget would be a duplicate
        # sample, which makes Prometheus reject the whole scrape. The last one wins.
        self.budgets: dict[tuple[str, str, str], float] = {}
        for budget in budgets:
            key = (budget.scope, budget.name, budget.period)
            if key in self.budgets:
                log.warning("budget %s/%s/%s is configured twice; the last one is used", *key)
            self.budgets[key] = budget.usd

    async def refresh(self) -> None:
        """Query the store once and replace the snapshot (raises StoreError if it is down)."""
        if self.reader is None:
            return
        now = self.clock()
        today = _utc_day(now)
        oldest = today - dt.timedelta(days=max(n for _, n in WINDOWS) - 1)
        month_first, month_last = _month(today)

        def read(db: Backend) -> tuple[Any, ...]:
            return (
                q.last_active_day(db, oldest.isoformat(), today.isoformat()),
                *q.month_to_date(db, month_first.isoformat(), month_last.isoformat()),
            )

        latest, cost, lines = await self.reader(read)
        active = {}
        for label, days in WINDOWS:
            since = (today - dt.timedelta(days=days - 1)).isoformat()
            active[label] = sum(1 for day in latest.values() if day >= since)
        cost, lines = cap_users(cost, lines, self.max_users)
        self.snapshot = Snapshot(active, cost, lines, month_first.strftime("%Y-%m"), now)

    async def _refresh_logged(self) -> None:
        try:
            await self.refresh()
        except Exception as exc:  # keep the last snapshot and the loop; the timestamp ages
            log.warning("store gauges refresh failed (keeping the last values): %s", exc)

    async def start(self) -> None:
        """Refresh once (so the first scrape has values), then every `interval_s`."""
        await self._refresh_logged()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self._refresh_logged()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def collector(self) -> Collector:
        return _GaugeCollector(self)


class _GaugeCollector(Collector):
    """Renders the last snapshot; never touches the store."""

    def __init__(self, gauges: StoreGauges) -> None:
        self.gauges = gauges

    def collect(self) -> Iterator[Metric]:
        budgets = GaugeMetricFamily(
            BUDGET,
            "Configured spend budget in USD (extensions.budgets), for alert rules.",
            labels=("scope", "name", "period"),
        )
        for key, value in self.gauges.budgets.items():
            budgets.add_metric(key, value)
        yield budgets
        snap = self.gauges.snapshot
        if snap is None:
            return
        active = GaugeMetricFamily(
            ACTIVE_USERS,
            "Distinct users with any usage in the trailing window of UTC days, today included "
            "(from the store; the same on every replica: aggregate with max, not sum).",
            labels=("window",),
        )
        for label, n in snap.active.items():
            active.add_metric((label,), n)
        yield active
        cost = GaugeMetricFamily(
            COST_MTD,
            "Estimated spend in USD in the current UTC calendar month, by user and team "
            "(from the store; aggregate with max across replicas).",
            labels=("user", "team"),
        )
        for (user, team), nano in snap.cost.items():
            cost.add_metric((user, team), nano / 1_000_000_000)
        yield cost
        lines = GaugeMetricFamily(
            LINES_MTD,
            "Lines of code added/removed in the current UTC calendar month, by user and team "
            "(from the store; aggregate with max across replicas).",
            labels=("user", "team", "type"),
        )
        for key, n in snap.lines.items():
            lines.add_metric(key, n)
        yield lines
        refreshed = GaugeMetricFamily(
            REFRESHED, "Unix time of the last successful refresh of the store gauges."
        )
        refreshed.add_metric((), snap.refreshed_ns / 1e9)
        yield refreshed
