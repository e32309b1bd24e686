"""ExportMetricsServiceRequest to `MetricPoint`s of the Claude Code metrics we account.

Metrics of other names are accepted and ignored (they are not ours to count); a Claude Code
metric that is not a Sum, or a point with no usable value or temporality, is refused and
reported back to the client as partial success.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from collector.decoding.attributes import AttrValue
from collector.decoding.shapes import FastDecoded, MetricRow, metrics_from_message
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
    """Flatten a request (a parsed message, or the fast path's rows) into points; see the
    module docstring for what is refused."""
    rows = request.rows if isinstance(request, FastDecoded) else metrics_from_message(request)
    batch = MetricsBatch()
    for resource, scopes in rows:
        resource_key = _canonical(resource)
        for scope, metrics in scopes:
            for metric in metrics:
                _decode_metric(batch, metric, resource, resource_key, scope)
    return batch


def _decode_metric(
    batch: MetricsBatch,
    metric: MetricRow,
    resource: dict[str, AttrValue],
    resource_key: tuple[tuple[str, AttrValue], ...],
    scope: str,
) -> None:
    name, kind, temporality, points, count = metric
    if name not in KNOWN_METRICS:
        batch.ignored += count
        return
    if kind != "sum":
        batch.rejected.add(f"{name}: expected a Sum, got {kind or 'no data'}", count)
        return
    if temporality not in (Temporality.DELTA, Temporality.CUMULATIVE):
        batch.rejected.add(f"{name}: aggregation temporality unspecified", count)
        return
    for start_ns, time_ns, value_kind, raw, own in points:
        value = float(raw)
        if not value_kind or not math.isfinite(value) or not 0 <= value <= MAX_VALUE:
            batch.rejected.add(f"{name}: value missing, negative, not finite or over {MAX_VALUE:g}")
            continue
        if time_ns == 0:
            batch.rejected.add(f"{name}: time_unix_nano missing")
            continue
        batch.points.append(
            MetricPoint(
                name=name,
                temporality=Temporality(temporality),
                start_ns=start_ns,
                time_ns=time_ns,
                value=value,
                attributes={**resource, **own},
                stream=_digest(resource_key, scope, name, _canonical(own)),
            )
        )
