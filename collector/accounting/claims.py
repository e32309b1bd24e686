"""Phase one of accounting: what each decoded item *would* count, before any state is read.

A `Claim` is one metric point or event: a `guard` key deciding whether (and how much of) it is
new, and the `Effect`s its counted amount has on contract series, some of them through a
high-water key shared by metrics and events. Claims hold no state, so the same plan can be
resolved against in-memory maps or inside a store transaction (`resolve.py`), and both give
the same increments.

State keys are bytes whose first byte names their kind; each kind has its own retention.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from collector.accounting.highwater import Source
from collector.accounting.records import Observation
from collector.contract import Metric
from collector.identity import Identity
from collector.model import Refusals

DELTA = b"D"  # a delta point already counted: (stream, start, end)
EVENT = b"E"  # an event already counted: its dedupe key
CUMULATIVE = b"C"  # last (time, value) of a cumulative stream: (stream, start)
SPEND = b"S"  # (metrics total, events total) of one session's cost or tokens
SESSION = b"N"  # (metrics total, events total) of one session's existence
#: a key's first byte, as `key[0]` gives it: comparing ints allocates nothing on the hot path.
CUMULATIVE_KIND = CUMULATIVE[0]

#: the kinds whose keys are `dedupe_key`s, as `key[0]` gives them.
DEDUPE_KINDS = frozenset({DELTA[0], EVENT[0]})
#: bytes of the time prefix of a `dedupe_key`: whole seconds, big-endian (2^40 s is year 36812).
TIME_BYTES = 5
_MAX_SECOND = 2 ** (8 * TIME_BYTES) - 1


def dedupe_key(kind: bytes, time_ns: int, digest: bytes) -> bytes:
    """The key of a delta point or event: kind, the record's own second, then its digest.

    Why the time prefix: a store keeps these keys in a B-tree, and digests alone land on a
    random page each, so every new record dirtied a page of its own (written to the WAL and
    checkpointed). Live traffic's timestamps trail the clock by seconds, so with the prefix
    the keys of one transaction land on a few adjacent pages (docs/performance.md,
    "Time-ordered dedupe keys"). A retried or re-sent record carries the same timestamp, so it
    still meets its key; what changes is that one `request_id` (or `tool_use_id`) arriving
    with two different timestamps is two events (docs/accounting.md, "Deduplication").
    """
    second = min(max(time_ns // 1_000_000_000, 0), _MAX_SECOND)
    return kind + second.to_bytes(TIME_BYTES, "big") + digest


def legacy_dedupe_key(key: bytes) -> bytes:
    """The same key as schema versions before 4 stored it (kind + digest, no time)."""
    return key[:1] + key[1 + TIME_BYTES :]


#: kind -> the name used in self metrics (`cc_collector_tracked_state{kind}`).
KIND_NAMES: dict[bytes, str] = {
    CUMULATIVE: "cumulative_streams",
    DELTA: "delta_dedupe",
    EVENT: "event_dedupe",
    SPEND: "spend_keys",
    SESSION: "session_keys",
}


class Effect(NamedTuple):
    """Add to one series of `metric`: `fixed`, or the claim's resolved amount when None.

    With `highwater` set, the amount is first added on `source`'s side of that key (or, with
    `raise_to`, that side is raised to it), and only what the counted maximum grew by is added.
    A NamedTuple, like Increment: immutable and cheap to build, several per item.
    """

    metric: Metric
    labels: tuple[str, ...]
    fixed: int | None = None
    highwater: bytes | None = None
    source: Source = Source.METRICS
    raise_to: bool = False


@dataclass(slots=True)
class Claim:
    guard: bytes
    time_ns: int
    value: int
    identity: Identity
    session: str | None
    effects: list[Effect]
    observations: list[Observation] = field(default_factory=list)


@dataclass(slots=True)
class Plan:
    claims: list[Claim] = field(default_factory=list)
    rejected: Refusals = field(default_factory=Refusals)
    ignored: int = 0

    def keys(self) -> set[bytes]:
        """Every state key the plan reads or writes."""
        keys = {claim.guard for claim in self.claims}
        keys.update(e.highwater for c in self.claims for e in c.effects if e.highwater)
        return keys
