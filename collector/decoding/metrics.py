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


def _canonical(attrs: dict[str, AttrValue]) -> tuple[tuple[str, AttrValue], ...]:
    return tuple(sorted(attrs.items()))


def _stream_prefix(resource_repr: str, scope: str, name: str) -> str:
    """What every point of one metric shares in its stream digest (`_stream`)."""
    return f"({resource_repr}, {scope!r}, {name!r}, "


def _stream(prefix: str, own: dict[str, AttrValue]) -> bytes:
    """The stream digest: blake2b of repr((resource, scope, name, point attributes)), each
    attribute set sorted. Stored in the accounting state (cumulative streams, delta dedupe
    keys), so it must never change between releases. A tuple's repr is its items' reprs
    joined by ", " in parentheses, so the shared part is formatted once per metric
    (`_stream_prefix`); tests/decoding check it against the repr of the whole tuple."""
    text = prefix + repr(tuple(sorted(own.items()))) + ")"
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


_TEMPORALITY = {int(t): t for t in (Temporality.DELTA, Temporality.CUMULATIVE)}


def decode_metrics(request: Any) -> MetricsBatch:
    """Flatten a request (a parsed message, or the fast path's rows) into points; see the
    module docstring for what is refused."""
    rows = request.rows if isinstance(request, FastDecoded) else metrics_from_message(request)
    batch = MetricsBatch()
    for resource, scopes in rows:
        resource_repr = repr(_canonical(resource))
        for scope, metrics in scopes:
            for metric in metrics:
                _decode_metric(batch, metric, resource, resource_repr, scope)
    return batch


def _decode_metric(
    batch: MetricsBatch,
    metric: MetricRow,
    resource: dict[str, AttrValue],
    resource_repr: str,
    scope: str,
) -> None:
    name, kind, temporality, points, count = metric
    if name not in KNOWN_METRICS:
        batch.ignored += count
        return
    if kind != "sum":
        batch.rejected.add(f"{name}: expected a Sum, got {kind or 'no data'}", count)
        return
    how = _TEMPORALITY.get(temporality)
    if how is None:
        batch.rejected.add(f"{name}: aggregation temporality unspecified", count)
        return
    prefix = _stream_prefix(resource_repr, scope, name)
    append = batch.points.append
    for start_ns, time_ns, value_kind, raw, own in points:
        value = float(raw)
        if not value_kind or not math.isfinite(value) or not 0 <= value <= MAX_VALUE:
            batch.rejected.add(f"{name}: value missing, negative, not finite or over {MAX_VALUE:g}")
            continue
        if time_ns == 0:
            batch.rejected.add(f"{name}: time_unix_nano missing")
            continue
        append(
            MetricPoint(
                name=name,
                temporality=how,
                start_ns=start_ns,
                time_ns=time_ns,
                value=value,
                attributes={**resource, **own},
                stream=_stream(prefix, own),
            )
        )
