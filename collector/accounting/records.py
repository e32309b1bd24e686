"""What accounting hands downstream: increments, observations and the tally of a batch.

Downstream (exporters, the store) owns an `Accounted` once it receives it and must treat it
as read-only; the same object is given to every sink.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from collector.contract import Metric
from collector.identity import Identity
from collector.model import Refusals


class Increment(NamedTuple):
    """`amount` (in `metric.scale` units) to add to one series of `metric`.

    Immutable records made several times per accounted item: a NamedTuple is built about
    three times faster than a frozen dataclass (docs/performance.md)."""

    metric: Metric
    identity: Identity
    labels: tuple[str, ...]
    amount: int
    session: str | None
    time_ns: int


class Observation(NamedTuple):
    """One histogram sample, in seconds."""

    metric: Metric
    identity: Identity
    labels: tuple[str, ...]
    seconds: float


@dataclass(slots=True)
class Accounted:
    increments: list[Increment] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    #: identities that sent anything accepted in this batch (for last-seen), even with no
    #: increment: a cumulative re-send with nothing new still proves the exporter is alive.
    seen: set[Identity] = field(default_factory=set)
    accepted: int = 0
    duplicate: int = 0
    stale: int = 0
    ignored: int = 0
    rejected: Refusals = field(default_factory=Refusals)
    #: the exposition series deltas of this batch (exporters.prometheus.series_deltas),
    #: computed once by the first consumer (the store's transaction) and reused by the others.
    series: dict[tuple[str, ...], int] | None = None
