"""OTLP/HTTP refusals: every bad request gets the right 4xx, never a 500, and costs nothing.

Each case sends one bad request to a fresh collector, checks the status, the body (a
google.rpc.Status in the request's encoding) and that nothing was counted, then replays a
real Claude Code capture and checks its totals against the CLI's own numbers: a refused
request must neither break the collector nor leak into the counts.
"""

from __future__ import annotations

import gzip
import http.client
import json
import random
import resource
import socket
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

from tests.harness import RunningCollector, make_config, running_collector
from tests.replay import captured, expected, replay

LIMIT = 65536
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
INVALID_ARGUMENT = 3


# -- clients ---------------------------------------------------------------------------


def post(
    url: str, body: bytes, headers: dict[str, str], method: str = "POST"
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return (
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                (response.read()),
            )
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def raw_exchange(port: int, *parts: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `parts` verbatim on one connection and read one HTTP response."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for part in parts:
            sock.sendall(part)
        response = http.client.HTTPResponse(sock)
        response.begin()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return response.status, headers, response.read()


def chunked(body: bytes, size: int = 4096) -> bytes:
    out = bytearray()
    for start in range(0, len(body), size):
        piece = body[start : start + size]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    return bytes(out + b"0\r\n\r\n")


def head(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def gzip_bomb(decompressed: int) -> bytes:
    """A few kB of gzip that inflates to `decompressed` zero bytes."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    parts = [deflate.compress(block) for _ in range(decompressed // len(block))]
    return b"".join(parts) + deflate.flush()


# -- expectations from the capture -----------------------------------------------------


def capture_items(case: str) -> dict[str, int]:
    """Metric points and log records in a capture, counted from the request bodies."""
    counts = {"metrics": 0, "logs": 0}
    for item in captured(case):
        if item.signal == "metrics":
            request = metrics_service_pb2.ExportMetricsServiceRequest()
            if item.transport == "http-json":
                json_format.Parse(item.body, request, ignore_unknown_fields=True)
            else:
                request.ParseFromString(item.body)
            counts["metrics"] += sum(
                len(getattr(m, m.WhichOneof("data")).data_points)
                for rm in request.resource_metrics
                for sm in rm.scope_metrics
                for m in sm.metrics
            )
        elif item.signal == "logs":
            request = logs_service_pb2.ExportLogsServiceRequest()
            if item.transport == "http-json":
                json_format.Parse(item.body, request, ignore_unknown_fields=True)
            else:
                request.ParseFromString(item.body)
            counts["logs"] += sum(
                len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs
            )
    return counts


def assert_capture_counted_exactly(collector: RunningCollector, case: str) -> None:
    statuses = replay(case, collector)
    assert statuses == [200] * len(statuses)
    result = expected(case)
    usage = result["usage"]
    assert collector.total("claude_code_tokens_total", type="input") == usage["input_tokens"]
    assert collector.total("claude_code_tokens_total", type="output") == usage["output_tokens"]
    assert (
        collector.total("claude_code_tokens_total", type="cache_read")
        == usage["cache_read_input_tokens"]
    )
    assert (
        collector.total("claude_code_tokens_total", type="cache_creation")
        == usage["cache_creation_input_tokens"]
    )
    assert collector.total("claude_code_cost_usd_total") == pytest.approx(
        result["total_cost_usd"], abs=1e-9
    )
    assert collector.total("claude_code_api_requests_total") == result["num_turns"]
    assert collector.total("claude_code_sessions_total") == 1
    items = capture_items(case)
    for signal, n in items.items():
        assert collector.total("cc_collector_items_total", signal=signal, outcome="accepted") == n
        assert collector.total("cc_collector_items_total", signal=signal) == n


def assert_nothing_counted(collector: RunningCollector) -> None:
    assert collector.total("cc_collector_items_total") == 0
    assert collector.total("claude_code_events_total") == 0
    assert collector.total("claude_code_cost_usd_total") == 0
    assert collector.total("claude_code_tokens_total") == 0


def decode_status(body: bytes, content_type: str) -> status_pb2.Status:
    status = status_pb2.Status()
    if content_type.startswith(JSON):
        json_format.Parse(body, status)
    else:
        assert content_type.startswith(PROTOBUF), content_type
        status.ParseFromString(body)
    return status


@pytest.fixture
def collector():
    config = make_config(
        {"receivers": {"otlp": {"protocols": {"http": {"max_request_body_size": LIMIT}}}}}
    )
    with running_collector(config) as running:
        yield running


# -- the refusal table -----------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    """One bad request: how to send it and what must come back."""

    send: Callable[[RunningCollector], tuple[int, dict[str, str], bytes]]
    status: int
    #: the refusal outcome in cc_collector_requests_total, and the Status body's encoding
    outcome: str
    encoding: str
    message: str
    decode_error: bool = False


def _post(path: str, body: bytes, **headers: str) -> Callable:
    return lambda c: post(
        c.http_base + path, body, {k.replace("_", "-"): v for k, v in headers.items()}
    )


def _raw(*parts: bytes) -> Callable:
    return lambda c: raw_exchange(c.service.ports.http, *parts)


_LOGS_BODY = captured("http-protobuf")[1].body
assert captured("http-protobuf")[1].signal == "logs"
_DEEP_JSON = b"[" * 20_000 + b"]" * 20_000
_DEEP_OBJECT = b'{"a":' * 5_000 + b"1" + b"}" * 5_000

BAD: dict[str, Bad] = {
    "malformed-protobuf": Bad(
        _post("/v1/metrics", b"\xff\xff\xff\xff", Content_Type=PROTOBUF),
        status=400,
        outcome="invalid",
        encoding=PROTOBUF,
        message="malformed protobuf metrics request",
        decode_error=True,
    ),
    "truncated-protobuf": Bad(
        _post("/v1/logs", _LOGS_BODY[: len(_LOGS_BODY) // 2], Content_Type=PROTOBUF),
        status=400,
        outcome="invalid",
        encoding=PROTOBUF,
        message="malformed protobuf logs request",
        decode_error=True,
    ),
    "protobuf-alias-content-type": Bad(
        _post("/v1/metrics", b"\x0a\x05\x0a", Content_Type="application/protobuf"),
        status=400,
        outcome="invalid",
        encoding=PROTOBUF,
        message="malformed protobuf",
        decode_error=True,
    ),
    "malformed-json": Bad(
        _post("/v1/metrics", b'{"resourceMetrics": [', Content_Type=JSON),
        status=400,
        outcome="invalid",
        encoding=JSON,
        message="malformed JSON metrics request",
        decode_error=True,
    ),
    "json-not-an-object": Bad(
        _post("/v1/logs", b"[1, 2]", Content_Type=JSON),
        status=400,
        outcome="invalid",
        encoding=JSON,
        message="must be a JSON object",
        decode_error=True,
    ),
    "json-wrong-field-type": Bad(
        _post("/v1/metrics", b'{"resourceMetrics": 5}', Content_Type=JSON),
        status=400,
        outcome="invalid",
        encoding=JSON,
        message="invalid OTLP/JSON metrics request",
        decode_error=True,
    ),
    "json-not-utf8": Bad(
        _post("/v1/logs", b'{"resourceLogs": "\xff\xfe"}', Content_Type=JSON),
        status=400,
        outcome="invalid",
        encoding=JSON,
        message="logs request",
        decode_error=True,
    ),
    "json-deeply-nested-array": Bad(
        _post("/v1/metrics", _DEEP_JSON, Content_Type=JSON),
        status=400,
        outcome="invalid",
        encoding=JSON,
        message="metrics request",
        decode_error=True,
    ),
    "json-deeply-nested-object": Bad(
        _post("/v1/logs", _DEEP_OBJECT, Content_Type=JSON),
        status=400,
        outcome="invalid",
        encoding=JSON,
        message="logs request",
        decode_error=True,
    ),
    "wrong-content-type": Bad(
        _post("/v1/metrics", b"{}", Content_Type="text/plain"),
        status=415,
        outcome="unsupported_media_type",
        encoding=JSON,
        message="unsupported Content-Type 'text/plain'",
    ),
    "no-content-type": Bad(
        _raw(head("/v1/logs", {"Content-Length": "2"}), b"{}"),
        status=415,
        outcome="unsupported_media_type",
        encoding=JSON,
        message="unsupported Content-Type",
    ),
    "content-encoding-br": Bad(
        _post("/v1/metrics", b"\x0b\x02\x80", Content_Type=PROTOBUF, Content_Encoding="br"),
        status=415,
        outcome="unsupported_media_type",
        encoding=PROTOBUF,
        message="unsupported Content-Encoding 'br'",
    ),
    "content-encoding-deflate-json": Bad(
        _post("/v1/logs", zlib.compress(b"{}"), Content_Type=JSON, Content_Encoding="deflate"),
        status=415,
        outcome="unsupported_media_type",
        encoding=JSON,
        message="unsupported Content-Encoding 'deflate'",
    ),
    # Headers only: the limit is enforced from Content-Length before any body byte is read.
    "content-length-over-limit": Bad(
        _raw(head("/v1/metrics", {"Content-Type": PROTOBUF, "Content-Length": str(LIMIT + 1)})),
        status=413,
        outcome="too_large",
        encoding=PROTOBUF,
        message=f"exceeds the limit of {LIMIT}",
    ),
    "chunked-over-limit": Bad(
        _raw(
            head("/v1/logs", {"Content-Type": JSON, "Transfer-Encoding": "chunked"}),
            chunked(b" " * (LIMIT + 4096) + b"{}"),
        ),
        status=413,
        outcome="too_large",
        encoding=JSON,
        message=f"exceeds the limit of {LIMIT} bytes",
    ),
    "gzip-bomb": Bad(
        _post("/v1/metrics", gzip_bomb(32 << 20), Content_Type=PROTOBUF, Content_Encoding="gzip"),
        status=413,
        outcome="too_large",
        encoding=PROTOBUF,
        message=f"decompressed body exceeds the limit of {LIMIT} bytes",
    ),
    "gzip-bomb-json-chunked": Bad(
        _raw(
            head(
                "/v1/logs",
                {"Content-Type": JSON, "Content-Encoding": "gzip", "Transfer-Encoding": "chunked"},
            ),
            chunked(gzip_bomb(8 << 20)),
        ),
        status=413,
        outcome="too_large",
        encoding=JSON,
        message="decompressed body exceeds the limit",
    ),
    "corrupt-gzip": Bad(
        _post(
            "/v1/metrics",
            b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xff\xff\xff\xff",
            Content_Type=PROTOBUF,
            Content_Encoding="gzip",
        ),
        status=400,
        outcome="invalid",
        encoding=PROTOBUF,
        message="malformed gzip body",
    ),
    "truncated-gzip": Bad(
        _post(
            "/v1/logs",
            gzip.compress(_LOGS_BODY)[:-20],
            Content_Type=PROTOBUF,
            Content_Encoding="gzip",
        ),
        status=400,
        outcome="invalid",
        encoding=PROTOBUF,
        message="gzip",
    ),
    "not-gzip-at-all": Bad(
        _post("/v1/metrics", b"{}", Content_Type=JSON, Content_Encoding="gzip"),
        status=400,
        outcome="invalid",
        encoding=JSON,
        message="gzip",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_request_is_refused_and_costs_nothing(collector: RunningCollector, case: str) -> None:
    bad = BAD[case]
    status, headers, body = bad.send(collector)
    assert status == bad.status, body
    assert headers["content-type"].startswith(bad.encoding)
    refusal = decode_status(body, headers["content-type"])
    assert refusal.code == INVALID_ARGUMENT
    assert bad.message in refusal.message
    assert not refusal.details  # permanent errors carry no retry delay
    assert "retry-after" not in headers

    assert collector.total("cc_collector_requests_total", protocol="http", outcome=bad.outcome) == 1
    assert collector.total("cc_collector_requests_total", outcome="success") == 0
    assert collector.total("cc_collector_decode_errors_total") == (1 if bad.decode_error else 0)
    assert_nothing_counted(collector)
    assert collector.total("cc_collector_inflight_requests") == 0

    assert_capture_counted_exactly(collector, "http-protobuf")


def test_refusals_in_a_row_then_every_capture_counts_exactly(collector: RunningCollector) -> None:
    """All the bad requests back to back on one collector, then a JSON capture: still exact."""
    statuses = {case: bad.send(collector)[0] for case, bad in BAD.items()}
    assert statuses == {case: bad.status for case, bad in BAD.items()}
    assert_nothing_counted(collector)
    with urllib.request.urlopen(collector.metrics_url.replace("/metrics", "/healthz")) as health:
        assert health.status == 200
    assert_capture_counted_exactly(collector, "http-json")


def test_gzip_bomb_leaves_the_process_healthy_and_memory_bounded() -> None:
    bomb = gzip_bomb(256 << 20)  # 256 MiB inflated, about 250 kB on the wire
    assert len(bomb) < 4 << 20
    config = make_config(
        {"receivers": {"otlp": {"protocols": {"http": {"max_request_body_size": 1 << 20}}}}}
    )
    with running_collector(config) as big:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
        status, _, body = post(
            big.http_base + "/v1/metrics",
            bomb,
            {"Content-Type": PROTOBUF, "Content-Encoding": "gzip"},
        )
        grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        assert status == 413, body
        assert grown_mib < 128, f"peak memory grew by {grown_mib:.0f} MiB inflating a bomb"
        health_url = big.metrics_url.replace("/metrics", "/healthz")
        with urllib.request.urlopen(health_url, timeout=10) as health:
            assert health.status == 200
        assert_capture_counted_exactly(big, "http-protobuf")


def test_get_on_export_path_is_405(collector: RunningCollector) -> None:
    for signal in ("metrics", "logs", "traces"):
        status, headers, _ = post(f"{collector.http_base}/v1/{signal}", None, {}, method="GET")
        assert status == 405
        assert "POST" in headers.get("allow", "")
    assert_nothing_counted(collector)
    assert_capture_counted_exactly(collector, "http-protobuf")


def test_unknown_path_is_404_not_500(collector: RunningCollector) -> None:
    status, _, _ = post(f"{collector.http_base}/v1/profiles", b"", {"Content-Type": PROTOBUF})
    assert status == 404
    assert_capture_counted_exactly(collector, "http-protobuf")


def test_chunked_valid_bodies_are_accepted(collector: RunningCollector) -> None:
    """Transfer-Encoding: chunked (no Content-Length), in small chunks, gzip or not."""
    items = captured("http-protobuf")
    for n, item in enumerate(items):
        body, headers = item.body, {"Content-Type": PROTOBUF, "Transfer-Encoding": "chunked"}
        if n % 2:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        status, reply_headers, reply = raw_exchange(
            collector.service.ports.http, head(f"/v1/{item.signal}", headers), chunked(body, 97)
        )
        assert status == 200, reply
        assert reply_headers["content-type"] == PROTOBUF
    result = expected("http-protobuf")
    assert (
        collector.total("claude_code_tokens_total", type="input") == result["usage"]["input_tokens"]
    )
    assert collector.total("claude_code_cost_usd_total") == pytest.approx(
        result["total_cost_usd"], abs=1e-9
    )
    assert collector.total("cc_collector_items_total", outcome="accepted") == sum(
        capture_items("http-protobuf").values()
    )


def test_body_exactly_at_the_limit_is_accepted(collector: RunningCollector) -> None:
    """The limit is inclusive: a body of exactly max_request_body_size bytes is read."""
    # An unknown field padded to the exact size: `{"x":"...."}` is ignored by OTLP/JSON.
    body = b'{"x":"' + b"a" * (LIMIT - 8) + b'"}'
    assert len(body) == LIMIT
    status, _, reply = post(collector.http_base + "/v1/metrics", body, {"Content-Type": JSON})
    assert status == 200, reply
    assert json.loads(reply) == {}
    status, _, _ = post(collector.http_base + "/v1/metrics", body + b" ", {"Content-Type": JSON})
    assert status == 413


@pytest.mark.parametrize("case", ["http-protobuf", "http-json"])
def test_corrupted_captures_never_get_a_500(collector: RunningCollector, case: str) -> None:
    """Real bodies with bytes flipped (fixed seed): each is accepted or refused, never a 500."""
    rng = random.Random(20261122)
    content_type = JSON if case == "http-json" else PROTOBUF
    statuses = []
    for item in captured(case):
        for _ in range(15):
            body = bytearray(item.body)
            for _ in range(rng.randint(1, 4)):
                body[rng.randrange(len(body))] = rng.randrange(256)
            status, headers, reply = post(
                f"{collector.http_base}/v1/{item.signal}",
                bytes(body),
                {"Content-Type": content_type},
            )
            statuses.append(status)
            assert status in (200, 400), (status, reply)
            assert headers["content-type"].startswith(content_type)
    assert 400 in statuses
    assert collector.total("cc_collector_inflight_requests") == 0
    with urllib.request.urlopen(collector.metrics_url.replace("/metrics", "/healthz")) as health:
        assert health.status == 200


# -- OTLP/JSON specifics -----------------------------------------------------------------

_TRACE = "5b8efff798038103d269b633813fc60c"
_SPAN = "eee19b7ec3c1b174"


def _sv(value: str) -> dict:
    return {"stringValue": value}


def _metrics_json(point: dict, temporality: object, snake: bool = False, **extra: object) -> dict:
    """One claude_code.token.usage Sum with one point; keys lowerCamel or snake_case."""
    k = (lambda camel, snake_: snake_) if snake else (lambda camel, snake_: camel)
    return {
        k("resourceMetrics", "resource_metrics"): [
            {
                "resource": {
                    "attributes": [{"key": "user.email", "value": _sv("dev@example.com")}]
                },
                k("scopeMetrics", "scope_metrics"): [
                    {
                        "scope": {"name": "com.anthropic.claude_code", "version": "2.1.330"},
                        "metrics": [
                            {
                                "name": "claude_code.token.usage",
                                "unit": "tokens",
                                "sum": {
                                    k("aggregationTemporality", "aggregation_temporality"): (
                                        temporality
                                    ),
                                    k("isMonotonic", "is_monotonic"): True,
                                    k("dataPoints", "data_points"): [point],
                                },
                                **extra,
                            }
                        ],
                    }
                ],
            }
        ]
    }


def _point(value: object, time: object, **more: object) -> dict:
    return {
        "attributes": [
            {"key": "type", "value": _sv("input")},
            {"key": "model", "value": _sv("m-metrics")},
        ],
        "startTimeUnixNano": "1795303900000000000",
        "timeUnixNano": time,
        "asInt": value,
        **more,
    }


T0 = 1795303980000000000

JSON_METRICS_ACCEPTED = {
    "enum-as-string-int64-as-string": (
        _metrics_json(_point("11", str(T0 + 1)), "AGGREGATION_TEMPORALITY_DELTA"),
        11,
    ),
    "enum-as-number-int64-as-number": (_metrics_json(_point(13, T0 + 2), 1), 13),
    "cumulative-enum-as-string": (
        _metrics_json(_point("17", str(T0 + 3)), "AGGREGATION_TEMPORALITY_CUMULATIVE"),
        17,
    ),
    "snake-case-keys": (
        _metrics_json(
            {
                "attributes": _point(0, 0)["attributes"],
                "start_time_unix_nano": "1795303900000000000",
                "time_unix_nano": T0 + 4,
                "as_int": "19",
            },
            1,
            snake=True,
        ),
        19,
    ),
    "unknown-fields-ignored": (
        {
            **_metrics_json(
                _point("23", str(T0 + 5), futureField={"nested": [1, 2]}),
                1,
                description="tokens",
                brandNewField=True,
            ),
            "someExtension": {"x": 1},
        },
        23,
    ),
    "hex-ids-in-exemplars": (
        _metrics_json(
            _point(
                "29",
                str(T0 + 6),
                exemplars=[
                    {
                        "timeUnixNano": str(T0 + 6),
                        "asInt": "29",
                        "traceId": _TRACE,
                        "spanId": _SPAN,
                    }
                ],
            ),
            1,
        ),
        29,
    ),
}


def _event(request_id: str, input_tokens: object, **more: object) -> dict:
    attrs = {
        "event.name": _sv("api_request"),
        "session.id": _sv("s-json"),
        "user.email": _sv("dev@example.com"),
        "model": _sv("m-events"),
        "request_id": _sv(request_id),
        "input_tokens": input_tokens,
        "cost_usd": {"doubleValue": 0.5},
    }
    return {
        "timeUnixNano": str(T0),
        "body": _sv("claude_code.api_request"),
        "attributes": [{"key": key, "value": value} for key, value in attrs.items()],
        **more,
    }


def _logs_json(*records: dict) -> dict:
    return {
        "resourceLogs": [
            {
                "resource": {"attributes": []},
                "scopeLogs": [
                    {"scope": {"name": "com.anthropic.claude_code"}, "logRecords": records}
                ],
            }
        ]
    }


JSON_LOGS_ACCEPTED = {
    "severity-as-string-int-as-string": (
        _logs_json(
            _event("r1", {"intValue": "100"}, severityNumber="SEVERITY_NUMBER_INFO"),
        ),
        100,
    ),
    "severity-as-number-int-as-number": (
        _logs_json(_event("r2", {"intValue": 200}, severityNumber=9, timeUnixNano=T0)),
        200,
    ),
    "hex-trace-and-span-ids": (
        _logs_json(_event("r3", {"stringValue": "300"}, traceId=_TRACE, spanId=_SPAN, flags=1)),
        300,
    ),
    "upper-case-hex-and-unknown-fields": (
        _logs_json(
            _event(
                "r4",
                {"intValue": "400"},
                traceId=_TRACE.upper(),
                spanId=_SPAN.upper(),
                eventName="claude_code.api_request",
                somethingNew={"a": [1]},
            )
        ),
        400,
    ),
}


def _post_json(collector: RunningCollector, signal: str, document: dict) -> tuple[int, bytes]:
    status, headers, body = post(
        f"{collector.http_base}/v1/{signal}", json.dumps(document).encode(), {"Content-Type": JSON}
    )
    assert headers["content-type"].startswith(JSON)
    return status, body


def test_otlp_json_spellings_are_all_accepted_and_counted(collector: RunningCollector) -> None:
    for case, (document, _) in JSON_METRICS_ACCEPTED.items():
        status, body = _post_json(collector, "metrics", document)
        assert (status, json.loads(body)) == (200, {}), case
    for case, (document, _) in JSON_LOGS_ACCEPTED.items():
        status, body = _post_json(collector, "logs", document)
        assert (status, json.loads(body)) == (200, {}), case

    metric_tokens = sum(n for _, n in JSON_METRICS_ACCEPTED.values())
    event_tokens = sum(n for _, n in JSON_LOGS_ACCEPTED.values())
    assert collector.total("claude_code_tokens_total", model="m-metrics", type="input") == (
        metric_tokens
    )
    assert collector.total("claude_code_tokens_total", model="m-events", type="input") == (
        event_tokens
    )
    assert collector.total("claude_code_api_requests_total", model="m-events") == len(
        JSON_LOGS_ACCEPTED
    )
    assert collector.total("claude_code_cost_usd_total", model="m-events") == pytest.approx(
        0.5 * len(JSON_LOGS_ACCEPTED)
    )
    assert collector.total("cc_collector_items_total", signal="metrics", outcome="accepted") == (
        len(JSON_METRICS_ACCEPTED)
    )
    assert collector.total("cc_collector_items_total", signal="logs", outcome="accepted") == (
        len(JSON_LOGS_ACCEPTED)
    )
    assert collector.total("cc_collector_items_total", outcome="rejected") == 0


JSON_BAD_IDS = {
    "trace-id-not-hex": ("logs", _logs_json(_event("b1", {"intValue": "1"}, traceId="xyz"))),
    "span-id-odd-length": ("logs", _logs_json(_event("b2", {"intValue": "1"}, spanId="abc"))),
    "exemplar-span-id-not-hex": (
        "metrics",
        _metrics_json(
            _point("1", str(T0), exemplars=[{"timeUnixNano": str(T0), "spanId": "zz"}]), 1
        ),
    ),
}


@pytest.mark.parametrize("case", sorted(JSON_BAD_IDS))
def test_otlp_json_bad_hex_id_is_400(collector: RunningCollector, case: str) -> None:
    signal, document = JSON_BAD_IDS[case]
    status, body = _post_json(collector, signal, document)
    assert status == 400
    refusal = decode_status(body, JSON)
    assert refusal.code == INVALID_ARGUMENT
    assert "is not hex" in refusal.message
    assert_nothing_counted(collector)
    assert_capture_counted_exactly(collector, "http-json")
