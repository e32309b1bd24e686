"""Data points to increments: delta dedupe and cumulative stream arithmetic."""

from __future__ import annotations

import pytest

from collector.accounting.engine import Accountant
from collector.accounting.streams import CumulativeStreams, DeltaDedupe, Outcome
from collector.contract import TOKENS
from collector.identity import IdentityResolver
from tests.builders import (
    CUMULATIVE,
    SECOND,
    T0,
    attrs,
    decoded_metrics,
    metrics_request,
    point,
    sum_metric,
)

HOUR = 3600 * SECOND
S = 1_000  # start time of the stream in the worked example
t1, t2, t3, t4 = 10_000, 20_000, 30_000, 40_000


def _cumulative() -> CumulativeStreams:
    return CumulativeStreams(ttl_ns=24 * HOUR, max_streams=1000)


def test_worked_example_of_the_module_docstring() -> None:
    streams = _cumulative()
    rows = [
        # time, value, increment, outcome
        (t1, 10, 10, Outcome.COUNTED),  # first point of a new stream: all of it is new
        (t2, 25, 15, Outcome.COUNTED),  # 25 - 10
        (t2, 25, 0, Outcome.DUPLICATE),  # same time again: a retry
        (t1, 10, 0, Outcome.STALE),  # older than what we have
        (t3, 25, 0, Outcome.COUNTED),  # a re-send with nothing new
        (t4, 4, 4, Outcome.COUNTED),  # lower with the same start: a reset
    ]
    total = 0
    for time_ns, value, increment, outcome in rows:
        got = streams.increment("stream", S, time_ns, value)
        assert got == (increment, outcome), (time_ns, value)
        total += got[0]
    assert total == 10 + 15 + 4


def test_a_different_value_at_the_same_timestamp_is_also_a_duplicate() -> None:
    streams = _cumulative()
    streams.increment("s", S, t1, 10)
    assert streams.increment("s", S, t1, 99) == (0, Outcome.DUPLICATE)
    assert streams.increment("s", S, t2, 12) == (2, Outcome.COUNTED)


def test_two_processes_example_of_accounting_md() -> None:
    """A: 10, B: 3, A: 20, B: 5 -> 10 + 3 + 10 + 2 = 25 (a label-keyed store reads 35)."""
    streams = _cumulative()
    s_a, s_b = 1_000, 1_500
    rows = [(s_a, 10_000, 10, 10), (s_b, 11_000, 3, 3), (s_a, 20_000, 20, 10), (s_b, 21_000, 5, 2)]
    for start, time_ns, value, increment in rows:
        assert streams.increment("same", start, time_ns, value) == (increment, Outcome.COUNTED)


def test_after_a_reset_the_stream_continues_from_the_new_value() -> None:
    streams = _cumulative()
    streams.increment("s", S, t1, 100)
    assert streams.increment("s", S, t2, 7) == (7, Outcome.COUNTED)  # reset
    assert streams.increment("s", S, t3, 12) == (5, Outcome.COUNTED)


def test_stale_point_does_not_move_the_stream_back() -> None:
    streams = _cumulative()
    streams.increment("s", S, t2, 25)
    assert streams.increment("s", S, t1, 10) == (0, Outcome.STALE)
    # had the stale point been stored, 30 would look like +20
    assert streams.increment("s", S, t3, 30) == (5, Outcome.COUNTED)


def test_two_streams_same_attributes_different_starts_interleaved_sum_without_inflation() -> None:
    """Two processes, identical attributes, different start times, exports interleaved.

    Treating each as a reset of the other (the classic bug) would count 10+5+30+15+50+20."""
    streams = _cumulative()
    a, b = 1_000, 2_000
    sequence = [
        (a, 10_000, 10),
        (b, 11_000, 5),
        (a, 20_000, 30),
        (b, 21_000, 15),
        (a, 30_000, 50),
        (b, 31_000, 20),
    ]
    total = sum(streams.increment("same", start, t, v)[0] for start, t, v in sequence)
    assert total == 50 + 20


def test_distinct_streams_with_the_same_start_are_independent() -> None:
    streams = _cumulative()
    assert streams.increment("x", S, t1, 10)[0] == 10
    assert streams.increment("y", S, t1, 3)[0] == 3
    assert streams.increment("x", S, t2, 12)[0] == 2
    assert streams.increment("y", S, t2, 4)[0] == 1


def test_delta_point_repeated_by_a_retry_is_counted_once() -> None:
    delta = DeltaDedupe(ttl_ns=48 * HOUR, max_points=1000)
    assert delta.increment("s", S, t1, 7) == (7, Outcome.COUNTED)
    assert delta.increment("s", S, t1, 7) == (0, Outcome.DUPLICATE)
    # the next export of the same stream (new window) is new
    assert delta.increment("s", t1, t2, 3) == (3, Outcome.COUNTED)
    # same window, other stream: new
    assert delta.increment("other", S, t1, 7) == (7, Outcome.COUNTED)
    # equal value, equal end, other start: a different window, new
    assert delta.increment("s", S + 1, t1, 7) == (7, Outcome.COUNTED)


def test_delta_dedupe_forgets_after_its_ttl() -> None:
    delta = DeltaDedupe(ttl_ns=400, max_points=1000)
    delta.seen.tick(0)
    assert delta.increment("s", S, t1, 7)[1] is Outcome.COUNTED
    delta.seen.tick(400)
    assert delta.increment("s", S, t1, 7)[1] is Outcome.COUNTED


# -- the same rules end to end: proto request -> decoder -> Accountant ----------------------


def _tokens(values: list[tuple[int, int, int]]) -> int:
    """Cumulative token.usage points (start, time, value) with identical attributes, one per
    request, through the real decoder and accountant; the tokens counted in total."""
    accountant = Accountant(IdentityResolver())
    extra = {"model": "claude-opus-5-5", "type": "input", "session.id": None}
    total = 0
    for start, time_ns, value in values:
        p = point(value, start_ns=start, time_ns=time_ns, attributes=attrs(extra))
        request = metrics_request(sum_metric("claude_code.token.usage", p, temporality=CUMULATIVE))
        out = accountant.account_metrics(decoded_metrics(request), None, time_ns)
        total += sum(i.amount for i in out.increments if i.metric is TOKENS)
    return total


def test_end_to_end_interleaved_cumulative_processes() -> None:
    a, b = T0, T0 + 500_000_000
    sequence = [
        (a, T0 + 1 * SECOND, 1000),
        (b, T0 + 2 * SECOND, 400),
        (a, T0 + 3 * SECOND, 1500),
        (b, T0 + 4 * SECOND, 900),
        (a, T0 + 5 * SECOND, 1500),  # nothing new from a
        (b, T0 + 6 * SECOND, 1000),
    ]
    assert _tokens(sequence) == 1500 + 1000


@pytest.mark.parametrize(
    ("sequence", "expected"),
    [
        pytest.param([(T0, T0 + SECOND, 10), (T0, T0 + SECOND, 10)], 10, id="retry"),
        pytest.param([(T0, T0 + 2 * SECOND, 20), (T0, T0 + SECOND, 10)], 20, id="stale"),
        pytest.param([(T0, T0 + SECOND, 10), (T0, T0 + 2 * SECOND, 10)], 10, id="resend"),
        pytest.param([(T0, T0 + SECOND, 10), (T0, T0 + 2 * SECOND, 4)], 14, id="reset"),
    ],
)
def test_end_to_end_cumulative_rules(sequence: list[tuple[int, int, int]], expected: int) -> None:
    assert _tokens(sequence) == expected
