"""BASELINE FOR COMPARISON ONLY, NOT PART OF THE PRODUCT: a naive OTLP receiver.

This is how most small OTLP-to-Prometheus receivers are written, and what the benchmarks
compare the collector's throughput with (docs/performance.md):

- protobuf bodies are parsed and turned into dicts with `MessageToDict`; JSON bodies are
  `json.loads`-ed; then the dicts are walked;
- every data point and event is counted into prometheus_client labelled `Counter`s
  (`.labels(...).inc(...)`, one child object per label set);
- the request is acknowledged at once: nothing is stored, nothing survives a restart, retried
  batches and metrics+events double-count spend, cumulative points are added as if deltas.

So it does *less* work than the collector (no store, no dedupe, no exactness). It only keeps
the count of records it received (`naive_records_total{signal}`), which the benchmark checks
against what it sent. Run: `python -m bench.baseline.naive_receiver --http-port P
--grpc-port Q --metrics-port R` (loopback only).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from typing import Any

import grpc
from aiohttp import web
from google.protobuf.json_format import MessageToDict
from grpc import aio
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

REGISTRY = CollectorRegistry()
RECORDS = Counter("naive_records", "Records received.", ["signal"], registry=REGISTRY)
POINTS = Counter(
    "naive_claude_code_metric",
    "Every metric point's value, summed as it came.",
    ["metric", "user", "team", "model", "type"],
    registry=REGISTRY,
)
EVENTS = Counter("naive_claude_code_events", "Events by name.", ["event"], registry=REGISTRY)
TOKENS = Counter(
    "naive_claude_code_tokens",
    "Tokens from api_request events.",
    ["user", "team", "model", "type"],
    registry=REGISTRY,
)
COST = Counter(
    "naive_claude_code_cost_usd",
    "Cost from api_request events.",
    ["user", "team", "model"],
    registry=REGISTRY,
)
TOOLS = Counter(
    "naive_claude_code_tool_results",
    "tool_result events.",
    ["user", "team", "tool", "success"],
    registry=REGISTRY,
)
TYPES = {"metrics": ExportMetricsServiceRequest, "logs": ExportLogsServiceRequest}
RESPONSES = {
    "metrics": ExportMetricsServiceResponse().SerializeToString(),
    "logs": ExportLogsServiceResponse().SerializeToString(),
}


def _value(v: dict[str, Any]) -> Any:
    for kind, raw in v.items():
        return int(raw) if kind == "intValue" else raw
    return None


def _attrs(kvs: list[dict[str, Any]]) -> dict[str, Any]:
    return {kv["key"]: _value(kv.get("value", {})) for kv in kvs}


def count(signal_name: str, doc: dict[str, Any]) -> None:
    """Walk an OTLP request dict and count everything in it (the naive way)."""
    n = 0
    if signal_name == "metrics":
        for rm in doc.get("resourceMetrics", []):
            resource = _attrs(rm.get("resource", {}).get("attributes", []))
            for sm in rm.get("scopeMetrics", []):
                for metric in sm.get("metrics", []):
                    points = metric.get("sum", {}).get("dataPoints", [])
                    for p in points:
                        a = {**resource, **_attrs(p.get("attributes", []))}
                        value = p.get("asDouble", float(p.get("asInt", 0)))
                        POINTS.labels(
                            metric["name"],
                            a.get("user.email") or a.get("user.id", ""),
                            a.get("team.id", ""),
                            a.get("model", ""),
                            a.get("type", ""),
                        ).inc(value)
                        n += 1
    else:
        for rl in doc.get("resourceLogs", []):
            resource = _attrs(rl.get("resource", {}).get("attributes", []))
            for sl in rl.get("scopeLogs", []):
                for rec in sl.get("logRecords", []):
                    a = {**resource, **_attrs(rec.get("attributes", []))}
                    name = str(a.get("event.name", ""))
                    EVENTS.labels(name).inc()
                    user = a.get("user.email") or a.get("user.id", "")
                    team = a.get("team.id", "")
                    if name == "api_request":
                        model = a.get("model", "")
                        for kind in ("input", "output", "cache_read", "cache_creation"):
                            TOKENS.labels(user, team, model, kind).inc(
                                float(a.get(f"{kind}_tokens", 0))
                            )
                        COST.labels(user, team, model).inc(float(a.get("cost_usd", 0)))
                    elif name == "tool_result":
                        TOOLS.labels(user, team, a.get("tool_name", ""), a.get("success", "")).inc()
                    n += 1
    RECORDS.labels(signal_name).inc(n)


def handle(signal_name: str, body: bytes, as_json: bool) -> None:
    doc = json.loads(body) if as_json else MessageToDict(TYPES[signal_name].FromString(body))
    count(signal_name, doc)


def http_app() -> web.Application:
    async def export(request: web.Request) -> web.Response:
        signal_name = request.match_info["signal"]
        if signal_name not in TYPES:
            return web.Response(status=404)
        as_json = request.content_type == "application/json"
        handle(signal_name, await request.read(), as_json)
        if as_json:
            return web.json_response({})
        return web.Response(body=RESPONSES[signal_name], content_type="application/x-protobuf")

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def ready(_: web.Request) -> web.Response:
        return web.json_response({"status": "ready"})

    app = web.Application(client_max_size=64 << 20)
    app.router.add_post("/v1/{signal}", export)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/readyz", ready)
    return app


class _Grpc(grpc.GenericRpcHandler):
    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        for signal_name in TYPES:
            if details.method == f"/opentelemetry.proto.collector.{signal_name}.v1." + (
                "MetricsService/Export" if signal_name == "metrics" else "LogsService/Export"
            ):

                async def export(raw: bytes, _: Any, s: str = signal_name) -> bytes:
                    handle(s, raw, False)
                    return RESPONSES[s]

                return grpc.unary_unary_rpc_method_handler(export)
        return None


async def main(http_port: int, grpc_port: int, metrics_port: int) -> None:
    runners = []
    for app, port in ((http_app(), http_port), (http_app(), metrics_port)):
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
    server = aio.server(options=[("grpc.max_receive_message_length", 64 << 20)])
    server.add_generic_rpc_handlers((_Grpc(),))
    server.add_insecure_port(f"127.0.0.1:{grpc_port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1)
    for runner in runners:
        await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(main(args.http_port, args.grpc_port, args.metrics_port))
