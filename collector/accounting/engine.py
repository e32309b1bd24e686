"""The accountant: decoded batches in, exact increments out (see docs/accounting.md).

Pure by design: it does no I/O, reads no clock (callers pass `now_ns`) and holds all of its
state in bounded generational maps, so every rule can be tested with plain function calls.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from collector import contract as c
from collector.accounting.highwater import HighWater, Source
from collector.accounting.records import Accounted, Increment, Observation
from collector.accounting.streams import CumulativeStreams, DeltaDedupe, Outcome
from collector.decoding.attributes import Attributes, as_bool, as_float, as_int, as_str
from collector.decoding.metrics import MAX_VALUE
from collector.identity import Identity, IdentityResolver, TokenIdentity, normalize_model
from collector.model import Event, EventsBatch, MetricPoint, MetricsBatch, Temporality

HOUR_NS = 3600 * 10**9
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


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
        self.cumulative = CumulativeStreams(s.stream_ttl_ns, s.max_streams)
        self.delta = DeltaDedupe(s.dedupe_ttl_ns, s.max_dedupe_keys)
        self.events_seen = DeltaDedupe(s.dedupe_ttl_ns, s.max_dedupe_keys)
        self.spend = HighWater(s.dedupe_ttl_ns, s.max_streams)
        self.sessions = HighWater(s.dedupe_ttl_ns, s.max_streams)
        self._metric_handlers: dict[
            str, Callable[[Accounted, MetricPoint, Identity, int], None]
        ] = {
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
        self._event_handlers: dict[str, Callable[[Accounted, Event, Identity], None]] = {
            "api_request": self._api_request,
            "api_error": self._api_error,
            "tool_decision": self._tool_decision,
            "tool_result": self._tool_result,
            "user_prompt": self._user_prompt,
        }

    def state_sizes(self) -> dict[str, int]:
        return {
            "cumulative_streams": len(self.cumulative.state),
            "delta_dedupe": len(self.delta.seen),
            "event_dedupe": len(self.events_seen.seen),
            "spend_keys": len(self.spend.state),
            "session_keys": len(self.sessions.state),
        }

    def evictions(self) -> dict[tuple[str, str], int]:
        maps = {
            "cumulative_streams": self.cumulative.state,
            "delta_dedupe": self.delta.seen,
            "event_dedupe": self.events_seen.seen,
            "spend_keys": self.spend.state,
            "session_keys": self.sessions.state,
        }
        return {(name, reason): n for name, m in maps.items() for reason, n in m.evicted.items()}

    def tick(self, now_ns: int) -> None:
        for m in (
            self.cumulative.state,
            self.delta.seen,
            self.events_seen.seen,
            self.spend.state,
            self.sessions.state,
        ):
            m.tick(now_ns)

    # -- metrics -----------------------------------------------------------------------

    def account_metrics(
        self, batch: MetricsBatch, token: TokenIdentity | None, now_ns: int
    ) -> Accounted:
        self.tick(now_ns)
        out = Accounted(ignored=batch.ignored)
        out.rejected = batch.rejected
        for point in batch.points:
            value = round(point.value * _scale(point.name))
            tracker = self.delta if point.temporality == Temporality.DELTA else self.cumulative
            amount, outcome = tracker.increment(point.stream, point.start_ns, point.time_ns, value)
            identity = self.resolver.resolve(point.attributes, token)
            if outcome is Outcome.DUPLICATE:
                out.duplicate += 1
                continue
            if outcome is Outcome.STALE:
                out.stale += 1
                continue
            out.accepted += 1
            out.seen.add(identity)
            if amount:
                self._metric_handlers[point.name](out, point, identity, amount)
        return out

    @staticmethod
    def _emit(
        out: Accounted,
        metric: c.Metric,
        identity: Identity,
        labels: tuple[str, ...],
        amount: int,
        attrs: Attributes,
        time_ns: int,
    ) -> None:
        if amount:
            out.increments.append(
                Increment(metric, identity, labels, amount, as_str(attrs, "session.id"), time_ns)
            )

    def _own_label(
        self, metric: c.Metric, *keys: str
    ) -> Callable[[Accounted, MetricPoint, Identity, int], None]:
        def handle(out: Accounted, point: MetricPoint, identity: Identity, amount: int) -> None:
            labels = tuple(as_str(point.attributes, k) or "unknown" for k in keys)
            self._emit(out, metric, identity, labels, amount, point.attributes, point.time_ns)

        return handle

    def _session_count(
        self, out: Accounted, point: MetricPoint, identity: Identity, amount: int
    ) -> None:
        session = as_str(point.attributes, "session.id")
        if session is not None:
            amount = self.sessions.add(
                _owner(point.attributes, identity, session), Source.METRICS, amount
            )
        self._emit(
            out, c.SESSIONS, identity, (identity.terminal,), amount, point.attributes, point.time_ns
        )

    def _spend(
        self,
        out: Accounted,
        metric: c.Metric,
        identity: Identity,
        labels: tuple[str, ...],
        source: Source,
        amount: int,
        attrs: Attributes,
        time_ns: int,
    ) -> None:
        key = (_owner(attrs, identity, as_str(attrs, "session.id")), metric.name, labels)
        grown = self.spend.add(key, source, amount)
        self._emit(out, metric, identity, labels, grown, attrs, time_ns)

    def _token_usage(
        self, out: Accounted, point: MetricPoint, identity: Identity, amount: int
    ) -> None:
        attrs = point.attributes
        labels = (normalize_model(as_str(attrs, "model")), token_type(as_str(attrs, "type")))
        self._spend(out, c.TOKENS, identity, labels, Source.METRICS, amount, attrs, point.time_ns)

    def _cost_usage(
        self, out: Accounted, point: MetricPoint, identity: Identity, amount: int
    ) -> None:
        attrs = point.attributes
        labels = (normalize_model(as_str(attrs, "model")),)
        self._spend(out, c.COST, identity, labels, Source.METRICS, amount, attrs, point.time_ns)

    # -- events ------------------------------------------------------------------------

    def account_logs(
        self, batch: EventsBatch, token: TokenIdentity | None, now_ns: int
    ) -> Accounted:
        self.tick(now_ns)
        out = Accounted()
        out.rejected = batch.rejected
        for event in batch.events:
            problem = self._invalid(event)
            if problem:
                out.rejected.add(problem)
                continue
            identity = self.resolver.resolve(event.attributes, token)
            if not self.events_seen.seen.add(event_key(event)):
                out.duplicate += 1
                continue
            out.accepted += 1
            out.seen.add(identity)
            self._emit(out, c.EVENTS, identity, (event.name,), 1, event.attributes, event.time_ns)
            session = as_str(event.attributes, "session.id")
            if session is not None:
                grown = self.sessions.raise_to(
                    _owner(event.attributes, identity, session), Source.EVENTS, 1
                )
                self._emit(
                    out,
                    c.SESSIONS,
                    identity,
                    (identity.terminal,),
                    grown,
                    event.attributes,
                    event.time_ns,
                )
            handler = self._event_handlers.get(event.name)
            if handler is not None:
                handler(out, event, identity)
        return out

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

    def _api_request(self, out: Accounted, event: Event, identity: Identity) -> None:
        attrs, t = event.attributes, event.time_ns
        model = normalize_model(as_str(attrs, "model"))
        self._emit(out, c.API_REQUESTS, identity, (model,), 1, attrs, t)
        for kind, key in _TOKEN_FIELDS:
            amount = as_int(attrs, key) or 0
            self._spend(out, c.TOKENS, identity, (model, kind), Source.EVENTS, amount, attrs, t)
        cost = as_float(attrs, "cost_usd")
        if cost is not None:
            nano = round(cost * c.COST.scale)
        else:
            nano = (as_int(attrs, "cost_usd_micros") or 0) * (c.COST.scale // 1_000_000)
        self._spend(out, c.COST, identity, (model,), Source.EVENTS, nano, attrs, t)
        self._observe(out, c.API_DURATION, identity, (model,), attrs)

    def _api_error(self, out: Accounted, event: Event, identity: Identity) -> None:
        attrs = event.attributes
        labels = (
            normalize_model(as_str(attrs, "model")),
            as_str(attrs, "status_code") or "unknown",
        )
        self._emit(out, c.API_ERRORS, identity, labels, 1, attrs, event.time_ns)

    def _tool_decision(self, out: Accounted, event: Event, identity: Identity) -> None:
        attrs = event.attributes
        labels = tuple(as_str(attrs, k) or "unknown" for k in ("tool_name", "decision", "source"))
        self._emit(out, c.TOOL_DECISIONS, identity, labels, 1, attrs, event.time_ns)

    def _tool_result(self, out: Accounted, event: Event, identity: Identity) -> None:
        attrs = event.attributes
        tool = as_str(attrs, "tool_name") or "unknown"
        success = as_bool(attrs, "success")
        ok = "unknown" if success is None else ("true" if success else "false")
        self._emit(out, c.TOOL_CALLS, identity, (tool, ok), 1, attrs, event.time_ns)
        self._observe(out, c.TOOL_DURATION, identity, (tool,), attrs)

    def _user_prompt(self, out: Accounted, event: Event, identity: Identity) -> None:
        self._emit(out, c.PROMPTS, identity, (), 1, event.attributes, event.time_ns)

    @staticmethod
    def _observe(
        out: Accounted,
        metric: c.Metric,
        identity: Identity,
        labels: tuple[str, ...],
        attrs: Attributes,
    ) -> None:
        ms = as_float(attrs, "duration_ms")
        if ms is not None and 0 <= ms <= MAX_VALUE:
            out.observations.append(Observation(metric, identity, labels, ms / 1000.0))


def _owner(attrs: Attributes, identity: Identity, session: str | None) -> tuple[str, str | None]:
    """Whose session this is, for matching metrics with events.

    Keyed on `user.id` (on every point and event of both signals) rather than the resolved
    actor: `OTEL_METRICS_INCLUDE_ACCOUNT_UUID=false` and similar switches can remove identity
    attributes from one signal only, and the two sides must still meet on one key.
    """
    return (as_str(attrs, "user.id") or identity.actor, session)


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
