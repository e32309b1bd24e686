"""`exporters.otlp`: forwarding targets are typed and validated like the rest of the config.

Why: a forwarding target carries credentials (headers, client certificates) to a third
party, so a mistake must fail at start with the key to fix, not become a silent downstream
that never receives anything or receives it in plaintext.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from collector.config import ConfigError, OtlpTarget, load, parse

REPO = Path(__file__).resolve().parents[2]


def targets(*items: Any, environ: dict[str, str] | None = None) -> tuple[OtlpTarget, ...]:
    return parse({"exporters": {"otlp": list(items)}}, environ=environ or {}).otlp_targets


def test_defaults() -> None:
    (t,) = targets({"name": "mimir", "endpoint": "mimir.example.com:4317"})
    assert t == OtlpTarget(
        name="mimir",
        endpoint="mimir.example.com:4317",
        protocol="grpc",
        insecure=False,  # gRPC to host:port is TLS unless told otherwise
        temporality="cumulative",
        interval_ns=60 * 10**9,
        timeout_ns=10 * 10**9,
        compression="gzip",
        max_points_per_request=5000,
    )


def test_several_targets_full_form(tmp_path: Path) -> None:
    ca, cert, key = (tmp_path / n for n in ("ca.pem", "client.pem", "client.key"))
    for f in (ca, cert, key):
        f.write_text("-----BEGIN-----\n")
    found = targets(
        {
            "name": "grafana-cloud",
            "endpoint": "https://otlp-gateway.example.net/otlp/",
            "protocol": "http/protobuf",
            "headers": {"Authorization": "Basic ${env:GC_AUTH}", "X-Scope-OrgID": "t1"},
            "temporality": "delta",
            "interval": "30s",
            "timeout": "5s",
            "compression": "none",
            "max_points_per_request": "1000",
        },
        {
            "name": "otelcol",
            "endpoint": "collector.internal:4317",
            "headers": {"X-Api-Key": "${env:KEY}"},
            "tls": {"ca_file": str(ca), "cert_file": str(cert), "key_file": str(key)},
        },
        {"name": "local", "endpoint": "http://127.0.0.1:4317"},
        environ={"GC_AUTH": "dXNlcjpwYXNz", "KEY": "k-123"},
    )
    cloud, otelcol, local = found
    assert cloud.endpoint == "https://otlp-gateway.example.net/otlp/v1/metrics"
    assert not cloud.insecure
    assert cloud.headers == (("Authorization", "Basic dXNlcjpwYXNz"), ("X-Scope-OrgID", "t1"))
    assert (cloud.temporality, cloud.interval_ns, cloud.timeout_ns) == ("delta", 30e9, 5e9)
    assert (cloud.compression, cloud.max_points_per_request) == ("none", 1000)
    # gRPC metadata keys are lower case.
    assert otelcol.headers == (("x-api-key", "k-123"),)
    assert (otelcol.ca_file, otelcol.cert_file, otelcol.key_file) == (ca, cert, key)
    assert (local.endpoint, local.insecure) == ("127.0.0.1:4317", True)


def test_header_values_are_not_in_the_representation() -> None:
    document = {
        "exporters": {
            "otlp": [
                {"name": "a", "endpoint": "h:1", "headers": {"Authorization": "Bearer hidden!"}}
            ]
        }
    }
    config = parse(document, environ={})
    assert config.otlp_targets[0].headers == (("authorization", "Bearer hidden!"),)
    assert "hidden!" not in repr(config)


@pytest.mark.parametrize(
    ("endpoint", "protocol", "insecure", "expected"),
    [
        ("localhost:4317", "grpc", None, ("localhost:4317", False)),
        ("localhost:4317", "grpc", True, ("localhost:4317", True)),
        ("http://localhost:4317", "grpc", None, ("localhost:4317", True)),
        ("https://otlp.example.com:443", "grpc", None, ("otlp.example.com:443", False)),
        ("[::1]:4317", "grpc", True, ("[::1]:4317", True)),
        (
            "http://127.0.0.1:4318",
            "http/protobuf",
            None,
            ("http://127.0.0.1:4318/v1/metrics", True),
        ),
        (
            "https://h.example/v1/metrics",
            "http/protobuf",
            None,
            ("https://h.example/v1/metrics", False),
        ),
        (
            "https://h.example/otlp",
            "http/protobuf",
            False,
            ("https://h.example/otlp/v1/metrics", False),
        ),
    ],
)
def test_endpoints(endpoint: str, protocol: str, insecure: Any, expected: tuple[str, bool]) -> None:
    item: dict[str, Any] = {"name": "t", "endpoint": endpoint, "protocol": protocol}
    if insecure is not None:
        item["tls"] = {"insecure": insecure}
    (t,) = targets(item)
    assert (t.endpoint, t.insecure) == expected


def test_pipelines_may_name_the_otlp_exporter_once_configured() -> None:
    config = parse(
        {
            "exporters": {"otlp": [{"name": "a", "endpoint": "h:4317"}]},
            "service": {"pipelines": {"metrics": {"exporters": ["store", "prometheus", "otlp"]}}},
        },
        environ={},
    )
    assert [t.name for t in config.otlp_targets] == ["a"]


def test_no_section_no_targets() -> None:
    assert parse({}, environ={}).otlp_targets == ()


def test_bundled_config_forwards_nowhere_until_uncommented() -> None:
    config = load(
        REPO / "otel-config.yaml",
        environ={"CC_INGEST_TOKEN": "a-real-token-value", "CC_API_KEY": "an-api-key-of-the-bundle"},
    )
    assert config.otlp_targets == ()


def _file(tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    path.write_text("x")
    return str(path)


# (target fields, key path of the error, message)
ERRORS: list[tuple[Any, str, str]] = [
    ({"otlp": {"name": "a"}}, "exporters.otlp", "expected a list of targets"),
    ([{"endpoint": "h:1"}], "exporters.otlp[0].name", "required"),
    ([{"name": "a b", "endpoint": "h:1"}], "exporters.otlp[0].name", "expected letters"),
    (
        [{"name": "a", "endpoint": "h:1"}, {"name": "a", "endpoint": "h:2"}],
        "exporters.otlp[1].name",
        "duplicate target name 'a'",
    ),
    ([{"name": "a"}], "exporters.otlp[0].endpoint", "required"),
    ([{"name": "a", "endpoint": "h:1", "port": 1}], "exporters.otlp[0].port", "unknown key"),
    (
        [{"name": "a", "endpoint": "h:1", "protocol": "http/json"}],
        "exporters.otlp[0].protocol",
        "expected grpc or http/protobuf, got 'http/json'",
    ),
    ([{"name": "a", "endpoint": "h"}], "exporters.otlp[0].endpoint", "expected host:port"),
    ([{"name": "a", "endpoint": "h:99999"}], "exporters.otlp[0].endpoint", "host and port"),
    (
        [{"name": "a", "endpoint": "https://h:4317/v1/metrics"}],
        "exporters.otlp[0].endpoint",
        "a gRPC endpoint has no path",
    ),
    (
        [{"name": "a", "endpoint": "ftp://h:1"}],
        "exporters.otlp[0].endpoint",
        "expected http:// or https://",
    ),
    (
        [{"name": "a", "endpoint": "h:4318", "protocol": "http/protobuf"}],
        "exporters.otlp[0].endpoint",
        "expected an http:// or https:// URL",
    ),
    (
        [{"name": "a", "endpoint": "https://h:1", "tls": {"insecure": True}}],
        "exporters.otlp[0].tls.insecure",
        "an https:// endpoint is TLS",
    ),
    (
        [{"name": "a", "endpoint": "http://h:1", "tls": {"insecure": False}}],
        "exporters.otlp[0].tls.insecure",
        "an http:// endpoint is plaintext",
    ),
    (
        [{"name": "a", "endpoint": "h:1", "tls": {"insecure": "maybe"}}],
        "exporters.otlp[0].tls.insecure",
        "expected true or false",
    ),
    (
        [{"name": "a", "endpoint": "h:1", "tls": {"ca_file": "/nonexistent/ca.pem"}}],
        "exporters.otlp[0].tls.ca_file",
        "cannot read /nonexistent/ca.pem",
    ),
    (
        [{"name": "a", "endpoint": "h:1", "tls": {"cert_file": "FILE"}}],
        "exporters.otlp[0].tls",
        "give both cert_file and key_file",
    ),
    (
        [{"name": "a", "endpoint": "http://h:1", "tls": {"ca_file": "FILE"}}],
        "exporters.otlp[0].tls.ca_file",
        "TLS files need a TLS endpoint",
    ),
    (
        [{"name": "a", "endpoint": "h:1", "tls": {"verify": 1}}],
        "exporters.otlp[0].tls.verify",
        "unknown key",
    ),
    (
        [{"name": "a", "endpoint": "h:1", "temporality": "cumulativ"}],
        "exporters.otlp[0].temporality",
        "expected cumulative or delta, got 'cumulativ'",
    ),
    (
        [{"name": "a", "endpoint": "h:1", "interval": "1 min"}],
        "exporters.otlp[0].interval",
        "expected a positive duration",
    ),
    (
        [{"name": "a", "endpoint": "h:1", "timeout": "0s"}],
        "exporters.otlp[0].timeout",
        "positive duration",
    ),
    (
        [{"name": "a", "endpoint": "h:1", "compression": "zstd"}],
        "exporters.otlp[0].compression",
        "expected gzip or none, got 'zstd'",
    ),
    (
        [{"name": "a", "endpoint": "h:1", "max_points_per_request": 0}],
        "exporters.otlp[0].max_points_per_request",
        "must be >= 1",
    ),
    (
        [{"name": "a", "endpoint": "h:1", "headers": ["a"]}],
        "exporters.otlp[0].headers",
        "expected a mapping",
    ),
    (
        [{"name": "a", "endpoint": "h:1", "headers": {"Bad Name": "v"}}],
        "exporters.otlp[0].headers.Bad Name",
        "not a valid header name",
    ),
    (
        [{"name": "a", "endpoint": "h:1", "headers": {"Authorization": "${env:ABSENT}"}}],
        "exporters.otlp[0].headers.Authorization",
        "ABSENT",
    ),
    (
        [{"name": "a", "endpoint": "h:1", "headers": {"X-A": "one\ntwo"}}],
        "exporters.otlp[0].headers.X-A",
        "line break",
    ),
]


@pytest.mark.parametrize(("otlp", "path", "message"), ERRORS)
def test_errors_name_the_key(otlp: Any, path: str, message: str, tmp_path: Path) -> None:
    def fill(value: Any) -> Any:
        if value == "FILE":
            return _file(tmp_path)
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value

    document = {"exporters": fill(otlp) if isinstance(otlp, dict) else {"otlp": fill(otlp)}}
    with pytest.raises(ConfigError) as caught:
        parse(document, environ={})
    assert caught.value.path == path
    assert message in caught.value.reason


def test_pipeline_naming_an_unconfigured_otlp_exporter_fails() -> None:
    with pytest.raises(ConfigError) as caught:
        parse(
            {"service": {"pipelines": {"logs": {"exporters": ["prometheus", "otlp"]}}}},
            environ={},
        )
    assert caught.value.path == "service.pipelines.logs.exporters[1]"
    assert "exporter 'otlp' is not configured" in caught.value.reason
