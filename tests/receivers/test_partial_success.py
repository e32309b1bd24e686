"""Responses in the request's encoding, and partial success for batches with bad items.

A batch mixing good and bad items is acknowledged (200 / OK): the good ones are counted
exactly, and `partial_success` tells the client how many were refused and why, as the OTLP
spec asks, over gRPC, OTLP/HTTP protobuf and OTLP/HTTP JSON alike.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2

from tests.harness import RunningCollector, running_collector
from tests.replay import GRPC_METHODS

TRANSPORTS = ("grpc", "http-protobuf", "http-json")
DELTA = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
CUMULATIVE = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
UNSPECIFIED = metrics_pb2.AGGREGATION_TEMPORALITY_UNSPECIFIED
NOW = time.time_ns()
START = NOW - 60 * 10**9

RESPONSES: dict[str, type[Message]] = {
    "metrics": metrics_service_pb2.ExportMetricsServiceResponse,
    "logs": logs_service_pb2.ExportLogsServiceResponse,
    "traces": trace_service_pb2.ExportTraceServiceResponse,
}


# -- building requests -------------------------------------------------------------------


def kv(key: str, value: object) -> common_pb2.KeyValue:
    if isinstance(value, bool):
        return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(bool_value=value))
    if isinstance(value, int):
        return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(int_value=value))
    if isinstance(value, float):
        return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(double_value=value))
    return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(string_value=str(value)))


def attrs(**values: object) -> list[common_pb2.KeyValue]:
    return [kv(k.replace("__", "."), v) for k, v in values.items()]


def point(value: float | int, at: int = NOW, **labels: object) -> metrics_pb2.NumberDataPoint:
    p = metrics_pb2.NumberDataPoint(start_time_unix_nano=START, time_unix_nano=at)
    if isinstance(value, int):
        p.as_int = value
    else:
        p.as_double = value
    p.attributes.extend(attrs(**labels))
    return p


def sum_metric(
    name: str, temporality: int, *points: metrics_pb2.NumberDataPoint
) -> metrics_pb2.Metric:
    metric = metrics_pb2.Metric(name=name)
    metric.sum.aggregation_temporality = temporality
    metric.sum.is_monotonic = True
    metric.sum.data_points.extend(points)
    return metric


def gauge_metric(name: str, *points: metrics_pb2.NumberDataPoint) -> metrics_pb2.Metric:
    metric = metrics_pb2.Metric(name=name)
    metric.gauge.data_points.extend(points)
    return metric


def metrics_request(
    *metrics: metrics_pb2.Metric,
) -> metrics_service_pb2.ExportMetricsServiceRequest:
    request = metrics_service_pb2.ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.extend(
        attrs(user__email="dev@example.com", service__name="claude-code")
    )
    scope = resource_metrics.scope_metrics.add()
    scope.scope.name = "com.anthropic.claude_code"
    scope.metrics.extend(metrics)
    return request


def event(name: str, **values: object) -> logs_pb2.LogRecord:
    record = logs_pb2.LogRecord(time_unix_nano=NOW, observed_time_unix_nano=NOW)
    record.body.string_value = f"claude_code.{name}"
    record.attributes.extend(
        attrs(event__name=name, session__id="s-partial", user__email="dev@example.com", **values)
    )
    return record


def logs_request(*records: logs_pb2.LogRecord) -> logs_service_pb2.ExportLogsServiceRequest:
    request = logs_service_pb2.ExportLogsServiceRequest()
    scope = request.resource_logs.add().scope_logs.add()
    scope.scope.name = "com.anthropic.claude_code"
    scope.log_records.extend(records)
    return request


def otlp_json(message: Message) -> bytes:
    """OTLP/JSON: proto3 JSON, but trace and span ids in hex instead of base64."""

    def hexify(node: object) -> object:
        if isinstance(node, dict):
            return {
                k: bytes(base64.b64decode(v)).hex()
                if k in ("traceId", "spanId", "parentSpanId") and isinstance(v, str)
                else hexify(v)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [hexify(v) for v in node]
        return node

    return json.dumps(hexify(json_format.MessageToDict(message))).encode()


# -- sending -----------------------------------------------------------------------------


def export(
    collector: RunningCollector, transport: str, signal: str, request: Message
) -> tuple[object, Message]:
    """Send `request`; returns (status, decoded Export*ServiceResponse)."""
    response = RESPONSES[signal]()
    if transport == "grpc":
        with grpc.insecure_channel(collector.grpc_endpoint) as channel:
            raw = channel.unary_unary(GRPC_METHODS[signal])(request.SerializeToString(), timeout=10)
        response.ParseFromString(raw)
        return grpc.StatusCode.OK, response
    as_json = transport == "http-json"
    content_type = "application/json" if as_json else "application/x-protobuf"
    body = otlp_json(request) if as_json else request.SerializeToString()
    http_request = urllib.request.Request(
        f"{collector.http_base}/v1/{signal}",
        data=body,
        headers={"Content-Type": content_type},
        method="POST",
    )
    try:
        with urllib.request.urlopen(http_request, timeout=10) as reply:
            status, reply_type, reply_body = (
                reply.status,
                reply.headers["Content-Type"],
                reply.read(),
            )
    except urllib.error.HTTPError as error:
        pytest.fail(f"HTTP {error.code}: {error.read()!r}")
    assert reply_type == content_type  # replies come in the request's encoding
    if as_json:
        json_format.Parse(reply_body, response)  # strict: no unknown fields in the reply
    else:
        response.ParseFromString(reply_body)
    return status, response


OK = {"grpc": grpc.StatusCode.OK, "http-protobuf": 200, "http-json": 200}


# -- metrics -----------------------------------------------------------------------------

GOOD_METRICS = (
    sum_metric(
        "claude_code.cost.usage",
        DELTA,
        point(0.25, model="claude-good", query="a"),
        point(0.5, model="claude-good", query="b"),
    ),
    sum_metric(
        "claude_code.token.usage",
        DELTA,
        point(100, model="claude-good", type="input"),
        point(7, model="claude-good", type="output"),
    ),
    sum_metric("claude_code.lines_of_code.count", CUMULATIVE, point(12, type="added")),
)
GOOD_POINTS = 5

BAD_METRICS = {
    "temporality unspecified": sum_metric(
        "claude_code.cost.usage",
        UNSPECIFIED,
        point(9.0, model="claude-bad"),
        point(9.0, model="claude-bad", q="x"),
    ),
    "expected a Sum, got gauge": gauge_metric(
        "claude_code.token.usage",
        point(1000, model="claude-bad", type="input"),
        point(1000, model="claude-bad", type="output"),
        point(1000, model="claude-bad", type="cacheRead"),
    ),
    "negative": sum_metric(
        "claude_code.token.usage", DELTA, point(-50, model="claude-bad", type="input")
    ),
    "not finite": sum_metric(
        "claude_code.cost.usage", DELTA, point(float("nan"), model="claude-bad", q="nan")
    ),
    "time_unix_nano missing": sum_metric(
        "claude_code.commit.count", DELTA, point(3, at=0, model="claude-bad")
    ),
}
BAD_POINTS = 2 + 3 + 1 + 1 + 1

IGNORED_METRICS = (
    gauge_metric("process.memory.usage", point(123.0), point(456.0)),
    sum_metric("some.other.counter", UNSPECIFIED, point(5)),
)
IGNORED_POINTS = 3


def assert_good_metrics_counted(collector: RunningCollector) -> None:
    assert collector.total("claude_code_cost_usd_total") == pytest.approx(0.75, abs=1e-9)
    assert collector.total("claude_code_tokens_total", type="input") == 100
    assert collector.total("claude_code_tokens_total", type="output") == 7
    assert collector.total("claude_code_tokens_total") == 107
    assert collector.total("claude_code_lines_of_code_total", type="added") == 12
    assert collector.total("claude_code_commits_total") == 0
    assert collector.total("claude_code_cost_usd_total", model="claude-bad") == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_metrics_partial_success(transport: str) -> None:
    request = metrics_request(*GOOD_METRICS, *BAD_METRICS.values(), *IGNORED_METRICS)
    with running_collector() as collector:
        status, response = export(collector, transport, "metrics", request)
        assert status == OK[transport]
        partial = response.partial_success
        assert response.HasField("partial_success")
        assert partial.rejected_data_points == BAD_POINTS
        assert partial.error_message.startswith(f"{BAD_POINTS} rejected")
        for reason in ("unspecified", "expected a Sum, got gauge", "negative", "time_unix_nano"):
            assert reason in partial.error_message
        assert "claude_code.cost.usage" in partial.error_message

        assert_good_metrics_counted(collector)
        items = {
            outcome: collector.total("cc_collector_items_total", signal="metrics", outcome=outcome)
            for outcome in ("accepted", "rejected", "ignored", "duplicate", "stale")
        }
        assert items == {
            "accepted": GOOD_POINTS,
            "rejected": BAD_POINTS,
            "ignored": IGNORED_POINTS,
            "duplicate": 0,
            "stale": 0,
        }
        protocol = "grpc" if transport == "grpc" else "http"
        assert (
            collector.total("cc_collector_requests_total", protocol=protocol, outcome="partial")
            == 1
        )

        # A client retry of the whole batch: good points are duplicates, bad ones refused again.
        status, response = export(collector, transport, "metrics", request)
        assert response.partial_success.rejected_data_points == BAD_POINTS
        assert_good_metrics_counted(collector)
        assert collector.total(
            "cc_collector_items_total", signal="metrics", outcome="duplicate"
        ) == (GOOD_POINTS)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_all_bad_metrics_still_answered_with_partial_success(transport: str) -> None:
    request = metrics_request(*BAD_METRICS.values())
    with running_collector() as collector:
        status, response = export(collector, transport, "metrics", request)
        assert status == OK[transport]
        assert response.partial_success.rejected_data_points == BAD_POINTS
        assert collector.total("claude_code_tokens_total") == 0
        assert collector.total("claude_code_cost_usd_total") == 0
        assert collector.total("cc_collector_items_total", outcome="accepted") == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_value_too_large_to_account_is_rejected_not_a_crash(transport: str) -> None:
    """1e300 USD is finite, but not as nano-USD: it must be refused, never crash the export."""
    request = metrics_request(
        *GOOD_METRICS,
        sum_metric("claude_code.cost.usage", DELTA, point(1e300, model="claude-bad", q="huge")),
    )
    with running_collector() as collector:
        status, response = export(collector, transport, "metrics", request)
        assert status == OK[transport]
        assert response.partial_success.rejected_data_points == 1
        assert_good_metrics_counted(collector)


# -- logs --------------------------------------------------------------------------------

GOOD_EVENTS = (
    event(
        "api_request",
        request_id="req-1",
        model="claude-good",
        input_tokens="100",
        output_tokens=20,
        cost_usd=0.125,
        duration_ms="1500",
    ),
    event(
        "api_request",
        request_id="req-2",
        model="claude-good",
        input_tokens=50,
        output_tokens="5",
        cost_usd="0.25",
        duration_ms=800,
    ),
    event("user_prompt", prompt_length="42", event__sequence=1),
    event("tool_result", tool_use_id="t-1", tool_name="Bash", success="true", duration_ms="12"),
    # An unreadable duration costs only its histogram sample, not the record.
    event("tool_result", tool_use_id="t-2", tool_name="Read", success=True, duration_ms="slow"),
)
BAD_EVENTS = {
    "input_tokens is not a number": event(
        "api_request", request_id="req-bad-1", model="claude-bad", input_tokens="abc"
    ),
    "cost_usd is not a number": event(
        "api_request", request_id="req-bad-2", model="claude-bad", input_tokens=1, cost_usd="cheap"
    ),
    "cache_read_tokens is not a number": event(
        "api_request", request_id="req-bad-3", model="claude-bad", cache_read_tokens="n/a"
    ),
}


def assert_good_events_counted(collector: RunningCollector) -> None:
    assert collector.total("claude_code_api_requests_total") == 2
    assert collector.total("claude_code_api_requests_total", model="claude-bad") == 0
    assert collector.total("claude_code_tokens_total", type="input") == 150
    assert collector.total("claude_code_tokens_total", type="output") == 25
    assert collector.total("claude_code_cost_usd_total") == pytest.approx(0.375, abs=1e-9)
    assert collector.total("claude_code_prompts_total") == 1
    assert collector.total("claude_code_tool_calls_total") == 2
    assert collector.total("claude_code_tool_duration_seconds_count") == 1
    assert collector.total("claude_code_tool_duration_seconds_sum") == pytest.approx(0.012)
    assert collector.total("claude_code_api_request_duration_seconds_count") == 2
    assert collector.total("claude_code_events_total") == len(GOOD_EVENTS)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_logs_partial_success(transport: str) -> None:
    records = [*GOOD_EVENTS[:2], *BAD_EVENTS.values(), *GOOD_EVENTS[2:]]
    with running_collector() as collector:
        status, response = export(collector, transport, "logs", logs_request(*records))
        assert status == OK[transport]
        partial = response.partial_success
        assert partial.rejected_log_records == len(BAD_EVENTS)
        assert partial.error_message.startswith(f"{len(BAD_EVENTS)} rejected")
        for reason in BAD_EVENTS:
            assert reason in partial.error_message
        assert_good_events_counted(collector)
        assert collector.total(
            "cc_collector_items_total", signal="logs", outcome="accepted"
        ) == len(GOOD_EVENTS)
        assert collector.total(
            "cc_collector_items_total", signal="logs", outcome="rejected"
        ) == len(BAD_EVENTS)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_event_cost_too_large_to_account_is_rejected_not_a_crash(transport: str) -> None:
    huge = event("api_request", request_id="req-huge", model="claude-bad", cost_usd="1e300")
    with running_collector() as collector:
        status, response = export(collector, transport, "logs", logs_request(*GOOD_EVENTS, huge))
        assert status == OK[transport]
        assert response.partial_success.rejected_log_records == 1
        assert_good_events_counted(collector)


# -- fully accepted batches --------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_fully_accepted_batches_get_an_empty_response(transport: str) -> None:
    spans = trace_service_pb2.ExportTraceServiceRequest()
    scope = spans.resource_spans.add().scope_spans.add()
    for n in range(4):
        scope.spans.add(
            name=f"claude_code.interaction.{n}",
            trace_id=bytes(range(16)),
            span_id=bytes([n + 1] * 8),
            start_time_unix_nano=START,
            end_time_unix_nano=NOW,
        )
    with running_collector() as collector:
        for signal, request in (
            ("metrics", metrics_request(*GOOD_METRICS)),
            ("logs", logs_request(*GOOD_EVENTS)),
            ("traces", spans),
        ):
            status, response = export(collector, transport, signal, request)
            assert status == OK[transport]
            assert not response.HasField("partial_success"), signal
            if signal == "metrics":
                assert_good_metrics_counted(collector)
        assert collector.total("claude_code_prompts_total") == 1
        assert collector.total("claude_code_api_requests_total") == 2
        assert collector.total("cc_collector_items_total", signal="traces", outcome="accepted") == 4
        assert collector.total("cc_collector_items_total", outcome="rejected") == 0


def test_http_reply_bytes_are_exactly_the_encoded_response() -> None:
    """Protobuf in, protobuf out (an empty message is zero bytes); JSON in, `{}` or an object."""
    with running_collector() as collector:
        for content_type, body, expected_reply in (
            ("application/x-protobuf", metrics_request(*GOOD_METRICS).SerializeToString(), b""),
            ("application/json", b'{"resourceMetrics": []}', {}),
        ):
            request = urllib.request.Request(
                f"{collector.http_base}/v1/metrics",
                data=body,
                headers={"Content-Type": content_type},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=10) as reply:
                assert reply.headers["Content-Type"] == content_type
                raw = reply.read()
            assert (json.loads(raw) if content_type == "application/json" else raw) == (
                expected_reply
            )
