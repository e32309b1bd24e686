"""Plan workers (collector/planning.py): the same answers and totals as planning in-process.

`processors.claude_code.workers` moves parsing, decoding and planning into child processes.
Nothing observable may change with it: every series on /metrics, every self-metric count,
every refusal with its status and message. And a worker that dies costs only a retry.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import pytest

from collector.accounting.engine import Accountant, AccountingSettings
from collector.directory import Directory
from collector.identity import IdentityResolver
from collector.planning import LocalPlanner, WorkerPlanner
from collector.selfstats import SelfStats
from tests.harness import RunningCollector, make_config, running_collector
from tests.replay import CASES, captured, replay, send_http


def _workers(n: int):
    return make_config({"processors": {"claude_code": {"workers": n}}})


@contextmanager
def _collector(workers: int) -> Iterator[RunningCollector]:
    """A collector with `workers`, every body planned by a worker however small (the captured
    requests are a few KiB, below WORKER_MIN_BYTES)."""
    with running_collector(_workers(workers)) as collector:
        if workers:
            collector.call(setattr, collector.service.planner, "min_bytes", 0)
        yield collector


def _counted(collector: RunningCollector) -> dict:
    """Every contract series and every item/request count, without timings (which differ)."""
    counts = {
        key: value
        for key, value in collector.samples().items()
        if key[0] in ("cc_collector_items_total", "cc_collector_requests_total")
    }
    return {**_counted_contract(collector), **counts}


@pytest.mark.parametrize("case", [c for c in CASES if c != "gzip-headers"])
def test_workers_count_exactly_what_one_process_counts(case: str) -> None:
    results = {}
    for workers in (0, 2):
        with _collector(workers) as collector:
            assert collector.total("cc_collector_plan_workers") == workers
            statuses = replay(case, collector)
            assert all(s in (200, grpc.StatusCode.OK) for s in statuses), statuses
            replay(case, collector)  # a retry of everything: duplicates in both modes
            results[workers] = _counted(collector)
    assert results[2] == results[0]
    assert any(name == "claude_code_cost_usd_total" for name, _ in results[0])


def _post(base: str, path: str, body: bytes, content_type: str) -> tuple[int, bytes, dict]:
    request = urllib.request.Request(
        f"{base}{path}", data=body, headers={"Content-Type": content_type}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(b"\xff\xff\xff", "application/x-protobuf"), (b"{not json", "application/json")],
)
def test_a_malformed_body_gets_the_same_answer_from_a_worker(
    body: bytes, content_type: str
) -> None:
    answers = {}
    for workers in (0, 1):
        with _collector(workers) as collector:
            status, text, _ = _post(collector.http_base, "/v1/metrics", body, content_type)
            assert collector.total("cc_collector_decode_errors_total", protocol="http") == 1
            # Good data after it is still counted.
            good = next(c for c in captured("http-protobuf") if c.signal == "metrics")
            assert send_http(collector.http_base, good) == 200
            assert collector.total("cc_collector_items_total", outcome="accepted") > 0
            answers[workers] = (status, text)
    assert answers[0][0] == 400
    assert answers[1] == answers[0]


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return
        except FileNotFoundError:
            return
        time.sleep(0.02)
    raise AssertionError(f"worker {pid} still running")


def test_a_killed_worker_costs_a_retry_and_nothing_is_lost_or_doubled() -> None:
    items = [c for c in captured("http-protobuf") if c.signal != "traces"]
    with _collector(1) as reference_collector:
        for item in items:
            assert send_http(reference_collector.http_base, item) == 200
        want = _counted_contract(reference_collector)

    with _collector(1) as collector:
        planner = collector.service.planner
        first = planner.pids()
        assert len(first) == 1 and first[0] != os.getpid()
        os.kill(first[0], signal.SIGKILL)
        _wait_gone(first[0])
        item = items[0]
        content_type = "application/x-protobuf"
        status, _, headers = _post(
            collector.http_base, f"/v1/{item.signal}", item.body, content_type
        )
        assert status == 503
        assert headers.get("Retry-After") == "1"
        # The client's retries, then the rest: all answered by the replacement worker.
        for item in items:
            assert send_http(collector.http_base, item) == 200
        assert planner.pids() and planner.pids() != first
        assert collector.total("cc_collector_plan_worker_restarts_total") == 1
        assert _counted_contract(collector) == want


def test_small_bodies_are_planned_in_the_serving_process() -> None:
    """Below WORKER_MIN_BYTES a handover would cost more than planning: such a request never
    reaches a worker, so even a dead worker does not fail it."""
    item = next(c for c in captured("http-protobuf") if c.signal == "metrics")
    with running_collector(_workers(1)) as collector:
        planner = collector.service.planner
        assert len(item.body) < planner.min_bytes
        (pid,) = planner.pids()
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid)
        assert send_http(collector.http_base, item) == 200
        assert collector.total("cc_collector_plan_worker_restarts_total") == 0
        # The same body, now at the threshold: it goes to the (dead) worker.
        collector.call(setattr, planner, "min_bytes", len(item.body))
        status, _, _ = _post(
            collector.http_base, "/v1/metrics", item.body, "application/x-protobuf"
        )
        assert status == 503
        assert collector.total("cc_collector_plan_worker_restarts_total") == 1


def _counted_contract(collector: RunningCollector) -> dict:
    return {
        key: value
        for key, value in collector.samples().items()
        if key[0].startswith("claude_code_")
        and key[0] != "claude_code_user_last_seen_timestamp_seconds"
    }


def _explode() -> Directory:
    raise RuntimeError("this directory cannot be loaded in a worker")


class _UnloadableDirectory(Directory):
    """Unpickles by raising, in the worker: a worker that cannot start."""

    def __reduce__(self) -> tuple:
        return (_explode, ())


def test_workers_that_cannot_start_fail_start_up_readably() -> None:
    local = LocalPlanner(Accountant(IdentityResolver()))
    planner = WorkerPlanner(1, _UnloadableDirectory(), AccountingSettings(), SelfStats(), local)
    with pytest.raises(OSError, match="cannot start the plan workers"):
        asyncio.run(planner.start())
    assert planner.pids() == []
