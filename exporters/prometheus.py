"""The public metrics contract served on `/metrics`: state, and a scrape-time collector.

`ExpositionState` is a sink: it adds each batch's increments to plain dicts keyed by label
tuples. `ContractCollector` renders those dicts into metric families when scraped, on a
private registry, so there is no prometheus_client child object per series (scrape cost at
10k users) and rendering is a pure read of a snapshot.

Users are capped (`max_users`, beyond it `user="_other"`) and a user idle longer than
`user_idle_ns` is forgotten: all of their series leave the exposition. If they come back,
their counters start again from zero, which Prometheus' `rate()`/`increase()` read as a
counter reset, so no increment is lost in PromQL (docs/metrics.md, "Cardinality").
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from collector import contract as c
from collector.accounting.records import Accounted
from exporters.labels import LabelLimiter

#: labels whose values come from clients and so need a cap too (user has its own, larger one).
_CAPPED_LABELS = (
    "team",
    "model",
    "tool",
    "event",
    "status_code",
    "source",
    "terminal",
    "type",
    "decision",
    "success",
)


#: A series before label caps: ("c", metric, user, team, *labels) for counters,
#: ("h", metric, part, *labels) for histogram parts (b<i> bucket, count, sum in microseconds).
#: The store keeps each replica's series in this form so a restart can rebuild the exposition.
Series = tuple[str, ...]
_BY_NAME = {m.name: m for m in (*c.COUNTERS, *c.HISTOGRAMS)}


def series_deltas(accounted: Accounted) -> dict[Series, int]:
    """What one accounted batch adds to each raw series (computed once per batch: the store
    and the exposition both need it)."""
    if accounted.series is None:
        accounted.series = _series_deltas(accounted)
    return accounted.series


def _series_deltas(accounted: Accounted) -> dict[Series, int]:
    out: defaultdict[Series, int] = defaultdict(int)
    for inc in accounted.increments:
        metric = inc.metric
        user = inc.identity.actor if "user" in metric.identity else ""
        team = inc.identity.team if "team" in metric.identity else ""
        out[("c", metric.name, user, team, *inc.labels)] += inc.amount
    for obs in accounted.observations:
        name = obs.metric.name
        for i, bound in enumerate(c.BUCKETS[obs.metric]):
            if obs.seconds <= bound:
                out[("h", name, f"b{i}", *obs.labels)] += 1
        out[("h", name, "count", *obs.labels)] += 1
        out[("h", name, "sum", *obs.labels)] += round(obs.seconds * 1_000_000)
    return out


@dataclass(slots=True)
class _Histogram:
    buckets: list[int]  # cumulative counts per bound; +Inf is `count`
    sum_us: int = 0
    count: int = 0


@dataclass(slots=True)
class ExpositionState:
    max_users: int = 10_000
    max_label_values: int = 1_000
    user_idle_ns: int = 30 * 86400 * 10**9
    counters: dict[c.Metric, dict[tuple[str, ...], int]] = field(default_factory=dict)
    histograms: dict[c.Metric, dict[tuple[str, ...], _Histogram]] = field(default_factory=dict)
    last_seen: dict[tuple[str, str], int] = field(default_factory=dict)
    departments: dict[tuple[str, str], str] = field(default_factory=dict)
    limiters: dict[str, LabelLimiter] = field(default_factory=dict)
    _swept_at: int = 0

    def __post_init__(self) -> None:
        self.counters = {m: {} for m in c.COUNTERS}
        self.histograms = {m: {} for m in c.HISTOGRAMS}
        self.limiters = {"user": LabelLimiter("user", self.max_users)}
        for label in _CAPPED_LABELS:
            self.limiters[label] = LabelLimiter(label, self.max_label_values)

    def _labels(
        self, metric: c.Metric, user: str, team: str, own: tuple[str, ...], now: int
    ) -> tuple[str, ...]:
        values = [
            user if name == "user" else self.limiters["team"].admit(team, now)
            for name in metric.identity
        ]
        for name, value in zip(metric.own, own, strict=True):
            limiter = self.limiters.get(name)
            values.append(limiter.admit(value, now) if limiter else value)
        return tuple(values)

    def apply(self, accounted: Accounted, now_ns: int) -> None:
        """Add a batch; called once per accepted request, after accounting."""
        seen = [(who.actor, who.team, who.department, now_ns) for who in accounted.seen]
        self.add(series_deltas(accounted), seen, now_ns)

    def add(
        self,
        deltas: dict[Series, int],
        seen: Iterable[tuple[str, str, str, int]],
        now_ns: int,
    ) -> None:
        """Add raw series through the label caps. `seen` is (actor, team, department, when)
        per sender; on a restart it carries the stored times, so idle users still expire on
        schedule."""
        users: dict[str, str] = {}
        for actor, team, department, when in seen:
            user = users[actor] = self.limiters["user"].admit(actor, when)
            key = (user, self.limiters["team"].admit(team, when))
            self.last_seen[key] = max(self.last_seen.get(key, 0), when)
            self.departments[key] = department
        for series, amount in deltas.items():
            metric = _BY_NAME.get(series[1])
            if metric is None:
                continue  # a series of an older contract, found in the store
            if series[0] == "c":
                user = ""
                if "user" in metric.identity:
                    user = users.get(series[2]) or self.limiters["user"].admit(series[2], now_ns)
                    users[series[2]] = user
                key = self._labels(metric, user, series[3], series[4:], now_ns)
                counters = self.counters[metric]
                counters[key] = counters.get(key, 0) + amount
            else:
                self._add_histogram(metric, series[2], series[3:], amount, now_ns)
        self.sweep(now_ns)

    def replace(
        self,
        deltas: dict[Series, int],
        seen: Iterable[tuple[str, str, str, int]],
        now_ns: int,
    ) -> None:
        """Start over from `deltas` (a store reload), keeping the overflow tallies."""
        overflow = {name: limiter.overflow for name, limiter in self.limiters.items()}
        self.last_seen, self.departments, self._swept_at = {}, {}, 0
        self.__post_init__()
        for name, count in overflow.items():
            self.limiters[name].overflow = count
        self.add(deltas, seen, now_ns)

    def _add_histogram(
        self, metric: c.Metric, part: str, own: tuple[str, ...], amount: int, now_ns: int
    ) -> None:
        key = self._labels(metric, "", "", own, now_ns)
        hist = self.histograms[metric].get(key)
        if hist is None:
            hist = self.histograms[metric][key] = _Histogram([0] * len(c.BUCKETS[metric]))
        if part == "count":
            hist.count += amount
        elif part == "sum":
            hist.sum_us += amount
        else:
            hist.buckets[int(part[1:])] += amount

    def sweep(self, now_ns: int) -> None:
        """Drop users idle past the timeout, at most once a minute."""
        if now_ns - self._swept_at < 60 * 10**9:
            return
        self._swept_at = now_ns
        gone = set(self.limiters["user"].idle(now_ns - self.user_idle_ns))
        if not gone:
            return
        self.last_seen = {k: v for k, v in self.last_seen.items() if k[0] not in gone}
        self.departments = {k: v for k, v in self.departments.items() if k[0] not in gone}
        for metric, series in self.counters.items():
            if "user" in metric.identity:
                for key in [k for k in series if k[0] in gone]:
                    del series[key]

    def label_overflow(self) -> dict[str, int]:
        return {name: lim.overflow for name, lim in self.limiters.items()}


class ContractCollector(Collector):
    """Renders `ExpositionState` as the contract's metric families."""

    def __init__(self, state: ExpositionState, clock: Callable[[], int] = time.time_ns) -> None:
        self.state = state
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        state = self.state
        state.sweep(self.clock())  # idle users leave even when no data is arriving
        for metric, series in state.counters.items():
            family = CounterMetricFamily(metric.name, metric.help, labels=metric.labels)
            scale = metric.scale
            for labels, amount in series.items():
                family.add_metric(labels, amount / scale if scale != 1 else amount)
            yield family
        for metric, hists in state.histograms.items():
            family = HistogramMetricFamily(metric.name, metric.help, labels=metric.labels)
            bounds = c.BUCKETS[metric]
            for labels, hist in hists.items():
                cumulative = [(_fmt(b), n) for b, n in zip(bounds, hist.buckets, strict=True)]
                cumulative.append(("+Inf", hist.count))
                family.add_metric(labels, cumulative, hist.sum_us / 1_000_000)
            yield family
        seen = GaugeMetricFamily(
            c.USER_LAST_SEEN.name, c.USER_LAST_SEEN.help, labels=c.USER_LAST_SEEN.labels
        )
        for labels, ns in state.last_seen.items():
            seen.add_metric(labels, ns / 1e9)
        yield seen
        info = GaugeMetricFamily(c.USER_INFO.name, c.USER_INFO.help, labels=c.USER_INFO.labels)
        for (user, team), department in state.departments.items():
            info.add_metric((user, team, department), 1)
        yield info


def _fmt(bound: float) -> str:
    return str(float(bound))
