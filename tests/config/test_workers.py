"""`processors.claude_code.workers`: a count, or `auto` from the cores this process may use."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.config import auto_plan_workers, cpu_quota, parse


@pytest.mark.parametrize(("cpus", "workers"), [(1, 0), (2, 1), (3, 2), (4, 2), (64, 2)])
def test_auto_leaves_the_serving_process_one_core(cpus: int, workers: int) -> None:
    assert auto_plan_workers(cpus) == workers


def _workers(value: object) -> int:
    return parse({"processors": {"claude_code": {"workers": value}}}, {}).plan_workers


def test_auto_is_the_default_and_follows_this_machine() -> None:
    expected = auto_plan_workers()
    assert parse({}, {}).plan_workers == expected
    assert _workers("auto") == expected
    assert _workers("AUTO") == expected


@pytest.mark.parametrize("value", [0, 1, 3, "2"])
def test_a_count_is_taken_as_given(value: object) -> None:
    assert _workers(value) == int(value)  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("text", "cores"),
    [("150000 100000\n", 1.5), ("200000 100000\n", 2.0), ("max 100000\n", None), ("junk", None)],
)
def test_a_container_cpu_quota_is_read(tmp_path: Path, text: str, cores: float | None) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text(text)
    assert cpu_quota(cpu_max) == cores


def test_no_cgroup_file_means_no_quota(tmp_path: Path) -> None:
    assert cpu_quota(tmp_path / "absent") is None


def test_a_one_core_quota_means_no_worker_whatever_the_machine(tmp_path: Path) -> None:
    """`docker run --cpus 1` on a big host: the container may run on every core, but a worker
    would only take CPU time from the serving process."""
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("100000 100000\n")
    assert auto_plan_workers(cpu_max=cpu_max) == 0
    cpu_max.write_text("max 100000\n")
    assert auto_plan_workers(cpu_max=cpu_max) == auto_plan_workers(cpu_max=tmp_path / "absent")
