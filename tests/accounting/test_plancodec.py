"""A plan read back from its bytes (accounting/plancodec.py) equals the plan the planner made.

Plan workers hand every plan to the serving process this way, so any field the codec dropped
or changed would change what is counted. Checked on every captured Claude Code request (all
event kinds and metrics of 2.1.330, with histogram observations and high-water effects), on
plans with refusals, ignored items, cumulative streams and token identities, and through
`resolve`: the same increments come out of the original and of the copy.
"""

from __future__ import annotations

import gzip
import marshal

import pytest

from collector.accounting import plancodec
from collector.accounting.claims import Plan
from collector.accounting.engine import Accountant
from collector.accounting.resolve import resolve
from collector.decoding.wire import Signal
from collector.directory import Directory, DirectoryEntry
from collector.identity import IdentityResolver, TokenIdentity
from collector.planning import plan_body
from tests.builders import (
    CUMULATIVE,
    T0,
    claude_metric,
    gauge_metric,
    metrics_request,
    point,
    sum_metric,
)
from tests.replay import CASES, captured

DIRECTORY = Directory(
    {"dev@example.com": DirectoryEntry(team="payments", department="engineering")}
)


def _accountant() -> Accountant:
    return Accountant(IdentityResolver(DIRECTORY))


def _round_trip(plan: Plan) -> Plan:
    copy = plancodec.decode(plancodec.encode(plan))
    assert copy == plan
    return copy


def _captured_plans() -> list[Plan]:
    accountant = _accountant()
    plans = []
    for case in CASES:
        for item in captured(case):
            if item.signal == "traces":
                continue
            body = gzip.decompress(item.body) if item.body[:2] == b"\x1f\x8b" else item.body
            planned = plan_body(
                accountant, Signal(item.signal), body, item.transport == "http-json", None
            )
            assert isinstance(planned, Plan)
            plans.append(planned)
    return plans


def test_every_captured_request_round_trips() -> None:
    plans = _captured_plans()
    claims = [claim for plan in plans for claim in plan.claims]
    # The captures exercise what the codec must carry, or this test proves little.
    assert claims
    assert any(claim.observations for claim in claims)
    assert any(effect.highwater for claim in claims for effect in claim.effects)
    assert any(effect.fixed is not None for claim in claims for effect in claim.effects)
    for plan in plans:
        _round_trip(plan)


def test_refusals_ignored_cumulative_and_token_identity_round_trip() -> None:
    request = metrics_request(
        claude_metric("cost.usage", 0.25, time_ns=T0 + 10, extra={"model": "claude-opus-4-5"}),
        claude_metric("token.usage", 7, time_ns=T0 + 10, temporality=CUMULATIVE),
        claude_metric("commit.count", -1.0, time_ns=T0 + 10),  # refused: negative
        gauge_metric("claude_code.session.count", point(1, time_ns=T0 + 10)),  # refused: no Sum
        sum_metric("some.other.metric", point(3, time_ns=T0 + 10)),  # ignored
        resource={"service.name": "claude-code"},
    )
    token = TokenIdentity("ci-runner", user=None, team="platform")
    plan = plan_body(_accountant(), Signal.METRICS, request.SerializeToString(), False, token)
    assert isinstance(plan, Plan)
    assert plan.rejected.count == 2 and plan.ignored == 1
    assert any(claim.guard[:1] == b"C" for claim in plan.claims)
    copy = _round_trip(plan)
    assert copy.rejected.message() == plan.rejected.message()


@pytest.mark.parametrize("seen_before", [False, True])
def test_resolving_the_copy_gives_the_same_increments(seen_before: bool) -> None:
    for plan in _captured_plans():
        copy = plancodec.decode(plancodec.encode(plan))
        rows: dict = {}
        if seen_before:
            rows = dict.fromkeys(plan.keys(), (1, 0))
        original, changed = resolve(plan, dict(rows))
        again, changed_again = resolve(copy, dict(rows))
        assert again.increments == original.increments
        assert again.observations == original.observations
        assert changed_again == changed
        assert (again.accepted, again.duplicate) == (original.accepted, original.duplicate)


def test_a_plan_of_another_format_is_refused() -> None:
    fields = list(marshal.loads(plancodec.encode(Plan())))
    fields[0] = 999
    with pytest.raises(ValueError, match="plan format 999"):
        plancodec.decode(marshal.dumps(tuple(fields)))
