"""A `Plan` as bytes, so plan workers (collector/planning.py) can hand plans to the serving
process cheaply.

pickle copies every `Effect`'s `Metric` and every `Identity` by value and rebuilds dataclasses
through their generic protocol: about 25 µs per record for both sides, as much as planning
itself. Here a plan is flattened to primitives for `marshal` (C, no object protocol): each
distinct identity and effect once per plan in a table, each claim a tuple of indexes, and
metrics by name. Decoding shares the rebuilt `Identity` and `Effect` objects between claims,
exactly as the planner did. `marshal` is only ever read back by the same interpreter that
wrote it (the workers are our own child processes), which is what its format promises.
"""

from __future__ import annotations

import marshal
from dataclasses import fields
from operator import attrgetter
from typing import Any

from collector import contract as c
from collector.accounting.claims import Claim, Effect, Plan
from collector.accounting.highwater import Source
from collector.accounting.records import Observation
from collector.identity import Identity
from collector.model import Refusals

#: every contract metric an effect or observation may name.
METRICS: dict[str, c.Metric] = {m.name: m for m in (*c.COUNTERS, *c.HISTOGRAMS)}
#: Source by value, without the enum's (slow) call lookup.
_SOURCES: dict[int, Source] = {int(s): s for s in Source}
_FORMAT = 1
#: an Identity's fields in order, as a tuple. `dataclasses.astuple` deep-copies every value
#: and cost a tenth of a plan worker's time.
_IDENTITY_ROW = attrgetter(*(f.name for f in fields(Identity)))


def encode(plan: Plan) -> bytes:
    identities: dict[Identity, int] = {}
    effects: dict[tuple[Any, ...], int] = {}
    claims = []
    for claim in plan.claims:
        refs = []
        for e in claim.effects:
            flat = (e.metric.name, e.labels, e.fixed, e.highwater, int(e.source), e.raise_to)
            index = effects.get(flat)
            if index is None:
                index = effects[flat] = len(effects)
            refs.append(index)
        who = identities.get(claim.identity)
        if who is None:
            who = identities[claim.identity] = len(identities)
        observed = ()
        if claim.observations:
            observed = tuple(
                (
                    o.metric.name,
                    identities.setdefault(o.identity, len(identities)),
                    o.labels,
                    o.seconds,
                )
                for o in claim.observations
            )
        claims.append(
            (claim.guard, claim.time_ns, claim.value, who, claim.session, tuple(refs), observed)
        )
    return marshal.dumps(
        (
            _FORMAT,
            plan.ignored,
            plan.rejected.count,
            plan.rejected.reasons,
            tuple(_IDENTITY_ROW(identity) for identity in identities),
            tuple(effects),
            tuple(claims),
        )
    )


def decode(data: bytes) -> Plan:
    version, ignored, refused, reasons, identity_rows, effect_rows, claim_rows = marshal.loads(data)
    if version != _FORMAT:
        raise ValueError(f"plan format {version}, expected {_FORMAT}")
    identities = [Identity(*row) for row in identity_rows]
    effects = [
        Effect(METRICS[name], labels, fixed, highwater, _SOURCES[source], raise_to)
        for name, labels, fixed, highwater, source, raise_to in effect_rows
    ]
    claims = [
        Claim(
            guard,
            time_ns,
            value,
            identities[who],
            session,
            [effects[i] for i in refs],
            [
                Observation(METRICS[name], identities[whom], labels, seconds)
                for name, whom, labels, seconds in observed
            ]
            if observed
            else [],
        )
        for guard, time_ns, value, who, session, refs, observed in claim_rows
    ]
    return Plan(claims, Refusals(refused, dict(reasons)), ignored)
