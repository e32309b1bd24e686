"""Frozen copies of the exposition, for the OTLP forwarder's export threads.

Why: `ExpositionState` lives on the event loop and is mutated there without locks (one loop,
no locks: docs/architecture.md). The forwarder exports on the OpenTelemetry SDK reader's own
thread, which must never iterate those dicts while a request's batch is being applied. So
the reader asks the loop for a copy (`SnapshotSource.fetch`): the copy is taken in one loop
callback, between two batches, and is never mutated afterwards, so everything one export
sends comes from one consistent instant.

This module is the only place the forwarder reads `ExpositionState`'s fields.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from collector.contract import Metric
from exporters.prometheus import ExpositionState


@dataclass(frozen=True, slots=True)
class HistogramTotals:
    """One histogram series' running totals, as the exposition keeps them."""

    #: cumulative count per bucket bound (the +Inf bucket is `count`).
    buckets: tuple[int, ...]
    count: int
    sum_us: int


@dataclass(frozen=True, slots=True)
class ExpositionSnapshot:
    """The exposition at `taken_ns`: counters as integers in the metric's scale (nano-USD,
    microseconds, units), histograms, the last-seen times and departments of users. Copies:
    nobody mutates them after `take_snapshot`."""

    taken_ns: int
    counters: Mapping[Metric, Mapping[tuple[str, ...], int]]
    histograms: Mapping[Metric, Mapping[tuple[str, ...], HistogramTotals]]
    #: (user, team) -> unix ns of the last accepted data.
    last_seen: Mapping[tuple[str, str], int]
    #: (user, team) -> department.
    departments: Mapping[tuple[str, str], str]


def take_snapshot(state: ExpositionState, now_ns: int) -> ExpositionSnapshot:
    """Copy `state`; call on the event loop only. Idle users are swept first, as a scrape
    does, so they leave the forwarded series even when nobody scrapes /metrics."""
    state.sweep(now_ns)
    return ExpositionSnapshot(
        taken_ns=now_ns,
        counters={metric: dict(series) for metric, series in state.counters.items()},
        histograms={
            metric: {
                labels: HistogramTotals(tuple(h.buckets), h.count, h.sum_us)
                for labels, h in series.items()
            }
            for metric, series in state.histograms.items()
        },
        last_seen=dict(state.last_seen),
        departments=dict(state.departments),
    )


class SnapshotSource:
    """Hands other threads a snapshot taken on the event loop, on demand.

    On demand rather than on a timer: each export then sends what was counted up to the
    moment it collects, and no copy is made when no target is collecting.
    """

    def __init__(
        self,
        state: ExpositionState,
        loop: asyncio.AbstractEventLoop,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.state = state
        self.loop = loop
        self.clock = clock
        self._loop_thread = threading.get_ident()  # constructed on the loop

    def take(self) -> ExpositionSnapshot:
        """On the event loop: copy now."""
        return take_snapshot(self.state, self.clock())

    def fetch(self, timeout_s: float) -> ExpositionSnapshot | None:
        """From any thread: a snapshot taken on the loop, or None if the loop did not answer
        within `timeout_s` (busy, or already stopped). Callers then keep their previous
        snapshot: never an empty one, which would read as "every series is gone"."""
        if threading.get_ident() == self._loop_thread:
            return self.take()
        future: concurrent.futures.Future[ExpositionSnapshot] = concurrent.futures.Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(self.take())
            except BaseException as exc:  # handed to the waiting thread
                future.set_exception(exc)

        try:
            self.loop.call_soon_threadsafe(run)
            return future.result(timeout_s)
        except (RuntimeError, concurrent.futures.TimeoutError):  # loop closed, or busy
            future.cancel()
            return None
