"""Bearer-token authentication on both transports, and the secret never leaking.

With tokens configured, a request without a valid `Authorization: Bearer <token>` is refused
(HTTP 401 + WWW-Authenticate, gRPC UNAUTHENTICATED) and counts nothing; a valid one is
accepted and its token name becomes the actor of API-key clients (no email in the data).
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request

import grpc
import pytest
from google.protobuf import json_format
from google.rpc import status_pb2

from collector.config import ConfigError, parse
from tests.harness import RunningCollector, make_config, running_collector
from tests.replay import GRPC_METHODS, captured, expected, replay

SECRET = "s3cr3t-Ingest-Token-7f41c2"
OTHER_SECRET = "another-team-token-99ab"
TOKENS = [
    {"name": "ci-runner", "token": SECRET},
    {"name": "platform-team", "token": OTHER_SECRET, "team": "platform"},
]
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED.value[0]

#: Authorization header values that must all be refused when auth is required.
BAD_AUTHORIZATION = {
    "missing": None,
    "empty": "",
    "wrong-token": "Bearer not-the-token-at-all",
    "prefix-of-token": f"Bearer {SECRET[:-1]}",
    "token-with-suffix": f"Bearer {SECRET}x",
    "basic-scheme": f"Basic {SECRET}",
    "token-without-scheme": SECRET,
    "scheme-only": "Bearer",
    "scheme-and-spaces": "Bearer    ",
}


def auth_config(**auth: object):
    return make_config({"receivers": {"otlp": {"auth": {"tokens": TOKENS, **auth}}}})


def post_capture(
    collector: RunningCollector, authorization: str | None, n: int = 0
) -> tuple[int, dict[str, str], bytes]:
    item = captured("http-protobuf")[n]
    headers = {"Content-Type": "application/x-protobuf"}
    if authorization is not None:
        headers["Authorization"] = authorization
    request = urllib.request.Request(
        f"{collector.http_base}/v1/{item.signal}", data=item.body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def grpc_capture(collector: RunningCollector, authorization: str | None, n: int = 0):
    item = captured("grpc")[n]
    metadata = None if authorization is None else (("authorization", authorization),)
    with grpc.insecure_channel(collector.grpc_endpoint) as channel:
        try:
            channel.unary_unary(GRPC_METHODS[item.signal])(item.body, timeout=10, metadata=metadata)
        except grpc.RpcError as error:
            return error
    return grpc.StatusCode.OK


def assert_capture_counted_for(collector: RunningCollector, case: str, user: str) -> None:
    result = expected(case)
    assert collector.total("claude_code_cost_usd_total") == pytest.approx(
        result["total_cost_usd"], abs=1e-9
    )
    assert collector.total("claude_code_cost_usd_total", user=user) == pytest.approx(
        result["total_cost_usd"], abs=1e-9
    )
    assert (
        collector.total("claude_code_tokens_total", user=user, type="input")
        == (result["usage"]["input_tokens"])
    )
    assert collector.total("claude_code_api_requests_total", user=user) == result["num_turns"]


def assert_nothing_counted(collector: RunningCollector) -> None:
    assert collector.total("cc_collector_items_total") == 0
    assert collector.total("claude_code_cost_usd_total") == 0
    assert collector.total("claude_code_events_total") == 0


@pytest.fixture(scope="module")
def secured():
    with running_collector(auth_config()) as running:
        yield running


@pytest.mark.parametrize("case", sorted(BAD_AUTHORIZATION))
def test_http_without_a_valid_token_is_401(secured: RunningCollector, case: str) -> None:
    before = secured.total("cc_collector_requests_total", outcome="unauthenticated")
    for n in range(2):  # a metrics and a logs request
        status, headers, body = post_capture(secured, BAD_AUTHORIZATION[case], n)
        assert status == 401, body
        assert headers["WWW-Authenticate"].startswith("Bearer")
        assert "realm=" in headers["WWW-Authenticate"]
        assert headers["Content-Type"] == "application/x-protobuf"
        refusal = status_pb2.Status.FromString(body)
        assert refusal.code == UNAUTHENTICATED
        assert "bearer token" in refusal.message
        assert SECRET not in refusal.message
        assert "Retry-After" not in headers
    assert secured.total("cc_collector_requests_total", outcome="unauthenticated") == before + 2
    assert_nothing_counted(secured)


def test_http_401_json_body_for_json_requests(secured: RunningCollector) -> None:
    request = urllib.request.Request(
        f"{secured.http_base}/v1/logs",
        data=captured("http-json")[1].body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 401
    assert caught.value.headers["Content-Type"] == "application/json"
    assert caught.value.headers["WWW-Authenticate"].startswith("Bearer")
    refusal = json_format.Parse(caught.value.read(), status_pb2.Status())
    assert refusal.code == UNAUTHENTICATED
    assert refusal.message == "missing bearer token"
    assert_nothing_counted(secured)


@pytest.mark.parametrize("case", sorted(BAD_AUTHORIZATION))
def test_grpc_without_a_valid_token_is_unauthenticated(
    secured: RunningCollector, case: str
) -> None:
    for n in range(2):
        error = grpc_capture(secured, BAD_AUTHORIZATION[case], n)
        assert isinstance(error, grpc.RpcError), case
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert SECRET not in error.details()
        trailers = dict(error.trailing_metadata() or ())
        details = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
        assert details.code == UNAUTHENTICATED
        assert not details.details
    assert_nothing_counted(secured)


def test_http_valid_token_is_accepted_and_names_the_actor() -> None:
    with running_collector(auth_config()) as collector:
        statuses = replay("http-protobuf", collector, token=SECRET)
        assert statuses == [200] * len(statuses)
        assert_capture_counted_for(collector, "http-protobuf", "ci-runner")
        # Scheme is case-insensitive, surrounding spaces are tolerated; a replay is a duplicate.
        status, _, _ = post_capture(collector, f"bearer  {SECRET} ", 0)
        assert status == 200
        assert_capture_counted_for(collector, "http-protobuf", "ci-runner")


def test_grpc_valid_token_is_accepted_and_names_the_actor() -> None:
    with running_collector(auth_config()) as collector:
        statuses = replay("grpc", collector, token=OTHER_SECRET)
        assert statuses == [grpc.StatusCode.OK] * len(statuses)
        assert_capture_counted_for(collector, "grpc", "platform-team")
        assert collector.total("claude_code_cost_usd_total", team="platform") == pytest.approx(
            expected("grpc")["total_cost_usd"], abs=1e-9
        )


def test_refused_requests_do_not_disturb_valid_ones() -> None:
    with running_collector(auth_config()) as collector:
        for n in range(len(captured("http-protobuf"))):
            assert post_capture(collector, "Bearer wrong-token-123", n)[0] == 401
            assert post_capture(collector, None, n)[0] == 401
        assert_nothing_counted(collector)
        statuses = replay("http-protobuf", collector, token=SECRET)
        assert statuses == [200] * len(statuses)
        assert_capture_counted_for(collector, "http-protobuf", "ci-runner")
        assert collector.total("cc_collector_items_total", outcome="duplicate") == 0


@pytest.mark.parametrize("token", [None, "Bearer whatever-1234"])
def test_auth_off_accepts_requests_without_a_token(token: str | None) -> None:
    with running_collector(make_config()) as collector:
        for n in range(len(captured("http-protobuf"))):
            assert post_capture(collector, token, n)[0] == 200
        assert grpc_capture(collector, token, 0) == grpc.StatusCode.OK
        result = expected("http-protobuf")
        assert collector.total("claude_code_cost_usd_total") == pytest.approx(
            result["total_cost_usd"], abs=1e-9
        )
        assert collector.total("claude_code_cost_usd_total", user="ci-runner") == 0


def test_optional_auth_accepts_anonymous_and_binds_known_tokens() -> None:
    """`required: false` with tokens: unknown or missing tokens are anonymous, known ones bind."""
    with running_collector(auth_config(required=False)) as collector:
        assert collector.service.config.auth_required is False
        assert post_capture(collector, None, 0)[0] == 200
        assert post_capture(collector, "Bearer not-a-known-token", 1)[0] == 200
        statuses = replay("grpc", collector, token=SECRET)
        assert statuses == [grpc.StatusCode.OK] * len(statuses)
        assert_capture_counted_for(collector, "grpc", "ci-runner")


# -- configuration ---------------------------------------------------------------------


def _endpoints(host: str) -> dict:
    return {
        "grpc": {"endpoint": f"{host}:4317"},
        "http": {"endpoint": f"{host}:4318"},
    }


@pytest.mark.parametrize("host", ["0.0.0.0", "[::]", "192.0.2.10", "collector.example.com"])
def test_non_loopback_without_tokens_is_refused(host: str) -> None:
    document = {"receivers": {"otlp": {"protocols": _endpoints(host)}}}
    with pytest.raises(ConfigError) as caught:
        parse(document, environ={})
    assert caught.value.path == "receivers.otlp.auth"
    assert "non-loopback" in str(caught.value)
    assert "allow_unauthenticated" in str(caught.value)


def test_one_exposed_endpoint_is_enough_to_refuse() -> None:
    document = {
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": "127.0.0.1:4317"},
                    "http": {"endpoint": "0.0.0.0:4318"},
                }
            }
        }
    }
    with pytest.raises(ConfigError, match=r"non-loopback 0\.0\.0\.0:4318"):
        parse(document, environ={})


@pytest.mark.parametrize(
    "auth",
    [
        {"allow_unauthenticated": True},
        {"allow_unauthenticated": "yes"},
        {"tokens": [{"name": "ci", "token": SECRET}]},
    ],
)
def test_non_loopback_is_allowed_with_tokens_or_explicit_opt_out(auth: dict) -> None:
    document = {"receivers": {"otlp": {"protocols": _endpoints("0.0.0.0"), "auth": auth}}}
    config = parse(document, environ={})
    assert config.http_endpoint.host == "0.0.0.0"
    assert config.auth_required == ("tokens" in auth)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "[::1]"])
def test_loopback_without_tokens_is_fine(host: str) -> None:
    config = parse({"receivers": {"otlp": {"protocols": _endpoints(host)}}}, environ={})
    assert config.auth_required is False
    assert config.grpc_endpoint.loopback and config.http_endpoint.loopback


def test_allow_unauthenticated_with_tokens_still_requires_them() -> None:
    """Opting out of the exposure check does not switch configured tokens off."""
    document = {
        "receivers": {
            "otlp": {
                "protocols": _endpoints("0.0.0.0"),
                "auth": {
                    "tokens": [{"name": "ci", "token": SECRET}],
                    "allow_unauthenticated": True,
                },
            }
        }
    }
    assert parse(document, environ={}).auth_required is True


# -- the secret never leaks ------------------------------------------------------------


def test_token_never_appears_in_logs_metrics_or_replies(
    caplog: pytest.LogCaptureFixture, tmp_path
) -> None:
    token_file = tmp_path / "token"
    file_secret = "file-based-secret-0c9d"
    token_file.write_text(file_secret + "\n")
    config = make_config(
        {
            "receivers": {
                "otlp": {
                    "auth": {
                        "tokens": [
                            {"name": "ci-runner", "token": "${env:CC_TEST_INGEST_TOKEN}"},
                            {"name": "from-file", "token_file": str(token_file)},
                        ]
                    }
                }
            },
            "service": {"telemetry": {"logs": {"level": "debug"}}},
        },
        environ={"CC_TEST_INGEST_TOKEN": SECRET},
    )
    secrets = (SECRET, file_secret)
    assert all(secret not in repr(config) for secret in secrets)
    replies: list[bytes] = []
    with caplog.at_level(logging.DEBUG), running_collector(config) as collector:
        assert replay("http-protobuf", collector, token=SECRET) == [200] * 10
        assert post_capture(collector, f"Bearer {file_secret}", 0)[0] == 200
        for authorization in (
            f"Bearer {SECRET[:-2]}",
            f"Bearer {file_secret.upper()}",
            SECRET,
            f"Basic {SECRET}",
        ):
            status, headers, body = post_capture(collector, authorization, 1)
            assert status == 401
            replies.append(body + repr(headers).encode())
            error = grpc_capture(collector, authorization, 1)
            assert isinstance(error, grpc.RpcError)
            replies.append(
                repr(error.details()).encode() + repr(error.trailing_metadata()).encode()
            )
        metrics_text = collector.scrape_text()
        openmetrics = collector.scrape_text("application/openmetrics-text")
    assert caplog.records, "expected the collector to log something at DEBUG"
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    for secret in secrets:
        for fragment in (secret, secret[:-2], secret.upper()):
            assert fragment not in logged
            assert fragment not in metrics_text
            assert fragment not in openmetrics
            assert all(fragment.encode() not in reply for reply in replies)
