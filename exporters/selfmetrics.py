"""Renders the collector's own metrics (`cc_collector_*`) at scrape time."""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from collector import __version__
from collector.selfstats import DURATION_BUCKETS, SelfStats


class SelfCollector(Collector):
    def __init__(
        self,
        stats: SelfStats,
        state_sizes: Callable[[], dict[str, int]],
        evictions: Callable[[], dict[tuple[str, str], int]],
        label_overflow: Callable[[], dict[str, int]],
    ) -> None:
        self.stats = stats
        self.state_sizes = state_sizes
        self.evictions = evictions
        self.label_overflow = label_overflow

    def collect(self) -> Iterator[Metric]:
        s = self.stats
        info = GaugeMetricFamily(
            "cc_collector_build_info", "Collector build.", labels=("version", "python_version")
        )
        info.add_metric((__version__, platform.python_version()), 1)
        yield info
        yield _counter(
            "cc_collector_requests_total",
            "OTLP export requests by protocol, signal and outcome.",
            ("protocol", "signal", "outcome"),
            s.requests,
        )
        yield _counter(
            "cc_collector_items_total",
            "Metric points, log records and spans by signal and outcome "
            "(accepted, rejected, duplicate, stale, ignored).",
            ("signal", "outcome"),
            s.items,
        )
        yield _counter(
            "cc_collector_decode_errors_total",
            "Requests whose body could not be decoded.",
            ("protocol", "signal"),
            s.decode_errors,
        )
        hist = HistogramMetricFamily(
            "cc_collector_request_duration_seconds",
            "Time from request received to acknowledgement.",
            labels=("protocol", "signal"),
        )
        for key, buckets in s.duration_buckets.items():
            points = [(str(b), n) for b, n in zip(DURATION_BUCKETS, buckets, strict=False)]
            points.append(("+Inf", buckets[-1]))
            hist.add_metric(key, points, s.duration_sum[key])
        yield hist
        if s.store_buckets[-1]:
            store = HistogramMetricFamily(
                "cc_collector_store_commit_duration_seconds",
                "Duration of group-commit transactions, failed ones too.",
            )
            points = [(str(b), n) for b, n in zip(DURATION_BUCKETS, s.store_buckets, strict=False)]
            points.append(("+Inf", s.store_buckets[-1]))
            store.add_metric((), points, s.store_seconds)
            yield store
        yield _counter(
            "cc_collector_store_transactions_total",
            "Group-commit transactions by outcome (committed, failed).",
            ("outcome",),
            {(k,): v for k, v in s.store_outcomes.items()},
        )
        committed = CounterMetricFamily(
            "cc_collector_store_committed_requests", "OTLP requests made durable by group commits."
        )
        committed.add_metric((), s.store_requests)
        yield committed
        workers = GaugeMetricFamily(
            "cc_collector_plan_workers", "Plan worker processes configured (0: in-process)."
        )
        workers.add_metric((), s.plan_workers)
        yield workers
        restarts = CounterMetricFamily(
            "cc_collector_plan_worker_restarts",
            "Plan worker pools replaced because a worker died (its requests were answered "
            "503 / UNAVAILABLE).",
        )
        restarts.add_metric((), s.plan_worker_restarts)
        yield restarts
        inflight = GaugeMetricFamily("cc_collector_inflight_requests", "Requests being processed.")
        inflight.add_metric((), s.inflight)
        yield inflight
        tracked = GaugeMetricFamily(
            "cc_collector_tracked_state",
            "Entries in the accounting state (streams, dedupe keys).",
            labels=("kind",),
        )
        for kind, n in self.state_sizes().items():
            tracked.add_metric((kind,), n)
        yield tracked
        yield _counter(
            "cc_collector_state_evictions_total",
            "Accounting state entries forgotten, by kind and reason (expired, capacity).",
            ("kind", "reason"),
            self.evictions(),
        )
        yield _counter(
            "cc_collector_label_overflow_total",
            "Series values replaced by _other because a label hit its cap.",
            ("label",),
            {(k,): v for k, v in self.label_overflow().items()},
        )


def _counter(
    name: str,
    help_text: str,
    labels: tuple[str, ...],
    values: dict[tuple[str, ...], int]
    | dict[tuple[str, str, str], int]
    | dict[tuple[str, str], int],
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, help_text, labels=labels)
    for key, n in values.items():
        family.add_metric(key, n)
    return family
