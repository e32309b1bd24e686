"""Every invalid config in `cases/` fails to load with its key path and reason.

Each case file is one invalid config whose first line is `# expect: <message>`; when the
message starts with a key path (`a.b[0].c: ...`) the error's `path` must be exactly that key,
so an operator is pointed at the line to fix. The cases are also run through the CLI in
tests/test_cli.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from collector.config import Config, ConfigError, Endpoint, load, parse

CASES_DIR = Path(__file__).parent / "cases"
CASES = sorted(CASES_DIR.glob("*.yaml"))
REPO = Path(__file__).resolve().parents[2]
_KEY_PATH = re.compile(r"^([A-Za-z_][\w.\[\]]*): ")


def expectation(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name}: first line must be '# expect: ...'"
    return first.removeprefix("# expect: ").strip()


def key_path(message: str) -> str | None:
    match = _KEY_PATH.match(message)
    return match.group(1) if match else None


def test_there_are_cases() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_invalid_config_names_the_key_and_reason(case: Path) -> None:
    expect = expectation(case)
    with pytest.raises(ConfigError) as caught:
        load(case, environ={})
    assert expect in str(caught.value)
    path = key_path(expect)
    if path is not None:
        assert caught.value.path == path
        assert str(caught.value).startswith(f"{path}: ")


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read .*absent\.yaml"):
        load(tmp_path / "absent.yaml", environ={})


def test_empty_file_is_the_default_config(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing configured\n")
    assert load(empty, environ={}) == Config()


BUNDLED_ENV = {"CC_INGEST_TOKEN": "a-real-token-value", "CC_API_KEY": "an-api-key-of-the-bundle"}


def test_bundled_config_is_valid() -> None:
    config = load(REPO / "otel-config.yaml", environ=BUNDLED_ENV)
    assert config.grpc_endpoint == Endpoint("127.0.0.1", 4317)
    assert config.http_endpoint == Endpoint("127.0.0.1", 4318)
    assert config.metrics_endpoint == Endpoint("127.0.0.1", 8889)
    assert config.auth_required is True
    assert [t.name for t in config.tokens] == ["default"]
    assert config.tokens[0].token == "a-real-token-value"
    assert config.http_max_bytes == 4194304
    assert config.grpc_max_bytes == 4 * 1024 * 1024
    assert config.max_inflight_requests == 64
    assert config.stream_ttl_ns == 24 * 3600 * 10**9
    assert config.user_idle_ns == 30 * 86400 * 10**9
    assert [(k.name, k.role) for k in config.api_keys] == [("admin", "admin")]
    assert config.store.endswith("data/collector.db")


def test_bundled_config_can_listen_on_all_interfaces_with_its_token() -> None:
    config = load(
        REPO / "otel-config.yaml",
        environ={**BUNDLED_ENV, "CC_LISTEN_HOST": "0.0.0.0"},
    )
    assert config.http_endpoint == Endpoint("0.0.0.0", 4318)
    assert not config.http_endpoint.loopback


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [("90s", 90 * 10**9), ("30m", 1800 * 10**9), ("1h30m", 5400 * 10**9), ("250ms", 25 * 10**7)],
)
def test_durations(text: str, nanoseconds: int) -> None:
    config = parse({"processors": {"claude_code": {"stream_ttl": text}}}, environ={})
    assert config.stream_ttl_ns == nanoseconds


@pytest.mark.parametrize("text", ["1h 30m", "-5m", "5 m", "m", "1.5.0s", "1h-"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse({"processors": {"claude_code": {"dedupe_ttl": text}}}, environ={})
    assert caught.value.path == "processors.claude_code.dedupe_ttl"


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("0.0.0.0:0", Endpoint("0.0.0.0", 0)),
        ("localhost:4318", Endpoint("localhost", 4318)),
        ("[::1]:4318", Endpoint("::1", 4318)),
    ],
)
def test_endpoints(endpoint: str, expected: Endpoint) -> None:
    config = parse(
        {
            "receivers": {
                "otlp": {
                    "protocols": {"http": {"endpoint": endpoint}},
                    "auth": {"allow_unauthenticated": True},
                }
            }
        },
        environ={},
    )
    assert config.http_endpoint == expected


@pytest.mark.parametrize(
    ("host", "text"),
    [("127.0.0.1", "127.0.0.1:4317"), ("::1", "[::1]:4317"), ("::", "[::]:4317")],
)
def test_endpoint_text_is_a_valid_host_port(host: str, text: str) -> None:
    """`str(Endpoint)` is what the gRPC server binds and what errors print: IPv6 in brackets."""
    assert str(Endpoint(host, 4317)) == text
