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


Row = tuple[int, int]  # (metrics_total, events_total)


def highwater_step(row: Row | None, source: Source, amount: int, raise_to: bool) -> tuple[int, Row]:
    """Add `amount` seen on `source` (or, with `raise_to`, assert that source has seen at
    least `amount`); returns how much the counted total grew, and the new row. Pure."""
    metrics, events = row if row is not None else (0, 0)
    before = metrics if metrics >= events else events
    if source is Source.METRICS:
        metrics = (amount if amount > metrics else metrics) if raise_to else metrics + amount
    else:
        events = (amount if amount > events else events) if raise_to else events + amount
    after = metrics if metrics >= events else events
    return after - before, (metrics, events)


class HighWater:
    """Per-key totals of both signals, in memory."""

    def __init__(self, ttl_ns: int, max_keys: int) -> None:
        self.state: GenerationalMap[Row] = GenerationalMap(ttl_ns, max_keys)

    def _step(self, key: Hashable, source: Source, amount: int, raise_to: bool) -> int:
        grown, row = highwater_step(self.state.get(key), source, amount, raise_to)
        self.state.set(key, row)
        return grown

    def add(self, key: Hashable, source: Source, amount: int) -> int:
        """Add `amount` seen on `source`; returns how much the counted total grew."""
        return self._step(key, source, amount, raise_to=False)

    def raise_to(self, key: Hashable, source: Source, total: int) -> int:
        """Assert `source` has seen at least `total` (used for 'this session exists')."""
        return self._step(key, source, total, raise_to=True)
