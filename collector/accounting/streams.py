"""Turn a data point into an increment, per temporality. The arithmetic of exactness.

Worked example, one cumulative stream (same attributes, start S):

    time  value  -> increment  why
    t1    10        10         first point of a new stream: all of it is new
    t2    25        15         25 - 10
    t2    25         0         same time again: a retry, a duplicate
    t1    10         0         older than what we have: out of order, stale
    t3    25         0         a re-send with nothing new
    t4     4         4         lower with the same start: the process reset its counter

A second process with the same attributes but start S' is a *different* stream, so the two
never look like resets of each other (the 100x inflation of peer stacks, traps.md #2).

Delta points are increments already; a point repeated by a retry has the same stream, start
and end time and is counted once.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable

from collector.accounting.generations import GenerationalMap


class Outcome(enum.Enum):
    COUNTED = "accepted"
    DUPLICATE = "duplicate"
    STALE = "stale"


Row = tuple[int, int]


def cumulative_step(row: Row | None, time_ns: int, value: int) -> tuple[int, Outcome, Row | None]:
    """One cumulative point against its stream's last (time, value): (increment, outcome,
    the new row or None when unchanged). Pure, so memory and store state share it."""
    if row is None:
        return value, Outcome.COUNTED, (time_ns, value)
    last_time, last_value = row
    if time_ns == last_time:
        return 0, Outcome.DUPLICATE, None
    if time_ns < last_time:
        return 0, Outcome.STALE, None
    if value >= last_value:
        return value - last_value, Outcome.COUNTED, (time_ns, value)
    return value, Outcome.COUNTED, (time_ns, value)  # reset under the same start time


class CumulativeStreams:
    """Last (time, value) per (stream, start time), in memory."""

    def __init__(self, ttl_ns: int, max_streams: int) -> None:
        self.state: GenerationalMap[Row] = GenerationalMap(ttl_ns, max_streams)

    def increment(
        self, stream: Hashable, start_ns: int, time_ns: int, value: int
    ) -> tuple[int, Outcome]:
        key = (stream, start_ns)
        amount, outcome, row = cumulative_step(self.state.get(key), time_ns, value)
        if row is not None:
            self.state.set(key, row)
        return amount, outcome


class DeltaDedupe:
    """Delta points already counted, by (stream, start, end), in memory."""

    def __init__(self, ttl_ns: int, max_points: int) -> None:
        self.seen: GenerationalMap[bool] = GenerationalMap(ttl_ns, max_points)

    def increment(
        self, stream: Hashable, start_ns: int, time_ns: int, value: int
    ) -> tuple[int, Outcome]:
        if not self.seen.add((stream, start_ns, time_ns)):
            return 0, Outcome.DUPLICATE
        return value, Outcome.COUNTED
