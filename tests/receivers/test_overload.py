"""Overload protection: with max_inflight_requests=1, a second request is refused, retryably.

One HTTP request is held open (headers and half of a chunked body sent on a raw socket),
which keeps the only in-flight slot busy. Meanwhile HTTP gets 429 + Retry-After and gRPC
gets RESOURCE_EXHAUSTED with a google.rpc.RetryInfo in `grpc-status-details-bin`, as the
OTLP spec asks for a retryable refusal. Completing the held request frees the slot.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2

from tests.harness import RunningCollector, make_config, running_collector
from tests.rawhttp import SplitRequest
from tests.replay import GRPC_METHODS

RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


def cost_request(usd: float, model: str) -> bytes:
    """A one-point claude_code.cost.usage (delta) request for `model`."""
    request = metrics_service_pb2.ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add()
    metric.name = "claude_code.cost.usage"
    metric.sum.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
    metric.sum.is_monotonic = True
    now = time.time_ns()
    point = metric.sum.data_points.add(
        start_time_unix_nano=now - 10**9, time_unix_nano=now, as_double=usd
    )
    point.attributes.append(
        common_pb2.KeyValue(key="model", value=common_pb2.AnyValue(string_value=model))
    )
    return request.SerializeToString()


def wait_for(condition, what: str, timeout: float = 10.0) -> None:
    """Poll until `condition()` holds; the bound only guards against hanging forever."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


@contextmanager
def held(collector: RunningCollector, body: bytes) -> Iterator[SplitRequest]:
    request = SplitRequest(collector.service.ports.http, "metrics", body, timeout=10)
    try:
        wait_for(lambda: collector.total("cc_collector_inflight_requests") == 1, "the held slot")
        yield request
    finally:
        request.close()


def http_post(
    collector: RunningCollector, body: bytes, content_type: str = "application/x-protobuf"
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        f"{collector.http_base}/v1/metrics",
        data=body,
        headers={"Content-Type": content_type},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def grpc_export(collector: RunningCollector, body: bytes) -> grpc.RpcError | None:
    with grpc.insecure_channel(collector.grpc_endpoint) as channel:
        try:
            channel.unary_unary(GRPC_METHODS["metrics"])(body, timeout=10)
        except grpc.RpcError as error:
            return error
    return None


def retry_delay(status: status_pb2.Status) -> int:
    """The RetryInfo delay (seconds) in a google.rpc.Status; fails if there is none."""
    infos = []
    for detail in status.details:
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            infos.append(info)
    assert len(infos) == 1, status
    return infos[0].retry_delay.seconds


@pytest.fixture
def collector():
    with running_collector(make_config({"receivers": {"otlp": {"max_inflight_requests": 1}}})) as c:
        yield c


def test_overload_is_refused_retryably_on_both_transports(collector: RunningCollector) -> None:
    with held(collector, cost_request(0.5, "held")) as first:
        # HTTP: 429, Retry-After, and a Status body with the same delay as RetryInfo.
        status, headers, body = http_post(collector, cost_request(0.25, "refused-http"))
        assert status == 429, body
        assert int(headers["Retry-After"]) >= 1
        refusal = status_pb2.Status.FromString(body)
        assert refusal.code == RESOURCE_EXHAUSTED.value[0]
        assert retry_delay(refusal) == int(headers["Retry-After"])

        status, headers, body = http_post(collector, b'{"resourceMetrics": []}', "application/json")
        assert status == 429
        assert headers["Content-Type"] == "application/json"
        assert retry_delay(json_format.Parse(body, status_pb2.Status())) == int(
            headers["Retry-After"]
        )

        # gRPC: RESOURCE_EXHAUSTED whose trailing details carry RetryInfo.
        error = grpc_export(collector, cost_request(0.125, "refused-grpc"))
        assert error is not None
        assert error.code() == RESOURCE_EXHAUSTED
        trailers = dict(error.trailing_metadata() or ())
        details = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
        assert details.code == RESOURCE_EXHAUSTED.value[0]
        assert details.message == error.details()
        assert retry_delay(details) >= 1

        assert collector.total("cc_collector_requests_total", outcome="overloaded") == 3
        assert collector.total("cc_collector_inflight_requests") == 1

        # The held request completes normally once its body arrives.
        status, body = first.finish()
        assert status == 200, body
        assert metrics_service_pb2.ExportMetricsServiceResponse.FromString(body) == (
            metrics_service_pb2.ExportMetricsServiceResponse()
        )

    wait_for(lambda: collector.total("cc_collector_inflight_requests") == 0, "the slot to free")
    # Refused requests counted nothing; retried now, they are counted once.
    assert collector.total("claude_code_cost_usd_total") == pytest.approx(0.5)
    assert collector.total("claude_code_cost_usd_total", model="refused-http") == 0
    assert collector.total("cc_collector_items_total", outcome="accepted") == 1

    status, _, _ = http_post(collector, cost_request(0.25, "refused-http"))
    assert status == 200
    assert grpc_export(collector, cost_request(0.125, "refused-grpc")) is None
    assert collector.total("claude_code_cost_usd_total") == pytest.approx(0.875)
    assert collector.total("claude_code_cost_usd_total", model="refused-grpc") == pytest.approx(
        0.125
    )
    assert collector.total("cc_collector_items_total", outcome="accepted") == 3
    assert collector.total("cc_collector_requests_total", outcome="success") == 3


def test_a_grpc_export_holds_no_slot_after_it_is_answered(collector: RunningCollector) -> None:
    """Sequential requests never see each other as in flight (slots are released)."""
    for n in range(5):
        assert grpc_export(collector, cost_request(0.01, f"seq-{n}")) is None
        status, _, _ = http_post(collector, cost_request(0.02, f"seq-http-{n}"))
        assert status == 200
    assert collector.total("cc_collector_requests_total", outcome="overloaded") == 0
    assert collector.total("claude_code_cost_usd_total") == pytest.approx(5 * 0.03)


def test_abandoned_request_frees_its_slot_and_is_not_a_success(
    collector: RunningCollector,
) -> None:
    """A client that disconnects mid-body must not keep the slot nor count as a success."""
    with held(collector, cost_request(0.5, "abandoned")) as first:
        assert http_post(collector, cost_request(0.1, "x"))[0] == 429
        first.close()
        wait_for(lambda: collector.total("cc_collector_inflight_requests") == 0, "slot release")
    assert http_post(collector, cost_request(0.25, "after"))[0] == 200
    assert collector.total("claude_code_cost_usd_total", model="abandoned") == 0
    assert collector.total("claude_code_cost_usd_total") == pytest.approx(0.25)
    # Exactly one request succeeded; the abandoned one was never answered.
    assert collector.total("cc_collector_requests_total", outcome="success") == 1


def test_metrics_and_health_are_not_subject_to_admission(collector: RunningCollector) -> None:
    """The scrape port stays usable while OTLP is saturated (operators need to see it)."""
    with held(collector, cost_request(0.5, "held")) as first:
        for path in ("/metrics", "/healthz", "/readyz"):
            url = collector.metrics_url.replace("/metrics", path)
            with urllib.request.urlopen(url, timeout=10) as response:
                assert response.status == 200
        assert first.finish()[0] == 200
