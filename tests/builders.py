"""Build OTLP requests the way Claude Code 2.1.330 sends them, for unit tests.

Every builder returns real opentelemetry-proto messages; `decoded_metrics`/`decoded_logs`
serialize a request and run it through the production wire parser and decoders, so a test
exercises the same path a request from the network takes.

Default attribute sets are copied from the captures in tests/fixtures/claude-code-2.1.330
(API-key auth, so `user.id` is the only identity; `OTEL_RESOURCE_ATTRIBUTES` copied onto the
resource and onto every point and record).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    Sum,
)

from collector.decoding.logs import decode_logs
from collector.decoding.metrics import decode_metrics
from collector.decoding.wire import Signal, parse_protobuf
from collector.model import EventsBatch, MetricsBatch

DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
UNSPECIFIED = AggregationTemporality.AGGREGATION_TEMPORALITY_UNSPECIFIED

#: a time in the captures (2026-11-21); tests offset from it in whole seconds.
T0 = 1_795_303_966_000_000_000
SECOND = 10**9

USER_ID = "e9f10e16ae11efdf2df2e5f046a3a5538c74eb989847287be41497a7197745f5"
SESSION_ID = "8f65957b-5586-495a-9bb3-e284e9a12db4"
MODEL = "claude-opus-5-5"

#: OTEL_RESOURCE_ATTRIBUTES of the captured runs.
CUSTOM = {"department": "platform", "team.id": "core", "cost_center": "cc-42"}
RESOURCE: dict[str, Any] = {
    **CUSTOM,
    "host.arch": "amd64",
    "os.type": "linux",
    "os.version": "6.18.44-fc-v669",
    "service.name": "claude-code",
    "service.version": "2.1.330",
}
#: what Claude Code puts on every point and record besides the metric's own attributes.
STANDARD: dict[str, Any] = {
    **CUSTOM,
    "user.id": USER_ID,
    "session.id": SESSION_ID,
    "anthropic.provider": "firstParty",
    "anthropic.custom_base_url": True,
    "terminal.type": "xterm-256color",
}
METRICS_SCOPE = "com.anthropic.claude_code"
EVENTS_SCOPE = "com.anthropic.claude_code.events"


def attrs(extra: Mapping[str, Any] | None = None, **base_overrides: Any) -> dict[str, Any]:
    """STANDARD attributes plus `extra`; a value of None in `extra` removes that key."""
    out = {**STANDARD, **base_overrides}
    for key, value in (extra or {}).items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


# -- common -------------------------------------------------------------------------------


def any_value(value: Any) -> AnyValue:
    """A Python value as AnyValue: bool, int, float, str, bytes, list/tuple, dict, None."""
    if value is None:
        return AnyValue()
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list | tuple):
        out = AnyValue()
        out.array_value.values.extend(any_value(v) for v in value)
        return out
    if isinstance(value, dict):
        out = AnyValue()
        out.kvlist_value.values.extend(key_values(value))
        return out
    raise TypeError(f"no AnyValue for {value!r}")


def key_values(attributes: Mapping[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in attributes.items()]


# -- metrics ------------------------------------------------------------------------------


def point(
    value: float | None,
    *,
    time_ns: int,
    start_ns: int = T0,
    attributes: Mapping[str, Any] | None = None,
) -> NumberDataPoint:
    """A number data point; an int value goes on the wire as as_int, a float as as_double,
    None leaves the value unset."""
    p = NumberDataPoint(start_time_unix_nano=start_ns, time_unix_nano=time_ns)
    if isinstance(value, bool):
        raise TypeError("bool is not a point value")
    if isinstance(value, int):
        p.as_int = value
    elif value is not None:
        p.as_double = value
    p.attributes.extend(key_values(attributes if attributes is not None else STANDARD))
    return p


def sum_metric(
    name: str,
    *points: NumberDataPoint,
    temporality: int = DELTA,
    monotonic: bool = True,
) -> Metric:
    return Metric(
        name=name,
        sum=Sum(
            data_points=list(points), aggregation_temporality=temporality, is_monotonic=monotonic
        ),
    )


def gauge_metric(name: str, *points: NumberDataPoint) -> Metric:
    return Metric(name=name, gauge=Gauge(data_points=list(points)))


def histogram_metric(name: str, *, time_ns: int, count: int = 1, total: float = 1.0) -> Metric:
    p = HistogramDataPoint(
        start_time_unix_nano=T0,
        time_unix_nano=time_ns,
        count=count,
        sum=total,
        bucket_counts=[count],
    )
    return Metric(
        name=name,
        histogram=Histogram(data_points=[p], aggregation_temporality=DELTA),
    )


def metrics_request(
    *metrics: Metric,
    resource: Mapping[str, Any] | None = None,
    scope: str = METRICS_SCOPE,
) -> ExportMetricsServiceRequest:
    """One resource, one scope, the given metrics."""
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    rm.resource.attributes.extend(key_values(RESOURCE if resource is None else resource))
    sm = rm.scope_metrics.add()
    sm.scope.name = scope
    sm.scope.version = "2.1.330"
    sm.metrics.extend(metrics)
    return request


def claude_metric(
    name: str,
    value: float,
    *,
    time_ns: int,
    start_ns: int = T0,
    extra: Mapping[str, Any] | None = None,
    temporality: int = DELTA,
) -> Metric:
    """`claude_code.<name>` with one point carrying STANDARD attributes plus `extra`."""
    full = name if name.startswith("claude_code.") else f"claude_code.{name}"
    p = point(value, time_ns=time_ns, start_ns=start_ns, attributes=attrs(extra))
    return sum_metric(full, p, temporality=temporality)


def combine_metrics(*requests: ExportMetricsServiceRequest) -> ExportMetricsServiceRequest:
    """The resource_metrics of several requests in one request."""
    out = ExportMetricsServiceRequest()
    for r in requests:
        out.resource_metrics.extend(r.resource_metrics)
    return out


def decoded_metrics(request: ExportMetricsServiceRequest) -> MetricsBatch:
    """Serialize, parse and decode `request` with the production code."""
    return decode_metrics(parse_protobuf(Signal.METRICS, request.SerializeToString()))


# -- logs ---------------------------------------------------------------------------------


def log_record(
    name: str | None,
    attributes: Mapping[str, Any] | None = None,
    *,
    time_ns: int,
    body: str | None = None,
    event_name: str | None = None,
    observed_ns: int | None = None,
    name_attribute: bool = True,
) -> LogRecord:
    """A log record as Claude Code 2.1.330 sends it: `event.name` attribute and a
    `claude_code.<name>` body. `attributes` replaces STANDARD entirely when given."""
    record = LogRecord(
        time_unix_nano=time_ns,
        observed_time_unix_nano=time_ns if observed_ns is None else observed_ns,
    )
    if body is not None:
        record.body.string_value = body
    elif name is not None:
        record.body.string_value = f"claude_code.{name}"
    if event_name is not None:
        record.event_name = event_name
    full = dict(STANDARD if attributes is None else attributes)
    if name is not None and name_attribute:
        full["event.name"] = name
    record.attributes.extend(key_values(full))
    return record


def event(
    name: str,
    extra: Mapping[str, Any] | None = None,
    *,
    time_ns: int,
    sequence: int | None = None,
) -> LogRecord:
    """A Claude Code event with STANDARD attributes, `event.sequence` and `extra`."""
    a = attrs(extra)
    if sequence is not None:
        a["event.sequence"] = sequence
    return log_record(name, a, time_ns=time_ns)


def api_request(
    request_id: str | None,
    *,
    time_ns: int,
    model: str = MODEL,
    input_tokens: Any = 0,
    output_tokens: Any = 0,
    cache_read_tokens: Any = 0,
    cache_creation_tokens: Any = 0,
    cost_usd: Any = 0.0,
    cost_usd_micros: Any = None,
    duration_ms: Any = 1000,
    sequence: int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> LogRecord:
    """An `api_request` event with the fields 2.1.330 sends (micros derived from cost_usd
    unless given; pass None to leave a field out)."""
    if cost_usd_micros is None and isinstance(cost_usd, float):
        cost_usd_micros = round(cost_usd * 1_000_000)
    fields = {
        "model": model,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_tokens": cache_read_tokens,
        "cache_creation_tokens": cache_creation_tokens,
        "cost_usd": cost_usd,
        "cost_usd_micros": cost_usd_micros,
        "duration_ms": duration_ms,
        "request_id": request_id,
        **(extra or {}),
    }
    return event(
        "api_request",
        {k: v for k, v in fields.items() if v is not None},
        time_ns=time_ns,
        sequence=sequence,
    )


def logs_request(
    *records: LogRecord,
    resource: Mapping[str, Any] | None = None,
    scope: str = EVENTS_SCOPE,
) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    rl.resource.attributes.extend(key_values(RESOURCE if resource is None else resource))
    sl = rl.scope_logs.add()
    sl.scope.name = scope
    sl.scope.version = "2.1.330"
    sl.log_records.extend(records)
    return request


def decoded_logs(request: ExportLogsServiceRequest) -> EventsBatch:
    """Serialize, parse and decode `request` with the production code."""
    return decode_logs(parse_protobuf(Signal.LOGS, request.SerializeToString()))
