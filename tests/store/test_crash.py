"""kill -9 in the middle of a stream: after restarts, totals equal exactly what was sent.

The client behaves like an OTLP SDK exporter: a request that was not answered 200 (connection
refused or reset by the kill, 503) is sent again until it is. Requests the collector had
committed before dying are then duplicates; requests it had not are counted once on retry.
"""

from __future__ import annotations

import random
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.builders import SECOND, T0, api_request, claude_metric, logs_request, metrics_request
from tests.procs import free_ports, http_status, scrape, serve, total, wait_for

REQUESTS = 240
KILLS = 3


class RetryingClient(threading.Thread):
    """Sends every body until it gets a 200, like the SDK's retry with backoff."""

    def __init__(self, base: str, bodies: list[tuple[str, bytes]]) -> None:
        super().__init__(daemon=True)
        self.base, self.bodies = base, bodies
        self.acknowledged = 0
        self.retries = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for signal_name, body in self.bodies:
                deadline = time.monotonic() + 60
                while not self._send(signal_name, body):
                    self.retries += 1
                    if time.monotonic() > deadline:
                        raise TimeoutError("no collector answered for 60 s")
                    time.sleep(0.02)
                self.acknowledged += 1
        except BaseException as exc:
            self.error = exc

    def _send(self, signal_name: str, body: bytes) -> bool:
        request = urllib.request.Request(
            f"{self.base}/v1/{signal_name}",
            data=body,
            headers={"Content-Type": "application/x-protobuf"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, OSError):
            return False


def _workload(seed: int) -> tuple[list[tuple[str, bytes]], int, int]:
    """Delta metrics and api_request events for the same calls (counted once), in one list."""
    rng = random.Random(seed)
    bodies: list[tuple[str, bytes]] = []
    tokens = nano = 0
    for i in range(REQUESTS // 2):
        n, usd = rng.randint(1, 9000), round(rng.uniform(0.0001, 0.09), 7)
        tokens += n
        nano += round(usd * 1e9)
        t = T0 + (i + 1) * SECOND
        who = {"user.email": f"u{i % 5}@x.io", "session.id": f"s{i % 7}", "model": "m"}
        bodies.append(
            (
                "metrics",
                metrics_request(
                    claude_metric(
                        "token.usage",
                        n,
                        time_ns=t,
                        start_ns=t - SECOND,
                        extra={**who, "type": "input"},
                    ),
                    claude_metric("cost.usage", usd, time_ns=t, start_ns=t - SECOND, extra=who),
                ).SerializeToString(),
            )
        )
        bodies.append(
            (
                "logs",
                logs_request(
                    api_request(
                        f"req-{i}", time_ns=t, model="m", input_tokens=n, cost_usd=usd, extra=who
                    ),
                ).SerializeToString(),
            )
        )
    return bodies, tokens, nano


def _config(path: Path, ports: list[int], store: str) -> Path:
    path.write_text(f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{ports[0]}"}}
      http: {{endpoint: "127.0.0.1:{ports[1]}"}}
exporters:
  prometheus: {{endpoint: "127.0.0.1:{ports[2]}"}}
  store: {{{store}, replica_id: crash-test}}
""")
    return path


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_while_streaming_loses_and_doubles_nothing(
    backend: str, tmp_path: Path, request
) -> None:
    store = (
        f"url: {request.getfixturevalue('pg_url')!r}"
        if backend == "postgresql"
        else f"path: {str(tmp_path / 'c.db')!r}"
    )
    ports = free_ports(3)
    config = _config(tmp_path / "config.yaml", ports, store)
    bodies, tokens, nano = _workload(seed=11)
    client = RetryingClient(f"http://127.0.0.1:{ports[1]}", bodies)
    ready = f"http://127.0.0.1:{ports[2]}/readyz"
    log = tmp_path / "collector.log"
    for life in range(KILLS + 1):
        with serve(["--config", str(config)], log) as proc:
            wait_for(lambda: http_status(ready) == 200, "readyz", proc, log)
            if life == 0:
                client.start()
            if life < KILLS:
                target = len(bodies) * (life + 1) // (KILLS + 1)
                wait_for(
                    lambda t=target: client.acknowledged >= t or client.error is not None,
                    "client progress",
                    proc,
                    log,
                )
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
                continue
            client.join(90)
            assert client.error is None, client.error
            assert client.acknowledged == len(bodies)
            assert client.retries >= KILLS  # every kill cut the client off at least once
            samples = scrape(f"http://127.0.0.1:{ports[2]}/metrics")
    assert total(samples, "claude_code_tokens_total", type="input") == tokens
    assert total(samples, "claude_code_cost_usd_total") == pytest.approx(nano / 1e9, abs=1e-9)
    assert total(samples, "claude_code_api_requests_total") == REQUESTS // 2
