"""The collector's own health numbers, kept as plain counters (rendered by exporters/).

Every refusal, duplicate and drop increments one of these instead of logging per item, so
an operator can alert on them (`cc_collector_*` in docs/metrics.md).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

#: request duration buckets in seconds (an ack includes decoding and accounting).
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(slots=True)
class SelfStats:
    requests: defaultdict[tuple[str, str, str], int] = field(
        default_factory=lambda: defaultdict(int)
    )
    items: defaultdict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    decode_errors: defaultdict[tuple[str, str], int] = field(
        default_factory=lambda: defaultdict(int)
    )
    duration_buckets: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    duration_sum: defaultdict[tuple[str, str], float] = field(
        default_factory=lambda: defaultdict(float)
    )
    inflight: int = 0
    store_buckets: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    store_seconds: float = 0.0
    store_outcomes: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    store_requests: int = 0
    #: plan worker processes configured (collector/planning.py), and pools replaced because
    #: a worker died.
    plan_workers: int = 0
    plan_worker_restarts: int = 0

    def request(self, protocol: str, signal: str, outcome: str, seconds: float) -> None:
        self.requests[(protocol, signal, outcome)] += 1
        key = (protocol, signal)
        buckets = self.duration_buckets.get(key)
        if buckets is None:
            buckets = self.duration_buckets[key] = [0] * (len(DURATION_BUCKETS) + 1)
        for i, bound in enumerate(DURATION_BUCKETS):
            if seconds <= bound:
                buckets[i] += 1
        buckets[-1] += 1
        self.duration_sum[key] += seconds

    def store_commit(self, requests: int, seconds: float, ok: bool) -> None:
        """One group-commit transaction of `requests` requests."""
        self.store_outcomes["committed" if ok else "failed"] += 1
        if ok:
            self.store_requests += requests
        for i, bound in enumerate(DURATION_BUCKETS):
            if seconds <= bound:
                self.store_buckets[i] += 1
        self.store_buckets[-1] += 1
        self.store_seconds += seconds

    def count_items(self, signal: str, **outcomes: int) -> None:
        for outcome, n in outcomes.items():
            if n:
                self.items[(signal, outcome)] += n
