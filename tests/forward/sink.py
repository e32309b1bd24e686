"""A real OTLP metrics endpoint for the forwarding tests: gRPC `MetricsService/Export` and
HTTP `POST /v1/metrics` (protobuf, gzip or not), decoded with opentelemetry-proto.

Why a real one: the forwarder's exactness claims are about what crosses the wire. The sink
records every data point of every request it *accepted*, with the request's headers and
resource, so tests can rebuild the downstream's view (last cumulative value, or sum of
deltas) and compare it with the workload. It can be started late, stopped and started again
on the same ports (a downstream that is down), or keep running but refuse (503 /
UNAVAILABLE, what an overloaded backend answers): refused requests are not recorded.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web
from grpc import aio
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE

Labels = tuple[tuple[str, str], ...]


def free_port() -> int:
    """A port nobody listens on now (for a downstream that will only come up later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def _attrs(kvs: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in kvs}


@dataclass(frozen=True)
class Point:
    """One received data point, flattened with its metric and resource."""

    protocol: str
    request: int
    metric: str
    unit: str
    description: str
    kind: str  # "sum", "gauge" or "histogram"
    temporality: int  # 0 for gauges
    monotonic: bool
    resource: tuple[tuple[str, Any], ...]
    scope: str
    labels: Labels
    start_ns: int
    time_ns: int
    value: float  # a number point's value, a histogram's sum
    is_int: bool
    count: int = 0
    bucket_counts: tuple[int, ...] = ()
    bounds: tuple[float, ...] = ()


@dataclass(frozen=True)
class Request:
    protocol: str
    headers: dict[str, str]
    points: int


@dataclass(frozen=True)
class SinkTls:
    """Serve TLS with `cert`/`key` (PEM files); with `client_ca`, require a client
    certificate signed by it (mutual TLS)."""

    cert: Path
    key: Path
    client_ca: Path | None = None


def make_certificates(folder: Path) -> dict[str, Path]:
    """A throwaway CA, a server certificate for localhost / 127.0.0.1 and a client
    certificate, all signed by the CA (openssl CLI)."""
    out = {name: folder / name for name in ("ca.pem", "ca.key", "server.pem", "server.key")}
    out.update({name: folder / name for name in ("client.pem", "client.key")})

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    run(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=sink-ca",
        "-keyout", "ca.key", "-out", "ca.pem",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    for who, extensions in (
        ("server", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        (folder / f"{who}.ext").write_text(extensions + "\n")
        run(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={who}",
            "-keyout", f"{who}.key", "-out", f"{who}.csr",
        )  # fmt: skip
        run(
            "x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "1", "-out", f"{who}.pem", "-extfile", f"{who}.ext",
        )  # fmt: skip
    return out


class OtlpSink:
    """Both transports on fixed loopback ports, served from a private event loop thread."""

    def __init__(
        self,
        grpc_port: int | None = None,
        http_port: int | None = None,
        tls: SinkTls | None = None,
    ) -> None:
        self.grpc_port = grpc_port or free_port()
        self.http_port = http_port or free_port()
        self.tls = tls
        self.points: list[Point] = []
        self.requests: list[Request] = []
        #: answer every export with 503 / UNAVAILABLE (and record nothing) while set.
        self.refuse = False
        self.refused = 0
        #: HTTP requests whose body arrived gzip-compressed.
        self.compressed_bodies = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._grpc: aio.Server | None = None
        self._runner: web.AppRunner | None = None

    # -- addresses -----------------------------------------------------------------------

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.http_port}"

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> OtlpSink:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, daemon=True, name="otlp-sink")
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), loop).result(10)
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        assert self._thread is not None
        self._thread.join(10)
        loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> OtlpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _serve(self) -> None:
        server = aio.server()
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Servicer(self), server)
        if self.tls is None:
            bound = server.add_insecure_port(self.grpc_endpoint)
        else:
            credentials = grpc.ssl_server_credentials(
                [(self.tls.key.read_bytes(), self.tls.cert.read_bytes())],
                root_certificates=self.tls.client_ca.read_bytes() if self.tls.client_ca else None,
                require_client_auth=self.tls.client_ca is not None,
            )
            bound = server.add_secure_port(self.grpc_endpoint, credentials)
        assert bound == self.grpc_port, f"cannot listen on {self.grpc_endpoint}"
        await server.start()
        self._grpc = server
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/metrics", self._http_export)
        # Bodies are decompressed here, not by aiohttp, so a test sees what was on the wire.
        runner = web.AppRunner(app, access_log=None, auto_decompress=False)
        await runner.setup()
        context = None
        if self.tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.tls.cert, self.tls.key)
            if self.tls.client_ca is not None:
                context.load_verify_locations(self.tls.client_ca)
                context.verify_mode = ssl.CERT_REQUIRED
        site = web.TCPSite(
            runner, "127.0.0.1", self.http_port, reuse_address=True, ssl_context=context
        )
        await site.start()
        self._runner = runner

    async def _shutdown(self) -> None:
        if self._grpc is not None:
            await self._grpc.stop(0)
            self._grpc = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- the two transports --------------------------------------------------------------

    async def _http_export(self, request: web.Request) -> web.Response:
        if self.refuse:
            self.refused += 1
            return web.Response(status=503, headers={"Retry-After": "1"})
        body = await request.read()
        self.compressed_bodies += request.headers.get("Content-Encoding", "").lower() == "gzip"
        if request.headers.get("Content-Encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        message = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
        headers = {k.lower(): v for k, v in request.headers.items()}
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        if peer:
            headers[":client-certificate"] = str(dict(x[0] for x in peer["subject"])["commonName"])
        self.record("http", headers, message)
        return web.Response(
            body=metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    def record(
        self,
        protocol: str,
        headers: dict[str, str],
        message: metrics_service_pb2.ExportMetricsServiceRequest,
    ) -> None:
        with self._lock:
            number = len(self.requests)
            points = list(_flatten(protocol, number, message))
            self.requests.append(Request(protocol, headers, len(points)))
            self.points.extend(points)

    # -- what the downstream now knows ---------------------------------------------------

    def snapshot(self) -> tuple[list[Point], list[Request]]:
        with self._lock:
            return list(self.points), list(self.requests)

    def view(self, where: Callable[[Point], bool] = lambda p: True) -> dict[Any, float]:
        """What a backend would now show, as scraped samples: {(name, labels): value}.

        Cumulative sums and gauges: the latest point of each series. Delta sums: the sum of
        all points. Histograms add `_count` and `_sum` samples the same way."""
        points, _ = self.snapshot()
        latest: dict[tuple[str, Labels], Point] = {}
        added: defaultdict[tuple[str, Labels], float] = defaultdict(float)
        for p in points:
            if not where(p):
                continue
            if p.kind == "histogram":
                for suffix, amount in (("_count", p.count), ("_sum", p.value)):
                    key = (p.metric + suffix, p.labels)
                    if p.temporality == DELTA:
                        added[key] += amount
                    elif key not in latest or latest[key].time_ns <= p.time_ns:
                        latest[key] = replace_value(p, amount)
            elif p.kind == "sum" and p.temporality == DELTA:
                added[(p.metric, p.labels)] += p.value
            else:
                key = (p.metric, p.labels)
                if key not in latest or latest[key].time_ns <= p.time_ns:
                    latest[key] = p
        out: dict[Any, float] = {key: p.value for key, p in latest.items()}
        out.update(added)
        return out

    def wait(self, predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return predicate()


def replace_value(p: Point, value: float) -> Point:
    return replace(p, value=value)


class _Servicer(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, sink: OtlpSink) -> None:
        self.sink = sink

    async def Export(
        self,
        request: metrics_service_pb2.ExportMetricsServiceRequest,
        context: aio.ServicerContext,
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        if self.sink.refuse:
            self.sink.refused += 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "sink refuses on purpose")
        headers = {k.lower(): str(v) for k, v in (context.invocation_metadata() or ())}
        for name in (context.auth_context() or {}).get("x509_common_name", []):
            headers[":client-certificate"] = name.decode()
        self.sink.record("grpc", headers, request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


def _flatten(
    protocol: str, number: int, message: metrics_service_pb2.ExportMetricsServiceRequest
) -> Iterable[Point]:
    for rm in message.resource_metrics:
        resource = tuple(sorted(_attrs(rm.resource.attributes).items()))
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                common: dict[str, Any] = {
                    "protocol": protocol,
                    "request": number,
                    "metric": m.name,
                    "unit": m.unit,
                    "description": m.description,
                    "resource": resource,
                    "scope": sm.scope.name,
                }
                if kind in ("sum", "gauge"):
                    data = getattr(m, kind)
                    for p in data.data_points:
                        is_int = p.WhichOneof("value") == "as_int"
                        yield Point(
                            **common,
                            kind=kind,
                            temporality=data.aggregation_temporality if kind == "sum" else 0,
                            monotonic=data.is_monotonic if kind == "sum" else False,
                            labels=_labels(p.attributes),
                            start_ns=p.start_time_unix_nano,
                            time_ns=p.time_unix_nano,
                            value=float(p.as_int if is_int else p.as_double),
                            is_int=is_int,
                        )
                elif kind == "histogram":
                    for p in m.histogram.data_points:
                        yield Point(
                            **common,
                            kind="histogram",
                            temporality=m.histogram.aggregation_temporality,
                            monotonic=True,
                            labels=_labels(p.attributes),
                            start_ns=p.start_time_unix_nano,
                            time_ns=p.time_unix_nano,
                            value=p.sum,
                            is_int=False,
                            count=p.count,
                            bucket_counts=tuple(p.bucket_counts),
                            bounds=tuple(p.explicit_bounds),
                        )
                else:
                    raise AssertionError(f"unexpected metric data {kind} in {m.name}")


def _labels(kvs: Iterable[KeyValue]) -> Labels:
    return tuple(sorted((k, str(v)) for k, v in _attrs(kvs).items()))
