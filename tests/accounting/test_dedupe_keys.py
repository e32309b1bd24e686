"""The form of dedupe keys (claims.dedupe_key, ADR 0008), on every captured Claude Code request.

Stores upgraded from before schema version 4 hold keys in the old form, kind + digest; the
collector finds them through `legacy_dedupe_key`, so that must give exactly the bytes the old
code stored. The old formulas are written out here rather than taken from the product.
"""

from __future__ import annotations

import gzip
import hashlib

from collector.accounting.claims import DEDUPE_KINDS, dedupe_key, legacy_dedupe_key
from collector.accounting.engine import Accountant, event_key
from collector.decoding.logs import decode_logs
from collector.decoding.metrics import decode_metrics
from collector.decoding.wire import Signal, parse_protobuf
from collector.identity import IdentityResolver
from collector.model import Temporality
from tests.replay import captured


def _bodies(signal: str) -> list[bytes]:
    bodies = []
    for item in captured("http-protobuf"):
        if item.signal == signal:
            body = item.body
            bodies.append(gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body)
    assert bodies
    return bodies


def _old_delta_key(stream: object, start_ns: int, time_ns: int) -> bytes:
    """What schema versions 1-3 stored for a delta point."""
    return (
        b"D" + hashlib.blake2b(repr((stream, start_ns, time_ns)).encode(), digest_size=16).digest()
    )


def test_delta_point_keys_start_with_their_second_and_keep_the_old_digest() -> None:
    accountant = Accountant(IdentityResolver())
    checked = 0
    for body in _bodies("metrics"):
        batch = decode_metrics(parse_protobuf(Signal.METRICS, body))
        plan = accountant.plan_metrics(batch, None)
        for point, claim in zip(batch.points, plan.claims, strict=True):
            assert point.temporality == Temporality.DELTA  # the captures are delta
            second = point.time_ns // 10**9
            assert claim.guard[:6] == b"D" + second.to_bytes(5, "big")
            assert legacy_dedupe_key(claim.guard) == _old_delta_key(
                point.stream, point.start_ns, point.time_ns
            )
            checked += 1
    assert checked > 0


def test_event_keys_start_with_their_second_and_keep_the_old_digest() -> None:
    accountant = Accountant(IdentityResolver())
    checked = 0
    for body in _bodies("logs"):
        batch = decode_logs(parse_protobuf(Signal.LOGS, body))
        plan = accountant.plan_logs(batch, None)
        assert plan.rejected.count == 0
        for event, claim in zip(batch.events, plan.claims, strict=True):
            assert claim.guard[:6] == b"E" + (event.time_ns // 10**9).to_bytes(5, "big")
            assert legacy_dedupe_key(claim.guard) == b"E" + event_key(event)
            checked += 1
    assert checked > 0


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
