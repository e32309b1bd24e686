"""Shared helpers of the store tests: a workload with known totals, a client that resends every
batch until it is acknowledged (as the OTel SDK does), collectors as real `cc-collector serve`
processes, and readers of what the store and /metrics hold.

The workload is raw OTLP built with tests.builders, so every request is known in advance and
can be sent again byte for byte: what a retrying client does after a 503, a crash or a lost
answer. Each simulated Claude Code process exports, per round, one metrics request (cumulative
token and cost streams, a delta lines-of-code point, the session count in round 0) and one
logs request (an `api_request` with the same tokens and cost, and a `user_prompt`). Expected
totals are computed from the workload alone, never from collector output.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
import yaml
from google.rpc import error_details_pb2, status_pb2

from collector.config import Config, parse
from tests.builders import (
    CUMULATIVE,
    DELTA,
    SECOND,
    T0,
    api_request,
    attrs,
    event,
    metrics_request,
    point,
    sum_metric,
)
from tests.builders import logs_request as build_logs_request
from tests.procs import free_ports
from tests.replay import GRPC_METHODS
from tests.sdk.claude_like import Expected, Samples, mismatches

MODEL = "claude-opus-5-5"
TERMINAL = "xterm-256color"
LABEL_SEP = "\x1f"
CLI = Path(sys.executable).parent / "cc-collector"


# -- configuration -------------------------------------------------------------------------


def config(store: dict[str, Any], replica: str | None = None, **extra: Any) -> Config:
    """An in-process collector config on ephemeral loopback ports with exactly this store
    section (`{"path": ...}`, `{"url": ...}`), and `replica_id` when given."""
    section = {**store, **({"replica_id": replica} if replica else {})}
    document: dict[str, Any] = {
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": "127.0.0.1:0"},
                    "http": {"endpoint": "127.0.0.1:0"},
                }
            }
        },
        "exporters": {"prometheus": {"endpoint": "127.0.0.1:0"}, "store": section},
        **extra,
    }
    return parse(document, {})


# -- the workload ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Who:
    """One simulated Claude Code process: its install, user, team and session."""

    email: str
    team: str
    user_id: str
    session: str
    start_ns: int

    def attributes(self) -> dict[str, Any]:
        return {
            "user.id": self.user_id,
            "user.email": self.email,
            "team.id": self.team,
            "session.id": self.session,
        }


@dataclass(frozen=True)
class Call:
    """What one round of one process did: one API call and some edited lines."""

    input: int
    output: int
    cost_nano: int
    lines: int
    duration_ms: int


@dataclass(frozen=True)
class Batch:
    """One OTLP export request, ready to be sent (and sent again) as is."""

    signal: str  # "metrics" | "logs"
    body: bytes
    items: int  # data points or log records in it
    process: int
    round: int


@dataclass
class Workload:
    """`processes` Claude Code processes of `users` people, `rounds` exports each."""

    processes: int
    rounds: int
    seed: int = 1
    users: int = 3
    teams: int = 2
    tag: str = "w"
    who: list[Who] = field(init=False)
    calls: list[list[Call]] = field(init=False)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        self.who = []
        for p in range(self.processes):
            u = p % self.users
            email = f"{self.tag}-dev{u}@example.com"
            self.who.append(
                Who(
                    email=email,
                    team=f"{self.tag}-team{u % self.teams}",
                    user_id=hashlib.sha256(email.encode()).hexdigest(),
                    session=f"{self.tag}-session-{p}",
                    start_ns=T0 + p * 1_000_000,
                )
            )
        self.calls = [
            [
                Call(
                    input=rng.randint(1, 5000),
                    output=rng.randint(1, 2000),
                    cost_nano=rng.randint(1, 999_999) * 100,  # 7 decimals, like Claude Code
                    lines=rng.randint(1, 40),
                    duration_ms=rng.randint(200, 20_000),
                )
                for _ in range(self.rounds)
            ]
            for _ in range(self.processes)
        ]

    def time_ns(self, p: int, k: int) -> int:
        return self.who[p].start_ns + (k + 1) * SECOND

    def batches(self, p: int) -> list[Batch]:
        """Process `p`'s requests in the order it sends them: metrics, then logs, per round."""
        who, out = self.who[p], []
        base = who.attributes()
        cum_in = cum_out = cum_nano = 0
        for k, call in enumerate(self.calls[p]):
            t = self.time_ns(p, k)
            cum_in, cum_out = cum_in + call.input, cum_out + call.output
            cum_nano += call.cost_nano

            start = who.start_ns
            metrics = [
                sum_metric(
                    "claude_code.token.usage",
                    _point(base, cum_in, start, t, type="input", model=MODEL),
                    _point(base, cum_out, start, t, type="output", model=MODEL),
                    temporality=CUMULATIVE,
                ),
                sum_metric(
                    "claude_code.cost.usage",
                    _point(base, cum_nano / 1e9, start, t, model=MODEL),
                    temporality=CUMULATIVE,
                ),
                sum_metric(
                    "claude_code.lines_of_code.count",
                    _point(base, call.lines, t - SECOND, t, type="added", model=MODEL),
                    temporality=DELTA,
                ),
            ]
            if k == 0:
                metrics.append(
                    sum_metric("claude_code.session.count", _point(base, 1, t - SECOND, t))
                )
            body = metrics_request(*metrics).SerializeToString()
            out.append(Batch("metrics", body, 4 + (k == 0), p, k))
            records = [
                event(
                    "user_prompt",
                    {**base, "prompt.id": f"{self.tag}-prompt-{p}-{k}", "prompt_length": "12"},
                    time_ns=t,
                    sequence=2 * k,
                ),
                api_request(
                    f"{self.tag}-req-{p}-{k}",
                    time_ns=t,
                    model=MODEL,
                    input_tokens=call.input,
                    output_tokens=call.output,
                    cost_usd=call.cost_nano / 1e9,
                    duration_ms=call.duration_ms,
                    sequence=2 * k + 1,
                    extra=base,
                ),
            ]
            out.append(Batch("logs", build_logs_request(*records).SerializeToString(), 2, p, k))
        return out

    def all_batches(self) -> list[list[Batch]]:
        return [self.batches(p) for p in range(self.processes)]

    def items(self) -> int:
        return sum(b.items for p in range(self.processes) for b in self.batches(p))

    # -- what must be counted ----------------------------------------------------------------

    def expected(self) -> dict[tuple[str, str], Expected]:
        """Per (user, team): what /metrics must show, in the terms of tests/sdk/claude_like."""
        out: dict[tuple[str, str], Expected] = {}
        for p, who in enumerate(self.who):
            want = out.setdefault((who.email, who.team), Expected())
            want.add("claude_code_sessions_total", (TERMINAL,), 1)
            for call in self.calls[p]:
                want.add("claude_code_tokens_total", (MODEL, "input"), call.input)
                want.add("claude_code_tokens_total", (MODEL, "output"), call.output)
                want.add("claude_code_cost_usd_total", (MODEL,), Decimal(call.cost_nano) / 10**9)
                want.add("claude_code_lines_of_code_total", ("added",), call.lines)
                want.add("claude_code_prompts_total", (), 1)
                want.add("claude_code_api_requests_total", (MODEL,), 1)
                want.add("claude_code_events_total", ("api_request",), 1)
                want.add("claude_code_events_total", ("user_prompt",), 1)
                want.add("claude_code_api_request_duration_seconds_count", (MODEL,), 1)
                want.add(
                    "claude_code_api_request_duration_seconds_sum",
                    (MODEL,),
                    Decimal(call.duration_ms) / 1000,
                )
        return out

    def expected_usage(self) -> Counter[tuple[str, str, str]]:
        """What the store's `usage_daily` must hold: (actor, metric, labels) -> amount."""
        out: Counter[tuple[str, str, str]] = Counter()
        for p, who in enumerate(self.who):
            a = who.email
            out[(a, "claude_code_sessions_total", TERMINAL)] += 1
            for call in self.calls[p]:
                out[(a, "claude_code_tokens_total", f"{MODEL}{LABEL_SEP}input")] += call.input
                out[(a, "claude_code_tokens_total", f"{MODEL}{LABEL_SEP}output")] += call.output
                out[(a, "claude_code_cost_usd_total", MODEL)] += call.cost_nano
                out[(a, "claude_code_lines_of_code_total", "added")] += call.lines
                out[(a, "claude_code_prompts_total", "")] += 1
                out[(a, "claude_code_api_requests_total", MODEL)] += 1
                out[(a, "claude_code_events_total", "api_request")] += 1
                out[(a, "claude_code_events_total", "user_prompt")] += 1
        return out


def _point(base: dict[str, Any], value: float, start: int, end: int, **own: Any) -> Any:
    return point(value, time_ns=end, start_ns=start, attributes=attrs({**base, **own}))


def exposition_problems(samples: Samples, per_user: dict[tuple[str, str], Expected]) -> list[str]:
    """Every contract family compared per user, per team and over everything."""
    problems: list[str] = []
    teams: dict[str, Expected] = {}
    everything = Expected()
    for (user, team), want in per_user.items():
        problems += mismatches(samples, want, user=user, team=team)
        teams[team] = teams.get(team, Expected()) + want
        everything = everything + want
    for team, want in teams.items():
        problems += mismatches(samples, want, team=team)
    return problems + mismatches(samples, everything)


def merge_expected(*parts: dict[tuple[str, str], Expected]) -> dict[tuple[str, str], Expected]:
    out: dict[tuple[str, str], Expected] = {}
    for part in parts:
        for key, want in part.items():
            out[key] = out.get(key, Expected()) + want
    return out


# -- sending ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One attempt: `status` is an HTTP status or a gRPC code, None when nothing answered
    (connection refused or reset, or a timeout); `retry_after` in seconds when the collector
    asked for a delay (HTTP Retry-After, gRPC RetryInfo)."""

    status: int | grpc.StatusCode | None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status in (200, grpc.StatusCode.OK)


def send(target: Any, batch: Batch, transport: str, timeout: float = 10) -> Reply:
    """One attempt to export `batch` to `target` (anything with `http_base`/`grpc_endpoint`)."""
    if transport == "http":
        request = urllib.request.Request(
            f"{target.http_base}/v1/{batch.signal}",
            data=batch.body,
            headers={"Content-Type": "application/x-protobuf"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read()
                return Reply(response.status)
        except urllib.error.HTTPError as error:
            after = error.headers.get("Retry-After")
            return Reply(error.code, float(after) if after is not None else None)
        except (urllib.error.URLError, OSError):
            return Reply(None)
    with grpc.insecure_channel(target.grpc_endpoint) as channel:
        call = channel.unary_unary(GRPC_METHODS[batch.signal])
        try:
            call(batch.body, timeout=timeout)
            return Reply(grpc.StatusCode.OK)
        except grpc.RpcError as error:
            code = error.code()  # type: ignore[attr-defined]
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) and not (
                error.trailing_metadata()  # type: ignore[attr-defined]
            ):
                return Reply(None)  # no server behind the port: gRPC's own UNAVAILABLE
            return Reply(code, _grpc_retry_delay(error))


def _grpc_retry_delay(error: Any) -> float | None:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.RetryInfo()
                if detail.Unpack(info):
                    return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    return None


#: what an OTLP exporter retries: no answer at all, or a transient refusal.
RETRYABLE = (
    None,
    429,
    502,
    503,
    504,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
)


@dataclass
class Resender:
    """Sends a batch until it is acknowledged, like an OTLP exporter retrying with backoff.

    A transient answer (503, 429, a reset connection, a refused one: `RETRYABLE`) means "not
    acknowledged": the same bytes go again after `pause` s (a short fixed backoff: the tests
    do not wait out the collector's Retry-After). Any other refusal fails the test at once.
    Every attempt is kept in `replies`.
    """

    pause: float = 0.05
    deadline_s: float = 30.0
    replies: list[tuple[Batch, Reply]] = field(default_factory=list)

    def deliver(self, target: Callable[[], Any] | Any, batch: Batch, transport: str) -> int:
        """Attempts until acknowledged (>= 1); fails the test past `deadline_s`."""
        deadline = time.monotonic() + self.deadline_s
        attempts = 0
        while True:
            attempts += 1
            reply = send(target() if callable(target) else target, batch, transport)
            self.replies.append((batch, reply))
            if reply.ok:
                return attempts
            if reply.status not in RETRYABLE:
                pytest.fail(f"batch {batch.signal} p{batch.process} r{batch.round}: {reply}")
            if time.monotonic() > deadline:
                pytest.fail(f"batch {batch.signal} p{batch.process} r{batch.round}: {reply}")
            time.sleep(self.pause)


# -- reading results -------------------------------------------------------------------------


def total(samples: Samples, name: str, **match: str) -> float:
    return sum(
        v
        for (n, labels), v in samples.items()
        if n == name and all(dict(labels).get(k) == x for k, x in match.items())
    )


def contract_samples(samples: Samples) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The `claude_code_*` counters and histograms: what a replica counted itself. Gauges
    (last-seen timestamps, info, the store's global gauges) are not counts and are left out."""
    return {
        k: v
        for k, v in samples.items()
        if k[0].startswith("claude_code_")
        and k[0].endswith(("_total", "_bucket", "_count", "_sum"))
    }


def summed(all_samples: Iterable[Samples]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Sample-wise sum over several scrapes: what `sum by (...)` over replicas gives."""
    out: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
    for samples in all_samples:
        for key, value in contract_samples(samples).items():
            out[key] += value  # type: ignore[assignment]
    return dict(out)


def store_usage(store: str) -> Counter[tuple[str, str, str]]:
    """`usage_daily` summed per (actor, metric, labels), from a SQLite path or PostgreSQL URL."""
    sql = (
        "SELECT actor, metric, labels, sum(amount) FROM usage_daily GROUP BY actor, metric, labels"
    )
    if store.startswith("postgresql://"):
        with psycopg.connect(store) as conn:
            rows = conn.execute(sql).fetchall()
    else:
        conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=30)
        try:
            rows = conn.execute(sql).fetchall()
        finally:
            conn.close()
    return Counter({(a, m, labels): int(n) for a, m, labels, n in rows if n})


# -- a collector as a real process -------------------------------------------------------------


class ServedCollector:
    """`cc-collector serve --config FILE` on fixed loopback ports, to kill -9 and restart.

    Every start reuses the same config (store, replica id, ports). Output goes to a log that
    failures print. Use as a context manager: the process is killed at the end whatever
    happens.
    """

    def __init__(self, folder: Path, store: dict[str, Any], replica: str) -> None:
        self.folder = folder
        self.grpc_port, self.http_port, self.metrics_port = free_ports(3)
        self.config = folder / f"{replica}.yaml"
        self.log = folder / f"{replica}.log"
        document = {
            "receivers": {
                "otlp": {
                    "protocols": {
                        "grpc": {"endpoint": f"127.0.0.1:{self.grpc_port}"},
                        "http": {"endpoint": f"127.0.0.1:{self.http_port}"},
                    }
                }
            },
            "exporters": {
                "prometheus": {"endpoint": f"127.0.0.1:{self.metrics_port}"},
                "store": {**store, "replica_id": replica},
            },
        }
        self.config.write_text(yaml.safe_dump(document))
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CC_")}
        with self.log.open("a") as out:
            out.write(f"--- start {self.starts + 1}\n")
            out.flush()
            self.process = subprocess.Popen(
                [str(CLI), "serve", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.folder,
            )
        self.starts += 1
        deadline = time.monotonic() + 20  # stops a hang; not a performance check
        while not self._ready():
            if self.process.poll() is not None:
                pytest.fail(f"collector exited ({self.process.returncode}):\n{self.output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"collector not ready after 20 s:\n{self.output()}")
            time.sleep(0.02)

    def _ready(self) -> bool:
        url = f"http://127.0.0.1:{self.metrics_port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, whatever was in flight is cut off."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=20)

    def stop(self) -> None:
        """SIGTERM: the graceful shutdown; it must exit 0."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=30) == 0, self.output()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]

    def __enter__(self) -> ServedCollector:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=20)


def round_robin(targets: Sequence[Any], offset: int = 0) -> Callable[[], Any]:
    """A client-side load balancer: every call gives the next target."""
    state = {"next": offset}

    def pick() -> Any:
        target = targets[state["next"] % len(targets)]
        state["next"] += 1
        return target

    return pick
