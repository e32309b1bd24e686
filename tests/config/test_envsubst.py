"""`${env:VAR}`, `${env:VAR:-default}` and `$$` in config values, as the OTel Collector does.

Substitution happens on parsed string values, so an error names the key it happened at and
a variable's value is always a plain string (it can never add YAML structure).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.config import ConfigError, load, parse
from collector.envsubst import EnvError, substitute


@pytest.mark.parametrize(
    ("text", "environ", "result"),
    [
        ("${env:HOST}", {"HOST": "10.0.0.5"}, "10.0.0.5"),
        ("${env:HOST}:4317", {"HOST": "10.0.0.5"}, "10.0.0.5:4317"),
        ("${env:A}-${env:B}", {"A": "x", "B": "y"}, "x-y"),
        ("${env:HOST:-127.0.0.1}:4317", {}, "127.0.0.1:4317"),
        ("${env:HOST:-127.0.0.1}:4317", {"HOST": "0.0.0.0"}, "0.0.0.0:4317"),
        ("${env:HOST:-127.0.0.1}", {"HOST": ""}, "127.0.0.1"),  # empty uses the default
        ("${env:HOST:-}", {}, ""),
        ("${env:EMPTY}", {"EMPTY": ""}, ""),  # set but empty, no default: empty
        ("$$", {}, "$"),
        ("pa$$word", {}, "pa$word"),
        ("$${env:HOST}", {"HOST": "nope"}, "${env:HOST}"),  # escaped: stays literal
        ("$$$${env:HOST}", {"HOST": "h"}, "$${env:HOST}"),
        ("$$${env:HOST}", {"HOST": "h"}, "$h"),
        ("cost $5", {}, "cost $5"),  # a lone $ is kept
        ("no variables here", {}, "no variables here"),
        ("${env:_UNDER_score9}", {"_UNDER_score9": "ok"}, "ok"),
    ],
)
def test_substitute(text: str, environ: dict[str, str], result: str) -> None:
    assert substitute(text, environ) == result


def test_values_are_not_substituted_again() -> None:
    """A variable whose value looks like a reference or an escape is taken literally."""
    environ = {"A": "${env:B}", "B": "secret", "C": "a$$b"}
    assert substitute("${env:A}", environ) == "${env:B}"
    assert substitute("${env:C}", environ) == "a$$b"


def test_missing_variable_is_an_error() -> None:
    with pytest.raises(EnvError, match="environment variable CC_MISSING is not set"):
        substitute("x ${env:CC_MISSING} y", {})


def _token_config(token: str) -> dict:
    return {"receivers": {"otlp": {"auth": {"tokens": [{"name": "ci", "token": token}]}}}}


def test_missing_variable_error_names_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        parse(_token_config("${env:CC_INGEST_TOKEN}"), environ={})
    assert caught.value.path == "receivers.otlp.auth.tokens[0].token"
    assert str(caught.value) == (
        "receivers.otlp.auth.tokens[0].token: environment variable CC_INGEST_TOKEN is not set"
    )


@pytest.mark.parametrize(
    ("document", "path"),
    [
        (
            {"receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "${env:H}:4317"}}}}},
            "receivers.otlp.protocols.grpc.endpoint",
        ),
        (
            {"receivers": {"otlp": {"max_inflight_requests": "${env:N}"}}},
            "receivers.otlp.max_inflight_requests",
        ),
        (
            {"processors": {"claude_code": {"stream_ttl": "${env:TTL}"}}},
            "processors.claude_code.stream_ttl",
        ),
        (
            {"service": {"telemetry": {"logs": {"level": "${env:LEVEL}"}}}},
            "service.telemetry.logs.level",
        ),
        (
            {
                "receivers": {
                    "otlp": {"auth": {"tokens": [{"name": "${env:WHO}", "token": "x" * 9}]}}
                }
            },
            "receivers.otlp.auth.tokens[0].name",
        ),
    ],
)
def test_missing_variable_anywhere_names_its_key(document: dict, path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(document, environ={})
    assert caught.value.path == path
    assert "is not set" in caught.value.reason


def test_variables_fill_every_kind_of_value(tmp_path: Path) -> None:
    config_file = tmp_path / "otel-config.yaml"
    config_file.write_text(
        """
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: ${env:HOST:-127.0.0.1}:${env:GRPC_PORT}
        max_recv_msg_size_mib: ${env:MIB:-8}
      http:
        endpoint: ${env:HOST:-127.0.0.1}:4318
    max_inflight_requests: ${env:INFLIGHT}
    auth:
      required: ${env:REQUIRED:-true}
      tokens:
        - name: ci
          token: ${env:TOKEN}
processors:
  claude_code:
    stream_ttl: ${env:TTL:-2h}
service:
  telemetry:
    logs:
      level: ${env:LEVEL:-warning}
"""
    )
    environ = {"GRPC_PORT": "14317", "INFLIGHT": "7", "TOKEN": "pa$$w0rd: #not-a-comment"}
    config = load(config_file, environ=environ)
    assert str(config.grpc_endpoint) == "127.0.0.1:14317"
    assert config.grpc_max_bytes == 8 * 1024 * 1024
    assert config.max_inflight_requests == 7
    assert config.auth_required is True
    # The value is used verbatim: `$$`, `: ` and `#` in a variable are not YAML or escapes.
    assert config.tokens[0].token == "pa$$w0rd: #not-a-comment"
    assert config.stream_ttl_ns == 2 * 3600 * 10**9
    assert config.log_level == "warning"


def test_variable_cannot_inject_structure() -> None:
    """A value with YAML in it stays one string: it cannot add keys or tokens."""
    injected = "x\n        - name: evil\n          token: injected-token"
    config = parse(_token_config("${env:TOKEN}"), environ={"TOKEN": "long-token-" + injected})
    assert len(config.tokens) == 1
    assert config.tokens[0].token == "long-token-" + injected


def test_dollar_escape_in_a_config_value() -> None:
    config = parse(_token_config("pa$$word-1234"), environ={})
    assert config.tokens[0].token == "pa$word-1234"


def test_escaped_reference_is_not_expanded_in_a_config_value() -> None:
    config = parse(_token_config("$${env:TOKEN}-literal"), environ={"TOKEN": "should-not-appear"})
    assert config.tokens[0].token == "${env:TOKEN}-literal"


def test_substituted_value_is_still_validated() -> None:
    document = {"receivers": {"otlp": {"protocols": {"http": {"endpoint": "${env:EP}"}}}}}
    with pytest.raises(ConfigError) as caught:
        parse(document, environ={"EP": "no-port-here"})
    assert str(caught.value) == (
        "receivers.otlp.protocols.http.endpoint: expected host:port, got 'no-port-here'"
    )


def test_default_can_make_an_exposed_endpoint_need_auth() -> None:
    """`${env:HOST:-0.0.0.0}` resolves before the exposure check, which then applies."""
    document = {
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": "${env:H:-0.0.0.0}:4318"}}}}
    }
    with pytest.raises(ConfigError) as caught:
        parse(document, environ={})
    assert caught.value.path == "receivers.otlp.auth"
    assert parse(document, environ={"H": "127.0.0.1"}).http_endpoint.loopback


def test_real_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC_TEST_ENVSUBST_TOKEN", "from-the-real-environment")
    config = parse(_token_config("${env:CC_TEST_ENVSUBST_TOKEN}"))
    assert config.tokens[0].token == "from-the-real-environment"
    monkeypatch.delenv("CC_TEST_ENVSUBST_TOKEN")
    with pytest.raises(ConfigError, match="CC_TEST_ENVSUBST_TOKEN is not set"):
        parse(_token_config("${env:CC_TEST_ENVSUBST_TOKEN}"))
