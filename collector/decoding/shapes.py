"""The decoded shapes of OTLP requests: plain tuples the decoders consume.

Two producers build the same shapes. The C fast path (`_fastotlp`, from protobuf bytes) skips
the per-attribute wrapper objects that walking an upb message costs; the functions here build
them from a parsed message (upb for protobuf that the fast path declined, OTLP/JSON always)
and are the reference the fast path is tested against (tests/decoding/test_fast_decoder.py).

Shapes (attributes are `to_dict` results: a later duplicate key wins):
- logs: `[(attributes merged over the resource's, time_ns, observed_ns, body if it is a
  string value else None, LogRecord.event_name)]`
- metrics: `[(resource attributes, [(scope name, [(name, data kind or None, temporality,
  points, point count)])])]`; for a Sum, points are `(start_ns, time_ns, value kind
  (0 none, 1 double, 2 int), value, point attributes)`; other kinds carry only the count.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from collector.decoding.attributes import AttrValue, to_dict

Attrs = dict[str, AttrValue]
LogRow = tuple[Attrs, int, int, str | None, str]
PointRow = tuple[int, int, int, int | float, Attrs]
MetricRow = tuple[str, str | None, int, list[PointRow], int]
ResourceRow = tuple[Attrs, list[tuple[str, list[MetricRow]]]]

#: value kind of a NumberDataPoint, by its `value` oneof member.
VALUE_KIND = {None: 0, "as_double": 1, "as_int": 2}


@dataclass(frozen=True, slots=True)
class FastDecoded:
    """A request a fast path decoded (C for protobuf, otlp_json.py for OTLP/JSON): its rows,
    in the shapes above."""

    rows: list[Any]


def _load_fast() -> Any:
    """The C extension, unless absent (no compiler at install) or switched off for comparison
    with `CC_COLLECTOR_DECODER=python`."""
    if os.environ.get("CC_COLLECTOR_DECODER", "").lower() == "python":
        return None
    try:
        from collector.decoding import _fastotlp  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _fastotlp


fast = _load_fast()


def logs_from_message(request: Any) -> list[LogRow]:
    rows: list[LogRow] = []
    for resource_logs in request.resource_logs:
        resource = to_dict(resource_logs.resource.attributes)
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                body = record.body
                text = body.string_value if body.WhichOneof("value") == "string_value" else None
                rows.append(
                    (
                        {**resource, **to_dict(record.attributes)},
                        record.time_unix_nano,
                        record.observed_time_unix_nano,
                        text,
                        record.event_name,
                    )
                )
    return rows


def metrics_from_message(request: Any) -> list[ResourceRow]:
    rows: list[ResourceRow] = []
    for resource_metrics in request.resource_metrics:
        scopes = []
        for scope_metrics in resource_metrics.scope_metrics:
            metrics: list[MetricRow] = []
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                if kind == "sum":
                    points = [_point(point) for point in metric.sum.data_points]
                    temporality = metric.sum.aggregation_temporality
                    metrics.append((metric.name, kind, temporality, points, len(points)))
                else:
                    count = len(getattr(metric, kind).data_points) if kind else 0
                    metrics.append((metric.name, kind, 0, [], count))
            scopes.append((scope_metrics.scope.name, metrics))
        rows.append((to_dict(resource_metrics.resource.attributes), scopes))
    return rows


def _point(point: Any) -> PointRow:
    kind = VALUE_KIND[point.WhichOneof("value")]
    value = point.as_double if kind == 1 else point.as_int
    return (
        point.start_time_unix_nano,
        point.time_unix_nano,
        kind,
        value,
        to_dict(point.attributes),
    )
