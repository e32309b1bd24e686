"""Ack means durable, at the cost of one transaction per group of requests, not per request.

Requests put their plan in a queue and wait. One writer loop takes everything queued, runs
one transaction for all of it on the store's own thread (ledger.commit_group), and only after
COMMIT hands each batch to the sinks and wakes its request. While a transaction runs, new
requests queue up and go together into the next one: under load, groups grow by themselves
and no fixed delay is added when idle.

If the transaction fails, every request of the group gets `StoreError` and is answered
503 / UNAVAILABLE, so the client retries; nothing of it was counted anywhere.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from collector.accounting.claims import Plan
from collector.accounting.records import Accounted
from collector.ledger import Sink
from collector.selfstats import SelfStats
from exporters.prometheus import ExpositionState
from exporters.store.backend import Backend, StoreError
from exporters.store.ledger import SERIES_SEP, Retention, commit_group

log = logging.getLogger("cc_collector.store")
T = TypeVar("T")
#: requests in one transaction at most (bounds its size and lock footprint).
MAX_GROUP = 512
#: how often expired accounting state is deleted.
CLEANUP_INTERVAL_S = 300.0


class StoreLedger:
    def __init__(
        self,
        target: str,
        retention: Retention,
        replica: str,
        sinks: Sequence[Sink],
        clock: Callable[[], int],
        stats: SelfStats,
    ) -> None:
        self.target = target
        self.retention = retention
        self.replica = replica
        self.sinks = list(sinks)
        self.clock = clock
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="store-writer")
        self._queue: list[tuple[Plan, asyncio.Future[Accounted]]] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._db: Backend | None = None
        self._committing = False
        self.stats = stats
        self._exposition: ExpositionState | None = None
        #: set when a transaction failed: it may still have committed (a lost COMMIT answer),
        #: so this replica's exposition is reloaded from the store before the next group.
        self._resync = False

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def start(self, exposition: ExpositionState | None) -> None:
        """Open, migrate, and rebuild this replica's exposition from what it stored."""
        self._db = await self._run(Backend.open, self.target)
        version = await self._run(self._db.migrate)
        log.info("store %s at schema version %d", self._db.dialect.name, version)
        legacy = await self._run(self._db.transaction, Backend.legacy_dedupe_until)
        if legacy > self.clock():
            log.info("legacy dedupe keys are looked up too, until %d (ns)", legacy)
        self.retention = dataclasses.replace(self.retention, legacy_dedupe_until_ns=legacy)
        self._exposition = exposition
        if exposition is not None:
            series, seen = await self._run(self._db.transaction, self._load_exposition)
            exposition.add(series, seen, self.clock())
        self._tasks = [asyncio.create_task(self._writer()), asyncio.create_task(self._cleaner())]

    def _load_exposition(
        self, db: Backend
    ) -> tuple[dict[tuple[str, ...], int], list[tuple[str, str, str, int]]]:
        rows = db.query("SELECT series, amount FROM exposition WHERE replica = ?", (self.replica,))
        seen = db.query(
            "SELECT actor, team, department, seen_ns FROM exposition_seen WHERE replica = ?",
            (self.replica,),
        )
        series = {tuple(s.split(SERIES_SEP)): amount for s, amount in rows}
        return series, [(a, t, dept, n) for a, t, dept, n in seen]

    async def read(self, fn: Callable[[Backend], T]) -> T:
        """Run a read-only query function on the store's thread (between group commits), in
        a transaction: one consistent snapshot, reconnects, and errors as `StoreError`."""
        if self._db is None:
            raise StoreError("the store is not open")
        return await self._run(self._db.transaction, fn)

    def submit(self, fn: Callable[[Backend], T]) -> Future[T]:
        """Run `fn` in a transaction on the store's thread, callable from any thread.

        For writes outside the ingest path that must not run on the event loop: the OTLP
        forwarder's export threads persist what a downstream acknowledged with it
        (`.result(timeout)`), and its start-up awaits it with `asyncio.wrap_future`. Queued
        behind the group commits like every other store call; errors as `StoreError`.
        """
        if self._db is None:
            raise StoreError("the store is not open")
        return self._executor.submit(self._db.transaction, fn)

    async def commit(self, plan: Plan) -> Accounted:
        future: asyncio.Future[Accounted] = asyncio.get_running_loop().create_future()
        self._queue.append((plan, future))
        self._wake.set()
        # shield: a client that goes away must not cancel the group it is part of.
        return await asyncio.shield(future)

    async def _writer(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            group, self._queue = self._queue[:MAX_GROUP], self._queue[MAX_GROUP:]
            if self._queue:
                self._wake.set()
            if not group:
                continue
            now = self.clock()
            started = loop.time()
            self._committing = True
            try:
                if self._resync:
                    await self._reload_exposition(now)
                results = await self._run(self._transaction, [plan for plan, _ in group], now)
            except StoreError as exc:
                self.stats.store_commit(len(group), loop.time() - started, ok=False)
                self._resync = True
                log.warning("store commit failed (%d requests answered 503): %s", len(group), exc)
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            except Exception as exc:  # a bug: fail the group, keep the writer alive
                log.exception("store commit crashed")
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            finally:
                self._committing = False
            self.stats.store_commit(len(group), loop.time() - started, ok=True)
            for (_, future), accounted in zip(group, results, strict=True):
                for sink in self.sinks:
                    sink.apply(accounted, now)
                if not future.done():
                    future.set_result(accounted)

    async def _reload_exposition(self, now: int) -> None:
        """Make /metrics equal to what the store says this replica counted. After a failed
        transaction whose COMMIT may have gone through, the store is the only truth: the
        requests were answered 503 and their retries will be duplicates."""
        if self._exposition is not None:
            assert self._db is not None
            series, seen = await self._run(self._db.transaction, self._load_exposition)
            self._exposition.replace(series, seen, now)
        self._resync = False

    def _transaction(self, plans: list[Plan], now: int) -> list[Accounted]:
        assert self._db is not None
        db = self._db
        return db.transaction(lambda tx: commit_group(tx, plans, now, self.retention, self.replica))

    async def _cleaner(self) -> None:
        while True:
            await asyncio.sleep(CLEANUP_INTERVAL_S)
            try:
                await self._run(self.cleanup, self.clock())
            except StoreError as exc:
                log.warning("store cleanup failed: %s", exc)

    def cleanup(self, now_ns: int) -> None:
        """Forget accounting state past its retention (dedupe keys after `dedupe_ttl`...)."""
        assert self._db is not None
        self._db.transaction(
            lambda tx: tx.execute("DELETE FROM acc_state WHERE expires_at < ?", (now_ns,))
        )

    async def stop(self) -> None:
        """Let the queued requests commit, then close."""
        while self._queue or self._committing:
            await asyncio.sleep(0.01)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._db is not None:
            await self._run(self._db.close)
        self._executor.shutdown(wait=True)
