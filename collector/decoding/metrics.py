"""ExportMetricsServiceRequest to `MetricPoint`s of the Claude Code metrics we account.

Metrics of other names are accepted and ignored (they are not ours to count); a Claude Code
metric that is not a Sum, or a point with no usable value or temporality, is refused and
reported back to the client as partial success.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from collector.decoding.attributes import AttrValue, to_dict
from collector.model import MetricPoint, MetricsBatch, Temporality

PREFIX = "claude_code."

#: The Claude Code metric names accounting understands (telemetry reference, 2.1.330).
KNOWN_METRICS = frozenset(
    PREFIX + name
    for name in (
        "session.count",
        "token.usage",
        "cost.usage",
        "lines_of_code.count",
        "commit.count",
        "pull_request.count",
        "code_edit_tool.decision",
        "active_time.total",
    )
)


#: Larger values are refused: no real session comes near, and scaled to nano-USD they would
#: leave the 64-bit range of the store and of exact float rendering.
MAX_VALUE = 1e13


def _digest(*parts: object) -> bytes:
    return hashlib.blake2b(repr(parts).encode(), digest_size=16).digest()


def _canonical(attrs: dict[str, AttrValue]) -> tuple[tuple[str, AttrValue], ...]:
    return tuple(sorted(attrs.items()))


def decode_metrics(request: Any) -> MetricsBatch:
    """Flatten a request into points; see the module docstring for what is refused."""
    batch = MetricsBatch()
    for resource_metrics in request.resource_metrics:
        resource = to_dict(resource_metrics.resource.attributes)
        resource_key = _canonical(resource)
        for scope_metrics in resource_metrics.scope_metrics:
            scope = scope_metrics.scope.name
            for metric in scope_metrics.metrics:
                _decode_metric(batch, metric, resource, resource_key, scope)
    return batch


def _count_points(metric: Any) -> int:
    kind = metric.WhichOneof("data")
    return len(getattr(metric, kind).data_points) if kind else 0


def _decode_metric(
    batch: MetricsBatch,
    metric: Any,
    resource: dict[str, AttrValue],
    resource_key: tuple[tuple[str, AttrValue], ...],
    scope: str,
) -> None:
    name = metric.name
    if name not in KNOWN_METRICS:
        batch.ignored += _count_points(metric)
        return
    kind = metric.WhichOneof("data")
    if kind != "sum":
        batch.rejected.add(
            f"{name}: expected a Sum, got {kind or 'no data'}", _count_points(metric)
        )
        return
    temporality = metric.sum.aggregation_temporality
    if temporality not in (Temporality.DELTA, Temporality.CUMULATIVE):
        batch.rejected.add(f"{name}: aggregation temporality unspecified", _count_points(metric))
        return
    for point in metric.sum.data_points:
        value_kind = point.WhichOneof("value")
        value = float(point.as_double if value_kind == "as_double" else point.as_int)
        if value_kind is None or not math.isfinite(value) or not 0 <= value <= MAX_VALUE:
            batch.rejected.add(f"{name}: value missing, negative, not finite or over {MAX_VALUE:g}")
            continue
        if point.time_unix_nano == 0:
            batch.rejected.add(f"{name}: time_unix_nano missing")
            continue
        own = to_dict(point.attributes)
        batch.points.append(
            MetricPoint(
                name=name,
                temporality=Temporality(temporality),
                start_ns=point.start_time_unix_nano,
                time_ns=point.time_unix_nano,
                value=value,
                attributes={**resource, **own},
                stream=_digest(resource_key, scope, name, _canonical(own)),
            )
        )
