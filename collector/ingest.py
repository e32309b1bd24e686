"""One export core per signal, shared by the gRPC and HTTP receivers.

Transports are thin adapters: they authenticate, take an in-flight slot, turn bytes into a
request message, and call `Ingest.export`, which decodes, accounts and hands the result to
every sink before the request is acknowledged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from collector.accounting.engine import Accountant
from collector.accounting.records import Accounted
from collector.decoding.logs import count_spans, decode_logs
from collector.decoding.metrics import decode_metrics
from collector.decoding.wire import Signal
from collector.errors import ErrorKind, IngestError
from collector.identity import TokenIdentity
from collector.selfstats import SelfStats


class Sink(Protocol):
    """A consumer of accounted batches. It receives each batch once and must not mutate it."""

    def apply(self, accounted: Accounted, now_ns: int) -> None: ...


@dataclass(frozen=True, slots=True)
class ExportResult:
    rejected: int
    message: str


class Ingest:
    def __init__(
        self,
        accountant: Accountant,
        sinks: Sequence[Sink],
        stats: SelfStats,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.accountant = accountant
        self.sinks = list(sinks)
        self.stats = stats
        self.clock = clock

    async def export(
        self, signal: Signal, request: Any, token: TokenIdentity | None
    ) -> ExportResult:
        """Account one decoded request. Async so a durable sink can be awaited before the ack."""
        now = self.clock()
        if signal is Signal.TRACES:
            spans = count_spans(request)
            self.stats.count_items(signal.value, accepted=spans)
            return ExportResult(0, "")
        if signal is Signal.METRICS:
            accounted = self.accountant.account_metrics(decode_metrics(request), token, now)
        else:
            accounted = self.accountant.account_logs(decode_logs(request), token, now)
        for sink in self.sinks:
            sink.apply(accounted, now)
        self.stats.count_items(
            signal.value,
            accepted=accounted.accepted,
            rejected=accounted.rejected.count,
            duplicate=accounted.duplicate,
            stale=accounted.stale,
            ignored=accounted.ignored,
        )
        return ExportResult(accounted.rejected.count, accounted.rejected.message())


class Admission:
    """Overload protection shared by both transports: a bounded number of requests in flight.

    A request beyond the bound is refused at once with a retry delay (HTTP 429 + Retry-After,
    gRPC RESOURCE_EXHAUSTED + RetryInfo) instead of queueing without limit: OTLP clients
    retry with backoff, so refusing early loses nothing and keeps memory bounded.
    """

    RETRY_AFTER_S = 1

    def __init__(self, max_inflight: int, stats: SelfStats) -> None:
        self.max_inflight = max_inflight
        self.stats = stats

    @contextmanager
    def slot(self) -> Iterator[None]:
        if self.stats.inflight >= self.max_inflight:
            raise IngestError(
                ErrorKind.OVERLOADED,
                f"collector busy: {self.stats.inflight} requests in flight, retry later",
                retry_after=self.RETRY_AFTER_S,
            )
        self.stats.inflight += 1
        try:
            yield
        finally:
            self.stats.inflight -= 1
