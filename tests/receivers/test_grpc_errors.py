"""OTLP/gRPC refusals and traces, with real grpcio channels.

Every refusal carries a google.rpc.Status in `grpc-status-details-bin`; permanent ones
(INVALID_ARGUMENT) have no RetryInfo so clients do not retry them. After each refusal a
replay of the real gRPC capture must still match the CLI's totals exactly.
"""

from __future__ import annotations

import gzip

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2

from tests.harness import RunningCollector, make_config, running_collector
from tests.replay import GRPC_METHODS, captured, expected

MIB = 1024 * 1024


def status_details(error: grpc.RpcError) -> status_pb2.Status | None:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            return status_pb2.Status.FromString(value)
    return None


def call_raw(
    collector: RunningCollector, method: str, body: bytes, **kwargs: object
) -> grpc.RpcError | bytes:
    with grpc.insecure_channel(
        collector.grpc_endpoint,
        options=[("grpc.max_send_message_length", 64 * MIB)],
    ) as channel:
        try:
            return channel.unary_unary(method)(body, timeout=10, **kwargs)
        except grpc.RpcError as error:
            return error


def replay_grpc(collector: RunningCollector, compression: grpc.Compression | None = None) -> None:
    """The gRPC capture through the generated OTLP stubs (what an SDK exporter uses)."""
    with grpc.insecure_channel(collector.grpc_endpoint) as channel:
        stubs = {
            "metrics": (
                metrics_service_pb2_grpc.MetricsServiceStub(channel),
                metrics_service_pb2.ExportMetricsServiceRequest,
            ),
            "logs": (
                logs_service_pb2_grpc.LogsServiceStub(channel),
                logs_service_pb2.ExportLogsServiceRequest,
            ),
        }
        for item in captured("grpc"):
            stub, request_type = stubs[item.signal]
            response = stub.Export(
                request_type.FromString(item.body), timeout=10, compression=compression
            )
            assert not response.HasField("partial_success")


def assert_grpc_capture_exact(collector: RunningCollector) -> None:
    result = expected("grpc")
    usage = result["usage"]
    for label, key in (
        ("input", "input_tokens"),
        ("output", "output_tokens"),
        ("cache_read", "cache_read_input_tokens"),
        ("cache_creation", "cache_creation_input_tokens"),
    ):
        assert collector.total("claude_code_tokens_total", type=label) == usage[key]
    assert collector.total("claude_code_cost_usd_total") == pytest.approx(
        result["total_cost_usd"], abs=1e-9
    )
    assert collector.total("claude_code_api_requests_total") == result["num_turns"]
    assert collector.total("claude_code_sessions_total") == 1
    assert collector.total("cc_collector_items_total", outcome="rejected") == 0
    assert collector.total("cc_collector_items_total", outcome="duplicate") == 0


def assert_nothing_counted(collector: RunningCollector) -> None:
    assert collector.total("cc_collector_items_total") == 0
    assert collector.total("claude_code_tokens_total") == 0
    assert collector.total("claude_code_events_total") == 0


def big_metrics_request(size: int) -> bytes:
    """A well-formed metrics request of at least `size` bytes (a big resource attribute)."""
    request = metrics_service_pb2.ExportMetricsServiceRequest()
    resource = request.resource_metrics.add().resource
    resource.attributes.append(
        common_pb2.KeyValue(key="padding", value=common_pb2.AnyValue(string_value="x" * size))
    )
    body = request.SerializeToString()
    assert len(body) >= size
    return body


@pytest.fixture
def collector():
    config = make_config(
        {"receivers": {"otlp": {"protocols": {"grpc": {"max_recv_msg_size_mib": 1}}}}}
    )
    with running_collector(config) as running:
        yield running


MALFORMED = {
    "garbage": ("metrics", b"\xff\xff\xff\xff"),
    "truncated-capture": ("logs", captured("grpc")[1].body[:-7]),
    "field-number-zero": ("metrics", b"\x00\x01"),
    "length-past-the-end": ("logs", b"\x0a\x80\x80\x80\x80\x10"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_message_is_invalid_argument(collector: RunningCollector, case: str) -> None:
    signal, body = MALFORMED[case]
    assert captured("grpc")[1].signal == "logs"
    error = call_raw(collector, GRPC_METHODS[signal], body)
    assert isinstance(error, grpc.RpcError)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"malformed protobuf {signal} request" in error.details()
    details = status_details(error)
    assert details is not None
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert details.message == error.details()
    assert not details.details  # no RetryInfo: a permanent error
    assert collector.total("cc_collector_decode_errors_total", protocol="grpc", signal=signal) == 1
    assert collector.total("cc_collector_requests_total", protocol="grpc", outcome="invalid") == 1
    assert_nothing_counted(collector)
    replay_grpc(collector)
    assert_grpc_capture_exact(collector)


def test_message_over_the_limit_is_invalid_argument(collector: RunningCollector) -> None:
    body = big_metrics_request(MIB + 100)  # well-formed, but over max_recv_msg_size_mib: 1
    error = call_raw(collector, GRPC_METHODS["metrics"], body)
    assert isinstance(error, grpc.RpcError)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"exceeds the limit of {MIB}" in error.details()
    details = status_details(error)
    assert details is not None and not details.details
    assert collector.total("cc_collector_requests_total", protocol="grpc", outcome="too_large") == 1
    assert_nothing_counted(collector)
    replay_grpc(collector)
    assert_grpc_capture_exact(collector)


def test_message_at_the_limit_is_accepted(collector: RunningCollector) -> None:
    body = big_metrics_request(MIB - 64)
    padding = MIB - len(body)
    body = big_metrics_request(MIB - 64 + padding)
    assert len(body) == MIB
    reply = call_raw(collector, GRPC_METHODS["metrics"], body)
    assert reply == b"", reply


def test_message_far_over_the_limit_is_refused_without_retry(collector: RunningCollector) -> None:
    """Beyond 4x the limit grpc-core refuses before we see it: still no retry invited."""
    error = call_raw(collector, GRPC_METHODS["logs"], b"\x0a" + b"\x00" * (5 * MIB))
    assert isinstance(error, grpc.RpcError)
    assert error.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED)
    details = status_details(error)
    retry = [
        d
        for d in (details.details if details else ())
        if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)
    ]
    assert not retry
    assert_nothing_counted(collector)
    replay_grpc(collector)
    assert_grpc_capture_exact(collector)


def test_gzip_compressed_calls_are_accepted(collector: RunningCollector) -> None:
    replay_grpc(collector, compression=grpc.Compression.Gzip)
    assert_grpc_capture_exact(collector)


def test_gzip_compressed_message_over_the_limit_is_refused(collector: RunningCollector) -> None:
    """Compression does not get around the limit: it applies to the decompressed message."""
    body = big_metrics_request(2 * MIB)
    assert len(gzip.compress(body)) < MIB // 10
    error = call_raw(collector, GRPC_METHODS["metrics"], body, compression=grpc.Compression.Gzip)
    assert isinstance(error, grpc.RpcError)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert_nothing_counted(collector)


def test_traces_are_accepted_and_counted(collector: RunningCollector) -> None:
    request = trace_service_pb2.ExportTraceServiceRequest()
    expected_spans = 0
    for r in range(2):
        resource_spans = request.resource_spans.add()
        for s in range(2):
            scope = resource_spans.scope_spans.add()
            for n in range(r + s + 1):
                scope.spans.add(
                    name="claude_code.interaction",
                    trace_id=bytes([r + 1] * 16),
                    span_id=bytes([s + 1, n + 1] * 4),
                )
                expected_spans += 1
    assert expected_spans == 1 + 2 + 2 + 3
    with grpc.insecure_channel(collector.grpc_endpoint) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        response, call = stub.Export.with_call(request, timeout=10)
    assert call.code() == grpc.StatusCode.OK
    assert isinstance(response, trace_service_pb2.ExportTraceServiceResponse)
    assert not response.HasField("partial_success")
    assert collector.total("cc_collector_items_total", signal="traces", outcome="accepted") == (
        expected_spans
    )
    assert collector.total("cc_collector_requests_total", protocol="grpc", signal="traces") == 1
    # Spans are counted only: nothing of the Claude Code contract moves.
    assert collector.total("claude_code_events_total") == 0


def test_empty_export_is_ok(collector: RunningCollector) -> None:
    for signal, method in GRPC_METHODS.items():
        assert call_raw(collector, method, b"") == b"", signal
    assert_nothing_counted(collector)


@pytest.mark.parametrize(
    "method",
    [
        "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export",
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export2",
        "/grpc.health.v1.Health/Check",
        "/nonsense",
    ],
)
def test_unknown_method_is_unimplemented(collector: RunningCollector, method: str) -> None:
    error = call_raw(collector, method, b"")
    assert isinstance(error, grpc.RpcError)
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED
    replay_grpc(collector)
    assert_grpc_capture_exact(collector)


def test_refusals_then_capture_on_one_channel(collector: RunningCollector) -> None:
    """Refusals do not poison a long-lived channel (how SDK exporters hold it)."""
    with grpc.insecure_channel(collector.grpc_endpoint) as channel:
        export = channel.unary_unary(GRPC_METHODS["metrics"])
        codes = []
        for body in (b"\xff\xff", big_metrics_request(MIB + 1), b"\x0a\x03\x0a"):
            with pytest.raises(grpc.RpcError) as caught:
                export(body, timeout=10)
            codes.append(caught.value.code())
        assert codes == [grpc.StatusCode.INVALID_ARGUMENT] * 3
        for item in captured("grpc"):
            assert channel.unary_unary(GRPC_METHODS[item.signal])(item.body, timeout=10) == b""
    assert_grpc_capture_exact(collector)
