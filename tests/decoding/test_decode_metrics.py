"""decode_metrics: requests to MetricPoints, with stream identity, ignored and refused points."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from collector.decoding.metrics import KNOWN_METRICS, MAX_VALUE, decode_metrics
from collector.decoding.wire import Signal, parse_protobuf
from collector.model import Temporality
from tests.builders import (
    CUMULATIVE,
    DELTA,
    RESOURCE,
    STANDARD,
    T0,
    attrs,
    claude_metric,
    combine_metrics,
    decoded_metrics,
    gauge_metric,
    metrics_request,
    point,
    sum_metric,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "claude-code-2.1.330"


def _one(request) -> object:
    batch = decoded_metrics(request)
    (p,) = batch.points
    return p


def test_point_fields() -> None:
    p = _one(
        metrics_request(
            claude_metric(
                "token.usage",
                1259,
                start_ns=T0,
                time_ns=T0 + 5,
                extra={"model": "m", "type": "input"},
                temporality=CUMULATIVE,
            )
        )
    )
    assert p.name == "claude_code.token.usage"
    assert p.temporality is Temporality.CUMULATIVE
    assert (p.start_ns, p.time_ns) == (T0, T0 + 5)
    assert p.value == 1259.0
    assert isinstance(p.value, float)
    assert p.attributes == {**RESOURCE, **STANDARD, "model": "m", "type": "input"}


def test_point_attributes_win_over_resource_attributes() -> None:
    request = metrics_request(
        sum_metric(
            "claude_code.commit.count",
            point(1, time_ns=T0, attributes={"team.id": "point-team", "only.point": 1}),
        ),
        resource={"team.id": "resource-team", "only.resource": "r"},
    )
    assert _one(request).attributes == {
        "team.id": "point-team",
        "only.point": 1,
        "only.resource": "r",
    }


def test_resource_only_attributes_reach_the_point() -> None:
    request = metrics_request(
        sum_metric("claude_code.commit.count", point(1, time_ns=T0, attributes={})),
        resource={"user.email": "dev@example.com"},
    )
    assert _one(request).attributes == {"user.email": "dev@example.com"}


def _stream(
    *,
    start: int = T0,
    own: dict | None = None,
    resource: dict | None = None,
    scope: str = "com.anthropic.claude_code",
    name: str = "claude_code.commit.count",
) -> bytes:
    own = attrs() if own is None else own
    request = metrics_request(
        sum_metric(name, point(1, start_ns=start, time_ns=T0 + 10, attributes=own)),
        resource=resource,
        scope=scope,
    )
    return _one(request).stream


def test_stream_identity() -> None:
    base = _stream()
    assert _stream() == base
    # the start time is not part of the stream: accounting pairs it itself
    assert _stream(start=T0 + 1) == base
    # attribute order does not matter
    assert _stream(own=dict(reversed(list(attrs().items())))) == base
    # everything else does
    assert _stream(own=attrs({"session.id": "other"})) != base
    assert _stream(own=attrs({"extra": "x"})) != base
    assert _stream(resource={**RESOURCE, "host.arch": "arm64"}) != base
    assert _stream(scope="other.scope") != base
    assert _stream(name="claude_code.pull_request.count") != base


def test_resource_attributes_distinguish_streams_even_when_points_override_them() -> None:
    own = attrs({"team.id": "x"})
    assert _stream(own=own, resource={"team.id": "a"}) != _stream(
        own=own, resource={"team.id": "b"}
    )


def test_int_and_double_values() -> None:
    request = metrics_request(
        sum_metric("claude_code.commit.count", point(3, time_ns=T0)),
        sum_metric("claude_code.cost.usage", point(0.0276558, time_ns=T0)),
    )
    assert [p.value for p in decoded_metrics(request).points] == [3.0, 0.0276558]


def test_every_point_of_every_resource_and_scope() -> None:
    one = metrics_request(
        sum_metric("claude_code.commit.count", point(1, time_ns=T0), point(2, time_ns=T0 + 1)),
        claude_metric("cost.usage", 0.5, time_ns=T0),
    )
    two = metrics_request(claude_metric("lines_of_code.count", 4, time_ns=T0), scope="other")
    batch = decoded_metrics(combine_metrics(one, two))
    assert [(p.name, p.value) for p in batch.points] == [
        ("claude_code.commit.count", 1.0),
        ("claude_code.commit.count", 2.0),
        ("claude_code.cost.usage", 0.5),
        ("claude_code.lines_of_code.count", 4.0),
    ]


def test_known_metric_names_are_the_eight_of_the_reference() -> None:
    assert {
        "claude_code.session.count",
        "claude_code.token.usage",
        "claude_code.cost.usage",
        "claude_code.lines_of_code.count",
        "claude_code.commit.count",
        "claude_code.pull_request.count",
        "claude_code.code_edit_tool.decision",
        "claude_code.active_time.total",
    } == KNOWN_METRICS


def test_other_metrics_are_ignored_point_by_point() -> None:
    request = metrics_request(
        sum_metric("jvm.gc.count", point(1, time_ns=T0), point(1, time_ns=T0)),
        gauge_metric("claude_code.future.gauge", point(1, time_ns=T0)),
        claude_metric("commit.count", 1, time_ns=T0),
    )
    batch = decoded_metrics(request)
    assert batch.ignored == 3
    assert batch.rejected.count == 0
    assert len(batch.points) == 1


def test_metric_without_data_yields_nothing() -> None:
    request = metrics_request(sum_metric("claude_code.commit.count", point(1, time_ns=T0)))
    request.resource_metrics[0].scope_metrics[0].metrics[0].ClearField("sum")
    batch = decoded_metrics(request)
    assert batch.points == []
    assert batch.rejected.count == 0  # no points, nothing to refuse


@pytest.mark.parametrize("temporality", [DELTA, CUMULATIVE])
def test_temporality_kept(temporality: int) -> None:
    request = metrics_request(claude_metric("commit.count", 1, time_ns=T0, temporality=temporality))
    assert _one(request).temporality == temporality


def test_refusals_are_per_point_and_the_rest_still_decodes() -> None:
    request = metrics_request(
        sum_metric(
            "claude_code.token.usage",
            point(1, time_ns=T0),
            point(-1, time_ns=T0),
            point(2.0, time_ns=0),
            point(None, time_ns=T0),
            point(3, time_ns=T0 + 1),
        )
    )
    batch = decoded_metrics(request)
    assert [p.value for p in batch.points] == [1.0, 3.0]
    assert batch.rejected.count == 3
    assert batch.rejected.reasons == {
        f"claude_code.token.usage: value missing, negative, not finite or over {MAX_VALUE:g}": 2,
        "claude_code.token.usage: time_unix_nano missing": 1,
    }


def test_real_capture_decodes_completely() -> None:
    body = (FIXTURES / "grpc" / "otlp" / "0003_grpc_metrics.pb").read_bytes()
    message = ExportMetricsServiceRequest.FromString(body)
    batch = decode_metrics(parse_protobuf(Signal.METRICS, body))
    expected = sum(
        len(m.sum.data_points)
        for rm in message.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    )
    assert len(batch.points) == expected > 0
    assert batch.ignored == 0
    assert batch.rejected.count == 0
    assert {p.name for p in batch.points} <= KNOWN_METRICS
    assert all(p.temporality is Temporality.DELTA for p in batch.points)
    for p in batch.points:
        assert p.attributes["service.name"] == "claude-code"  # from the resource
        assert p.attributes["user.id"].startswith("e9f10e16")  # from the point
    # every point is its own stream
    assert len({(p.stream, p.start_ns) for p in batch.points}) == len(batch.points)


def test_stream_digest_shortcut_equals_the_stored_definition() -> None:
    """Stream digests are persisted (cumulative streams, delta dedupe keys): the per-metric
    prefix shortcut must give exactly the digest of the whole tuple's repr, for any values."""
    import hashlib
    import random

    from collector.decoding.metrics import _canonical, _stream, _stream_prefix

    def digest(*parts: object) -> bytes:  # the definition stored keys were made with
        return hashlib.blake2b(repr(parts).encode(), digest_size=16).digest()

    rng = random.Random(5)
    values = ["", "x'y", 'q"', "ü", 0, -1, 2.5, float("nan"), True, None, b"\x00", ("a", 1), ()]
    for _ in range(300):
        resource = {f"r{rng.randrange(5)}": rng.choice(values) for _ in range(rng.randrange(4))}
        own = {f"k{rng.randrange(5)}": rng.choice(values) for _ in range(rng.randrange(4))}
        scope, name = rng.choice(["", "s'c"]), rng.choice(sorted(KNOWN_METRICS))
        prefix = _stream_prefix(repr(_canonical(resource)), scope, name)
        assert _stream(prefix, own) == digest(_canonical(resource), scope, name, _canonical(own))
