"""Shared fixtures: a real collector per test on ephemeral loopback ports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness import RunningCollector, running_collector
from tests.pg import pg_cluster, pg_url

__all__ = ["pg_cluster", "pg_url"]


@pytest.fixture
def collector() -> Iterator[RunningCollector]:
    with running_collector() as running:
        yield running
