"""Bounded, expiring state in generations: the cheap way to forget without per-key clocks.

State lives in a few dicts ("generations"). Every `ttl / n` nanoseconds the oldest
generation is dropped and a fresh one started; a key read from an older generation is moved
into the newest, so anything touched within the last `ttl * (n-1) / n` survives. Entries cost
no timestamp each, and expiry is O(1) amortized. When `max_entries` is reached the oldest
generation is dropped early, and every dropped key is counted by reason so the loss is
visible in `cc_collector_state_evictions_total` instead of silent.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class GenerationalMap(Generic[V]):
    def __init__(self, ttl_ns: int, max_entries: int, generations: int = 4) -> None:
        if generations < 2:
            raise ValueError("generations must be >= 2")
        self._step = max(1, ttl_ns // generations)
        self._max = max_entries
        self._gens: deque[dict[Hashable, V]] = deque([{}])
        self._limit = generations
        self._rotated_at: int | None = None
        self._size = 0
        self.evicted: dict[str, int] = {"expired": 0, "capacity": 0}

    def __len__(self) -> int:
        return self._size

    def tick(self, now_ns: int) -> None:
        """Advance time; drops generations older than the TTL."""
        if self._rotated_at is None:
            self._rotated_at = now_ns
            return
        steps = (now_ns - self._rotated_at) // self._step
        if steps <= 0:
            return
        self._rotated_at += steps * self._step
        for _ in range(min(steps, self._limit)):
            self._gens.appendleft({})
            if len(self._gens) > self._limit:
                self._drop_oldest("expired")

    def _drop_oldest(self, reason: str) -> None:
        dropped = self._gens.pop()
        self._size -= len(dropped)
        self.evicted[reason] += len(dropped)
        if not self._gens:
            self._gens.append({})

    def get(self, key: Hashable) -> V | None:
        newest = self._gens[0]
        if key in newest:
            return newest[key]
        for gen in self._gens:
            if gen is not newest and key in gen:
                value = gen.pop(key)
                newest[key] = value
                return value
        return None

    def __contains__(self, key: Hashable) -> bool:
        return self.get(key) is not None

    def set(self, key: Hashable, value: V) -> None:
        # `get` moves a key found in an older generation into the newest one.
        if key not in self._gens[0] and self.get(key) is None:
            if self._size >= self._max:
                self._make_room()
            self._size += 1
        self._gens[0][key] = value

    def _make_room(self) -> None:
        """Drop the oldest generations until one key fits; if all keys are in the newest
        generation (capacity reached within one TTL step), that generation goes as a whole."""
        while self._size >= self._max and len(self._gens) > 1:
            self._drop_oldest("capacity")
        if self._size >= self._max:
            self._gens.appendleft({})
            self._drop_oldest("capacity")

    def add(self, key: Hashable) -> bool:
        """Set-like use: remember `key`; False when it was already there (a duplicate)."""
        if self.get(key) is not None:
            return False
        self.set(key, True)  # type: ignore[arg-type]
        return True
