"""Phase two of accounting: resolve a `Plan` against state rows, purely.

The caller fetches the rows of `plan.keys()` (from memory, or locked inside a store
transaction), calls `resolve`, and writes back the rows it returns as changed. Claims are
resolved in order and see each other's changes, so a retry inside one batch is a duplicate
too.
"""

from __future__ import annotations

from collector.accounting.claims import CUMULATIVE_KIND, Plan
from collector.accounting.highwater import highwater_step
from collector.accounting.records import Accounted, Increment
from collector.accounting.streams import Outcome, Row, cumulative_step

#: The row stored for a seen delta point or event: only its presence matters.
SEEN: Row = (1, 0)


def resolve(plan: Plan, rows: dict[bytes, Row | None]) -> tuple[Accounted, dict[bytes, Row]]:
    out = Accounted(ignored=plan.ignored, rejected=plan.rejected)
    changed: dict[bytes, Row] = {}
    append = out.increments.append
    seen = out.seen
    last_identity = None
    for claim in plan.claims:
        row = rows.get(claim.guard)
        if claim.guard[0] == CUMULATIVE_KIND:
            amount, outcome, new = cumulative_step(row, claim.time_ns, claim.value)
        elif row is None:
            amount, outcome, new = claim.value, Outcome.COUNTED, SEEN
        else:
            amount, outcome, new = 0, Outcome.DUPLICATE, None
        if new is not None:
            rows[claim.guard] = changed[claim.guard] = new
        if outcome is Outcome.DUPLICATE:
            out.duplicate += 1
            continue
        if outcome is Outcome.STALE:
            out.stale += 1
            continue
        out.accepted += 1
        identity = claim.identity
        if identity is not last_identity:  # claims of one resource share it: hash it once
            seen.add(identity)
            last_identity = identity
        if claim.observations:
            out.observations.extend(claim.observations)
        for effect in claim.effects:
            n = amount if effect.fixed is None else effect.fixed
            if not n:
                continue
            if effect.highwater is not None:
                key = effect.highwater
                n, rows[key] = highwater_step(rows.get(key), effect.source, n, effect.raise_to)
                changed[key] = rows[key]  # type: ignore[assignment]
                if not n:
                    continue
            append(
                Increment(effect.metric, identity, effect.labels, n, claim.session, claim.time_ns)
            )
    return out, changed
