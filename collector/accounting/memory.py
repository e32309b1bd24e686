"""Accounting state in process memory: one bounded generational map per key kind.

Used by the pure unit tests and as the state of a collector without a store.
"""

from __future__ import annotations

from collections.abc import Iterable

from collector.accounting.claims import CUMULATIVE, DEDUPE_KINDS, KIND_NAMES
from collector.accounting.generations import GenerationalMap
from collector.accounting.streams import Row


class MemoryState:
    def __init__(
        self, stream_ttl_ns: int, dedupe_ttl_ns: int, max_streams: int, max_dedupe_keys: int
    ) -> None:
        self.maps: dict[bytes, GenerationalMap[Row]] = {}
        for kind in KIND_NAMES:
            if kind == CUMULATIVE:
                self.maps[kind] = GenerationalMap(stream_ttl_ns, max_streams)
            elif kind[0] in DEDUPE_KINDS:
                self.maps[kind] = GenerationalMap(dedupe_ttl_ns, max_dedupe_keys)
            else:
                self.maps[kind] = GenerationalMap(dedupe_ttl_ns, max_streams)

    def tick(self, now_ns: int) -> None:
        for m in self.maps.values():
            m.tick(now_ns)

    def fetch(self, keys: Iterable[bytes]) -> dict[bytes, Row | None]:
        return {key: self.maps[key[:1]].get(key) for key in keys}

    def store(self, changed: dict[bytes, Row]) -> None:
        for key, row in changed.items():
            self.maps[key[:1]].set(key, row)

    def sizes(self) -> dict[str, int]:
        return {KIND_NAMES[kind]: len(m) for kind, m in self.maps.items()}

    def evictions(self) -> dict[tuple[str, str], int]:
        return {
            (KIND_NAMES[kind], reason): n
            for kind, m in self.maps.items()
            for reason, n in m.evicted.items()
        }
