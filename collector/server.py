"""Wiring and lifecycle: build the pipeline from a `Config`, start it, stop it gracefully.

Start order: metrics port, then OTLP/HTTP, then OTLP/gRPC; stop in reverse, and only what
started. Stopping first closes the listeners (no new requests), then waits up to `grace`
seconds for requests in flight to be answered.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web
from grpc import aio
from prometheus_client.registry import CollectorRegistry

from collector.accounting.engine import Accountant, AccountingSettings
from collector.api.context import ApiContext
from collector.auth import Authenticator
from collector.config import Config
from collector.directory import Directory
from collector.gctune import tune_gc
from collector.httpapi import make_app
from collector.identity import IdentityResolver
from collector.ingest import Admission, Ingest
from collector.ledger import MemoryLedger
from collector.planning import LocalPlanner, Planner, WorkerPlanner
from collector.receivers.grpc import OtlpGrpcReceiver
from collector.receivers.http import OtlpHttpReceiver
from collector.selfstats import SelfStats
from exporters.exposition_text import ContractRenderer
from exporters.prometheus import ExpositionState
from exporters.selfmetrics import SelfCollector
from exporters.store.backend import StoreError
from exporters.store.groupcommit import StoreLedger
from exporters.store.ledger import Retention
from exporters.store_gauges import StoreGauges

if TYPE_CHECKING:
    from exporters.otlp_forward import Forwarding

log = logging.getLogger("cc_collector")


@dataclass
class Ports:
    grpc: int = 0
    http: int = 0
    metrics: int = 0


@dataclass
class CollectorService:
    config: Config
    ports: Ports = field(default_factory=Ports)

    def __post_init__(self) -> None:
        cfg = self.config
        directory = Directory.load(cfg.directory) if cfg.directory else Directory()
        self.stats = SelfStats()
        settings = AccountingSettings(
            stream_ttl_ns=cfg.stream_ttl_ns,
            dedupe_ttl_ns=cfg.dedupe_ttl_ns,
            max_streams=cfg.max_streams,
            max_dedupe_keys=cfg.max_dedupe_keys,
        )
        self.accountant = Accountant(IdentityResolver(directory), settings)
        local = LocalPlanner(self.accountant)
        self.planner: Planner = (
            WorkerPlanner(cfg.plan_workers, directory, settings, self.stats, local)
            if cfg.plan_workers
            else local
        )
        self.exposition = ExpositionState(cfg.max_users, cfg.max_label_values, cfg.user_idle_ns)
        self.ledger: StoreLedger | MemoryLedger
        if cfg.store:
            retention = Retention(cfg.stream_ttl_ns, cfg.dedupe_ttl_ns)
            self.ledger = StoreLedger(
                cfg.store, retention, cfg.replica_id, [self.exposition], time.time_ns, self.stats
            )
        else:
            self.ledger = MemoryLedger(self.accountant, [self.exposition], time.time_ns)
        self.ingest = Ingest(self.planner, self.ledger, self.stats)
        self.registry = CollectorRegistry(auto_describe=False)
        self.contract = ContractRenderer(self.exposition)
        self.registry.register(
            SelfCollector(
                self.stats,
                self.accountant.state_sizes,
                self.accountant.evictions,
                self.exposition.label_overflow,
            )
        )
        self.store_gauges = StoreGauges(
            self.ledger.read if isinstance(self.ledger, StoreLedger) else None,
            cfg.budgets,
            max_users=cfg.max_users,
        )
        self.store_gauges_collector = self.store_gauges.collector()
        self.registry.register(self.store_gauges_collector)
        self.forwarding: Forwarding | None = None
        if cfg.otlp_targets:
            # The OpenTelemetry SDK is imported only when forwarding is configured.
            from exporters.otlp_forward import Forwarding

            submit = self.ledger.submit if isinstance(self.ledger, StoreLedger) else None
            self.forwarding = Forwarding(cfg.otlp_targets, cfg.replica_id, self.exposition, submit)
            self.registry.register(self.forwarding.collector())
        self._forwarding_started = False
        auth = Authenticator(cfg.tokens, cfg.auth_required)
        admission = Admission(cfg.max_inflight_requests, self.stats)
        self.http = OtlpHttpReceiver(self.ingest, auth, admission, cfg.http_max_bytes)
        self.grpc = OtlpGrpcReceiver(self.ingest, auth, admission, cfg.grpc_max_bytes)
        self.ready: dict[str, bool] = {"ready": False}
        self._runners: list[web.AppRunner] = []
        self._grpc_server: aio.Server | None = None
        self._ledger_started = False
        self._planner_started = False

    def api_context(self) -> ApiContext:
        cfg = self.config
        reader = self.ledger.read if isinstance(self.ledger, StoreLedger) else None
        return ApiContext(cfg.api_keys, cfg.tokens, cfg.organization_id, cfg.budgets, reader)

    async def _start_http(self, app: web.Application, host: str, port: int) -> int:
        runner = web.AppRunner(app, auto_decompress=False, access_log=None, shutdown_timeout=10)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, host, port)
        await site.start()
        return int(runner.addresses[0][1])

    async def start(self) -> None:
        cfg = self.config
        if isinstance(self.ledger, StoreLedger):
            try:
                await self.ledger.start(self.exposition)
            except StoreError as exc:
                raise OSError(str(exc)) from exc
            self._ledger_started = True
        await self.store_gauges.start()
        await self.planner.start()
        self._planner_started = True
        if self.forwarding is not None:
            # After the store is open and the exposition loaded: totals resume, never reset.
            await self.forwarding.start()
            self._forwarding_started = True
        # The metrics runner must be first in self._runners: stop() relies on it.
        self.ports.metrics = await self._start_http(
            make_app(self.registry, self.ready, self.api_context(), self.contract.render),
            cfg.metrics_endpoint.host,
            cfg.metrics_endpoint.port,
        )
        self.ports.http = await self._start_http(
            self.http.app(), cfg.http_endpoint.host, cfg.http_endpoint.port
        )
        server = aio.server(
            options=[
                ("grpc.max_receive_message_length", 4 * cfg.grpc_max_bytes),
                ("grpc.so_reuseport", 0),
            ]
        )
        server.add_generic_rpc_handlers((self.grpc,))
        try:
            self.ports.grpc = server.add_insecure_port(str(cfg.grpc_endpoint))
        except RuntimeError as exc:  # grpc reports a busy or bad address this way
            raise OSError(f"cannot listen for OTLP/gRPC on {cfg.grpc_endpoint}: {exc}") from exc
        await server.start()
        self._grpc_server = server
        self.ready["ready"] = True
        log.info(
            "listening: otlp grpc :%d, otlp http :%d, metrics http :%d (auth %s)",
            self.ports.grpc,
            self.ports.http,
            self.ports.metrics,
            "required" if cfg.auth_required else "off",
        )

    async def stop(self, grace: float = 10.0) -> None:
        """Close the OTLP listeners first, let requests in flight finish (up to `grace` s),
        then tear down. aiohttp's own cleanup would drop the bytes of a body still uploading, so
        the HTTP side is drained before `runner.cleanup()` is called."""
        self.ready["ready"] = False
        # OTLP listeners only: the metrics port keeps answering /readyz (503) and /metrics
        # while we drain, so a load balancer sees the drain and a last scrape still works.
        for runner in self._runners[1:]:
            for site in list(runner.sites):
                await site.stop()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace

        async def drain_http() -> None:
            while self.stats.inflight and loop.time() < deadline:
                await asyncio.sleep(0.02)

        if self._grpc_server is not None:
            await asyncio.gather(self._grpc_server.stop(grace), drain_http())
            self._grpc_server = None
        await drain_http()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        await self.store_gauges.stop()
        if self._forwarding_started and self.forwarding is not None:
            # A last export of everything answered above, while the store is still open.
            await self.forwarding.stop()
            self._forwarding_started = False
        if self._ledger_started and isinstance(self.ledger, StoreLedger):
            await self.ledger.stop()
            self._ledger_started = False
        if self._planner_started:
            await self.planner.stop()
            self._planner_started = False


async def serve(config: Config) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    service = CollectorService(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await service.start()
        tune_gc()
        await stop.wait()
        log.info("shutting down: finishing requests in flight")
    finally:
        await service.stop()
    log.info("stopped")
