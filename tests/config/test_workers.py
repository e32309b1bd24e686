"""`processors.claude_code.workers`: a count, or `auto` from the cores this process may use."""

from __future__ import annotations

import os

import pytest

from collector.config import auto_plan_workers, parse


@pytest.mark.parametrize(("cpus", "workers"), [(1, 0), (2, 1), (3, 2), (4, 2), (64, 2)])
def test_auto_leaves_the_serving_process_one_core(cpus: int, workers: int) -> None:
    assert auto_plan_workers(cpus) == workers


def _workers(value: object) -> int:
    return parse({"processors": {"claude_code": {"workers": value}}}, {}).plan_workers


def test_auto_is_the_default_and_follows_this_machine() -> None:
    expected = auto_plan_workers(len(os.sched_getaffinity(0)))
    assert parse({}, {}).plan_workers == expected
    assert _workers("auto") == expected
    assert _workers("AUTO") == expected


@pytest.mark.parametrize("value", [0, 1, 3, "2"])
def test_a_count_is_taken_as_given(value: object) -> None:
    assert _workers(value) == int(value)  # type: ignore[call-overload]
