"""Count spend once when metrics and events both report it: the high-water mark.

`token.usage`/`cost.usage` (metrics) and `api_request` (events) carry the same per-request
numbers. Per (actor, session, model, kind) we keep the running total each signal has shown
and count `max(metrics_total, events_total)`. Worked example (tokens, one session):

    arrives                 metrics  events  counted  increment
    api_request 100            0      100      100      100
    token.usage 100          100      100      100        0   (same spend, seen again)
    token.usage 50           150      100      150       50   (the event for it was lost)
    api_request 50           150      150      150        0

With one signal off, the other alone is counted; with both on and one lossy, the total is
exact as long as one of the two is complete for that session. If both lose different
requests of one session, the count is the larger partial total: an undercount, never a
double count (docs/accounting.md).
"""

from __future__ import annotations

import enum
from collections.abc import Hashable

from collector.accounting.generations import GenerationalMap


class Source(enum.IntEnum):
    METRICS = 0
    EVENTS = 1


class HighWater:
    def __init__(self, ttl_ns: int, max_keys: int) -> None:
        # value: [metrics_total, events_total]
        self.state: GenerationalMap[list[int]] = GenerationalMap(ttl_ns, max_keys)

    def _totals(self, key: Hashable) -> list[int]:
        totals = self.state.get(key)
        if totals is None:
            totals = [0, 0]
            self.state.set(key, totals)
        return totals

    def add(self, key: Hashable, source: Source, amount: int) -> int:
        """Add `amount` seen on `source`; returns how much the counted total grew."""
        totals = self._totals(key)
        before = max(totals)
        totals[source] += amount
        return max(totals) - before

    def raise_to(self, key: Hashable, source: Source, total: int) -> int:
        """Assert `source` has seen at least `total` (used for 'this session exists')."""
        totals = self._totals(key)
        before = max(totals)
        totals[source] = max(totals[source], total)
        return max(totals) - before
