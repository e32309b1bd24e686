"""The form of dedupe keys (claims.dedupe_key, ADR 0008), on every captured Claude Code request.

Stores upgraded from before schema version 4 hold keys in the old form, kind + digest; the
collector finds them through `legacy_dedupe_key`, so that must give exactly the bytes the old
code stored. The old formulas are written out here rather than taken from the product.
"""

from __future__ import annotations

import gzip
import hashlib
from typing import Any

from collector.accounting.claims import DEDUPE_KINDS, dedupe_key, legacy_dedupe_key
from collector.accounting.engine import Accountant, event_key
from collector.decoding.logs import decode_logs
from collector.decoding.metrics import decode_metrics
from collector.decoding.wire import Signal, parse_protobuf
from collector.identity import IdentityResolver
from collector.model import Temporality
from tests.replay import captured


def _guards(signal: Signal) -> list[tuple[Any, bytes]]:
    """(decoded point or event, its claim's guard) for every captured http-protobuf request
    of `signal`: plans keep the batch's order, one claim per record."""
    accountant = Accountant(IdentityResolver())
    pairs: list[tuple[Any, bytes]] = []
    for item in captured("http-protobuf"):
        if item.signal != signal.value:
            continue
        body = gzip.decompress(item.body) if item.body[:2] == b"\x1f\x8b" else item.body
        message = parse_protobuf(signal, body)
        if signal is Signal.METRICS:
            batch = decode_metrics(message)
            records, plan = batch.points, accountant.plan_metrics(batch, None)
        else:
            events = decode_logs(message)
            records, plan = events.events, accountant.plan_logs(events, None)
        assert plan.rejected.count == 0
        pairs += zip(records, (claim.guard for claim in plan.claims), strict=True)
    assert pairs
    return pairs


def _prefix(kind: bytes, time_ns: int) -> bytes:
    return kind + (time_ns // 10**9).to_bytes(5, "big")


def test_delta_point_keys_start_with_their_second_and_keep_the_old_digest() -> None:
    for point, guard in _guards(Signal.METRICS):
        assert point.temporality == Temporality.DELTA  # the captures are delta
        assert guard[:6] == _prefix(b"D", point.time_ns)
        # what schema versions 1-3 stored for a delta point
        old = hashlib.blake2b(
            repr((point.stream, point.start_ns, point.time_ns)).encode(), digest_size=16
        )
        assert legacy_dedupe_key(guard) == b"D" + old.digest()


def test_event_keys_start_with_their_second_and_keep_the_old_digest() -> None:
    for event, guard in _guards(Signal.LOGS):
        assert guard[:6] == _prefix(b"E", event.time_ns)
        assert legacy_dedupe_key(guard) == b"E" + event_key(event)


def test_keys_sort_by_time_first() -> None:
    """What the prefix is for: a store's B-tree keeps the keys of one second together."""
    digests = [hashlib.blake2b(bytes([i]), digest_size=16).digest() for i in range(50)]
    times = [(7 - i % 7) * 10**9 + i for i in range(50)]
    keys = [dedupe_key(b"E", t, d) for t, d in zip(times, digests, strict=True)]
    assert [k[1:6] for k in sorted(keys)] == sorted(k[1:6] for k in keys)
    assert [int.from_bytes(k[1:6], "big") for k in sorted(keys)] == sorted(
        t // 10**9 for t in times
    )
    assert all(k[0] in DEDUPE_KINDS for k in keys)


def test_times_outside_the_prefix_are_clamped() -> None:
    digest = bytes(16)
    # every uint64 time fits (year 2554); 5 bytes go to year 36812
    assert dedupe_key(b"D", 2**64 - 1, digest)[1:6] == (18446744073).to_bytes(5, "big")
    assert dedupe_key(b"D", -5, digest)[1:6] == bytes(5)
    assert dedupe_key(b"D", 2**40 * 10**9, digest)[1:6] == b"\xff" * 5
    assert legacy_dedupe_key(dedupe_key(b"D", 2**40 * 10**9, digest)) == b"D" + digest
