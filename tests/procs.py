"""Running `cc-collector serve` as a real process in tests: ports, waits, scrapes, config."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

CLI = Path(sys.executable).parent / "cc-collector"
DEFAULT_PORTS = (4317, 4318, 8889)


def free_ports(n: int) -> list[int]:
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def wait_for(condition: Callable[[], bool], what: str, proc=None, log: Path | None = None) -> None:
    """Poll `condition`; the 20 s bound only stops a hang, it is not a performance check."""
    deadline = time.monotonic() + 20
    while not condition():
        if proc is not None and proc.poll() is not None:
            output = log.read_text() if log else ""
            pytest.fail(f"collector exited ({proc.returncode}) before {what}:\n{output}")
        if time.monotonic() > deadline:
            output = log.read_text() if log else ""
            pytest.fail(f"timed out waiting for {what}:\n{output}")
        time.sleep(0.02)


def http_status(url: str) -> int | None:
    """The status of GET `url`, or None when nothing accepts the connection."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, ConnectionError, OSError):
        return None


def refuses_connections(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.settimeout(5)
        try:
            sock.connect((host, port))
        except ConnectionRefusedError:
            return True
        return False


def scrape(metrics_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(samples: dict, name: str, **match: str) -> float:
    return sum(
        v
        for (n, labels), v in samples.items()
        if n == name and all(dict(labels).get(k) == x for k, x in match.items())
    )


@contextmanager
def serve(args: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CC_")}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(CLI), "serve", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**base, **(env or {})},
            cwd=log.parent,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)


def write_config(path: Path, grpc_port: int, http_port: int, metrics_port: int) -> Path:
    path.write_text(
        f"""
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{grpc_port}
      http:
        endpoint: 127.0.0.1:{http_port}
exporters:
  prometheus:
    endpoint: 127.0.0.1:{metrics_port}
service:
  telemetry:
    logs:
      level: info
"""
    )
    return path
