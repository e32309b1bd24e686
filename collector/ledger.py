"""Where planned claims become counted increments: the seam between accounting and storage.

`Ingest` awaits `Ledger.commit(plan)` and acknowledges the request only when it returns, so
the ledger decides what "acknowledged" promises. `MemoryLedger` keeps state in process
memory (tests, benchmarks of the parse ceiling); `exporters.store.groupcommit.StoreLedger`
commits to SQLite or PostgreSQL first, so an acknowledgement means the data is durable.
Either one hands every committed batch to its sinks (the Prometheus exposition) exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from collector.accounting.claims import Plan
from collector.accounting.engine import Accountant
from collector.accounting.records import Accounted


class Sink(Protocol):
    """A consumer of committed batches. It receives each batch once and must not mutate it."""

    def apply(self, accounted: Accounted, now_ns: int) -> None: ...


class Ledger(Protocol):
    async def commit(self, plan: Plan) -> Accounted: ...


class MemoryLedger:
    def __init__(
        self, accountant: Accountant, sinks: Sequence[Sink], clock: Callable[[], int]
    ) -> None:
        self.accountant = accountant
        self.sinks = list(sinks)
        self.clock = clock

    async def commit(self, plan: Plan) -> Accounted:
        now = self.clock()
        accounted = self.accountant.apply(plan, now)
        for sink in self.sinks:
            sink.apply(accounted, now)
        return accounted
