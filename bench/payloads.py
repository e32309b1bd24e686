"""Claude-Code-shaped OTLP request bodies for the benchmarks, and the totals they must produce.

The records copy the attribute sets Claude Code 2.1.330 sends (tests/fixtures/claude-code-2.1.330
and tests/builders.py): the `api_request`, `user_prompt`, `tool_decision` and `tool_result`
events, and the eight `claude_code.*` Sum metrics, delta or cumulative, for N users (distinct
`user.email`) and M sessions, batched `batch_size` records per request the way a forwarding
gateway batches many Claude Code processes (one ResourceLogs/ResourceMetrics per export).

Why the bodies are hand-encoded: building a record through the protobuf classes costs about
30 µs, so ten million records (the soak) would cost minutes of the two cores the collector
needs. The few message types involved have a simple wire format; each session's attributes are
encoded once and records are assembled from pre-encoded pieces (a few µs each). `selfcheck()`
parses generated bodies with opentelemetry-proto and recomputes the totals from the parsed
messages by the documented accounting rules (docs/accounting.md), so an encoding mistake or a
wrong expectation fails before any figure is taken.

Everything is deterministic: the same `Spec` gives the same bytes and the same `Expected`.
Sessions are partitioned (`part`/`parts`) so several load-generator processes can each
generate their own share on the fly, with additive expectations.
"""

from __future__ import annotations

import datetime as dt
import random
import struct
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

# -- protobuf wire format ---------------------------------------------------------------------

_U64 = struct.Struct("<Q")
_F64 = struct.Struct("<d")


def varint(n: int) -> bytes:
    """Base-128 varint; negative numbers as their 64-bit two's complement (int64 fields)."""
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL = [varint(i) for i in range(1 << 14)]


def _len(n: int) -> bytes:
    return _SMALL[n] if n < 16384 else varint(n)


_LD_TAG = [varint(f << 3 | 2) for f in range(32)]


def ld(field_number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _LD_TAG[field_number] + _len(len(payload)) + payload


def fixed64(field_number: int, value: int) -> bytes:
    return varint(field_number << 3 | 1) + _U64.pack(value)


def any_value(value: Any) -> bytes:
    """opentelemetry.proto.common.v1.AnyValue: str, bool, int, float, list."""
    if isinstance(value, str):
        raw = value.encode()
        return b"\x0a" + _len(len(raw)) + raw
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + varint(value)
    if isinstance(value, float):
        return b"\x21" + _F64.pack(value)
    if isinstance(value, list | tuple):
        return ld(5, b"".join(ld(1, any_value(v)) for v in value))
    raise TypeError(f"no AnyValue for {value!r}")


_KEYS: dict[str, bytes] = {}


def key_value(field_number: int, key: str, value: Any) -> bytes:
    """A KeyValue as field `field_number` of its parent (attributes)."""
    k = _KEYS.get(key)
    if k is None:
        k = _KEYS[key] = ld(1, key.encode())
    v = any_value(value)
    inner = k + b"\x12" + _len(len(v)) + v
    return _LD_TAG[field_number] + _len(len(inner)) + inner


def attributes(field_number: int, attrs: dict[str, Any]) -> bytes:
    return b"".join([key_value(field_number, k, v) for k, v in attrs.items()])


# Field numbers (opentelemetry-proto 1.x): LogRecord.attributes 6, NumberDataPoint.attributes 7,
# Resource.attributes 1; ScopeLogs.log_records 2, Sum.data_points 1.
_LOG_ATTR, _POINT_ATTR, _RESOURCE_ATTR = 6, 7, 1

# -- what Claude Code sends -------------------------------------------------------------------

SERVICE_VERSION = "2.1.330"
METRICS_SCOPE = ld(1, ld(1, b"com.anthropic.claude_code") + ld(2, SERVICE_VERSION.encode()))
EVENTS_SCOPE = ld(1, ld(1, b"com.anthropic.claude_code.events") + ld(2, SERVICE_VERSION.encode()))
DELTA, CUMULATIVE = 1, 2

#: (name, description, unit) as in the captures.
METRICS: dict[str, tuple[str, str]] = {
    "claude_code.session.count": ("Count of CLI sessions started", ""),
    "claude_code.token.usage": ("Number of tokens used", "tokens"),
    "claude_code.cost.usage": ("Cost of the Claude Code session", "USD"),
    "claude_code.lines_of_code.count": (
        "Count of lines of code modified, with the 'type' attribute indicating whether lines "
        "were added or removed and the 'model' attribute indicating which model made the change",
        "",
    ),
    "claude_code.commit.count": ("Number of git commits created", ""),
    "claude_code.pull_request.count": ("Number of pull requests created", ""),
    "claude_code.code_edit_tool.decision": (
        "Count of code editing tool permission decisions (accept/reject) for Edit, Write, and "
        "NotebookEdit tools",
        "",
    ),
    "claude_code.active_time.total": ("Total active time in seconds", "s"),
}
_METRIC_HEADER = {
    name: ld(1, name.encode()) + ld(2, desc.encode()) + (ld(3, unit.encode()) if unit else b"")
    for name, (desc, unit) in METRICS.items()
}
_SUM_TRAILER = {t: b"\x10" + varint(t) + b"\x18\x01" for t in (DELTA, CUMULATIVE)}

#: list prices per million tokens (input, output, cache read, cache write), USD.
MODELS: dict[str, tuple[float, float, float, float]] = {
    "claude-opus-5-5": (5.0, 25.0, 0.5, 6.25),
    "claude-sonnet-5-5": (3.0, 15.0, 0.3, 3.75),
    "claude-haiku-5-5": (1.0, 5.0, 0.1, 1.25),
}
_MODEL_BY_TENTH = ["claude-opus-5-5"] * 6 + ["claude-sonnet-5-5"] * 3 + ["claude-haiku-5-5"]
TERMINALS = ("vscode", "xterm-256color", "iTerm.app", "cursor", "tmux")
DEPARTMENTS = ("engineering", "platform", "data", "product")
TOOLS = ("Edit", "Write", "Bash", "Read", "Edit", "Grep")
TOKEN_TYPES = (("input", "input"), ("output", "output"), ("cacheRead", "cache_read"))
TOKEN_TYPES += (("cacheCreation", "cache_creation"),)
TURN_S = 30
ORGANIZATION = "4f0c7e61-2d5a-4b8e-9a37-1c2b3d4e5f60"

# -- what the collector must count ------------------------------------------------------------

#: contract metric -> the labels its expected totals are grouped by (user/team/model aside).
CHECKS: dict[str, tuple[str, ...]] = {
    "claude_code_tokens_total": ("type",),
    "claude_code_cost_usd_total": (),
    "claude_code_sessions_total": (),
    "claude_code_lines_of_code_total": ("type",),
    "claude_code_commits_total": (),
    "claude_code_pull_requests_total": (),
    "claude_code_code_edit_decisions_total": ("decision",),
    "claude_code_tool_decisions_total": ("decision",),
    "claude_code_active_time_seconds_total": ("type",),
    "claude_code_prompts_total": (),
    "claude_code_api_requests_total": (),
    "claude_code_tool_calls_total": ("success",),
    "claude_code_events_total": ("event",),
}
#: the contract's integer units (collector/contract.py): nano-USD, microseconds.
SCALES = {"claude_code_cost_usd_total": 10**9, "claude_code_active_time_seconds_total": 10**6}
_METRIC_CONTRACT = {
    "claude_code.lines_of_code.count": "claude_code_lines_of_code_total",
    "claude_code.commit.count": "claude_code_commits_total",
    "claude_code.pull_request.count": "claude_code_pull_requests_total",
    "claude_code.code_edit_tool.decision": "claude_code_code_edit_decisions_total",
    "claude_code.active_time.total": "claude_code_active_time_seconds_total",
}

TotalKey = tuple[str, tuple[str, ...]]


@dataclass
class Expected:
    """What the collector's `/metrics` must show after receiving exactly these requests.

    Spend (tokens, cost) and sessions follow the high-water rule: per session and labels the
    larger of the metrics total and the events total is counted. Cumulative streams count
    their last value. Call `finalize()` once generation is done; totals are then additive
    across partitions (`merge`).
    """

    totals: Counter[TotalKey] = field(default_factory=Counter)
    points: int = 0
    events: int = 0
    requests: int = 0
    users: set[str] = field(default_factory=set)
    sessions: int = 0
    #: (session, contract metric, labels, group) -> [metrics side, events side]
    _spend: dict[tuple[Any, ...], list[int]] = field(default_factory=dict)
    #: cumulative stream -> (total key, last value in contract units)
    _last: dict[tuple[Any, ...], tuple[TotalKey, int]] = field(default_factory=dict)

    @property
    def records(self) -> int:
        return self.points + self.events

    def spend(self, key: tuple[Any, ...], source: int, amount: int, *, set_to: bool = False):
        row = self._spend.setdefault(key, [0, 0])
        row[source] = amount if set_to else row[source] + amount

    def finalize(self) -> Expected:
        for (_, metric, _, group), (m, e) in self._spend.items():
            self.totals[(metric, group)] += max(m, e)
        for key, amount in self._last.values():
            self.totals[key] += amount
        self._spend.clear()
        self._last.clear()
        return self

    def merge(self, other: Expected) -> Expected:
        self.totals.update(other.totals)
        self.points += other.points
        self.events += other.events
        self.requests += other.requests
        self.users |= other.users
        self.sessions += other.sessions
        return self

    def to_json(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "points": self.points,
            "events": self.events,
            "requests": self.requests,
            "users": len(self.users),
            "sessions": self.sessions,
            "totals": {
                f"{m}{{{','.join(g)}}}": v for (m, g), v in sorted(self.totals.items()) if v
            },
        }


# -- the workload -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """A deterministic workload.

    `records` is a target: generation stops after the turn that reaches it. A turn of the
    `full` profile is a prompt with two model calls and one tool use (5 events, 7-11 points);
    the `light` profile (1 prompt, 1 call, lines/commit/decision points: 7 records) fills many
    user-days cheaply for the analytics and scrape figures. Session j belongs to user
    j % users and falls on day (j // users) % days, counted back from `end_day`, so with
    sessions = users x days every user has one session on every day.
    """

    records: int
    users: int = 100
    sessions: int = 1000
    batch_size: int = 512
    temporality: str = "delta"
    profile: str = "full"
    days: int = 1
    end_day: str = "2026-11-21"
    seed: int = 1

    def label(self) -> str:
        return (
            f"{self.records} records, {self.users} users, {self.sessions} sessions, "
            f"batch {self.batch_size}, {self.temporality}, {self.profile}"
            + (f", {self.days} days" if self.days > 1 else "")
        )


@dataclass(slots=True)
class Request:
    signal: str  # "metrics" | "logs"
    body: bytes
    records: int


def _uuid(seed: int, j: int, t: int = 0, tag: int = 0) -> str:
    """A UUID-shaped id, unique per (seed, j < 2^48, t < 2^28, tag < 4096), deterministic."""
    head = f"{seed & 0xFFFFFFFF:08x}-{(t >> 12) & 0xFFFF:04x}"
    return f"{head}-4{t & 0xFFF:03x}-a{tag & 0xFFF:03x}-{j:012x}"


def _iso(ns: int) -> str:
    ms = ns // 1_000_000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


class _Session:
    """One Claude Code process: its identity, encoded attributes, and stream state."""

    __slots__ = (
        "export_ns",
        "index",
        "last",
        "model",
        "resource",
        "rng",
        "seq",
        "sid",
        "start_ns",
        "std_log",
        "std_point",
        "user",
    )

    def __init__(self, spec: Spec, j: int) -> None:
        self.index = j
        u = j % spec.users
        team = f"team-{u // 50:03d}"  # 50 people a team, whatever the number of users
        department = DEPARTMENTS[u % len(DEPARTMENTS)]
        self.user = f"dev{u:05d}@bench.example.com"
        self.sid = _uuid(spec.seed, j, 0, 0x5E5)
        self.rng = random.Random(spec.seed * 1_000_003 + j)
        self.model = _MODEL_BY_TENTH[j % 10]
        end = dt.date.fromisoformat(spec.end_day)
        day = end - dt.timedelta(days=spec.days - 1 - (j // spec.users) % spec.days)
        midnight = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())
        self.start_ns = (midnight + (j * 7919) % 72_000) * 10**9 + (j % 1000) * 10**6
        self.export_ns = self.start_ns
        self.seq = 0
        self.last: dict[tuple[Any, ...], float] = {}
        custom = {"department": department, "team.id": team, "cost_center": f"cc-{u % 97}"}
        resource = {
            **custom,
            "host.arch": "amd64",
            "os.type": "linux",
            "os.version": "6.18.44-fc-v669",
            "service.name": "claude-code",
            "service.version": SERVICE_VERSION,
        }
        standard = {
            **custom,
            "user.id": f"{u:016x}{spec.seed:016x}".rjust(64, "e"),
            "session.id": self.sid,
            "organization.id": ORGANIZATION,
            "user.email": self.user,
            "user.account_uuid": _uuid(spec.seed, u, 0, 0xACC),
            "anthropic.provider": "firstParty",
            "terminal.type": TERMINALS[j % len(TERMINALS)],
        }
        self.resource = ld(1, attributes(_RESOURCE_ATTR, resource))
        self.std_log = attributes(_LOG_ATTR, standard)
        self.std_point = attributes(_POINT_ATTR, standard)


class Generator:
    """Produces the requests of one partition of a `Spec`, and its `Expected`."""

    def __init__(self, spec: Spec, part: int = 0, parts: int = 1) -> None:
        self.spec = spec
        self.part, self.parts = part, parts
        self.expected = Expected()
        self.budget = spec.records // parts + (spec.records % parts if part == 0 else 0)
        self.temporality = DELTA if spec.temporality == "delta" else CUMULATIVE
        self._buffers: dict[str, list[tuple[_Session, list[Any]]]] = {"logs": [], "metrics": []}
        self._counts = {"logs": 0, "metrics": 0}

    # -- requests ---------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Request]:
        spec = self.spec
        indices = range(self.part, spec.sessions, self.parts)
        sessions: dict[int, _Session] = {}  # made on first use: a small run touches few
        emitted = 0
        turn = 0
        while emitted < self.budget and indices:
            for j in indices:
                session = sessions.get(j)
                if session is None:
                    session = sessions[j] = _Session(spec, j)
                events, points = self._turn(session, turn)
                emitted += len(events) + len(points)
                yield from self._add("logs", session, events)
                yield from self._add("metrics", session, points)
                if emitted >= self.budget:
                    break
            turn += 1
        for signal in ("logs", "metrics"):
            if self._counts[signal]:
                yield self._flush(signal)
        self.expected.finalize()

    def _add(self, signal: str, session: _Session, records: list[Any]) -> Iterator[Request]:
        size = self.spec.batch_size
        while records:
            room = size - self._counts[signal]
            take, records = records[:room], records[room:]
            self._buffers[signal].append((session, take))
            self._counts[signal] += len(take)
            if self._counts[signal] >= size:
                yield self._flush(signal)

    def _flush(self, signal: str) -> Request:
        chunks, count = self._buffers[signal], self._counts[signal]
        self._buffers[signal], self._counts[signal] = [], 0
        self.expected.requests += 1
        if signal == "logs":
            body = b"".join(
                ld(1, s.resource + ld(2, EVENTS_SCOPE + b"".join(records))) for s, records in chunks
            )
        else:
            trailer = _SUM_TRAILER[self.temporality]
            parts = []
            for s, points in chunks:
                by_metric: dict[str, list[bytes]] = {}
                for name, point in points:
                    by_metric.setdefault(name, []).append(point)
                metrics = b"".join(
                    ld(2, _METRIC_HEADER[name] + ld(7, b"".join(pts) + trailer))
                    for name, pts in by_metric.items()
                )
                parts.append(ld(1, s.resource + ld(2, METRICS_SCOPE + metrics)))
            body = b"".join(parts)
        return Request(signal, body, count)

    # -- records ----------------------------------------------------------------------------

    def _event(self, s: _Session, name: str, t_ns: int, extra: dict[str, Any]) -> bytes:
        attrs = {
            "event.name": name,
            "event.timestamp": _iso(t_ns),
            "event.sequence": s.seq,
            **extra,
        }
        s.seq += 1
        record = (
            fixed64(1, t_ns)
            + ld(5, any_value(f"claude_code.{name}"))
            + s.std_log
            + attributes(_LOG_ATTR, attrs)
            + fixed64(11, t_ns)
        )
        exp = self.expected
        exp.events += 1
        exp.totals[("claude_code_events_total", (name,))] += 1
        return ld(2, record)

    def _point(
        self,
        s: _Session,
        name: str,
        value: float,
        now_ns: int,
        own: dict[str, Any],
        group: tuple[str, ...] = (),
    ) -> tuple[str, bytes]:
        """One Sum point of `name` with `value` (this export's delta); for cumulative the
        running total goes on the wire. The expectation is booked here too."""
        stream = (name, *own.values())
        if self.temporality == CUMULATIVE:
            total = s.last.get(stream, 0.0) + value
            s.last[stream] = total
            start, wire = s.start_ns, total
        else:
            start, wire = s.export_ns, value
        point = (
            s.std_point
            + attributes(_POINT_ATTR, own)
            + fixed64(2, start)
            + fixed64(3, now_ns)
            + b"\x21"
            + _F64.pack(wire)
        )
        self._book_point(s, name, wire, stream, own, group)
        return name, ld(1, point)

    def _book_point(
        self,
        s: _Session,
        name: str,
        wire: float,
        stream: tuple[Any, ...],
        own: dict[str, Any],
        group: tuple[str, ...],
    ) -> None:
        exp = self.expected
        exp.points += 1
        cumulative = self.temporality == CUMULATIVE
        if name == "claude_code.token.usage":
            kind = dict(TOKEN_TYPES)[own["type"]]
            key = (s.sid, "claude_code_tokens_total", (own["model"], kind), (kind,))
            exp.spend(key, 0, round(wire), set_to=cumulative)
        elif name == "claude_code.cost.usage":
            key = (s.sid, "claude_code_cost_usd_total", (own["model"],), ())
            exp.spend(key, 0, round(wire * 10**9), set_to=cumulative)
        elif name == "claude_code.session.count":
            exp.spend((s.sid, "claude_code_sessions_total", (), ()), 0, round(wire), set_to=True)
        else:
            metric = _METRIC_CONTRACT[name]
            amount = round(wire * SCALES.get(metric, 1))
            if cumulative:
                exp._last[(s.sid, stream)] = ((metric, group), amount)
            else:
                exp.totals[(metric, group)] += amount

    def _turn(self, s: _Session, t: int) -> tuple[list[bytes], list[tuple[str, bytes]]]:
        light = self.spec.profile == "light"
        r = s.rng
        exp = self.expected
        now = s.start_ns + t * TURN_S * 10**9
        prompt_id = _uuid(self.spec.seed, s.index, t, 0x9)
        events = [
            self._event(
                s,
                "user_prompt",
                now,
                {
                    "prompt.id": prompt_id,
                    "prompt_length": str(r.randrange(8, 4000)),
                    "prompt": "<REDACTED>",
                    "message.uuid": _uuid(self.spec.seed, s.index, t, 0x3),
                },
            )
        ]
        exp.totals[("claude_code_prompts_total", ())] += 1
        if t == 0:
            exp.sessions += 1
            exp.users.add(s.user)
        # Every event of a session asserts "this session exists" (a total of 1, events side).
        exp.spend((s.sid, "claude_code_sessions_total", (), ()), 1, 1, set_to=True)
        model = s.model
        prices = MODELS[model]
        spent = [0, 0, 0, 0]
        cost = 0.0
        calls = 1 if light else 2
        for k in range(calls):
            tokens = (
                r.randrange(200, 3000),
                r.randrange(50, 1500),
                r.randrange(0, 60000),
                r.randrange(0, 8000),
            )
            usd = round(sum(n * p for n, p in zip(tokens, prices, strict=True)) / 1e6, 7)
            request_id = f"req_{self.spec.seed:04x}{s.index:010x}{t:06x}{k:04x}"
            events.append(
                self._event(
                    s,
                    "api_request",
                    now + (k + 1) * 900_000_000,
                    {
                        "prompt.id": prompt_id,
                        "model": model,
                        "input_tokens": tokens[0],
                        "output_tokens": tokens[1],
                        "cache_read_tokens": tokens[2],
                        "cache_creation_tokens": tokens[3],
                        "cache_creation_5m_tokens": tokens[3],
                        "cache_creation_1h_tokens": 0,
                        "cost_usd": usd,
                        "cost_usd_micros": round(usd * 1_000_000),
                        "duration_ms": r.randrange(400, 30000),
                        "ttft_ms": r.randrange(200, 3000),
                        "request_id": request_id,
                        "speed": "normal",
                        "query_source": "main",
                        "effort": "medium",
                    },
                )
            )
            exp.totals[("claude_code_api_requests_total", ())] += 1
            for i, (_, kind) in enumerate(TOKEN_TYPES):
                spent[i] += tokens[i]
                key = (s.sid, "claude_code_tokens_total", (model, kind), (kind,))
                exp.spend(key, 1, tokens[i])
            exp.spend((s.sid, "claude_code_cost_usd_total", (model,), ()), 1, round(usd * 1e9))
            cost += usd
        tool = TOOLS[(s.index + t) % len(TOOLS)]
        decision = "reject" if r.random() < 0.05 else "accept"
        tool_use_id = f"toolu_{self.spec.seed:04x}{s.index:010x}{t:06x}0000"
        if not light:
            events.append(
                self._event(
                    s,
                    "tool_decision",
                    now + 2_000_000_000,
                    {
                        "prompt.id": prompt_id,
                        "decision": decision,
                        "source": "config",
                        "tool_name": tool,
                        "tool_use_id": tool_use_id,
                        "tool_source": "builtin",
                        "permission_mode": "default",
                    },
                )
            )
            exp.totals[("claude_code_tool_decisions_total", (decision,))] += 1
            if decision == "accept":
                success = "true" if r.random() < 0.97 else "false"
                events.append(
                    self._event(
                        s,
                        "tool_result",
                        now + 2_100_000_000,
                        {
                            "prompt.id": prompt_id,
                            "tool_name": tool,
                            "tool_use_id": tool_use_id,
                            "success": success,
                            "duration_ms": str(r.randrange(2, 20000)),
                            "tool_input_size_bytes": str(r.randrange(10, 5000)),
                            "tool_result_size_bytes": str(r.randrange(10, 50000)),
                        },
                    )
                )
                exp.totals[("claude_code_tool_calls_total", (success,))] += 1

        # The metrics export of this turn.
        export = now + (TURN_S - 5) * 10**9
        points = []
        if t == 0:
            points.append(self._point(s, "claude_code.session.count", 1.0, export, {}))
        if not light:
            extra = {"model": model, "query_source": "main", "effort": "medium"}
            for i, (wire_type, _) in enumerate(TOKEN_TYPES):
                own = {**extra, "type": wire_type}
                points.append(self._point(s, "claude_code.token.usage", spent[i], export, own))
            points.append(self._point(s, "claude_code.cost.usage", cost, export, dict(extra)))
            for kind in ("cli", "user"):
                seconds = r.randrange(500, 20000) / 1000
                points.append(
                    self._point(
                        s, "claude_code.active_time.total", seconds, export, {"type": kind}, (kind,)
                    )
                )
        if tool in ("Edit", "Write") or light:
            for kind, n in (("added", r.randrange(1, 200)), ("removed", r.randrange(0, 60))):
                own = {"type": kind, "model": model}
                points.append(
                    self._point(s, "claude_code.lines_of_code.count", n, export, own, (kind,))
                )
            own = {
                "decision": decision,
                "source": "config",
                "tool_name": "Write" if tool == "Write" else "Edit",
                "language": "Python",
            }
            points.append(
                self._point(s, "claude_code.code_edit_tool.decision", 1, export, own, (decision,))
            )
        if light or (tool == "Bash" and t % 2 == 0):
            points.append(self._point(s, "claude_code.commit.count", 1, export, {}))
        if not light and tool == "Bash" and t % 10 == 2:
            points.append(self._point(s, "claude_code.pull_request.count", 1, export, {}))
        s.export_ns = export
        return events, points


def generate(spec: Spec, part: int = 0, parts: int = 1) -> tuple[list[Request], Expected]:
    """All requests of one partition, in memory, with their finalized expectation."""
    gen = Generator(spec, part, parts)
    requests = list(gen)
    return requests, gen.expected


# -- OTLP/JSON --------------------------------------------------------------------------------


def to_json(request: Request) -> bytes:
    """The same request as OTLP/JSON (lowerCamelCase, enums as integers, int64 as strings),
    the way Claude Code's http/json exporter sends it."""
    import json

    from google.protobuf.json_format import MessageToDict

    message = _message_class(request.signal).FromString(request.body)
    document = MessageToDict(message, use_integers_for_enums=True)
    return json.dumps(document, separators=(",", ":")).encode()


def _message_class(signal: str) -> Any:
    if signal == "logs":
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
            ExportLogsServiceRequest,
        )

        return ExportLogsServiceRequest
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )

    return ExportMetricsServiceRequest


# -- self-check ---------------------------------------------------------------------------


def reference_totals(requests: list[Request]) -> Counter[TotalKey]:
    """Totals recomputed from the bodies parsed with opentelemetry-proto, by the rules of
    docs/accounting.md, independently of the generator's own bookkeeping."""
    from google.protobuf.json_format import MessageToDict

    totals: Counter[TotalKey] = Counter()
    spend: dict[tuple[Any, ...], list[int]] = {}
    last: dict[tuple[Any, ...], tuple[int, int, TotalKey]] = {}
    seen: set[Any] = set()

    def value(v: dict[str, Any]) -> Any:
        (kind, raw), *_ = v.items() if v else [("none", None)]
        return int(raw) if kind == "intValue" else raw

    def side(key: tuple[Any, ...], source: int, amount: int, raise_to: bool = False) -> None:
        row = spend.setdefault(key, [0, 0])
        row[source] = max(row[source], amount) if raise_to else row[source] + amount

    for request in requests:
        doc = MessageToDict(_message_class(request.signal).FromString(request.body))
        if request.signal == "logs":
            for rl in doc["resourceLogs"]:
                for sl in rl["scopeLogs"]:
                    for rec in sl["logRecords"]:
                        a = {kv["key"]: value(kv["value"]) for kv in rec["attributes"]}
                        name = a["event.name"]
                        dedupe = a.get("request_id") or a.get("tool_use_id") or a["message.uuid"]
                        if (name, dedupe) in seen:
                            continue
                        seen.add((name, dedupe))
                        sid = a["session.id"]
                        totals[("claude_code_events_total", (name,))] += 1
                        side((sid, "claude_code_sessions_total", (), ()), 1, 1, raise_to=True)
                        if name == "user_prompt":
                            totals[("claude_code_prompts_total", ())] += 1
                        elif name == "api_request":
                            totals[("claude_code_api_requests_total", ())] += 1
                            for _, kind in TOKEN_TYPES:
                                key = (sid, "claude_code_tokens_total", (a["model"], kind), (kind,))
                                side(key, 1, a[f"{kind}_tokens"])
                            key = (sid, "claude_code_cost_usd_total", (a["model"],), ())
                            side(key, 1, round(a["cost_usd"] * 1e9))
                        elif name == "tool_decision":
                            totals[("claude_code_tool_decisions_total", (a["decision"],))] += 1
                        elif name == "tool_result":
                            totals[("claude_code_tool_calls_total", (a["success"],))] += 1
            continue
        for rm in doc["resourceMetrics"]:
            for sm in rm["scopeMetrics"]:
                for metric in sm["metrics"]:
                    s = metric["sum"]
                    cumulative = s["aggregationTemporality"].endswith("CUMULATIVE")
                    for p in s["dataPoints"]:
                        a = {kv["key"]: value(kv["value"]) for kv in p["attributes"]}
                        sid, name, v = a["session.id"], metric["name"], p["asDouble"]
                        own = tuple(sorted((k, str(x)) for k, x in a.items()))
                        t = int(p["timeUnixNano"])
                        if name == "claude_code.token.usage":
                            kind = dict(TOKEN_TYPES)[a["type"]]
                            key = (sid, "claude_code_tokens_total", (a["model"], kind), (kind,))
                            amount, group = round(v), None
                        elif name == "claude_code.cost.usage":
                            key = (sid, "claude_code_cost_usd_total", (a["model"],), ())
                            amount, group = round(v * 1e9), None
                        elif name == "claude_code.session.count":
                            key = (sid, "claude_code_sessions_total", (), ())
                            amount, group = round(v), None
                        else:
                            contract = _METRIC_CONTRACT[name]
                            label = {
                                "claude_code_lines_of_code_total": "type",
                                "claude_code_code_edit_decisions_total": "decision",
                                "claude_code_active_time_seconds_total": "type",
                            }.get(contract)
                            group = (contract, (a[label],) if label else ())
                            key, amount = None, round(v * SCALES.get(contract, 1))
                        if cumulative:
                            stream = (name, own)
                            prev = last.get(stream)
                            if prev is None or t > prev[0]:
                                last[stream] = (t, amount, group or key)  # type: ignore[assignment]
                        elif key is not None:
                            side(key, 0, amount)
                        else:
                            totals[group] += amount  # type: ignore[index]
    for _, amount, target in last.values():
        if isinstance(target, tuple) and len(target) == 4:
            row = spend.setdefault(target, [0, 0])
            row[0] += amount
        else:
            totals[target] += amount
    for (_, metric, _, group), (m, e) in spend.items():
        totals[(metric, group)] += max(m, e)
    return +totals


def selfcheck() -> None:
    """Generated bodies parse with opentelemetry-proto, carry the captured attribute sets, and
    their recomputed totals equal the generator's expectation (all temporalities, profiles)."""
    for temporality in ("delta", "cumulative"):
        for profile in ("full", "light"):
            spec = Spec(
                records=3000,
                users=7,
                sessions=23,
                batch_size=100,
                temporality=temporality,
                profile=profile,
                days=3,
            )
            requests, expected = generate(spec)
            assert sum(r.records for r in requests) == expected.records
            assert all(r.records <= spec.batch_size for r in requests)
            reference = reference_totals(requests)
            mine = +expected.totals
            if reference != mine:
                diff = {k: (mine.get(k), reference.get(k)) for k in reference.keys() | mine.keys()}
                bad = {k: v for k, v in diff.items() if v[0] != v[1]}
                raise AssertionError(f"payload self-check failed ({temporality}, {profile}): {bad}")
            # The JSON form decodes to the same message.
            from google.protobuf.json_format import Parse

            first = requests[0]
            cls = _message_class(first.signal)
            assert Parse(to_json(first), cls()) == cls.FromString(first.body)
    # Attribute names are those of the captures.
    requests, _ = generate(Spec(records=200, users=2, sessions=2, batch_size=200))
    logs = _message_class("logs").FromString(next(r for r in requests if r.signal == "logs").body)
    record = logs.resource_logs[0].scope_logs[0].log_records[0]
    names = {kv.key for kv in record.attributes}
    for expected_name in ("user.id", "session.id", "event.name", "event.sequence", "prompt.id"):
        assert expected_name in names, expected_name


if __name__ == "__main__":
    started = time.perf_counter()
    selfcheck()
    print(f"payload self-check ok ({time.perf_counter() - started:.2f} s)")
    spec = Spec(records=200_000)
    started = time.perf_counter()
    reqs, exp = generate(spec)
    took = time.perf_counter() - started
    size = sum(len(r.body) for r in reqs)
    print(
        f"{spec.label()}: {len(reqs)} requests, {exp.records} records, {size / 1e6:.1f} MB, "
        f"{took:.2f} s ({took / exp.records * 1e6:.1f} µs/record)"
    )
