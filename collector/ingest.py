"""One export core per signal, shared by the gRPC and HTTP receivers.

Transports are thin adapters: they authenticate, take an in-flight slot, read the body, and
call `Ingest.plan` (parse, decode and plan: collector/planning.py, possibly in a worker
process) and then `Ingest.export`, which accounts the plan and hands the result to every sink
before the request is acknowledged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from collector.decoding.wire import Signal
from collector.errors import ErrorKind, IngestError
from collector.identity import TokenIdentity
from collector.ledger import Ledger
from collector.planning import Planned, Planner
from collector.selfstats import SelfStats
from exporters.store.backend import StoreError

#: seconds a client is asked to wait before retrying when the store is down.
STORE_RETRY_AFTER_S = 5


@dataclass(frozen=True, slots=True)
class ExportResult:
    rejected: int
    message: str


class Ingest:
    def __init__(self, planner: Planner, ledger: Ledger, stats: SelfStats) -> None:
        self.planner = planner
        self.ledger = ledger
        self.stats = stats

    async def plan(
        self, protocol: str, signal: Signal, body: bytes, as_json: bool, token: TokenIdentity | None
    ) -> Planned:
        """Parse, decode and plan a request body; a malformed one raises IngestError INVALID
        (counted as a decode error of `protocol`)."""
        try:
            return await self.planner.plan(signal, body, as_json, token)
        except IngestError as error:
            if error.kind is not ErrorKind.UNAVAILABLE:
                self.stats.decode_errors[(protocol, signal.value)] += 1
            raise

    async def export(self, signal: Signal, plan: Planned) -> ExportResult:
        """Account one planned request; returns once the ledger has committed it."""
        if isinstance(plan, int):  # traces: only counted
            self.stats.count_items(signal.value, accepted=plan)
            return ExportResult(0, "")
        try:
            accounted = await self.ledger.commit(plan)
        except StoreError as exc:
            raise IngestError(
                ErrorKind.UNAVAILABLE, f"store unavailable, retry later: {exc}", STORE_RETRY_AFTER_S
            ) from exc
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
