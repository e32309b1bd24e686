"""Bounded label values: the cap that keeps one noisy dimension from exploding a scrape.

A value seen for the first time when the cap is full is replaced by `_other`, and the
replacement is counted (`cc_collector_label_overflow_total{label}`) so operators see it.
"""

from __future__ import annotations

OTHER = "_other"


class LabelLimiter:
    def __init__(self, label: str, cap: int) -> None:
        self.label = label
        self.cap = cap
        self.values: dict[str, int] = {}  # value -> last seen (ns)
        self.overflow = 0

    def admit(self, value: str, now_ns: int) -> str:
        if value in self.values:
            self.values[value] = now_ns
            return value
        if len(self.values) >= self.cap:
            self.overflow += 1
            return OTHER
        self.values[value] = now_ns
        return value

    def idle(self, before_ns: int) -> list[str]:
        """Forget values not seen since `before_ns`; returns them so their series can go too."""
        gone = [v for v, seen in self.values.items() if seen < before_ns]
        for value in gone:
            del self.values[value]
        return gone
