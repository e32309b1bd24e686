"""A store that goes away: requests are refused as retryable, nothing is counted, and the
client's retries after it comes back count exactly once."""

from __future__ import annotations

import urllib.error
import urllib.request
from urllib.parse import urlsplit, urlunsplit

import grpc
import psycopg
import pytest

from tests.builders import SECOND, T0, api_request, claude_metric, logs_request, metrics_request
from tests.harness import make_config, running_collector
from tests.replay import GRPC_METHODS


def _admin_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/postgres"))


def _take_database_away(url: str) -> str:
    """Cut the collector off: end its connections and rename its database (superusers ignore
    connection limits, so renaming is what really keeps it out). Returns the new name."""
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(_admin_url(url), autocommit=True) as admin:
        for _ in range(50):
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            try:
                admin.execute(f'ALTER DATABASE "{name}" RENAME TO "{name}_away"')
                return name + "_away"
            except psycopg.errors.ObjectInUse:
                continue
    raise AssertionError("could not take the database away")


def _bring_database_back(url: str, away: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(_admin_url(url), autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{away}" RENAME TO "{name}"')


def _post(base: str, signal: str, body: bytes) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(
        f"{base}/v1/{signal}", data=body, headers={"Content-Type": "application/x-protobuf"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


def test_postgresql_down_means_503_and_nothing_counted_then_exact_recovery(pg_url: str) -> None:
    who = {"user.email": "a@x.io", "type": "input", "model": "m"}
    before = metrics_request(claude_metric("token.usage", 100, time_ns=T0 + SECOND, extra=who))
    during = metrics_request(
        claude_metric("token.usage", 40, time_ns=T0 + 2 * SECOND, start_ns=T0 + SECOND, extra=who)
    )
    events = logs_request(
        api_request(
            "req-down",
            time_ns=T0 + 2 * SECOND,
            model="m",
            input_tokens=7,
            extra={"user.email": "b@x.io", "session.id": "another-session"},
        )
    )
    config = make_config({"exporters": {"store": {"url": pg_url}}})
    with running_collector(config) as collector:
        assert _post(collector.http_base, "metrics", before.SerializeToString())[0] == 200
        away = _take_database_away(pg_url)
        try:
            status, headers = _post(collector.http_base, "metrics", during.SerializeToString())
            assert status == 503
            assert headers["Retry-After"] == "5"
            with (
                grpc.insecure_channel(collector.grpc_endpoint) as channel,
                pytest.raises(grpc.RpcError) as refused,
            ):
                channel.unary_unary(GRPC_METHODS["logs"])(events.SerializeToString(), timeout=30)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert collector.total("claude_code_tokens_total") == 100
            assert collector.total("cc_collector_store_transactions_total", outcome="failed") >= 2
        finally:
            _bring_database_back(pg_url, away)
        # The clients retry; now everything lands, once.
        assert _post(collector.http_base, "metrics", during.SerializeToString())[0] == 200
        assert _post(collector.http_base, "logs", events.SerializeToString())[0] == 200
        assert _post(collector.http_base, "metrics", during.SerializeToString())[0] == 200
        assert collector.total("claude_code_tokens_total", user="a@x.io") == 100 + 40
        assert collector.total("claude_code_tokens_total", user="b@x.io") == 7
