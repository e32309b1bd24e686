"""The C fast path (`_fastotlp`) against upb, the reference.

Two claims (collector/decoding/_fastotlp.c): whatever the fast path accepts, upb accepts too
and `shapes.*_from_message` builds the identical shapes from it; and it does accept what
Claude Code sends (else the speed-up silently disappears). Checked on the real captures, on
generated requests using every field the schema has, and on many thousands of mutated bodies.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
import os
import random
from pathlib import Path

import pytest
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    Exemplar,
    Gauge,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from collector.decoding import shapes
from collector.decoding.logs import decode_logs
from collector.decoding.metrics import decode_metrics
from collector.decoding.wire import Signal, json_message, parse_protobuf
from tests.builders import STANDARD, T0

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "claude-code-2.1.330"
REQUEST = {"logs": ExportLogsServiceRequest, "metrics": ExportMetricsServiceRequest}
REFERENCE = {"logs": shapes.logs_from_message, "metrics": shapes.metrics_from_message}

pytestmark = pytest.mark.skipif(
    os.environ.get("CC_COLLECTOR_DECODER", "").lower() == "python",
    reason="fast path switched off by CC_COLLECTOR_DECODER=python",
)


def fast(signal: str, body: bytes):
    assert shapes.fast is not None, "collector/decoding/_fastotlp.c was not built"
    return getattr(shapes.fast, signal)(body)


def reference(signal: str, body: bytes):
    """upb's shapes, or None when upb refuses the body."""
    try:
        message = REQUEST[signal].FromString(body)
    except DecodeError:
        return None
    return REFERENCE[signal](message)


def check(signal: str, body: bytes, must_accept: bool = False) -> bool:
    """The fast path's claim on one body; True if it accepted it."""
    got = fast(signal, body)
    if got is None:
        assert not must_accept, "the fast path declined a body it must handle"
        return False
    want = reference(signal, body)
    assert want is not None, f"fast path accepted a body upb refuses: {body[:80]!r}"
    # repr: NaN values compare unequal to themselves; repr also checks types and key order.
    assert repr(got) == repr(want)
    return True


def capture_bodies() -> list[tuple[str, bytes]]:
    out = []
    for folder in sorted(FIXTURES.iterdir()):
        entries = (folder / "otlp" / "index.jsonl").read_text().splitlines()
        for entry in map(json.loads, entries):
            if entry["signal"] not in REQUEST:
                continue
            raw = (folder / "otlp" / entry["raw"]).read_bytes()
            if raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
            if entry["format"] == "json":
                raw = json_message(Signal(entry["signal"]), json.loads(raw)).SerializeToString()
            out.append((entry["signal"], raw))
    return out


def test_every_capture_takes_the_fast_path_and_decodes_identically() -> None:
    bodies = capture_bodies()
    assert {s for s, _ in bodies} == {"logs", "metrics"} and len(bodies) > 20
    for signal, body in bodies:
        check(signal, body, must_accept=True)


# -- generated requests using every field ---------------------------------------------------


def any_value(rng: random.Random, depth: int = 0) -> AnyValue:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return AnyValue(string_value=rng.choice(["", "x", "ünï", "claude_code.api_request"]))
    if kind == 1:
        return AnyValue(bool_value=rng.random() < 0.5)
    if kind == 2:
        return AnyValue(int_value=rng.choice([0, 1, -1, 2**63 - 1, -(2**63), 1234567]))
    if kind == 3:
        return AnyValue(double_value=rng.choice([0.0, -0.0, 1.5, 1e308, math.inf, math.nan]))
    if kind == 4:
        return AnyValue(bytes_value=rng.randbytes(rng.randrange(5)))
    if kind == 5:
        return AnyValue()  # no value set
    if kind in (6, 7):
        values = [any_value(rng, depth + 1) for _ in range(rng.randrange(3))]
        return AnyValue(array_value=ArrayValue(values=values))
    pairs = [KeyValue(key=f"k{i}", value=any_value(rng, depth + 1)) for i in range(2)]
    return AnyValue(kvlist_value=KeyValueList(values=pairs))


def key_values(rng: random.Random, n: int) -> list[KeyValue]:
    out = [KeyValue(key=k, value=AnyValue(string_value=str(v))) for k, v in STANDARD.items()]
    out += [KeyValue(key=f"attr.{rng.randrange(4)}", value=any_value(rng)) for _ in range(n)]
    if rng.random() < 0.2:
        out.append(KeyValue(key="no.value"))
    return out


def scope(rng: random.Random) -> InstrumentationScope:
    return InstrumentationScope(
        name=rng.choice(["", "com.anthropic.claude_code"]),
        version="2.1.330",
        attributes=key_values(rng, 1)[:2],
        dropped_attributes_count=rng.randrange(3),
    )


def logs_request(rng: random.Random) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    for _ in range(rng.randrange(1, 4)):
        resource_logs = ResourceLogs(schema_url="https://opentelemetry.io/schemas/1.26.0")
        if rng.random() < 0.8:
            resource_logs.resource.CopyFrom(
                Resource(attributes=key_values(rng, 2), dropped_attributes_count=1)
            )
        for _ in range(rng.randrange(1, 3)):
            scope_logs = ScopeLogs(scope=scope(rng), schema_url="s")
            for i in range(rng.randrange(4)):
                record = LogRecord(
                    time_unix_nano=rng.choice([0, T0 + i]),
                    observed_time_unix_nano=T0 + 7,
                    severity_number=rng.randrange(25),
                    severity_text=rng.choice(["", "INFO"]),
                    attributes=key_values(rng, 4),
                    dropped_attributes_count=rng.randrange(2),
                    flags=rng.randrange(3),
                    trace_id=rng.randbytes(16) if rng.random() < 0.3 else b"",
                    span_id=rng.randbytes(8) if rng.random() < 0.3 else b"",
                    event_name=rng.choice(["", "claude_code.tool_result"]),
                )
                if rng.random() < 0.5:
                    record.body.CopyFrom(any_value(rng))
                scope_logs.log_records.append(record)
            resource_logs.scope_logs.append(scope_logs)
        request.resource_logs.append(resource_logs)
    return request


def metrics_request(rng: random.Random) -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    for _ in range(rng.randrange(1, 4)):
        resource_metrics = ResourceMetrics(
            resource=Resource(attributes=key_values(rng, 2)), schema_url="x"
        )
        scope_metrics = ScopeMetrics(scope=scope(rng), schema_url="y")
        for _ in range(rng.randrange(1, 4)):
            points = []
            for i in range(rng.randrange(4)):
                point = NumberDataPoint(
                    attributes=key_values(rng, 2),
                    start_time_unix_nano=rng.choice([0, T0]),
                    time_unix_nano=rng.choice([0, T0 + i]),
                    flags=rng.randrange(2),
                )
                which = rng.randrange(3)
                if which == 1:
                    point.as_double = rng.choice([0.5, -1.0, math.inf, 3.0])
                elif which == 2:
                    point.as_int = rng.choice([0, 7, -(2**63)])
                points.append(point)
            metric = Metric(
                name=rng.choice(["claude_code.cost.usage", "claude_code.commit.count", "other"]),
                description="d",
                unit=rng.choice(["", "USD"]),
            )
            if rng.random() < 0.9:
                metric.sum.CopyFrom(
                    Sum(
                        data_points=points,
                        aggregation_temporality=rng.randrange(4),
                        is_monotonic=rng.random() < 0.5,
                    )
                )
            scope_metrics.metrics.append(metric)
        resource_metrics.scope_metrics.append(scope_metrics)
        request.resource_metrics.append(resource_metrics)
    return request


BUILDERS = {"logs": logs_request, "metrics": metrics_request}


@pytest.mark.parametrize("signal", ["logs", "metrics"])
def test_generated_requests_with_every_field_decode_identically(signal) -> None:
    rng = random.Random(20261207)
    for _ in range(400):
        check(signal, BUILDERS[signal](rng).SerializeToString(), must_accept=True)


@pytest.mark.parametrize("signal", ["logs", "metrics"])
def test_mutated_bodies_are_declined_or_decoded_identically(signal) -> None:
    """Random flips, cuts and inserts: the fast path may decline (upb then decides), but it
    never accepts what upb refuses, and never decodes differently. Declines must happen
    (mutations do break bodies) and acceptances too (the check is not vacuous)."""
    rng = random.Random(7)
    accepted = declined = 0
    for _ in range(60):
        body = bytearray(BUILDERS[signal](rng).SerializeToString())
        for _ in range(60):
            mutated = bytearray(body)
            for _ in range(rng.randrange(1, 4)):
                where = rng.randrange(len(mutated) + 1)
                action = rng.randrange(3)
                if action == 0 and where < len(mutated):
                    mutated[where] = rng.randrange(256)
                elif action == 1:
                    del mutated[where : where + rng.randrange(1, 6)]
                else:
                    mutated[where:where] = rng.randbytes(rng.randrange(1, 4))
            if check(signal, bytes(mutated)):
                accepted += 1
            else:
                declined += 1
    assert accepted > 100 and declined > 100


def test_what_the_fast_path_leaves_to_upb() -> None:
    """Shapes it declines on purpose; upb's answer (accept, or INVALID) is then the one used."""
    point = NumberDataPoint(time_unix_nano=T0, as_int=1)
    exemplar = NumberDataPoint(time_unix_nano=T0, as_int=1, exemplars=[Exemplar(as_int=1)])
    declined = [
        # a Gauge among the metrics: only Sums are read here
        ExportMetricsServiceRequest(
            resource_metrics=[
                ResourceMetrics(
                    scope_metrics=[
                        ScopeMetrics(metrics=[Metric(name="g", gauge=Gauge(data_points=[point]))])
                    ]
                )
            ]
        ),
        # exemplars
        ExportMetricsServiceRequest(
            resource_metrics=[
                ResourceMetrics(
                    scope_metrics=[
                        ScopeMetrics(metrics=[Metric(name="s", sum=Sum(data_points=[exemplar]))])
                    ]
                )
            ]
        ),
    ]
    for message in declined:
        assert fast("metrics", message.SerializeToString()) is None
        assert reference("metrics", message.SerializeToString()) is not None
    # a resource sent twice: upb merges the two, the fast path declines
    one = ResourceLogs(resource=Resource(attributes=[KeyValue(key="a")])).SerializeToString()
    twice = b"\x0a" + bytes([len(one) * 2]) + one + one
    assert fast("logs", twice) is None
    merged = reference("logs", twice)
    assert merged is not None
    # invalid UTF-8 in a string field the fast path does not keep: upb refuses, so must it
    bad = LogRecord(severity_text="ok").SerializeToString().replace(b"ok", b"\xff\xfe")
    body = (
        ExportLogsServiceRequest(
            resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=[LogRecord()])])]
        )
        .SerializeToString()
        .replace(b"\x12\x00", b"\x12" + bytes([len(bad)]) + bad)
    )
    assert reference("logs", body) is None
    assert fast("logs", body) is None


def test_fast_path_feeds_the_same_batches_as_upb() -> None:
    """End of the chain: decode_logs/decode_metrics give equal batches from either source."""
    rng = random.Random(3)
    for _ in range(100):
        logs = logs_request(rng)
        body = logs.SerializeToString()
        assert repr(decode_logs(parse_protobuf(Signal.LOGS, body))) == repr(decode_logs(logs))
        metrics = metrics_request(rng)
        body = metrics.SerializeToString()
        fast_batch = decode_metrics(parse_protobuf(Signal.METRICS, body))
        upb_batch = decode_metrics(metrics)
        assert repr(fast_batch) == repr(upb_batch)


def test_bytes_values_and_ids_survive() -> None:
    record = LogRecord(
        time_unix_nano=T0,
        attributes=[KeyValue(key="blob", value=AnyValue(bytes_value=b"\x00\xff"))],
        trace_id=base64.b16decode("0AF7651916CD43DD8448EB211C80319C"),
    )
    request = ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=[record])])]
    )
    rows = fast("logs", request.SerializeToString())
    assert rows is not None and rows[0][0] == {"blob": b"\x00\xff"}
