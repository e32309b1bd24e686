"""The public metrics contract: names, types, labels and units of what `/metrics` serves.

Dashboards, alert rules and users' own queries depend on these names (docs/metrics.md), so
they are defined once, here, and both accounting (which emits increments for them) and the
exporters (which render them) refer to these objects rather than to strings.

Amounts are integers in `scale` units per base unit: cost in nano-USD (Claude Code's list
price estimates carry 7 decimals, e.g. 0.0276558 USD, which micro-USD would round), active
time in microseconds, everything else in whole units. Integers add without float drift.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Kind(enum.Enum):
    COUNTER = "counter"
    HISTOGRAM = "histogram"
    GAUGE = "gauge"


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    kind: Kind
    help: str
    #: identity labels taken from the resolved Identity, in order ("user", "team").
    identity: tuple[str, ...]
    #: labels the increment carries itself, in order.
    own: tuple[str, ...]
    scale: int = 1

    @property
    def labels(self) -> tuple[str, ...]:
        return self.identity + self.own


UT = ("user", "team")
T = ("team",)

COST = Metric(
    "claude_code_cost_usd_total",
    Kind.COUNTER,
    "Estimated spend in USD (Claude Code's list-price estimate).",
    UT,
    ("model",),
    scale=1_000_000_000,
)
TOKENS = Metric(
    "claude_code_tokens_total",
    Kind.COUNTER,
    "Tokens by type: input (without cache), output, cache_read, cache_creation.",
    UT,
    ("model", "type"),
)
SESSIONS = Metric(
    "claude_code_sessions_total", Kind.COUNTER, "Claude Code sessions started.", UT, ("terminal",)
)
LINES = Metric(
    "claude_code_lines_of_code_total",
    Kind.COUNTER,
    "Lines of code added or removed by Claude Code.",
    UT,
    ("type",),
)
COMMITS = Metric(
    "claude_code_commits_total", Kind.COUNTER, "Git commits made by Claude Code.", UT, ()
)
PULL_REQUESTS = Metric(
    "claude_code_pull_requests_total", Kind.COUNTER, "Pull requests created by Claude Code.", UT, ()
)
CODE_EDIT_DECISIONS = Metric(
    "claude_code_code_edit_decisions_total",
    Kind.COUNTER,
    "Accept/reject decisions on Edit, Write and NotebookEdit.",
    UT,
    ("tool", "decision"),
)
TOOL_DECISIONS = Metric(
    "claude_code_tool_decisions_total",
    Kind.COUNTER,
    "Tool permission decisions (tool_decision events).",
    T,
    ("tool", "decision", "source"),
)
ACTIVE_TIME = Metric(
    "claude_code_active_time_seconds_total",
    Kind.COUNTER,
    "Active time in seconds: user (typing) or cli (working).",
    UT,
    ("type",),
    scale=1_000_000,
)
PROMPTS = Metric("claude_code_prompts_total", Kind.COUNTER, "User prompts submitted.", UT, ())
API_REQUESTS = Metric(
    "claude_code_api_requests_total",
    Kind.COUNTER,
    "Model API requests (api_request events).",
    UT,
    ("model",),
)
API_ERRORS = Metric(
    "claude_code_api_errors_total",
    Kind.COUNTER,
    "Model API requests that failed after retries (api_error events).",
    T,
    ("model", "status_code"),
)
API_DURATION = Metric(
    "claude_code_api_request_duration_seconds",
    Kind.HISTOGRAM,
    "Model API request duration.",
    (),
    ("model",),
)
TOOL_CALLS = Metric(
    "claude_code_tool_calls_total",
    Kind.COUNTER,
    "Tool executions (tool_result events) by success.",
    T,
    ("tool", "success"),
)
TOOL_DURATION = Metric(
    "claude_code_tool_duration_seconds", Kind.HISTOGRAM, "Tool execution duration.", (), ("tool",)
)
EVENTS = Metric(
    "claude_code_events_total",
    Kind.COUNTER,
    "Claude Code events received, by event name (known or not).",
    (),
    ("event",),
)
USER_LAST_SEEN = Metric(
    "claude_code_user_last_seen_timestamp_seconds",
    Kind.GAUGE,
    "Unix time the collector last received telemetry for the user.",
    UT,
    (),
)

USER_INFO = Metric(
    "claude_code_user_info",
    Kind.GAUGE,
    "Always 1: the department of a user and team, for rollups by department in PromQL joins.",
    UT,
    ("department",),
)

COUNTERS: tuple[Metric, ...] = (
    COST,
    TOKENS,
    SESSIONS,
    LINES,
    COMMITS,
    PULL_REQUESTS,
    CODE_EDIT_DECISIONS,
    TOOL_DECISIONS,
    ACTIVE_TIME,
    PROMPTS,
    API_REQUESTS,
    API_ERRORS,
    TOOL_CALLS,
    EVENTS,
)
HISTOGRAMS: tuple[Metric, ...] = (API_DURATION, TOOL_DURATION)

#: Bucket bounds in seconds: API calls take 0.5-60 s, tools from milliseconds to minutes.
BUCKETS: dict[Metric, tuple[float, ...]] = {
    API_DURATION: (0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300),
    TOOL_DURATION: (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
}
