"""Shared fixtures: a real collector per test on ephemeral loopback ports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness import RunningCollector, running_collector


@pytest.fixture
def collector() -> Iterator[RunningCollector]:
    with running_collector() as running:
        yield running
