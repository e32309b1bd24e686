"""A real `cc-collector serve` process for the benchmarks, and what /proc says about it.

Each run gets a fresh temporary folder (config, SQLite store, log) and free loopback ports, so
runs never see each other's state and a benchmark measures exactly what an operator runs:
the console script, the default SQLite store with its group commit ("ack means durable").
RSS and CPU time are read from /proc for the collector's whole process tree (all threads of
the serving process: the event loop, the store writer and grpc's pollers; and its plan
workers), which costs nothing in the measured processes.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).parent / "cc-collector"
INGEST_TOKEN = "bench-ingest-token-0123456789"
API_KEY = "bench-api-key-0123456789abcdef"
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def free_ports(n: int) -> list[int]:
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def process_tree(pid: int) -> list[int]:
    """`pid` and its live descendants: the collector's plan workers (collector/planning.py)
    and multiprocessing's helper process count as the collector."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        parents.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(parents.get(current, ()))
    return tree


def _each(pids: list[int], read: Callable[[int], float]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):  # ended between listing and reading
            total += read(pid)
    return total


def _rss_one(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def _peak_one(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _cpu_one(pid: int, waited_children: bool) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3 of stat); utime, stime, cutime, cstime are fields 14-17.
    ticks = int(fields[11]) + int(fields[12])
    if waited_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _CLK_TCK


def rss_bytes(pid: int) -> int:
    """Resident set size now (VmRSS) of the process and its descendants, summed (pages
    shared between them count once per process: an upper bound)."""
    return int(_each(process_tree(pid), _rss_one))


def peak_rss_bytes(pid: int) -> int:
    """The sum over the process and its live descendants of each one's RSS high-water mark
    (VmHWM): an upper bound of the tree's peak, as the peaks need not coincide."""
    return int(_each(process_tree(pid), _peak_one))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of the process (all threads), its live descendants,
    and the descendants it already waited for (a replaced worker)."""
    return _each(process_tree(pid), lambda p: _cpu_one(p, waited_children=p == pid))


_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def samples(text: str, prefixes: tuple[str, ...]) -> Iterator[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of the Prometheus text-format samples whose name starts with one
    of `prefixes`. A small parser: prometheus_client's takes seconds on a 10k-user scrape."""
    for line in text.splitlines():
        if not line.startswith(prefixes):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, labels, value = match.groups()
        yield name, dict(_LABEL.findall(labels or "")), float(value)


def http_get(
    url: str, headers: dict[str, str] | None = None, timeout: float = 120.0
) -> tuple[int, bytes, float]:
    """(status, body, seconds) of one GET on a fresh connection."""
    request = urllib.request.Request(url, headers=headers or {})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        body, status = error.read(), error.code
    return status, body, time.perf_counter() - started


class Server:
    """A benchmarked server process: started with `start()`, stopped with `stop()`."""

    name = "server"

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.workdir = Path(tempfile.mkdtemp(prefix=f"cc-bench-{self.name}-"))
        self.grpc_port, self.http_port, self.metrics_port = free_ports(3)
        self.log = self.workdir / "server.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/readyz"

    def cwd(self) -> Path:
        return self.workdir

    def start(self, timeout: float = 60.0) -> Server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CC_")}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.command(), stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.cwd()
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited ({self.proc.returncode}):\n{self.log.read_text()}"
                )
            try:
                if http_get(self.ready_url(), timeout=2)[0] == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} not ready in {timeout:.0f} s")
            time.sleep(0.05)

    def stop(self, keep: bool = False) -> None:
        """SIGTERM (graceful: queued commits finish), then remove the folder."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        if not keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- measurements -----------------------------------------------------------------------

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def peak_rss(self) -> int:
        return peak_rss_bytes(self.pid)

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def scrape(self) -> tuple[str, float, int]:
        """(text, seconds, bytes on the wire) of one uncompressed GET /metrics."""
        status, body, seconds = http_get(self.metrics_url)
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        return body.decode(), seconds, len(body)

    def tail_log(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Collector(Server):
    """`cc-collector serve` with a temporary config: SQLite store (or memory), one ingest
    token (auth on, as in production), one API key, loopback ports."""

    name = "collector"

    def __init__(self, store: str = "sqlite", max_users: int = 10_000, **extra: Any) -> None:
        super().__init__()
        self.store = store
        self.max_users = max_users
        self.config = self.workdir / "config.yaml"
        self.config.write_text(self._config())

    def _config(self) -> str:
        store = "memory: true" if self.store == "memory" else "path: store/collector.db"
        return f"""
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{self.grpc_port}
      http:
        endpoint: 127.0.0.1:{self.http_port}
    auth:
      tokens:
        - name: bench
          token: {INGEST_TOKEN}
exporters:
  store:
    {store}
    replica_id: bench
  prometheus:
    endpoint: 127.0.0.1:{self.metrics_port}
    max_users: {self.max_users}
extensions:
  api:
    keys:
      - name: bench
        key: {API_KEY}
        role: viewer
service:
  telemetry:
    logs:
      level: warning
"""

    def command(self) -> list[str]:
        return [str(CLI), "serve", "--config", str(self.config)]

    def api_get(self, path: str) -> tuple[int, bytes, float]:
        return http_get(
            f"http://127.0.0.1:{self.metrics_port}{path}", headers={"x-api-key": API_KEY}
        )

    def store_bytes(self) -> int:
        folder = self.workdir / "store"
        return sum(p.stat().st_size for p in folder.glob("*")) if folder.exists() else 0


class NaiveReceiver(Server):
    """The naive baseline of bench/baseline/naive_receiver.py, as its own process."""

    name = "baseline"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "bench.baseline.naive_receiver",
            "--http-port",
            str(self.http_port),
            "--grpc-port",
            str(self.grpc_port),
            "--metrics-port",
            str(self.metrics_port),
        ]

    def cwd(self) -> Path:
        return ROOT  # so that `-m bench.baseline...` resolves
