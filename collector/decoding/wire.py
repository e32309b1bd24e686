"""Bytes to OTLP request messages: protobuf, OTLP/JSON and gzip, each with a bounded cost.

OTLP/JSON is the proto3 JSON mapping with three differences the spec names: trace and span
ids are hex (not base64), enums may be numbers, and unknown fields must be ignored.
`json_format` already accepts lowerCamelCase and snake_case keys and int64 as strings or
numbers, so only the ids need rewriting before parsing.
"""

from __future__ import annotations

import base64
import enum
import json
import zlib
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from collector.decoding.otlp_json import logs_rows, metrics_rows
from collector.decoding.shapes import FastDecoded, fast
from collector.errors import ErrorKind, IngestError


class Signal(enum.Enum):
    METRICS = "metrics"
    LOGS = "logs"
    TRACES = "traces"


@dataclass(frozen=True, slots=True)
class SignalTypes:
    """The message classes of one signal, and the name of its partial-success counter."""

    request: type[Message]
    response: type[Message]
    partial: type[Message]
    rejected_field: str
    grpc_service: str


SIGNAL_TYPES: dict[Signal, SignalTypes] = {
    Signal.METRICS: SignalTypes(
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
        metrics_service_pb2.ExportMetricsPartialSuccess,
        "rejected_data_points",
        "opentelemetry.proto.collector.metrics.v1.MetricsService",
    ),
    Signal.LOGS: SignalTypes(
        logs_service_pb2.ExportLogsServiceRequest,
        logs_service_pb2.ExportLogsServiceResponse,
        logs_service_pb2.ExportLogsPartialSuccess,
        "rejected_log_records",
        "opentelemetry.proto.collector.logs.v1.LogsService",
    ),
    Signal.TRACES: SignalTypes(
        trace_service_pb2.ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse,
        trace_service_pb2.ExportTracePartialSuccess,
        "rejected_spans",
        "opentelemetry.proto.collector.trace.v1.TraceService",
    ),
}

_HEX_ID_KEYS = frozenset(
    {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}
)


def parse_protobuf(signal: Signal, body: bytes) -> Message | FastDecoded:
    """Decode a binary OTLP request; a malformed one is a permanent INVALID error.

    Metrics and logs go through the C fast path when it is built (shapes.py); whatever it
    declines, malformed bodies included, is parsed by upb, which decides.
    """
    if fast is not None and signal is not Signal.TRACES:
        rows = fast.metrics(body) if signal is Signal.METRICS else fast.logs(body)
        if rows is not None:
            return FastDecoded(rows)
    message = SIGNAL_TYPES[signal].request()
    try:
        message.ParseFromString(body)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise IngestError(
            ErrorKind.INVALID, f"malformed protobuf {signal.value} request: {exc}"
        ) from exc
    return message


def _hex_ids_to_base64(node: Any) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in _HEX_ID_KEYS and isinstance(value, str):
                try:
                    value = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError as exc:
                    raise IngestError(ErrorKind.INVALID, f"{key} is not hex: {value!r}") from exc
            else:
                value = _hex_ids_to_base64(value)
            out[key] = value
        return out
    if isinstance(node, list):
        return [_hex_ids_to_base64(item) for item in node]
    return node


def parse_json(signal: Signal, body: bytes) -> Message | FastDecoded:
    """Decode an OTLP/JSON request; malformed JSON or a wrongly typed field is INVALID.

    Metrics and logs go through the fast path (otlp_json.py); what it declines is parsed by
    `json_format.ParseDict` (`json_message`), which decides.
    """
    document = _load_json(signal, body)
    if signal is not Signal.TRACES:
        rows = metrics_rows(document) if signal is Signal.METRICS else logs_rows(document)
        if rows is not None:
            return FastDecoded(rows)
    return json_message(signal, document)


def _load_json(signal: Signal, body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise IngestError(
            ErrorKind.INVALID, f"malformed JSON {signal.value} request: {exc}"
        ) from exc
    if not isinstance(document, dict):
        raise IngestError(ErrorKind.INVALID, f"{signal.value} request must be a JSON object")
    return document


def json_message(signal: Signal, document: dict[str, Any]) -> Message:
    """The reference OTLP/JSON decoding of a parsed document: the request message, by
    ParseDict."""
    message = SIGNAL_TYPES[signal].request()
    try:
        json_format.ParseDict(_hex_ids_to_base64(document), message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise IngestError(
            ErrorKind.INVALID, f"invalid OTLP/JSON {signal.value} request: {exc}"
        ) from exc
    return message


def gunzip(body: bytes, limit: int) -> bytes:
    """Inflate a gzip body, refusing (413) as soon as the output passes `limit` bytes.

    Output is produced in bounded steps, so a gzip bomb costs at most `limit` bytes of memory.
    Concatenated gzip members (allowed by RFC 1952) are inflated one after the other.
    """
    out = bytearray()
    data = body
    try:
        while data:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            chunk = inflater.decompress(data, limit + 1 - len(out))
            out += chunk
            while inflater.unconsumed_tail and len(out) <= limit:
                out += inflater.decompress(inflater.unconsumed_tail, limit + 1 - len(out))
            if len(out) > limit:
                raise IngestError(
                    ErrorKind.TOO_LARGE, f"decompressed body exceeds the limit of {limit} bytes"
                )
            if not inflater.eof:
                raise IngestError(ErrorKind.INVALID, "truncated gzip body")
            data = inflater.unused_data
    except zlib.error as exc:
        raise IngestError(ErrorKind.INVALID, f"malformed gzip body: {exc}") from exc
    return bytes(out)


def encode_response(
    signal: Signal, rejected: int, message: str, as_json: bool
) -> tuple[bytes, str]:
    """The Export*ServiceResponse, with partial_success only when something was refused."""
    types = SIGNAL_TYPES[signal]
    response = types.response()
    if rejected or message:
        partial = types.partial(**{types.rejected_field: rejected, "error_message": message})
        response.partial_success.CopyFrom(partial)
    if as_json:
        return json_format.MessageToJson(response, indent=None).encode(), "application/json"
    return response.SerializeToString(), "application/x-protobuf"
