"""The internal records every transport decodes into, and accounting consumes.

Decoding owns a batch until it hands it to `Accountant`; nothing downstream mutates it.
Attributes are the resource's merged with the point's or record's own (the record wins),
because Claude Code copies `OTEL_RESOURCE_ATTRIBUTES` onto both and either may be missing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from collector.decoding.attributes import AttrValue


class Temporality(enum.IntEnum):
    """OTLP AggregationTemporality numbers."""

    UNSPECIFIED = 0
    DELTA = 1
    CUMULATIVE = 2


@dataclass(slots=True)
class MetricPoint:
    """One Sum data point of a Claude Code metric.

    `stream` identifies the series (resource, scope, metric name, point attributes) but not
    its start time: accounting adds `start_ns` itself, so parallel processes with identical
    attributes stay apart (see docs/accounting.md).
    """

    name: str
    temporality: Temporality
    start_ns: int
    time_ns: int
    value: float
    attributes: dict[str, AttrValue]
    stream: bytes


@dataclass(slots=True)
class Event:
    """One Claude Code event (an OTLP log record), its name without the `claude_code.` prefix."""

    name: str
    time_ns: int
    attributes: dict[str, AttrValue]


@dataclass(slots=True)
class Refusals:
    """Items a decoder or accountant refused, with one readable reason per kind of refusal."""

    count: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def add(self, reason: str, count: int = 1) -> None:
        self.count += count
        self.reasons[reason] = self.reasons.get(reason, 0) + count

    def message(self) -> str:
        """E.g. `2 rejected: claude_code.cost.usage: negative delta (2)`."""
        if not self.count:
            return ""
        parts = "; ".join(f"{reason} ({n})" for reason, n in sorted(self.reasons.items()))
        return f"{self.count} rejected: {parts}"


@dataclass(slots=True)
class MetricsBatch:
    """What a metrics request decoded to: points to account, plus what was refused or ignored."""

    points: list[MetricPoint] = field(default_factory=list)
    rejected: Refusals = field(default_factory=Refusals)
    ignored: int = 0


@dataclass(slots=True)
class EventsBatch:
    """What a logs request decoded to."""

    events: list[Event] = field(default_factory=list)
    rejected: Refusals = field(default_factory=Refusals)
