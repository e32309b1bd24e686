"""OTLP forwarding: the corrected per-user metrics, sent on to any OTLP backend.

Why: many organizations already run a metrics backend (Grafana Cloud / Mimir, Datadog,
Honeycomb, SigNoz, another OpenTelemetry Collector) that cannot take Claude Code's raw
metrics as they are (delta temporality, inflated by several processes per user, spend
reported twice). With `exporters.otlp` targets configured, the collector forwards the same
exact numbers it serves on /metrics (docs/forwarding.md, ADR 0006).

How, per target:

- One OpenTelemetry SDK `MeterProvider` with a `PeriodicExportingMetricReader`. Its
  instruments are observable counters (every `claude_code_*` counter) and gauges (last seen,
  user info) whose callbacks read a snapshot of the exposition taken on the event loop
  (`exporters/otlp_snapshot.py`): the reader's thread never touches the live state. The SDK
  aggregates CUMULATIVE: each callback reports the exact running total.
- `ForwardExporter`, our `MetricExporter` around the SDK's OTLP exporter (gRPC or HTTP),
  turns those totals into what goes on the wire: base units (USD, seconds), the two
  histograms built from the same snapshot, stable start times, and for `temporality: delta`
  the difference to what the downstream last *acknowledged*. The acknowledged totals advance
  only when an export returns SUCCESS, so a downstream that was down gets the missed amounts
  with its next successful export: nothing lost, nothing doubled. They are written to the
  store (`forward_series`, on the store's thread) so a restart neither resends nor loses.
- Exports, their timeout and the SDK's retries run on the reader's thread: ingest never waits
  for a downstream. Outcomes are counted in `cc_collector_forward_exports_total`, failures
  logged at most once a minute per target (the SDK's own per-attempt log lines are folded
  into that message).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import grpc
import requests
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpMetricExporter,
)
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider, ObservableCounter, ObservableGauge
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    PeriodicExportingMetricReader,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.metrics.export import Metric as SdkMetric
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from collector import __version__
from collector import contract as c
from collector.config import OtlpTarget
from exporters.otlp_snapshot import ExpositionSnapshot, SnapshotSource
from exporters.prometheus import ExpositionState
from exporters.store.backend import Backend, StoreError

log = logging.getLogger("cc_collector.forward")

#: runs `fn(backend)` in a transaction on the store's thread (StoreLedger.submit).
Submit = Callable[[Callable[[Backend], Any]], Future[Any]]

SERVICE_NAME = "claude-code-collector"
SCOPE_NAME = "claude_code_collector"
#: OTLP units, chosen so that every OTel -> Prometheus name translation (with or without
#: unit and type suffixes, escaped or UTF-8) gives back exactly the /metrics names:
#: annotations in braces add no suffix, `s` becomes `seconds`, already in the names.
UNITS: dict[c.Metric, str] = {
    c.COST: "{USD}",
    c.TOKENS: "{token}",
    c.SESSIONS: "{session}",
    c.LINES: "{line}",
    c.COMMITS: "{commit}",
    c.PULL_REQUESTS: "{pull_request}",
    c.CODE_EDIT_DECISIONS: "{decision}",
    c.TOOL_DECISIONS: "{decision}",
    c.ACTIVE_TIME: "s",
    c.PROMPTS: "{prompt}",
    c.API_REQUESTS: "{request}",
    c.API_ERRORS: "{error}",
    c.TOOL_CALLS: "{call}",
    c.EVENTS: "{event}",
    c.API_DURATION: "s",
    c.TOOL_DURATION: "s",
    c.USER_LAST_SEEN: "s",
    c.USER_INFO: "",  # not "1": a gauge of unit "1" would gain a `_ratio` suffix
}
_BY_NAME = {m.name: m for m in (*c.COUNTERS, *c.HISTOGRAMS, c.USER_LAST_SEEN, c.USER_INFO)}
#: the SDK's per-instrument cardinality limit (2000 by default) would fold series into an
#: `otel.metric.overflow` point; the exposition already caps its labels, so no second cap.
_NO_LIMIT = 2**62
#: how long a collection waits for the event loop to hand over a snapshot.
_SNAPSHOT_TIMEOUT_S = 5.0
#: callbacks of one collection may take this long (hundreds of thousands of series).
_COLLECT_TIMEOUT_MS = 60_000
#: at most one log line per target per this many seconds.
LOG_EVERY_S = 60.0
#: acknowledged-state rows per store transaction, so group commits interleave with big writes.
_ROWS_PER_TRANSACTION = 2000
_SEP = "\x1f"
#: cumulative targets remember this many series that left (to restart them with a new start
#: time if they come back); beyond, a returning series shows as a drop, which consumers of
#: cumulative data read as a reset too.
_MAX_GONE = 100_000


def series_key(metric: c.Metric, labels: Sequence[str]) -> str:
    """A series' name in the forwarding state: metric name and label values, \\x1f-joined."""
    return _SEP.join((metric.name, *labels))


# -- the collector's own numbers about forwarding ------------------------------------------


class ForwardStats:
    """Export outcomes per target. Written from the reader threads, read at scrape time on
    the loop, hence the lock (tiny, a few times per interval)."""

    def __init__(self, targets: Iterable[str]) -> None:
        names = list(targets)
        self._lock = threading.Lock()
        self.exports = {(n, outcome): 0 for n in names for outcome in ("success", "failure")}
        self.points = dict.fromkeys(names, 0)
        self.last_success_ns: dict[str, int] = {}

    def record(self, target: str, ok: bool, points: int, now_ns: int) -> None:
        with self._lock:
            self.exports[(target, "success" if ok else "failure")] += 1
            if ok:
                self.points[target] += points
                self.last_success_ns[target] = now_ns

    def read(self) -> tuple[dict[tuple[str, str], int], dict[str, int], dict[str, int]]:
        with self._lock:
            return dict(self.exports), dict(self.points), dict(self.last_success_ns)


class ForwardCollector(Collector):
    """Renders `cc_collector_forward_*` on /metrics."""

    def __init__(self, stats: ForwardStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        exports, points, last = self.stats.read()
        family = CounterMetricFamily(
            "cc_collector_forward_exports",
            "OTLP export requests to forwarding targets, by outcome (success, failure).",
            labels=("target", "outcome"),
        )
        for labels, n in sorted(exports.items()):
            family.add_metric(labels, n)
        yield family
        acked = CounterMetricFamily(
            "cc_collector_forward_points",
            "Data points a forwarding target acknowledged.",
            labels=("target",),
        )
        for name, n in sorted(points.items()):
            acked.add_metric((name,), n)
        yield acked
        seen = GaugeMetricFamily(
            "cc_collector_forward_last_success_timestamp_seconds",
            "Unix time of the last export a forwarding target acknowledged.",
            labels=("target",),
        )
        for name, ns in sorted(last.items()):
            seen.add_metric((name,), ns / 1e9)
        yield seen


# -- the SDK exporter's own log lines --------------------------------------------------------

_capture = threading.local()


class _SdkExportLogs(logging.Filter):
    """Folds the SDK exporters' per-attempt log lines ("Failed to export ...", "Transient
    error ...") into our once-a-minute message: while one of our exports runs on this thread,
    they are kept as the failure's reason instead of being logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(_capture, "active", False):
            _capture.messages.append(record.getMessage())
            return False
        return True


_SDK_LOG_FILTER = _SdkExportLogs()


def _quiet_sdk_export_logs() -> None:
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if (
            name.startswith("opentelemetry.exporter")
            and isinstance(logger, logging.Logger)
            and _SDK_LOG_FILTER not in logger.filters
        ):
            logger.addFilter(_SDK_LOG_FILTER)


class _Complaints:
    """At most one warning per target per `LOG_EVERY_S`, whatever fails how often, and one
    info line when a reported outage ends (so at most one per warning)."""

    def __init__(self, target: OtlpTarget, clock: Callable[[], float] = time.monotonic) -> None:
        self.target = target
        self.clock = clock
        self.failures = 0
        self.failing_since: float | None = None
        self.logged_at: float | None = None
        self.reported = False

    def failed(self, what: str, reason: str) -> None:
        now = self.clock()
        self.failures += 1
        if self.failing_since is None:
            self.failing_since = now
        if self.logged_at is not None and now - self.logged_at < LOG_EVERY_S:
            return
        t = self.target
        policy = (
            "the missed amounts go out with the next successful export"
            if t.temporality == "delta"
            else "the next successful export carries the running totals"
        )
        log.warning(
            "forwarding to %s (%s %s): %s failed (%d time(s) since the last message): %s; "
            "ingest is not affected, %s",
            t.name,
            t.protocol,
            t.endpoint,
            what,
            self.failures,
            reason,
            policy,
        )
        self.logged_at, self.failures, self.reported = now, 0, True

    def succeeded(self) -> None:
        if self.failing_since is None:
            return
        if self.reported:
            log.info(
                "forwarding to %s recovered after %.0f s",
                self.target.name,
                self.clock() - self.failing_since,
            )
        self.failing_since, self.failures, self.reported = None, 0, False


# -- what a target has been sent -------------------------------------------------------------

Amounts = tuple[int, ...]


@dataclass(slots=True)
class TargetState:
    """Per series, what this target was sent. Owned by the target's reader thread.

    Delta targets: `acked` is each series' running totals (one integer for a counter;
    buckets, count and sum in microseconds for a histogram) as of the last export the
    downstream acknowledged, and the time of that export: the next point covers from there.
    Cumulative targets: `starts` holds the series whose start time is not the target's
    (they were reset: idle expiry, then the user came back).
    """

    temporality: str
    #: the target's first start (persisted): the start time of its cumulative series.
    start_ns: int
    acked: dict[str, tuple[Amounts, int]] = field(default_factory=dict)
    starts: dict[str, int] = field(default_factory=dict)
    #: delta series not acknowledged yet: when their first unacknowledged interval began.
    pending: dict[str, int] = field(default_factory=dict)
    #: series whose persisted row is out of date / must be deleted.
    dirty: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)

    @classmethod
    def from_rows(
        cls, temporality: str, start_ns: int, rows: Iterable[tuple[str, str, int]]
    ) -> TargetState:
        state = cls(temporality, start_ns)
        for key, amounts, ns in rows:
            if temporality == "delta":
                state.acked[key] = (tuple(int(a) for a in amounts.split(",")), ns)
            else:
                state.starts[key] = ns
        return state

    def changed(self, key: str) -> None:
        self.dirty.add(key)
        self.deleted.discard(key)

    def forget(self, key: str) -> None:
        self.dirty.discard(key)
        self.deleted.add(key)

    def row(self, key: str) -> tuple[str, str, int] | None:
        """The persisted form of `key`, None if it has no row."""
        if self.temporality == "delta":
            found = self.acked.get(key)
            return None if found is None else (key, ",".join(map(str, found[0])), found[1])
        start = self.starts.get(key)
        return None if start is None else (key, "", start)


def load_state(db: Backend, replica: str, target: OtlpTarget, now_ns: int) -> TargetState:
    """Read (or create) a target's state; runs in a store transaction. A target whose
    temporality changed starts over: the old rows mean something else."""
    found = db.query(
        "SELECT temporality, start_ns FROM forward_targets WHERE replica = ? AND target = ?",
        (replica, target.name),
    )
    if not found:
        db.execute(
            "INSERT INTO forward_targets (replica, target, temporality, start_ns) "
            "VALUES (?, ?, ?, ?)",
            (replica, target.name, target.temporality, now_ns),
        )
        return TargetState(target.temporality, now_ns)
    temporality, start_ns = found[0]
    if temporality != target.temporality:
        log.warning(
            "forwarding target %s changed from %s to %s temporality: starting its state over",
            target.name,
            temporality,
            target.temporality,
        )
        db.execute(
            "DELETE FROM forward_series WHERE replica = ? AND target = ?", (replica, target.name)
        )
        db.execute(
            "UPDATE forward_targets SET temporality = ? WHERE replica = ? AND target = ?",
            (target.temporality, replica, target.name),
        )
        return TargetState(target.temporality, int(start_ns))
    rows = db.query(
        "SELECT series, amounts, start_ns FROM forward_series WHERE replica = ? AND target = ?",
        (replica, target.name),
    )
    return TargetState.from_rows(target.temporality, int(start_ns), rows)


def _write_rows(
    db: Backend,
    replica: str,
    target: str,
    upserts: Sequence[tuple[str, str, int]],
    deletes: Sequence[str],
) -> None:
    db.executemany(
        "INSERT INTO forward_series (replica, target, series, amounts, start_ns) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (replica, target, series) DO UPDATE SET "
        "amounts = excluded.amounts, start_ns = excluded.start_ns",
        [(replica, target, key, amounts, ns) for key, amounts, ns in upserts],
    )
    db.executemany(
        "DELETE FROM forward_series WHERE replica = ? AND target = ? AND series = ?",
        [(replica, target, key) for key in deletes],
    )


# -- the exporter ----------------------------------------------------------------------------

#: one output data point: index of its metric template, the point, and for delta targets the
#: series and running totals to acknowledge once the downstream took it.
_Item = tuple[int, Any, tuple[str, Amounts] | None]
#: name, description, unit, kind ("sum", "gauge" or "histogram")
_Template = tuple[str, str, str, str]


class ForwardExporter(MetricExporter):
    """Our `MetricExporter` around the SDK's OTLP exporter: scales to base units, adds the
    histograms, fixes start times, converts to delta against what was acknowledged, splits
    into requests of `max_points_per_request`, and persists what the downstream took."""

    def __init__(
        self,
        target: OtlpTarget,
        inner: MetricExporter,
        state: TargetState,
        source: SnapshotSource,
        stats: ForwardStats,
        replica: str,
        submit: Submit | None,
        resource: Resource,
    ) -> None:
        super().__init__(
            preferred_temporality={
                ObservableCounter: AggregationTemporality.CUMULATIVE,
                ObservableGauge: AggregationTemporality.CUMULATIVE,
            }
        )
        self.target = target
        self.inner = inner
        self.state = state
        self.source = source
        self.stats = stats
        self.replica = replica
        self.submit = submit
        self.resource = resource
        self.scope = InstrumentationScope(SCOPE_NAME, __version__)
        self.complaints = _Complaints(target)
        self.delta = target.temporality == "delta"
        self.temporality = (
            AggregationTemporality.DELTA if self.delta else AggregationTemporality.CUMULATIVE
        )
        #: the snapshot of the running collection: callbacks and export read this one.
        self.pinned: ExpositionSnapshot | None = None
        self._collect_ns = 0
        self._prev_collect_ns: int | None = None
        #: whether the SDK handed the running collection to `export` (it does not when
        #: no callback observed anything).
        self._exported = False
        #: cumulative targets: each series' totals at the previous collection, and series
        #: that disappeared (idle expiry) with the time they were found gone.
        self._last: dict[str, Amounts] = {}
        self._gone: dict[str, int] = {}
        #: serializes export and the final persist at stop (normally both on one thread).
        self._lock = threading.Lock()

    # -- collection ----------------------------------------------------------------------

    def begin_collection(self) -> None:
        """Called by the reader before its callbacks run: pin a fresh snapshot (or keep the
        previous one if the loop does not answer; never an empty one)."""
        fresh = self.source.fetch(_SNAPSHOT_TIMEOUT_S)
        if fresh is not None:
            self.pinned = fresh
        elif self.pinned is not None:
            self.complaints.failed("taking a snapshot", "the event loop did not answer in time")
        self._collect_ns = time.time_ns()
        self._exported = False

    def end_collection(self) -> None:
        """Called by the reader after its collection. When the SDK had nothing to export
        (every user idle and gone), the histograms still go out and series that left are
        still forgotten, so a returning user is counted from zero."""
        if not self._exported:
            self.export(None)

    def observe_counter(self, metric: c.Metric) -> Iterator[Observation]:
        snapshot = self.pinned
        if snapshot is None:
            return
        names = metric.labels
        for labels, amount in snapshot.counters.get(metric, {}).items():
            yield Observation(amount, dict(zip(names, labels, strict=True)))

    def observe_last_seen(self) -> Iterator[Observation]:
        snapshot = self.pinned
        if snapshot is None:
            return
        for (user, team), ns in snapshot.last_seen.items():
            yield Observation(ns / 1e9, {"user": user, "team": team})

    def observe_user_info(self) -> Iterator[Observation]:
        snapshot = self.pinned
        if snapshot is None:
            return
        for (user, team), department in snapshot.departments.items():
            yield Observation(1, {"user": user, "team": team, "department": department})

    # -- export --------------------------------------------------------------------------

    def export(
        self, metrics_data: MetricsData | None, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        self._exported = True
        with self._lock:
            try:
                return self._export(metrics_data)
            except Exception as exc:  # a bug must not kill forwarding: count, log, go on
                log.exception("forwarding to %s: export crashed", self.target.name)
                self.complaints.failed("an export", f"{type(exc).__name__}: {exc}")
                return MetricExportResult.FAILURE

    def _export(self, data: MetricsData | None) -> MetricExportResult:
        snapshot, now = self.pinned, self._collect_ns
        if snapshot is None:
            return MetricExportResult.SUCCESS
        prev = self._prev_collect_ns if self._prev_collect_ns is not None else self.state.start_ns
        current = _series_keys(snapshot)
        templates: list[_Template] = []
        items: list[_Item] = []
        totals: dict[str, Amounts] = {}
        sdk_metrics = (
            m
            for rm in (data.resource_metrics if data is not None else ())
            for sm in rm.scope_metrics
            for m in sm.metrics
        )
        for metric in sdk_metrics:
            contract = _BY_NAME.get(metric.name)
            if contract is None:
                continue
            index = len(templates)
            if isinstance(metric.data, Sum):
                templates.append((metric.name, metric.description, metric.unit, "sum"))
                for p in metric.data.data_points:
                    labels = tuple(str(p.attributes.get(n, "")) for n in contract.labels)
                    key = series_key(contract, labels)
                    if key not in current:  # an SDK that still reports a vanished series
                        continue
                    amounts = (int(p.value),)
                    totals[key] = amounts
                    item = self._point(contract, key, p.attributes, amounts, now, prev)
                    if item is not None:
                        items.append((index, *item))
            elif isinstance(metric.data, Gauge):
                templates.append((metric.name, metric.description, metric.unit, "gauge"))
                items.extend(
                    (index, replace(p, time_unix_nano=now), None) for p in metric.data.data_points
                )
        for contract, series in snapshot.histograms.items():
            index = len(templates)
            templates.append((contract.name, contract.help, UNITS.get(contract, ""), "histogram"))
            for labels, h in series.items():
                key = series_key(contract, labels)
                amounts = (*h.buckets, h.count, h.sum_us)
                totals[key] = amounts
                attributes = dict(zip(contract.labels, labels, strict=True))
                item = self._point(contract, key, attributes, amounts, now, prev)
                if item is not None:
                    items.append((index, *item))
        self._vanish(current, totals, now)
        self._prev_collect_ns = now
        ok = self._send_all(templates, items, now)
        self.persist()
        return MetricExportResult.SUCCESS if ok else MetricExportResult.FAILURE

    def _point(
        self,
        metric: c.Metric,
        key: str,
        attributes: Any,
        amounts: Amounts,
        now: int,
        prev: int,
    ) -> tuple[Any, tuple[str, Amounts] | None] | None:
        """The output point of one series, or None when a delta target has nothing new."""
        state = self.state
        if self.delta:
            acked = state.acked.get(key)
            base: Amounts | None = None
            if acked is not None and all(a >= b for a, b in zip(amounts, acked[0], strict=True)):
                base, start = acked
            else:  # new, or reset (its running totals went down): all of it is new
                start = state.pending.setdefault(key, prev)
            sent = (
                amounts
                if base is None
                else tuple(a - b for a, b in zip(amounts, base, strict=True))
            )
            if not any(sent):
                return None
            return _make_point(metric, attributes, start, now, sent), (key, amounts)
        start = state.starts.get(key, state.start_ns)
        last = self._last.get(key)
        if key in self._gone:  # came back after idle expiry: a new series from zero
            start = self._gone.pop(key)
        elif last is not None and any(a < b for a, b in zip(amounts, last, strict=True)):
            start = prev  # reset since the previous collection
        if start != state.starts.get(key, state.start_ns):
            state.starts[key] = start
            state.changed(key)
        return _make_point(metric, attributes, start, now, amounts), None

    def _vanish(self, current: set[str], totals: dict[str, Amounts], now: int) -> None:
        """Series that left the exposition (idle users) leave the state too: if they come
        back, they count from zero again."""
        state = self.state
        if self.delta:
            for key in [k for k in state.acked if k not in current]:
                del state.acked[key]
                state.forget(key)
            for key in [k for k in state.pending if k not in current]:
                del state.pending[key]
            return
        for key in self._last:
            if key not in current:
                self._gone[key] = now
        if len(self._gone) > _MAX_GONE:  # users who never came back: forget the oldest
            for key in list(itertools.islice(self._gone, len(self._gone) - _MAX_GONE)):
                del self._gone[key]
        for key in [k for k in state.starts if k not in current]:  # incl. gone before a restart
            del state.starts[key]
            state.forget(key)
        self._last = totals

    def _send_all(self, templates: list[_Template], items: list[_Item], now: int) -> bool:
        size = self.target.max_points_per_request
        for first in range(0, len(items), size):
            chunk = items[first : first + size]
            data = _metrics_data(self.resource, self.scope, templates, chunk, self.temporality)
            ok, reason = self._send(data)
            self.stats.record(self.target.name, ok, len(chunk), time.time_ns())
            if not ok:
                # The rest would most likely fail the same way; it goes out next interval.
                self.complaints.failed("an export", reason)
                return False
            self.complaints.succeeded()
            for _, _, ack in chunk:
                if ack is not None:
                    key, amounts = ack
                    self.state.acked[key] = (amounts, now)
                    self.state.pending.pop(key, None)
                    self.state.changed(key)
        return True

    def _send(self, data: MetricsData) -> tuple[bool, str]:
        _capture.active, _capture.messages = True, []
        try:
            result = self.inner.export(data, timeout_millis=self.target.timeout_ns / 1e6)
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"
        finally:
            _capture.active = False
        if result is MetricExportResult.SUCCESS:
            return True, ""
        messages: list[str] = _capture.messages
        if not messages:
            return False, "the OTLP exporter reported a failure"
        # The first line usually names the cause (refused, TLS, 4xx), the last the outcome.
        first, last = messages[0], messages[-1]
        return False, first if first == last else f"{first} (then: {last})"

    def persist(self) -> None:
        """Write the changed rows of the state to the store, a few thousand per transaction.
        If the store cannot take them, they stay marked and go with the next attempt."""
        state = self.state
        if not state.dirty and not state.deleted:
            return
        if self.submit is None:  # memory store: nothing survives a restart anyway
            state.dirty.clear()
            state.deleted.clear()
            return
        dirty, deleted = sorted(state.dirty), sorted(state.deleted)
        state.dirty, state.deleted = set(), set()
        upserts = [row for row in map(state.row, dirty) if row is not None]
        step = _ROWS_PER_TRANSACTION
        done_up = done_del = 0
        try:
            while done_up < len(upserts) or done_del < len(deleted):
                ups = upserts[done_up : done_up + step]
                dels = deleted[done_del : done_del + step - len(ups)]
                self.submit(
                    lambda db, u=ups, d=dels: _write_rows(db, self.replica, self.target.name, u, d)
                ).result(max(30.0, self.target.timeout_ns / 1e9))
                done_up += len(ups)
                done_del += len(dels)
        except (StoreError, TimeoutError, RuntimeError) as exc:
            for key, _, _ in upserts[done_up:]:
                if key not in state.deleted:
                    state.dirty.add(key)
            for key in deleted[done_del:]:
                if key not in state.dirty:
                    state.deleted.add(key)
            self.complaints.failed("saving what the downstream acknowledged", str(exc))

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.inner.shutdown(timeout_millis=timeout_millis)


def _series_keys(snapshot: ExpositionSnapshot) -> set[str]:
    keys = {series_key(m, labels) for m, series in snapshot.counters.items() for labels in series}
    keys.update(
        series_key(m, labels) for m, series in snapshot.histograms.items() for labels in series
    )
    return keys


def _make_point(
    metric: c.Metric, attributes: Any, start: int, now: int, amounts: Amounts
) -> NumberDataPoint | HistogramDataPoint:
    """Integers in the metric's scale -> an OTLP point in base units (USD, seconds)."""
    if metric.kind is c.Kind.HISTOGRAM:
        *cumulative, count, sum_us = amounts
        per_bucket = [b - a for a, b in zip([0, *cumulative], cumulative, strict=False)]
        per_bucket.append(count - (cumulative[-1] if cumulative else 0))
        return HistogramDataPoint(
            attributes=attributes,
            start_time_unix_nano=start,
            time_unix_nano=now,
            count=count,
            sum=sum_us / 1_000_000,
            bucket_counts=per_bucket,
            explicit_bounds=[float(b) for b in c.BUCKETS[metric]],
            min=None,  # type: ignore[arg-type]  # unknown: OTLP leaves them unset
            max=None,  # type: ignore[arg-type]
        )
    (amount,) = amounts
    value: int | float = amount / metric.scale if metric.scale != 1 else amount
    return NumberDataPoint(
        attributes=attributes, start_time_unix_nano=start, time_unix_nano=now, value=value
    )


def _metrics_data(
    resource: Resource,
    scope: Any,
    templates: list[_Template],
    chunk: list[_Item],
    temporality: AggregationTemporality,
) -> MetricsData:
    metrics: list[SdkMetric] = []
    for index, group in itertools.groupby(chunk, key=lambda item: item[0]):
        name, description, unit, kind = templates[index]
        points = [item[1] for item in group]
        data: Any
        if kind == "sum":
            data = Sum(data_points=points, aggregation_temporality=temporality, is_monotonic=True)
        elif kind == "gauge":
            data = Gauge(data_points=points)
        else:
            data = Histogram(data_points=points, aggregation_temporality=temporality)
        metrics.append(SdkMetric(name=name, description=description, unit=unit, data=data))
    return MetricsData(
        resource_metrics=[
            ResourceMetrics(
                resource=resource,
                scope_metrics=[
                    ScopeMetrics(scope=scope, metrics=metrics, schema_url=scope.schema_url)
                ],
                schema_url=resource.schema_url,
            )
        ]
    )


class _CollectingReader(PeriodicExportingMetricReader):
    """The SDK's periodic reader, pinning a fresh snapshot before each collection."""

    def __init__(self, exporter: ForwardExporter, interval_ms: float) -> None:
        self._forward = exporter
        super().__init__(
            exporter,
            export_interval_millis=interval_ms,
            export_timeout_millis=_COLLECT_TIMEOUT_MS,
            cardinality_limits={ObservableCounter: _NO_LIMIT, ObservableGauge: _NO_LIMIT},
        )

    def collect(self, timeout_millis: float = 10_000) -> None:
        # Anything escaping here would end the SDK's ticker thread, and forwarding with it.
        try:
            self._forward.begin_collection()
            super().collect(timeout_millis=max(timeout_millis, _COLLECT_TIMEOUT_MS))
            self._forward.end_collection()
        except Exception as exc:
            self._forward.complaints.failed("a collection", f"{type(exc).__name__}: {exc}")


# -- building a target -----------------------------------------------------------------------


@contextmanager
def _without_otlp_environment() -> Iterator[None]:
    """Construct the SDK exporters without the OTEL_EXPORTER_OTLP_* environment variables.

    The SDK's exporters fall back to them (the HTTP one always merges
    OTEL_EXPORTER_OTLP_HEADERS into its headers). Claude Code's documented setup puts the
    collector's ingest token in that very variable, often in the shell that also starts the
    collector: it must never reach a downstream. Targets are configured in otel-config.yaml
    only. This runs once per target at start-up, on the event loop, before any export thread.
    """
    saved = {
        key: os.environ.pop(key)
        for key in list(os.environ)
        if key.startswith(("OTEL_EXPORTER_OTLP_", "_OTEL_PYTHON_EXPORTER_OTLP_"))
    }
    try:
        yield
    finally:
        os.environ.update(saved)


class _CaFileSession(requests.Session):
    """A requests session whose `verify` (the configured `tls.ca_file`) wins over the
    REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE environment variables: plain requests lets those
    override a session's setting (psf/requests#3829), and many images set them."""

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        settings["verify"] = self.verify
        return settings


def build_otlp_exporter(target: OtlpTarget) -> MetricExporter:
    """The SDK's OTLP metric exporter for `target` (gRPC or HTTP/protobuf, TLS, headers)."""
    timeout_s = target.timeout_ns / 1e9
    gzip = target.compression == "gzip"
    with _without_otlp_environment():
        if target.protocol == "grpc":
            credentials = None
            if not target.insecure:
                credentials = grpc.ssl_channel_credentials(
                    root_certificates=target.ca_file.read_bytes() if target.ca_file else None,
                    private_key=target.key_file.read_bytes() if target.key_file else None,
                    certificate_chain=target.cert_file.read_bytes() if target.cert_file else None,
                )
            return GrpcMetricExporter(
                endpoint=target.endpoint,
                insecure=target.insecure,
                credentials=credentials,
                headers=target.headers or None,
                timeout=timeout_s,
                compression=grpc.Compression.Gzip if gzip else grpc.Compression.NoCompression,
            )
        return HttpMetricExporter(
            endpoint=target.endpoint,
            session=_CaFileSession() if target.ca_file else None,
            certificate_file=str(target.ca_file) if target.ca_file else None,
            client_key_file=str(target.key_file) if target.key_file else None,
            client_certificate_file=str(target.cert_file) if target.cert_file else None,
            headers=dict(target.headers),
            timeout=timeout_s,
            compression=HttpCompression.Gzip if gzip else HttpCompression.NoCompression,
        )


class ForwardTarget:
    """One target at run time: its state, exporter, reader thread and MeterProvider."""

    def __init__(
        self,
        target: OtlpTarget,
        replica: str,
        source: SnapshotSource,
        stats: ForwardStats,
        submit: Submit | None,
    ) -> None:
        self.target = target
        self.replica = replica
        self.source = source
        self.stats = stats
        self.submit = submit
        self.exporter: ForwardExporter | None = None
        self.provider: MeterProvider | None = None

    async def start(self) -> None:
        t = self.target
        now = time.time_ns()
        if self.submit is not None:
            future = self.submit(lambda db: load_state(db, self.replica, t, now))
            state: TargetState = await asyncio.wrap_future(future)
        else:
            state = TargetState(t.temporality, now)
        try:
            inner = build_otlp_exporter(t)
        except (OSError, ValueError, grpc.RpcError) as exc:
            raise OSError(str(exc)) from exc
        _quiet_sdk_export_logs()
        resource = Resource(
            {
                "service.name": SERVICE_NAME,
                "service.version": __version__,
                "service.instance.id": self.replica,
            }
        )
        exporter = ForwardExporter(
            t, inner, state, self.source, self.stats, self.replica, self.submit, resource
        )
        reader = _CollectingReader(exporter, t.interval_ns / 1e6)
        provider = MeterProvider(metric_readers=[reader], resource=resource, shutdown_on_exit=False)
        meter = provider.get_meter(SCOPE_NAME, __version__)
        for metric in c.COUNTERS:
            meter.create_observable_counter(
                metric.name,
                callbacks=[_counter_callback(exporter, metric)],
                unit=UNITS.get(metric, ""),
                description=metric.help,
            )
        meter.create_observable_gauge(
            c.USER_LAST_SEEN.name,
            callbacks=[lambda _options: exporter.observe_last_seen()],
            unit=UNITS[c.USER_LAST_SEEN],
            description=c.USER_LAST_SEEN.help,
        )
        meter.create_observable_gauge(
            c.USER_INFO.name,
            callbacks=[lambda _options: exporter.observe_user_info()],
            unit=UNITS[c.USER_INFO],
            description=c.USER_INFO.help,
        )
        self.exporter, self.provider = exporter, provider
        log.info(
            "forwarding to %s: %s %s, %s, every %.3g s",
            t.name,
            t.protocol,
            t.endpoint,
            t.temporality,
            t.interval_ns / 1e9,
        )

    def _shutdown(self) -> None:
        """Blocking: the reader's last collection and export, then the rest of the state."""
        if self.provider is None or self.exporter is None:
            return
        timeout_s = self.target.timeout_ns / 1e9 + 10
        try:
            self.provider.shutdown(timeout_millis=timeout_s * 1000)
        except Exception as exc:  # the SDK folds reader errors into one Exception
            log.warning("forwarding to %s: shutdown: %s", self.target.name, exc)
        with self.exporter._lock:
            self.exporter.persist()
        self.provider = None

    async def stop(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._shutdown)


def _counter_callback(
    exporter: ForwardExporter, metric: c.Metric
) -> Callable[[CallbackOptions], Iterable[Observation]]:
    return lambda _options: exporter.observe_counter(metric)


class Forwarding:
    """Every configured target; what `collector/server.py` starts and stops."""

    def __init__(
        self,
        targets: Sequence[OtlpTarget],
        replica: str,
        exposition: ExpositionState,
        submit: Submit | None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.config = tuple(targets)
        #: the wall clock idle users are swept by when a snapshot is taken.
        self.clock = clock
        self.replica = replica
        self.exposition = exposition
        self.submit = submit
        self.stats = ForwardStats(t.name for t in targets)
        self.targets: list[ForwardTarget] = []

    def collector(self) -> ForwardCollector:
        return ForwardCollector(self.stats)

    async def start(self) -> None:
        """After the store is open and the exposition loaded: load each target's state and
        start its reader thread. A target that cannot start stops the start (exit 1)."""
        source = SnapshotSource(self.exposition, asyncio.get_running_loop(), self.clock)
        for config in self.config:
            target = ForwardTarget(config, self.replica, source, self.stats, self.submit)
            try:
                await target.start()
            except (StoreError, OSError) as exc:
                await self.stop()  # only what started
                raise OSError(f"forwarding target {config.name}: {exc}") from exc
            self.targets.append(target)

    async def stop(self) -> None:
        """A last export per target (in parallel), then their state is saved. Call while the
        event loop still runs and before the store closes: both serve that last export."""
        await asyncio.gather(*(t.stop() for t in self.targets))
        self.targets.clear()
