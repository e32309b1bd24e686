"""Wire formats: protobuf, OTLP/JSON (the spec's deviations from proto3 JSON), gzip, responses."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from collector.decoding.logs import decode_logs
from collector.decoding.metrics import decode_metrics
from collector.decoding.wire import (
    Signal,
    encode_response,
    gunzip,
    json_message,
    parse_json,
    parse_protobuf,
)
from collector.errors import ErrorKind, IngestError
from tests.builders import CUMULATIVE, DELTA, T0, claude_metric, metrics_request

FIXTURES = Path(__file__).parent.parent / "fixtures" / "claude-code-2.1.330"
TRACE_HEX = "5b8efff798038103d269b633813fc60c"
SPAN_HEX = "eee19b7ec3c1b174"
PARENT_HEX = "eee19b7ec3c1b173"


def _metrics_doc(camel: bool, temporality: object, int64: object, value_key: str) -> dict:
    """One cost.usage point, spelled with lowerCamelCase or snake_case keys."""

    def k(camel_key: str, snake_key: str) -> str:
        return camel_key if camel else snake_key

    return {
        k("resourceMetrics", "resource_metrics"): [
            {
                "resource": {"attributes": [{"key": "team.id", "value": {"stringValue": "core"}}]},
                k("scopeMetrics", "scope_metrics"): [
                    {
                        "scope": {"name": "com.anthropic.claude_code"},
                        "metrics": [
                            {
                                "name": "claude_code.cost.usage",
                                "sum": {
                                    k(
                                        "aggregationTemporality", "aggregation_temporality"
                                    ): temporality,
                                    k("isMonotonic", "is_monotonic"): True,
                                    k("dataPoints", "data_points"): [
                                        {
                                            k("startTimeUnixNano", "start_time_unix_nano"): int64,
                                            k("timeUnixNano", "time_unix_nano"): int64,
                                            value_key: 0.25,
                                            "attributes": [
                                                {
                                                    "key": "model",
                                                    "value": {
                                                        k("stringValue", "string_value"): "m"
                                                    },
                                                }
                                            ],
                                        }
                                    ],
                                },
                            }
                        ],
                    }
                ],
            }
        ]
    }


@pytest.mark.parametrize("camel", [True, False], ids=["camel", "snake"])
@pytest.mark.parametrize(
    "temporality", [1, "AGGREGATION_TEMPORALITY_DELTA"], ids=["enum-number", "enum-name"]
)
@pytest.mark.parametrize("int64", [str(T0), T0], ids=["int64-string", "int64-number"])
def test_otlp_json_spellings_parse_to_the_same_message(camel, temporality, int64) -> None:
    value_key = "asDouble" if camel else "as_double"
    doc = _metrics_doc(camel, temporality, int64, value_key)
    message = json_message(Signal.METRICS, doc)
    (rm,) = message.resource_metrics
    (metric,) = rm.scope_metrics[0].metrics
    (p,) = metric.sum.data_points
    assert metric.sum.aggregation_temporality == DELTA
    assert (p.start_time_unix_nano, p.time_unix_nano, p.as_double) == (T0, T0, 0.25)
    assert p.WhichOneof("value") == "as_double"
    batch = decode_metrics(message)
    (point,) = batch.points
    assert point.attributes == {"team.id": "core", "model": "m"}
    assert point.value == 0.25
    assert point.name == "claude_code.cost.usage"


def test_cumulative_enum_name() -> None:
    doc = _metrics_doc(True, "AGGREGATION_TEMPORALITY_CUMULATIVE", str(T0), "asDouble")
    message = json_message(Signal.METRICS, doc)
    assert message.resource_metrics[0].scope_metrics[0].metrics[0].sum.aggregation_temporality == (
        CUMULATIVE
    )


def _log_doc(**ids: str) -> dict:
    return {
        "resourceLogs": [
            {
                "scopeLogs": [
                    {
                        "logRecords": [
                            {
                                "timeUnixNano": str(T0),
                                "body": {"stringValue": "claude_code.user_prompt"},
                                **ids,
                            }
                        ]
                    }
                ]
            }
        ]
    }


@pytest.mark.parametrize("style", ["camel", "snake"])
def test_hex_trace_and_span_ids_are_converted(style: str) -> None:
    keys = ("traceId", "spanId") if style == "camel" else ("trace_id", "span_id")
    doc = _log_doc(**{keys[0]: TRACE_HEX, keys[1]: SPAN_HEX.upper()})
    message = json_message(Signal.LOGS, doc)
    record = message.resource_logs[0].scope_logs[0].log_records[0]
    assert record.trace_id == bytes.fromhex(TRACE_HEX)
    assert record.span_id == bytes.fromhex(SPAN_HEX)


def test_hex_ids_in_traces_including_parent_span_id() -> None:
    doc = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": TRACE_HEX,
                                "spanId": SPAN_HEX,
                                "parentSpanId": PARENT_HEX,
                                "name": "claude_code.interaction",
                                "kind": 1,
                                "startTimeUnixNano": str(T0),
                                "links": [{"traceId": TRACE_HEX, "spanId": PARENT_HEX}],
                            }
                        ]
                    }
                ]
            }
        ]
    }
    message = parse_json(Signal.TRACES, json.dumps(doc).encode())
    (span,) = message.resource_spans[0].scope_spans[0].spans
    assert span.trace_id == bytes.fromhex(TRACE_HEX)
    assert span.span_id == bytes.fromhex(SPAN_HEX)
    assert span.parent_span_id == bytes.fromhex(PARENT_HEX)
    assert span.links[0].span_id == bytes.fromhex(PARENT_HEX)


def test_an_attribute_named_like_an_id_is_left_alone() -> None:
    doc = _log_doc(traceId=TRACE_HEX)
    record = doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    record["attributes"] = [{"key": "traceId", "value": {"stringValue": "not-hex"}}]
    message = json_message(Signal.LOGS, doc)
    attrs = message.resource_logs[0].scope_logs[0].log_records[0].attributes
    assert attrs[0].value.string_value == "not-hex"


def test_empty_hex_id_is_an_empty_id() -> None:
    message = json_message(Signal.LOGS, _log_doc(traceId="", spanId=""))
    record = message.resource_logs[0].scope_logs[0].log_records[0]
    assert (record.trace_id, record.span_id) == (b"", b"")


def test_unknown_fields_are_ignored_at_every_level() -> None:
    doc = _metrics_doc(True, 1, str(T0), "asDouble")
    doc["somethingNew"] = {"x": 1}
    doc["resourceMetrics"][0]["schemaUrlV2"] = "x"
    metric = doc["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]
    metric["futureField"] = [1, 2, 3]
    metric["sum"]["dataPoints"][0]["exemplarsV2"] = []
    message = json_message(Signal.METRICS, doc)
    assert len(decode_metrics(message).points) == 1


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{not json", id="syntax"),
        pytest.param(b"\xff\xfe\x00garbage", id="not-utf8"),
        pytest.param(b"[]", id="array"),
        pytest.param(b'"resourceLogs"', id="string"),
        pytest.param(b"null", id="null"),
        pytest.param(b'{"resourceLogs": "x"}', id="wrong-type"),
        pytest.param(b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [1]}]}]}', id="nested"),
        pytest.param(
            json.dumps(_log_doc(timeUnixNano="yesterday")).encode(), id="int64-not-number"
        ),
        pytest.param(json.dumps(_log_doc(traceId="zz")).encode(), id="trace-id-not-hex"),
        pytest.param(json.dumps(_log_doc(spanId="abc")).encode(), id="span-id-odd-length"),
    ],
)
def test_malformed_json_is_invalid(body: bytes) -> None:
    with pytest.raises(IngestError) as info:
        parse_json(Signal.LOGS, body)
    assert info.value.kind is ErrorKind.INVALID
    assert not info.value.retryable
    assert info.value.message


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 100_000, id="arrays"),
        pytest.param(b'{"a":' * 100_000, id="objects"),
        pytest.param(b'{"resourceLogs":' + b"[" * 5000 + b"]" * 5000 + b"}", id="in-a-field"),
    ],
)
def test_deeply_nested_json_is_invalid_not_a_crash(body: bytes) -> None:
    """A hostile body nested past the recursion limit must be a 400, not an unhandled
    RecursionError (a 500 that the HTTP receiver also records as outcome "success")."""
    with pytest.raises(IngestError) as info:
        parse_json(Signal.LOGS, body)
    assert info.value.kind is ErrorKind.INVALID


def test_malformed_protobuf_is_invalid() -> None:
    good = metrics_request(claude_metric("commit.count", 1, time_ns=T0)).SerializeToString()
    for body in (b"\xff\xff\xff\xff", good[: len(good) // 2], b"\x0a\x05ab"):
        with pytest.raises(IngestError) as info:
            parse_protobuf(Signal.METRICS, body)
        assert info.value.kind is ErrorKind.INVALID
    empty = decode_metrics(parse_protobuf(Signal.METRICS, b""))
    assert (empty.points, empty.ignored, empty.rejected.count) == ([], 0, 0)


def test_real_json_capture_equals_its_protobuf_meaning() -> None:
    """Each http-json capture parses, and re-encoding it as protobuf round-trips exactly."""
    folder = FIXTURES / "http-json" / "otlp"
    entries = [json.loads(line) for line in (folder / "index.jsonl").read_text().splitlines()]
    assert entries
    for entry in entries:
        signal = Signal(entry["signal"])
        message = json_message(signal, json.loads((folder / entry["raw"]).read_bytes()))
        again = parse_protobuf(signal, message.SerializeToString())
        if signal is Signal.LOGS:
            assert decode_logs(message).events
            assert decode_logs(again) == decode_logs(message)
        elif signal is Signal.METRICS:
            assert decode_metrics(message).rejected.count == 0
            assert decode_metrics(again) == decode_metrics(message)


# -- gzip ------------------------------------------------------------------------------------


def test_gunzip_single_and_concatenated_members() -> None:
    assert gunzip(gzip.compress(b"hello"), 100) == b"hello"
    body = gzip.compress(b"hello ") + gzip.compress(b"") + gzip.compress(b"world")
    assert gunzip(body, 100) == b"hello world"
    assert gunzip(b"", 100) == b""


def test_gunzip_real_capture_round_trip() -> None:
    raw = (FIXTURES / "gzip-headers" / "otlp" / "0003_http-protobuf_metrics.pb").read_bytes()
    assert gunzip(gzip.compress(raw), len(raw)) == raw


def test_gunzip_exactly_at_the_limit_passes_one_more_byte_does_not() -> None:
    data = bytes(range(256)) * 40
    assert gunzip(gzip.compress(data), len(data)) == data
    with pytest.raises(IngestError) as info:
        gunzip(gzip.compress(data), len(data) - 1)
    assert info.value.kind is ErrorKind.TOO_LARGE


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(gzip.compress(b"x" * 1000)[:-8], id="no-trailer"),
        pytest.param(gzip.compress(b"x" * 1000)[:15], id="cut-in-the-stream"),
        pytest.param(gzip.compress(b"abc") + gzip.compress(b"def")[:12], id="second-member-cut"),
    ],
)
def test_truncated_gzip_is_invalid(body: bytes) -> None:
    with pytest.raises(IngestError) as info:
        gunzip(body, 10_000)
    assert info.value.kind is ErrorKind.INVALID


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"not gzip at all", id="not-gzip"),
        pytest.param(gzip.compress(b"abc") + b"trailing garbage", id="trailing-garbage"),
    ],
)
def test_malformed_gzip_is_invalid(body: bytes) -> None:
    with pytest.raises(IngestError) as info:
        gunzip(body, 10_000)
    assert info.value.kind is ErrorKind.INVALID


def test_gzip_bomb_over_the_limit_is_too_large() -> None:
    bomb = gzip.compress(b"\0" * (16 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 64 * 1024
    with pytest.raises(IngestError) as info:
        gunzip(bomb, 1024 * 1024)
    assert info.value.kind is ErrorKind.TOO_LARGE
    assert "1048576" in info.value.message


def test_concatenated_members_together_over_the_limit_are_too_large() -> None:
    member = gzip.compress(b"a" * 600)
    assert gunzip(member + member, 1200) == b"a" * 1200
    with pytest.raises(IngestError) as info:
        gunzip(member + member, 1000)
    assert info.value.kind is ErrorKind.TOO_LARGE


# -- responses -------------------------------------------------------------------------------

RESPONSES = {
    Signal.METRICS: (ExportMetricsServiceResponse, "rejected_data_points", "rejectedDataPoints"),
    Signal.LOGS: (ExportLogsServiceResponse, "rejected_log_records", "rejectedLogRecords"),
    Signal.TRACES: (ExportTraceServiceResponse, "rejected_spans", "rejectedSpans"),
}


@pytest.mark.parametrize("signal", list(Signal))
def test_response_without_rejections_has_no_partial_success(signal: Signal) -> None:
    response_type = RESPONSES[signal][0]
    body, content_type = encode_response(signal, 0, "", as_json=False)
    assert content_type == "application/x-protobuf"
    assert not response_type.FromString(body).HasField("partial_success")
    assert body == b""
    body, content_type = encode_response(signal, 0, "", as_json=True)
    assert content_type == "application/json"
    assert json.loads(body) == {}


@pytest.mark.parametrize("signal", list(Signal))
def test_response_with_rejections_carries_partial_success(signal: Signal) -> None:
    response_type, field, json_field = RESPONSES[signal]
    message = "2 rejected: claude_code.cost.usage: value missing, negative or not finite (2)"

    body, _ = encode_response(signal, 2, message, as_json=False)
    response = response_type.FromString(body)
    assert response.HasField("partial_success")
    assert getattr(response.partial_success, field) == 2
    assert response.partial_success.error_message == message

    body, _ = encode_response(signal, 2, message, as_json=True)
    document = json.loads(body)
    assert document == {"partialSuccess": {json_field: "2", "errorMessage": message}}
    parsed = json_format.Parse(body, response_type())
    assert getattr(parsed.partial_success, field) == 2
