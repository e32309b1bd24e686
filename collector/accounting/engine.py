"""The accountant: decoded batches in, exact increments out (see docs/accounting.md).

Two phases. `plan_metrics`/`plan_logs` turn a batch into claims (pure: no state, no clock);
`resolve` (resolve.py) decides against state rows what is new and by how much. `apply` runs
both against in-memory state; the store runs the second phase inside its transaction so
several replicas share one truth.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from collector import contract as c
from collector.accounting.claims import (
    CUMULATIVE,
    DELTA,
    EVENT,
    SESSION,
    SPEND,
    Claim,
    Effect,
    Plan,
    dedupe_key,
)
from collector.accounting.highwater import Source
from collector.accounting.memory import MemoryState
from collector.accounting.records import Accounted, Observation
from collector.accounting.resolve import resolve
from collector.decoding.attributes import Attributes, as_bool, as_float, as_int, as_str
from collector.decoding.metrics import MAX_VALUE
from collector.identity import Identity, IdentityResolver, TokenIdentity, normalize_model
from collector.model import Event, EventsBatch, MetricPoint, MetricsBatch, Temporality

HOUR_NS = 3600 * 10**9
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")

MetricEffects = Callable[[MetricPoint, Identity], list[Effect]]
Owner = tuple[str, str | None]
EventEffects = Callable[[Event, Identity, Claim, Owner], None]


@dataclass(frozen=True, slots=True)
class AccountingSettings:
    #: how long a cumulative stream is remembered after its last point.
    stream_ttl_ns: int = 24 * HOUR_NS
    #: how long retried delta points, event ids and per-session spend totals are remembered.
    dedupe_ttl_ns: int = 48 * HOUR_NS
    max_streams: int = 1_000_000
    max_dedupe_keys: int = 10_000_000


def _scale(name: str) -> int:
    if name == "claude_code.cost.usage":
        return c.COST.scale
    if name == "claude_code.active_time.total":
        return c.ACTIVE_TIME.scale
    return 1


def token_type(raw: str | None) -> str:
    """`cacheRead` -> `cache_read`; the contract's label values are snake_case."""
    return _CAMEL.sub("_", raw).lower() if raw else "unknown"


def _digest(*parts: object) -> bytes:
    return hashlib.blake2b(repr(parts).encode(), digest_size=16).digest()


def _key(kind: bytes, *parts: object) -> bytes:
    return kind + _digest(*parts)


_SHARED_KEYS: dict[tuple[object, ...], bytes] = {}


def _shared_key(kind: bytes, *parts: object) -> bytes:
    """`_key` for keys many records share (one session's spend and existence): memoized, as
    every event and point of a session would otherwise hash the same parts again."""
    cache_key = (kind, *parts)
    found = _SHARED_KEYS.get(cache_key)
    if found is None:
        if len(_SHARED_KEYS) >= 100_000:
            _SHARED_KEYS.clear()
        found = _SHARED_KEYS[cache_key] = _key(kind, *parts)
    return found


def _owner(attrs: Attributes, identity: Identity) -> tuple[str, str | None]:
    """Whose session this is, for matching metrics with events.

    Keyed on `user.id` (on every point and event of both signals) rather than the resolved
    actor: `OTEL_METRICS_INCLUDE_ACCOUNT_UUID=false` and similar switches can remove identity
    attributes from one signal only, and the two sides must still meet on one key.
    """
    return (as_str(attrs, "user.id") or identity.actor, as_str(attrs, "session.id"))


def _spend(
    metric: c.Metric,
    labels: tuple[str, ...],
    owner: tuple[str, str | None],
    source: Source,
    fixed: int | None = None,
) -> Effect:
    key = _shared_key(SPEND, owner, metric.name, labels)
    return Effect(metric, labels, fixed, key, source)


_TOKEN_FIELDS = (
    ("input", "input_tokens"),
    ("output", "output_tokens"),
    ("cache_read", "cache_read_tokens"),
    ("cache_creation", "cache_creation_tokens"),
)


class Accountant:
    def __init__(
        self, resolver: IdentityResolver, settings: AccountingSettings | None = None
    ) -> None:
        s = settings or AccountingSettings()
        self.resolver = resolver
        self.state = MemoryState(s.stream_ttl_ns, s.dedupe_ttl_ns, s.max_streams, s.max_dedupe_keys)
        self._metric_effects: dict[str, MetricEffects] = {
            "claude_code.session.count": self._session_count,
            "claude_code.token.usage": self._token_usage,
            "claude_code.cost.usage": self._cost_usage,
            "claude_code.lines_of_code.count": self._own_label(c.LINES, "type"),
            "claude_code.commit.count": self._own_label(c.COMMITS),
            "claude_code.pull_request.count": self._own_label(c.PULL_REQUESTS),
            "claude_code.code_edit_tool.decision": self._own_label(
                c.CODE_EDIT_DECISIONS, "tool_name", "decision"
            ),
            "claude_code.active_time.total": self._own_label(c.ACTIVE_TIME, "type"),
        }
        self._event_effects: dict[str, EventEffects] = {
            "api_request": self._api_request,
            "api_error": self._api_error,
            "tool_decision": self._tool_decision,
            "tool_result": self._tool_result,
            "user_prompt": self._user_prompt,
        }

    # -- in-memory application ------------------------------------------------------------

    def apply(self, plan: Plan, now_ns: int) -> Accounted:
        """Resolve `plan` against the in-memory state and keep the changes."""
        self.state.tick(now_ns)
        accounted, changed = resolve(plan, self.state.fetch(plan.keys()))
        self.state.store(changed)
        return accounted

    def account_metrics(
        self, batch: MetricsBatch, token: TokenIdentity | None, now_ns: int
    ) -> Accounted:
        return self.apply(self.plan_metrics(batch, token), now_ns)

    def account_logs(
        self, batch: EventsBatch, token: TokenIdentity | None, now_ns: int
    ) -> Accounted:
        return self.apply(self.plan_logs(batch, token), now_ns)

    def state_sizes(self) -> dict[str, int]:
        return self.state.sizes()

    def evictions(self) -> dict[tuple[str, str], int]:
        return self.state.evictions()

    # -- metrics -----------------------------------------------------------------------

    def plan_metrics(self, batch: MetricsBatch, token: TokenIdentity | None) -> Plan:
        plan = Plan(rejected=batch.rejected, ignored=batch.ignored)
        for point in batch.points:
            identity = self.resolver.resolve(point.attributes, token)
            if point.temporality == Temporality.DELTA:
                digest = _digest(point.stream, point.start_ns, point.time_ns)
                guard = dedupe_key(DELTA, point.time_ns, digest)
            else:
                guard = _key(CUMULATIVE, point.stream, point.start_ns)
            plan.claims.append(
                Claim(
                    guard=guard,
                    time_ns=point.time_ns,
                    value=round(point.value * _scale(point.name)),
                    identity=identity,
                    session=as_str(point.attributes, "session.id"),
                    effects=self._metric_effects[point.name](point, identity),
                )
            )
        return plan

    @staticmethod
    def _own_label(metric: c.Metric, *keys: str) -> MetricEffects:
        def effects(point: MetricPoint, identity: Identity) -> list[Effect]:
            return [Effect(metric, tuple(as_str(point.attributes, k) or "unknown" for k in keys))]

        return effects

    @staticmethod
    def _session_count(point: MetricPoint, identity: Identity) -> list[Effect]:
        attrs = point.attributes
        if as_str(attrs, "session.id") is None:
            return [Effect(c.SESSIONS, (identity.terminal,))]
        key = _shared_key(SESSION, _owner(attrs, identity))
        return [Effect(c.SESSIONS, (identity.terminal,), highwater=key, source=Source.METRICS)]

    @staticmethod
    def _token_usage(point: MetricPoint, identity: Identity) -> list[Effect]:
        attrs = point.attributes
        labels = (normalize_model(as_str(attrs, "model")), token_type(as_str(attrs, "type")))
        return [_spend(c.TOKENS, labels, _owner(attrs, identity), Source.METRICS)]

    @staticmethod
    def _cost_usage(point: MetricPoint, identity: Identity) -> list[Effect]:
        attrs = point.attributes
        labels = (normalize_model(as_str(attrs, "model")),)
        return [_spend(c.COST, labels, _owner(attrs, identity), Source.METRICS)]

    # -- events ------------------------------------------------------------------------

    def plan_logs(self, batch: EventsBatch, token: TokenIdentity | None) -> Plan:
        plan = Plan(rejected=batch.rejected)
        for event in batch.events:
            problem = self._invalid(event)
            if problem:
                plan.rejected.add(problem)
                continue
            attrs = event.attributes
            identity = self.resolver.resolve(attrs, token)
            owner = _owner(attrs, identity)
            session = owner[1]
            claim = Claim(
                guard=dedupe_key(EVENT, event.time_ns, event_key(event)),
                time_ns=event.time_ns,
                value=1,
                identity=identity,
                session=session,
                effects=[Effect(c.EVENTS, (event.name,), fixed=1)],
            )
            if session is not None:
                key = _shared_key(SESSION, owner)
                claim.effects.append(
                    Effect(c.SESSIONS, (identity.terminal,), 1, key, Source.EVENTS, raise_to=True)
                )
            handler = self._event_effects.get(event.name)
            if handler is not None:
                handler(event, identity, claim, owner)
            plan.claims.append(claim)
        return plan

    #: Spend fields: unreadable ones would silently count as 0, so the record is refused.
    #: Durations are not here: a bad one only costs its histogram sample (see `_observe`).
    _NUMERIC: ClassVar[dict[str, tuple[str, ...]]] = {
        "api_request": (
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_creation_tokens",
            "cost_usd",
            "cost_usd_micros",
        ),
    }

    def _invalid(self, event: Event) -> str | None:
        """A present-but-unreadable number would silently become 0: refuse the record instead."""
        for key in self._NUMERIC.get(event.name, ()):
            if event.attributes.get(key) in (None, ""):
                continue
            number = as_float(event.attributes, key)
            if number is None:
                return f"{event.name}: {key} is not a number"
            if not 0 <= number <= MAX_VALUE:
                return f"{event.name}: {key} is negative or over {MAX_VALUE:g}"
        return None

    def _api_request(self, event: Event, identity: Identity, claim: Claim, owner: Owner) -> None:
        attrs = event.attributes
        model = normalize_model(as_str(attrs, "model"))
        claim.effects.append(Effect(c.API_REQUESTS, (model,), fixed=1))
        for kind, key in _TOKEN_FIELDS:
            amount = as_int(attrs, key) or 0
            claim.effects.append(_spend(c.TOKENS, (model, kind), owner, Source.EVENTS, amount))
        cost = as_float(attrs, "cost_usd")
        if cost is not None:
            nano = round(cost * c.COST.scale)
        else:
            nano = (as_int(attrs, "cost_usd_micros") or 0) * (c.COST.scale // 1_000_000)
        claim.effects.append(_spend(c.COST, (model,), owner, Source.EVENTS, nano))
        self._observe(claim, c.API_DURATION, identity, (model,), attrs)

    @staticmethod
    def _api_error(event: Event, identity: Identity, claim: Claim, owner: Owner) -> None:
        attrs = event.attributes
        labels = (
            normalize_model(as_str(attrs, "model")),
            as_str(attrs, "status_code") or "unknown",
        )
        claim.effects.append(Effect(c.API_ERRORS, labels, fixed=1))

    @staticmethod
    def _tool_decision(event: Event, identity: Identity, claim: Claim, owner: Owner) -> None:
        attrs = event.attributes
        labels = tuple(as_str(attrs, k) or "unknown" for k in ("tool_name", "decision", "source"))
        claim.effects.append(Effect(c.TOOL_DECISIONS, labels, fixed=1))

    def _tool_result(self, event: Event, identity: Identity, claim: Claim, owner: Owner) -> None:
        attrs = event.attributes
        tool = as_str(attrs, "tool_name") or "unknown"
        success = as_bool(attrs, "success")
        ok = "unknown" if success is None else ("true" if success else "false")
        claim.effects.append(Effect(c.TOOL_CALLS, (tool, ok), fixed=1))
        self._observe(claim, c.TOOL_DURATION, identity, (tool,), attrs)

    @staticmethod
    def _user_prompt(event: Event, identity: Identity, claim: Claim, owner: Owner) -> None:
        claim.effects.append(Effect(c.PROMPTS, (), fixed=1))

    @staticmethod
    def _observe(
        claim: Claim,
        metric: c.Metric,
        identity: Identity,
        labels: tuple[str, ...],
        attrs: Attributes,
    ) -> None:
        ms = as_float(attrs, "duration_ms")
        if ms is not None and 0 <= ms <= MAX_VALUE:
            claim.observations.append(Observation(metric, identity, labels, ms / 1000.0))


def event_key(event: Event) -> bytes:
    """The identity of an event for deduplication (docs/accounting.md, "Events").

    api_request/api_error by `request_id`; tool events by `tool_use_id` + name; anything else
    by (user, session, name, timestamp, sequence, prompt id, message uuid). A client retry
    re-sends identical attributes, so it still matches.
    """
    attrs = event.attributes
    parts: tuple[object, ...]
    request_id = as_str(attrs, "request_id")
    tool_use_id = as_str(attrs, "tool_use_id")
    if event.name in ("api_request", "api_error") and request_id:
        parts = ("req", event.name, request_id)
    elif event.name.startswith("tool_") and tool_use_id:
        parts = ("tool", event.name, tool_use_id)
    else:
        parts = (
            "ev",
            event.name,
            as_str(attrs, "user.id"),
            as_str(attrs, "session.id"),
            as_str(attrs, "event.timestamp") or event.time_ns,
            as_str(attrs, "event.sequence"),
            # Two processes can share a session id (a resumed session in two terminals) and
            # restart `event.sequence` at 0; prompt and message ids keep their events apart.
            as_str(attrs, "prompt.id"),
            as_str(attrs, "message.uuid"),
        )
    return hashlib.blake2b(repr(parts).encode(), digest_size=16).digest()
