"""E2E fixtures: the pinned CLI (installed once), a fake Anthropic API, a collector."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.api.client import API_CONFIG
from tests.e2e.claude import Session, claude_binary
from tests.e2e.fake_anthropic import FakeAnthropic
from tests.harness import RunningCollector, make_config, running_collector


@pytest.fixture(scope="session", autouse=True)
def cli() -> Path:
    return claude_binary()


@pytest.fixture
def api() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def collector() -> Iterator[RunningCollector]:
    with running_collector(make_config(API_CONFIG)) as running:
        yield running


def otel_env(collector: RunningCollector, protocol: str, **extra: str) -> dict[str, str]:
    endpoint = f"http://{collector.grpc_endpoint}" if protocol == "grpc" else collector.http_base
    return {
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        **extra,
    }


@pytest.fixture
def session(api: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Session]:
    def make(otel: dict[str, str], fake: FakeAnthropic | None = None, **kwargs: object) -> Session:
        fake = fake or api
        root = tmp_path_factory.mktemp("claude-session")
        fake.workdir = str(root / "repo")
        return Session(root, fake.port, otel, **kwargs)  # type: ignore[arg-type]

    return make
