"""Replay the captured Claude Code requests (tests/fixtures/claude-code-2.1.330) to a collector."""

from __future__ import annotations

import gzip
import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import grpc

FIXTURES = Path(__file__).parent / "fixtures" / "claude-code-2.1.330"
CASES = ("grpc", "http-protobuf", "http-json", "gzip-headers")
GRPC_METHODS = {
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
}


@dataclass(frozen=True)
class Captured:
    signal: str
    transport: str
    body: bytes
    headers: dict[str, str]


def captured(case: str) -> list[Captured]:
    folder = FIXTURES / case / "otlp"
    out = []
    for line in (folder / "index.jsonl").read_text().splitlines():
        entry = json.loads(line)
        out.append(
            Captured(
                entry["signal"],
                entry["transport"],
                (folder / entry["raw"]).read_bytes(),
                entry.get("headers", {}),
            )
        )
    return out


def expected(case: str) -> dict:
    """The CLI's own totals for the run."""
    return json.loads((FIXTURES / case / "claude_result.json").read_text())


def send_http(base: str, item: Captured, token: str | None = None, compress: bool = False) -> int:
    body = gzip.compress(item.body) if compress else item.body
    content_type = "application/json" if item.transport == "http-json" else "application/x-protobuf"
    headers = {"Content-Type": content_type}
    if compress:
        headers["Content-Encoding"] = "gzip"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"{base}/v1/{item.signal}", data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def send_grpc(endpoint: str, item: Captured, token: str | None = None) -> grpc.StatusCode:
    with grpc.insecure_channel(endpoint) as channel:
        call = channel.unary_unary(GRPC_METHODS[item.signal])
        metadata = (("authorization", f"Bearer {token}"),) if token else None
        try:
            call(item.body, timeout=10, metadata=metadata)
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK


def replay(case: str, collector: object, token: str | None = None) -> list[object]:
    """Send every captured request of `case` the way it was sent; returns each status."""
    statuses: list[object] = []
    for item in captured(case):
        if item.transport == "grpc":
            statuses.append(send_grpc(collector.grpc_endpoint, item, token))  # type: ignore[attr-defined]
        else:
            statuses.append(
                send_http(
                    collector.http_base,
                    item,
                    token,  # type: ignore[attr-defined]
                    compress=item.headers.get("content-encoding") == "gzip",
                )
            )
    return statuses
