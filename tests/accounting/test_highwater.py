"""HighWater: spend reported by both metrics and events is counted once."""

from __future__ import annotations

from collector.accounting.highwater import HighWater, Source

M, E = Source.METRICS, Source.EVENTS
KEY = ("dev@example.com", "session-1", "claude_code_tokens_total", ("claude-opus-5-5", "input"))


def _hw() -> HighWater:
    return HighWater(ttl_ns=48 * 3600 * 10**9, max_keys=1000)


def _run(steps: list[tuple[Source, int]], key: object = KEY, hw: HighWater | None = None) -> int:
    hw = hw or _hw()
    return sum(hw.add(key, source, amount) for source, amount in steps)


def test_worked_example_of_the_module_docstring() -> None:
    hw = _hw()
    rows = [
        # arrives, metrics total, events total, increment
        (E, 100, 0, 100, 100),  # api_request 100
        (M, 100, 100, 100, 0),  # token.usage 100: same spend, seen again
        (M, 50, 150, 100, 50),  # token.usage 50: the event for it was lost
        (E, 50, 150, 150, 0),  # api_request 50
    ]
    for source, amount, metrics_total, events_total, increment in rows:
        assert hw.add(KEY, source, amount) == increment
        assert hw.state.get(KEY) == (metrics_total, events_total)


def test_metrics_only() -> None:
    assert _run([(M, 100), (M, 50), (M, 7)]) == 157


def test_events_only() -> None:
    assert _run([(E, 100), (E, 50), (E, 7)]) == 157


def test_both_complete_in_any_order_count_once() -> None:
    amounts = [120, 30, 4, 1000]
    interleaved = [step for a in amounts for step in ((M, a), (E, a))]
    events_first = [(E, a) for a in amounts] + [(M, a) for a in amounts]
    metrics_first = [(M, a) for a in amounts] + [(E, a) for a in amounts]
    for steps in (interleaved, events_first, metrics_first):
        assert _run(steps) == sum(amounts)


def test_both_with_events_lossy_counts_the_complete_metrics() -> None:
    amounts = [120, 30, 4, 1000]
    steps = [(M, a) for a in amounts] + [(E, a) for a in amounts if a != 30]
    assert _run(steps) == sum(amounts)


def test_both_with_metrics_lossy_counts_the_complete_events() -> None:
    amounts = [120, 30, 4, 1000]
    steps = []
    for a in amounts:
        if a != 1000:
            steps.append((M, a))
        steps.append((E, a))
    assert _run(steps) == sum(amounts)


def test_both_lossy_on_different_requests_undercounts_never_doubles() -> None:
    amounts = [120, 30, 4, 1000]
    steps = [(M, a) for a in amounts if a != 30] + [(E, a) for a in amounts if a != 1000]
    counted = _run(steps)
    assert counted == max(sum(amounts) - 30, sum(amounts) - 1000)
    assert counted < sum(amounts)


def test_keys_are_independent() -> None:
    hw = _hw()
    assert hw.add(("a",), M, 10) == 10
    assert hw.add(("b",), E, 10) == 10
    assert hw.add(("a",), E, 10) == 0
    assert hw.add(("b",), M, 15) == 5


def test_raise_to_asserts_a_floor_without_adding() -> None:
    hw = _hw()
    assert hw.raise_to("session", E, 1) == 1
    assert hw.raise_to("session", E, 1) == 0  # every event of the session says "exists"
    assert hw.add("session", M, 1) == 0  # session.count for the same session
    assert hw.add("session", M, 1) == 1  # counted twice by metrics: a second start
    assert hw.raise_to("session", E, 1) == 0
