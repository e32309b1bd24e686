"""Request bytes to a `Plan`: parse, decode and plan, in this process or in plan workers.

Why workers: the serving process runs the receivers and the store's group commits, and its
threads share one interpreter lock, so it uses one core however many the machine has. Parsing,
decoding and planning a request are pure functions of its bytes, the ingest token and the
(static) directory, and about half of the CPU a record costs (docs/performance.md). With
`processors.claude_code.workers` > 0 they run in that many child processes for bodies of
`WORKER_MIN_BYTES` or more (a handover has a fixed cost), and the serving process receives
each plan as compact bytes (accounting/plancodec.py, ~2 µs per record to read
back). Everything that decides (resolving against state, the store transaction, the
acknowledgement) stays in the serving process, in arrival order as before.

A worker that dies (killed, out of memory) fails only the requests it held: they are answered
UNAVAILABLE with a retry delay (nothing of them was counted), and a fresh pool takes the next
requests.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal as signals
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from collector.accounting import plancodec
from collector.accounting.claims import Plan
from collector.accounting.engine import Accountant, AccountingSettings
from collector.decoding.logs import count_spans, decode_logs
from collector.decoding.metrics import decode_metrics
from collector.decoding.wire import Signal, parse_json, parse_protobuf
from collector.directory import Directory
from collector.errors import ErrorKind, IngestError
from collector.gctune import tune_gc
from collector.identity import IdentityResolver, TokenIdentity
from collector.selfstats import SelfStats

log = logging.getLogger("cc_collector.planning")

#: seconds a client is asked to wait when its request's worker died.
WORKER_RETRY_AFTER_S = 1
#: Bodies smaller than this are planned in the serving process even with workers. Handing a
#: request to a worker costs the serving process about half a millisecond of CPU whatever its
#: size (the pool's queues, threads and pickling), about what planning ~25 records costs; a
#: Claude Code process sending straight to the collector exports a few records at a time, and
#: for those a worker would only add CPU and latency (docs/performance.md, "Plan workers").
#: A gateway's batches (hundreds of records, ~200 KiB) go to the workers.
WORKER_MIN_BYTES = 32 * 1024

#: A traces request only counts its spans: the number, instead of a plan.
Planned = Plan | int


def plan_body(
    accountant: Accountant, signal: Signal, body: bytes, as_json: bool, token: TokenIdentity | None
) -> Planned:
    """Parse (IngestError INVALID if malformed), decode and plan one request body."""
    message = parse_json(signal, body) if as_json else parse_protobuf(signal, body)
    if signal is Signal.TRACES:
        return count_spans(message)
    if signal is Signal.METRICS:
        return accountant.plan_metrics(decode_metrics(message), token)
    return accountant.plan_logs(decode_logs(message), token)


class LocalPlanner:
    """Plans on the event loop: everything with `workers: 0`, small bodies otherwise."""

    def __init__(self, accountant: Accountant) -> None:
        self.accountant = accountant

    async def start(self) -> None:
        """Nothing to start."""

    async def plan(
        self, signal: Signal, body: bytes, as_json: bool, token: TokenIdentity | None
    ) -> Planned:
        return plan_body(self.accountant, signal, body, as_json, token)

    async def stop(self) -> None:
        """Nothing to stop."""


# -- worker side --------------------------------------------------------------------------

_WORKER_ACCOUNTANT: Accountant | None = None


def _init_worker(directory: Directory, settings: AccountingSettings) -> None:
    global _WORKER_ACCOUNTANT
    # Ctrl-C in a terminal signals the whole process group: the serving process decides
    # when its workers stop (it shuts the pool down), not the terminal.
    signals.signal(signals.SIGINT, signals.SIG_IGN)
    _exit_with_parent()
    _WORKER_ACCOUNTANT = Accountant(IdentityResolver(directory), settings)
    tune_gc()


def _exit_with_parent() -> None:
    """End this worker as soon as the serving process is gone, however it ended.

    A pool worker otherwise waits forever on its call queue when the serving process is
    killed (`kill -9`, the OOM killer): the queue's pipe is shared with the worker itself, so
    it never reads end-of-file, and the orphan would hold its memory until reboot.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _plan_in_worker(
    signal_name: str, body: bytes, as_json: bool, token: TokenIdentity | None
) -> tuple[str, Any]:
    """Runs in a worker. Errors come back as values: an IngestError's own pickling would lose
    its fields."""
    assert _WORKER_ACCOUNTANT is not None
    try:
        planned = plan_body(_WORKER_ACCOUNTANT, Signal(signal_name), body, as_json, token)
    except IngestError as error:
        return "refused", (error.kind.value, error.message, error.retry_after)
    if isinstance(planned, int):
        return "spans", planned
    return "plan", plancodec.encode(planned)


def _ready() -> int:
    return os.getpid()


# -- serving side -------------------------------------------------------------------------


class WorkerPlanner:
    """Plans bodies of `min_bytes` or more in `workers` child processes (spawned: the serving
    process has threads), smaller ones with `local`, in the serving process."""

    def __init__(
        self,
        workers: int,
        directory: Directory,
        settings: AccountingSettings,
        stats: SelfStats,
        local: LocalPlanner,
        min_bytes: int = WORKER_MIN_BYTES,
    ) -> None:
        self.workers = workers
        self._initargs = (directory, settings)
        self._pool: ProcessPoolExecutor | None = None
        self.stats = stats
        self.local = local
        self.min_bytes = min_bytes
        stats.plan_workers = workers

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=self._initargs,
        )

    async def start(self) -> None:
        """Start the workers now (one call per worker spawns them all), so the first requests
        do not wait for interpreters to start, and a worker that cannot start fails the
        collector's start-up with a readable error (OSError, like a busy port)."""
        self._pool = self._new_pool()
        loop = asyncio.get_running_loop()
        try:
            await asyncio.gather(
                *(loop.run_in_executor(self._pool, _ready) for _ in range(self.workers))
            )
        except BrokenProcessPool as exc:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            raise OSError(f"cannot start the plan workers: {exc}") from exc
        log.info("%d plan worker(s) started (pids %s)", self.workers, self.pids())

    def pids(self) -> list[int]:
        """Process ids of the running workers."""
        pool = self._pool
        return sorted(getattr(pool, "_processes", None) or ()) if pool is not None else []

    async def plan(
        self, signal: Signal, body: bytes, as_json: bool, token: TokenIdentity | None
    ) -> Planned:
        if len(body) < self.min_bytes:
            return await self.local.plan(signal, body, as_json, token)
        pool = self._pool
        if pool is None:
            raise IngestError(ErrorKind.UNAVAILABLE, "collector is stopping", WORKER_RETRY_AFTER_S)
        loop = asyncio.get_running_loop()
        try:
            kind, value = await loop.run_in_executor(
                pool, _plan_in_worker, signal.value, body, as_json, token
            )
        except BrokenProcessPool:
            self._replace(pool)
            raise IngestError(
                ErrorKind.UNAVAILABLE,
                "a plan worker died while decoding this request; retry later",
                WORKER_RETRY_AFTER_S,
            ) from None
        if kind == "plan":
            return plancodec.decode(value)
        if kind == "spans":
            return int(value)
        error_kind, message, retry_after = value
        raise IngestError(ErrorKind(error_kind), message, retry_after)

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        """Swap in a fresh pool once per breakage (every request of the broken pool sees
        the same BrokenProcessPool)."""
        if self._pool is broken:
            self.stats.plan_worker_restarts += 1
            log.error(
                "a plan worker died; starting a new pool (restart %d)",
                self.stats.plan_worker_restarts,
            )
            broken.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()

    async def stop(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.get_running_loop().run_in_executor(None, pool.shutdown)


Planner = LocalPlanner | WorkerPlanner
