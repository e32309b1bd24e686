"""The fast `/metrics` renderer against prometheus_client rendering `ContractCollector`.

exporters/exposition_text.py promises the same bytes in both formats; this checks it on a
state filled through the real accounting path (captured-shape requests) plus label values
that need escaping, large and scaled numbers, histograms, and idle-user expiry.
"""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from collector import contract as c
from exporters.exposition_text import ContractRenderer
from exporters.prometheus import ContractCollector, ExpositionState
from tests.builders import SECOND, T0

NOW = T0 + 60 * SECOND
AWKWARD = ["plain", 'quo"te', "back\\slash", "new\nline", "ünïcode", "", "a,b=c}", "sp ace } 1.0"]


def reference(state: ExpositionState, openmetrics: bool, now: int) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ContractCollector(state, clock=lambda: now))
    rendered = (openmetrics_latest if openmetrics else generate_latest)(registry).decode()
    return rendered.removesuffix("# EOF\n")


def filled_state(seed: int, users: int = 40, idle_s: int = 3600) -> ExpositionState:
    rng = random.Random(seed)
    state = ExpositionState(user_idle_ns=idle_s * SECOND)
    deltas: dict[tuple[str, ...], int] = {}
    seen = []
    for u in range(users):
        user = f"dev{u}@example.com" if u % 7 else rng.choice(AWKWARD) + f"{u}"
        team = rng.choice(AWKWARD[:4])
        seen.append((user, team, rng.choice(AWKWARD), T0 + u * SECOND))
        for metric in c.COUNTERS:
            own = tuple(rng.choice(AWKWARD) for _ in metric.own)
            user_part = user if "user" in metric.identity else ""
            team_part = team if "team" in metric.identity else ""
            amount = rng.choice([0, 1, 999_999, 1_000_000, 123_456_789_012, 2**53 + 1])
            deltas[("c", metric.name, user_part, team_part, *own)] = amount
    for metric in c.HISTOGRAMS:
        for label in AWKWARD[:3]:
            counts = sorted(rng.randrange(50) for _ in c.BUCKETS[metric])
            for i, n in enumerate(counts):
                deltas[("h", metric.name, f"b{i}", label)] = n
            deltas[("h", metric.name, "count", label)] = counts[-1] + rng.randrange(3)
            deltas[("h", metric.name, "sum", label)] = rng.randrange(10**12)
    state.add(deltas, seen, T0 + users * SECOND)
    return state


@pytest.mark.parametrize("openmetrics", [False, True])
def test_same_bytes_as_prometheus_client(openmetrics: bool) -> None:
    for seed in range(5):
        state = filled_state(seed)
        renderer = ContractRenderer(state, clock=lambda: NOW)
        want = reference(state, openmetrics, NOW)
        assert want.count("\n") > 500
        assert renderer.render(openmetrics) == want
        # again, from the prefix caches
        assert renderer.render(openmetrics) == want


def test_cached_prefixes_follow_new_and_expired_series() -> None:
    state = filled_state(1)
    now = [NOW]
    renderer = ContractRenderer(state, clock=lambda: now[0])
    assert renderer.render() == reference(state, False, now[0])
    state.add({("c", c.PROMPTS.name, "late@example.com", "t"): 5}, [], now[0])
    assert renderer.render() == reference(state, False, now[0])
    now[0] += 2 * 3600 * SECOND  # every user idle past the timeout: their series leave
    state.add({("c", c.PROMPTS.name, "new@example.com", "t"): 1}, [], now[0])
    rendered = renderer.render()
    assert "dev1@example.com" not in rendered and "new@example.com" in rendered
    assert rendered == reference(state, False, now[0])


def test_changed_values_rerender_from_the_cached_lines() -> None:
    state = filled_state(2)
    renderer = ContractRenderer(state, clock=lambda: NOW)
    renderer.render()
    for metric in c.COUNTERS:
        for key in state.counters[metric]:
            state.counters[metric][key] += 1_000_003
    for key in state.last_seen:
        state.last_seen[key] += SECOND
    for key in list(state.departments)[::2]:
        state.departments[key] = "moved dept"
    for openmetrics in (False, True):
        assert renderer.render(openmetrics) == reference(state, openmetrics, NOW)
