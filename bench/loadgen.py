"""The load generator: OTLP clients in their own processes, closed-loop or open-loop.

Why separate processes: the collector is one Python process with one event loop; a client in
the same interpreter (or one fighting it for the GIL) would measure itself. Workers are forked
after the request bodies exist, so they share them copy-on-write and start sending at one
instant (a shared start event), and each reports its own latencies and counts.

- closed loop (`concurrency` lanes per worker, each sending its next request as soon as the
  previous one is acknowledged): the maximum sustained throughput.
- open loop (`rate` requests/s per worker, on a fixed schedule whatever the answers): ack
  latency at a fixed load. Latency is measured from the *scheduled* send time, so a stalled
  collector cannot hide its stall by slowing the client down (coordinated omission).

Transports are the real ones: OTLP/gRPC through a grpcio `aio` channel (unary calls on raw
bytes), OTLP/HTTP through an aiohttp keep-alive client session, protobuf or JSON bodies, with
the ingest token as a bearer header. 429/503 and RESOURCE_EXHAUSTED/UNAVAILABLE are retried
after the server's delay (OTLP client behaviour) and counted; any other failure is an error
that makes the run invalid. Every loop is bounded by the number of requests it was given.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import multiprocessing.connection
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bench.collector_proc import INGEST_TOKEN
from bench.payloads import Generator, Request, Spec, to_json

PROTOCOLS = ("grpc", "http-protobuf", "http-json")
_GRPC_METHODS = {
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}
#: at most this many open-loop requests outstanding per worker; beyond, the schedule slips
#: (counted as `late`) instead of piling up tasks without bound.
MAX_OUTSTANDING = 256
#: no request may take longer than this (a hang ends the run as an error, never blocks it).
REQUEST_TIMEOUT_S = 300.0

#: bodies shared with forked workers: set by `run()` before forking, read by the children.
_SHARED: list[Request] = []
#: records acknowledged so far, over all workers (a shared counter, for progress sampling).
_PROGRESS: Any = None


@dataclass
class WorkerResult:
    requests: int = 0
    records: int = 0
    errors: int = 0
    retries: int = 0
    rejected: int = 0
    late: int = 0
    started: float = 0.0
    finished: float = 0.0
    latencies: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)
    #: the expectation of what this worker generated itself (on-the-fly sources only).
    expected: Any = None


@dataclass
class LoadResult:
    """The merged result of all workers of one run."""

    protocol: str
    mode: str
    requests: int
    records: int
    errors: int
    retries: int
    rejected: int
    late: int
    seconds: float
    latencies: list[float]
    error_samples: list[str]
    expected: Any = None

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, q: float) -> float:
        """The q-quantile of the latencies (nearest rank), in seconds."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))
        return ordered[index]


# -- clients ----------------------------------------------------------------------------------


class _Client:
    async def send(self, request: Request) -> tuple[int, int]:
        """Send until acknowledged; returns (retries, rejected items)."""
        raise NotImplementedError

    async def close(self) -> None:
        pass


class _HttpClient(_Client):
    def __init__(self, base: str, as_json: bool, lanes: int, token: str) -> None:
        import aiohttp

        self.aiohttp = aiohttp
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=lanes, force_close=False),
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
            auto_decompress=False,
        )
        self.urls = {s: f"{base}/v1/{s}" for s in ("metrics", "logs")}
        self.as_json = as_json
        self.headers = {
            "Content-Type": "application/json" if as_json else "application/x-protobuf",
            "Authorization": f"Bearer {token}",
        }

    async def send(self, request: Request) -> tuple[int, int]:
        body = request.body
        retries = 0
        while True:
            async with self.session.post(
                self.urls[request.signal], data=body, headers=self.headers
            ) as response:
                data = await response.read()
                if response.status == 200:
                    return retries, _rejected(request.signal, data, self.as_json)
                if response.status in (429, 503) and retries < 100:
                    retries += 1
                    delay = float(response.headers.get("Retry-After", "1"))
                    await asyncio.sleep(min(delay, 1.0))
                    continue
                raise RuntimeError(f"HTTP {response.status}: {data[:200]!r}")

    async def close(self) -> None:
        await self.session.close()


class _GrpcClient(_Client):
    def __init__(self, target: str, token: str) -> None:
        import grpc
        from grpc import aio

        self.grpc = grpc
        self.channel = aio.insecure_channel(
            target, options=[("grpc.max_send_message_length", 64 << 20)]
        )
        self.calls = {s: self.channel.unary_unary(m) for s, m in _GRPC_METHODS.items()}
        self.metadata = (("authorization", f"Bearer {token}"),)

    async def send(self, request: Request) -> tuple[int, int]:
        retries = 0
        retryable = (self.grpc.StatusCode.RESOURCE_EXHAUSTED, self.grpc.StatusCode.UNAVAILABLE)
        while True:
            try:
                data = await self.calls[request.signal](
                    request.body, metadata=self.metadata, timeout=REQUEST_TIMEOUT_S
                )
            except self.grpc.aio.AioRpcError as error:
                if error.code() in retryable and retries < 100:
                    retries += 1
                    await asyncio.sleep(0.2)
                    continue
                raise RuntimeError(f"gRPC {error.code().name}: {error.details()}") from None
            return retries, _rejected(request.signal, data, False)

    async def close(self) -> None:
        await self.channel.close()


def _rejected(signal: str, data: bytes, as_json: bool) -> int:
    """Items the collector refused inside an accepted request (OTLP partial success)."""
    if not data:
        return 0
    if as_json:
        import json

        partial = json.loads(data).get("partialSuccess") or {}
        return int(partial.get("rejectedLogRecords") or partial.get("rejectedDataPoints") or 0)
    if signal == "logs":
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
            ExportLogsServiceResponse,
        )

        return ExportLogsServiceResponse.FromString(data).partial_success.rejected_log_records
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceResponse,
    )

    return ExportMetricsServiceResponse.FromString(data).partial_success.rejected_data_points


def _client(job: Job, lanes: int) -> _Client:
    if job.protocol == "grpc":
        return _GrpcClient(job.grpc_target, job.token)
    return _HttpClient(job.http_base, job.protocol == "http-json", lanes, job.token)


def _progress(records: int) -> None:
    if _PROGRESS is not None:
        with _PROGRESS.get_lock():
            _PROGRESS.value += records


# -- loops ------------------------------------------------------------------------------------


async def _send(
    client: _Client, request: Request, out: WorkerResult, since: float, clock: Callable[[], float]
) -> None:
    """Send one request and record its outcome; latency is counted from `since`."""
    try:
        retries, rejected = await client.send(request)
    except Exception as exc:
        out.errors += 1
        if len(out.error_samples) < 5:
            out.error_samples.append(repr(exc)[:300])
        return
    out.latencies.append(clock() - since)
    out.requests += 1
    out.records += request.records
    out.retries += retries
    out.rejected += rejected
    _progress(request.records)


async def _closed_loop(
    client: _Client, source: Iterator[Request], lanes: int, out: WorkerResult
) -> None:
    async def lane() -> None:
        for request in source:  # one shared iterator: each lane takes the next request
            await _send(client, request, out, time.perf_counter(), time.perf_counter)

    await asyncio.gather(*(lane() for _ in range(lanes)))


async def _open_loop(
    client: _Client, source: Iterable[Request], rate: float, out: WorkerResult
) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    outstanding: set[asyncio.Task[None]] = set()

    async def one(request: Request, scheduled: float) -> None:
        await _send(client, request, out, scheduled, loop.time)

    for i, request in enumerate(source):
        scheduled = start + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.05:
            out.late += 1
        while len(outstanding) >= MAX_OUTSTANDING:
            await asyncio.wait(outstanding, return_when=asyncio.FIRST_COMPLETED)
        task = asyncio.create_task(one(request, scheduled))
        outstanding.add(task)
        task.add_done_callback(outstanding.discard)
    if outstanding:
        await asyncio.wait(outstanding)


# -- worker processes -------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """What one run asks of the workers."""

    protocol: str
    grpc_target: str
    http_base: str
    mode: str = "closed"  # "closed" | "open"
    workers: int = 1
    #: closed loop: requests in flight per worker.
    lanes: int = 8
    #: open loop: records/s over all workers (each worker gets its share).
    records_per_s: float = 0.0
    #: generate on the fly from this spec (each worker its own partition) instead of sending
    #: the shared pre-built requests.
    spec: Spec | None = None
    token: str = INGEST_TOKEN


def _source(job: Job, index: int, out: WorkerResult) -> Iterator[Request]:
    if job.spec is not None:
        gen = Generator(job.spec, index, job.workers)
        if job.protocol == "http-json":
            for request in gen:
                yield Request(request.signal, to_json(request), request.records)
        else:
            yield from gen
        out.expected = gen.expected
        return
    yield from _SHARED[index :: job.workers]


def _worker(job: Job, index: int, ready: Any, go: Any, conn: Any) -> None:
    out = WorkerResult()
    try:
        asyncio.run(_worker_main(job, index, ready, go, out))
    except Exception as exc:
        out.errors += 1
        out.error_samples.append(f"worker crashed: {exc!r}"[:300])
    conn.send(out)
    conn.close()


async def _worker_main(job: Job, index: int, ready: Any, go: Any, out: WorkerResult) -> None:
    lanes = job.lanes if job.mode == "closed" else MAX_OUTSTANDING
    client = _client(job, lanes)
    source = _source(job, index, out)
    ready.release()
    # Everyone starts together (waiting in a thread keeps this loop free).
    await asyncio.get_running_loop().run_in_executor(None, go.wait)
    out.started = time.monotonic()
    try:
        if job.mode == "closed":
            await _closed_loop(client, source, job.lanes, out)
        else:
            requests = list(source) if job.spec is None else source
            per_worker = job.records_per_s / job.workers
            sample = _SHARED[index] if job.spec is None and _SHARED else None
            batch = sample.records if sample else (job.spec.batch_size if job.spec else 512)
            await _open_loop(client, requests, per_worker / batch, out)
    finally:
        out.finished = time.monotonic()
        await client.close()


def run(
    job: Job,
    requests: list[Request] | None = None,
    on_tick: Callable[[float, int], None] | None = None,
    tick_s: float = 1.0,
) -> LoadResult:
    """Fork `job.workers` workers, start them together, wait for all, merge their results.

    With `requests`, the workers split them (worker i sends every workers-th request);
    with `job.spec`, each generates its own partition first (before the common start).
    `on_tick(seconds since start, records acknowledged so far)` is called every `tick_s`
    while the load runs (RSS sampling during the soak).
    """
    global _SHARED, _PROGRESS
    _SHARED = requests or []
    ctx = mp.get_context("fork")
    _PROGRESS = ctx.Value("q", 0)
    ready = ctx.Semaphore(0)
    go = ctx.Event()
    pipes = []
    procs = []
    for index in range(job.workers):
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_worker, args=(job, index, ready, go, child), daemon=True)
        proc.start()
        child.close()
        pipes.append(parent)
        procs.append(proc)
    for _ in range(job.workers):
        if not ready.acquire(timeout=600):
            raise RuntimeError("load generator workers did not get ready")
    started = time.monotonic()
    go.set()
    received: dict[int, WorkerResult] = {}
    while len(received) < len(pipes):
        waiting = [p for i, p in enumerate(pipes) if i not in received]
        for pipe in mp.connection.wait(waiting, timeout=tick_s):
            received[pipes.index(pipe)] = pipe.recv()  # type: ignore[arg-type]
        if on_tick is not None:
            on_tick(time.monotonic() - started, _PROGRESS.value)
        for i, proc in enumerate(procs):
            if i not in received and not proc.is_alive() and not pipes[i].poll():
                crashed = WorkerResult(errors=1, started=started, finished=time.monotonic())
                crashed.error_samples.append(f"worker {i} died ({proc.exitcode})")
                received[i] = crashed
    results = [received[i] for i in range(len(pipes))]
    for proc in procs:
        proc.join(timeout=60)
    _SHARED = []
    _PROGRESS = None
    expected = None
    for r in results:
        if r.expected is not None:
            expected = r.expected if expected is None else expected.merge(r.expected)
    finished = max(r.finished for r in results)
    return LoadResult(
        protocol=job.protocol,
        mode=job.mode,
        requests=sum(r.requests for r in results),
        records=sum(r.records for r in results),
        errors=sum(r.errors for r in results),
        retries=sum(r.retries for r in results),
        rejected=sum(r.rejected for r in results),
        late=sum(r.late for r in results),
        seconds=finished - started,
        latencies=[x for r in results for x in r.latencies],
        error_samples=[e for r in results for e in r.error_samples][:5],
        expected=expected,
    )


def main(argv: list[str] | None = None) -> int:
    """Load a running collector by hand (e.g. while profiling it): generate, send, report,
    and with --metrics-url compare its totals with what was sent (a fresh collector only)."""
    import argparse

    parser = argparse.ArgumentParser(description="Claude-Code-shaped OTLP load, loopback only.")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="http-protobuf")
    parser.add_argument("--grpc", default="127.0.0.1:4317", help="OTLP/gRPC host:port")
    parser.add_argument("--http", default="http://127.0.0.1:4318", help="OTLP/HTTP base URL")
    parser.add_argument("--token", default=INGEST_TOKEN, help="ingest bearer token")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=512, help="records per request")
    parser.add_argument("--temporality", choices=("delta", "cumulative"), default="delta")
    parser.add_argument("--workers", type=int, default=1, help="load generator processes")
    parser.add_argument("--lanes", type=int, default=16, help="requests in flight per worker")
    parser.add_argument("--rate", type=float, default=0, help="records/s: open loop at this rate")
    parser.add_argument("--seed", type=int, default=1, help="another seed sends new records")
    parser.add_argument("--metrics-url", default="", help="verify totals against this /metrics")
    args = parser.parse_args(argv)
    for host in (args.grpc, args.http):
        if not any(x in host for x in ("127.", "localhost", "[::1]")):
            parser.error(f"loopback targets only: {host}")
    spec = Spec(
        records=args.records,
        users=args.users,
        sessions=args.sessions,
        batch_size=args.batch,
        temporality=args.temporality,
        seed=args.seed,
    )
    job = Job(
        args.protocol,
        args.grpc,
        args.http.rstrip("/"),
        mode="open" if args.rate else "closed",
        workers=args.workers,
        lanes=args.lanes,
        records_per_s=args.rate,
        spec=spec,
        token=args.token,
    )
    result = run(job)
    print(
        f"{spec.label()} over {args.protocol}: {result.records:,} records in "
        f"{result.seconds:.2f} s = {result.records_per_s:,.0f} records/s; request latency "
        f"p50 {result.percentile(0.5) * 1000:.1f} ms, p99 {result.percentile(0.99) * 1000:.1f} "
        f"ms; errors {result.errors}, retries {result.retries}, rejected {result.rejected}"
    )
    for sample in result.error_samples:
        print("  error:", sample)
    if args.metrics_url and result.expected is not None:
        from bench.collector_proc import http_get
        from bench.run import verify_collector

        problems = verify_collector(http_get(args.metrics_url)[1].decode(), result.expected)
        print("totals: " + ("VERIFIED" if not problems else "MISMATCH " + "; ".join(problems)))
        return 1 if problems else 0
    return 1 if result.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
