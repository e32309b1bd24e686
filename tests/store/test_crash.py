"""kill -9 in the middle of a stream, three times: afterwards the store and /metrics hold
exactly what was sent, once.

The collector is a real `cc-collector serve` process, killed with SIGKILL (no shutdown code
runs) while clients stream to it, and restarted at once on the same store, replica id and
ports. The clients behave like OTLP SDK exporters: six raw senders resend every request not
answered 200 (refused or reset by the kill) until it is, over gRPC and HTTP; and one real
OpenTelemetry SDK process exports cumulative metrics over gRPC and batched events over HTTP
with the SDK's own retry and backoff. A request the collector had committed before it died is
a duplicate when it comes again; one it had not is counted on the retry: either way once.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.procs import scrape
from tests.sdk.claude_like import (
    ClaudeCodeProcess,
    Person,
    events_link,
    expected,
    metrics_link,
    split,
    typical_session,
)
from tests.store.workload import (
    Batch,
    Resender,
    ServedCollector,
    Workload,
    exposition_problems,
    merge_expected,
    store_usage,
)

KILLS = 3
SDK_PERSON = Person("crash-sdk", email="sdk@example.com", resource=(("team.id", "sdk-team"),))


class Progress:
    """Acknowledged raw requests so far, and the first error of any client thread."""

    def __init__(self) -> None:
        self.acked = 0
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()

    def ack(self) -> None:
        with self._lock:
            self.acked += 1

    def wait(self, at_least: int, served: ServedCollector) -> None:
        deadline = time.monotonic() + 30  # stops a hang; not a performance check
        while self.acked < at_least and not self.errors:
            if time.monotonic() > deadline:
                pytest.fail(f"clients stalled at {self.acked} requests:\n{served.output()}")
            time.sleep(0.005)
        assert not self.errors, self.errors


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_three_times_while_streaming_loses_and_doubles_nothing(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = (
        {"url": request.getfixturevalue("pg_url")}
        if backend == "postgresql"
        else {"path": str(tmp_path / "collector.db")}
    )
    work = Workload(processes=6, rounds=14, seed=11, tag="crash")
    plan = work.all_batches()
    everything = sum(len(batches) for batches in plan)
    progress = Progress()
    resenders = [Resender(pause=0.02) for _ in plan]
    steps = typical_session(seed=77, calls=8)
    parts = split(steps, 8)

    with ServedCollector(tmp_path, store, replica="crash-1") as served:
        served.start()

        def raw(p: int, batches: list[Batch]) -> None:
            try:
                for j, batch in enumerate(batches):
                    resenders[p].deliver(served, batch, ("grpc", "http")[(p + j) % 2])
                    progress.ack()
            except BaseException as exc:
                progress.errors.append(exc)

        sdk = ClaudeCodeProcess(
            SDK_PERSON,
            metrics=metrics_link(served, "grpc", "cumulative"),
            events=events_link(served, "http"),
            batch_events=True,
        )

        def real_sdk() -> None:
            try:
                for i, part in enumerate(parts):
                    progress.wait(everything * i // len(parts), served)  # spread over the run
                    sdk.run(part)
                    sdk.flush()
                sdk.shutdown()
            except BaseException as exc:
                progress.errors.append(exc)

        threads = [
            threading.Thread(target=raw, args=(p, batches), daemon=True)
            for p, batches in enumerate(plan)
        ]
        threads.append(threading.Thread(target=real_sdk, daemon=True))
        for thread in threads:
            thread.start()
        for kill in range(KILLS):
            progress.wait(everything * (kill + 1) // (KILLS + 1), served)
            served.kill()
            served.start()
        for thread in threads:
            thread.join(60)
        assert not any(t.is_alive() for t in threads), "a client hung"
        assert not progress.errors, progress.errors
        sdk.assert_exports_ok()
        assert progress.acked == everything
        unanswered = sum(r.status is None for s in resenders for _, r in s.replies)
        assert unanswered >= KILLS  # every kill cut the clients off

        samples = scrape(served.metrics_url)
        want = merge_expected(
            work.expected(),
            {
                ("sdk@example.com", "sdk-team"): expected(
                    SDK_PERSON, steps, metrics=steps, events=steps
                )
            },
        )
        problems = exposition_problems(samples, want)
        assert not problems, "\n".join(problems) + "\n" + served.output()
        served.stop()

    raw_actors = {who.email for who in work.who}
    stored = store_usage(store.get("url") or store["path"])
    assert +type(stored)({k: v for k, v in stored.items() if k[0] in raw_actors}) == (
        work.expected_usage()
    )
    assert served.starts == KILLS + 1
