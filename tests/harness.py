"""Run a real collector in a background thread for tests that use blocking clients.

The OpenTelemetry SDK exporters block, so the collector gets its own event loop in a thread;
every port is ephemeral (port 0) so tests can run side by side.
"""

from __future__ import annotations

import asyncio
import atexit
import shutil
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from collector.config import Config, parse
from collector.server import CollectorService

#: temporary store folders made by make_config; removed when the test process ends (a config
#: may be served several times, e.g. across a restart, so not sooner).
_STORE_FOLDERS: list[Path] = []
atexit.register(lambda: [shutil.rmtree(f, ignore_errors=True) for f in _STORE_FOLDERS])


def make_config(
    overrides: dict[str, Any] | None = None, environ: dict[str, str] | None = None
) -> Config:
    """A config on loopback with ephemeral ports, merged with `overrides` (nested dicts)."""
    folder = Path(tempfile.mkdtemp(prefix="cc-store-"))
    _STORE_FOLDERS.append(folder)
    store = folder / "collector.db"
    base: dict[str, Any] = {
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": "127.0.0.1:0"},
                    "http": {"endpoint": "127.0.0.1:0"},
                }
            }
        },
        "exporters": {"prometheus": {"endpoint": "127.0.0.1:0"}, "store": {"path": str(store)}},
    }
    _merge(base, overrides or {})
    wanted = (overrides or {}).get("exporters", {}).get("store", {})
    if ("url" in wanted or "memory" in wanted) and "path" not in wanted:
        del base["exporters"]["store"]["path"]  # the default SQLite file gives way
    return parse(base, environ or {})


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


class RunningCollector:
    def __init__(self, service: CollectorService, loop: asyncio.AbstractEventLoop) -> None:
        self.service = service
        self.loop = loop

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.service.ports.grpc}"

    @property
    def http_base(self) -> str:
        return f"http://127.0.0.1:{self.service.ports.http}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.service.ports.metrics}/metrics"

    def call(self, fn: Any, *args: Any) -> Any:
        """Run `fn(*args)` on the collector's loop (state is only touched from there)."""

        async def run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def scrape_text(self, accept: str | None = None) -> str:
        request = urllib.request.Request(
            self.metrics_url, headers={"Accept": accept} if accept else {}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read().decode()

    def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample on /metrics as {(name, sorted labels): value}."""
        out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for family in text_string_to_metric_families(self.scrape_text()):
            for sample in family.samples:
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return out

    def total(self, name: str, **match: str) -> float:
        """Sum of `name` over series whose labels include `match`."""
        return sum(
            value
            for (sample, labels), value in self.samples().items()
            if sample == name and all(dict(labels).get(k) == v for k, v in match.items())
        )


@contextmanager
def running_collector(config: Config | None = None) -> Iterator[RunningCollector]:
    config = config or make_config()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def build() -> CollectorService:
        service = CollectorService(config)
        await service.start()
        return service

    service = asyncio.run_coroutine_threadsafe(build(), loop).result(30)
    try:
        yield RunningCollector(service, loop)
    finally:
        asyncio.run_coroutine_threadsafe(service.stop(grace=1), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
