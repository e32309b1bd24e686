"""A simulated Claude Code process that reaches the collector through the real OpenTelemetry SDK.

Why: the replay tests prove the collector reads what one Claude Code build sent once. These
tests prove it stays exact when a real OTLP client behaves like real clients do: delta or
cumulative temporality, several exports per session, batching, gzip, bearer headers, many
processes at once, lost exports. A workload is a list of plain *steps* (an API call, a tool
use, a commit, ...). `ClaudeCodeProcess` turns steps into the metrics and events Claude Code
2.1.330 emits (same names, scopes and attribute shapes as tests/fixtures/claude-code-2.1.330)
and `expected()` computes what `/metrics` must then show from the steps alone, never from
collector output.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import grpc
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
    OTLPLogExporter as GrpcLogExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http._log_exporter import (
    OTLPLogExporter as HttpLogExporter,
)
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpMetricExporter,
)
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.metrics import (
    Counter as CounterInstrument,
)
from opentelemetry.sdk.metrics import (
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource

from tests.harness import RunningCollector

Transport = Literal["grpc", "http"]
Temporality = Literal["delta", "cumulative"]

VERSION = "2.1.330"
METER_SCOPE = "com.anthropic.claude_code"
EVENTS_SCOPE = "com.anthropic.claude_code.events"
#: Tools whose permission decisions Claude Code also counts as `code_edit_tool.decision`.
EDIT_TOOLS = frozenset({"Edit", "Write", "NotebookEdit"})
SMALL_MODEL = "claude-haiku-4-5"

#: name -> (unit, description), as Claude Code 2.1.330 declares its instruments.
INSTRUMENTS: dict[str, tuple[str, str]] = {
    "claude_code.session.count": ("", "Count of CLI sessions started"),
    "claude_code.token.usage": ("tokens", "Number of tokens used"),
    "claude_code.cost.usage": ("USD", "Cost of the Claude Code session"),
    "claude_code.lines_of_code.count": ("", "Count of lines of code modified"),
    "claude_code.commit.count": ("", "Number of git commits created"),
    "claude_code.pull_request.count": ("", "Number of pull requests created"),
    "claude_code.code_edit_tool.decision": ("", "Count of code editing tool permission decisions"),
    "claude_code.active_time.total": ("s", "Total active time in seconds"),
}


def _fresh_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


# -- who is running Claude Code ------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    """The identity attributes one Claude Code install sends.

    `user.id` is a stable 64-hex install id (derived from `name` here so tests can predict the
    `device:<8 hex>` actor); `resource` plays `OTEL_RESOURCE_ATTRIBUTES` (team.id, department),
    which Claude Code puts on the resource and copies onto every point and record.
    """

    name: str
    email: str | None = None
    account_uuid: str | None = None
    organization_id: str | None = None
    resource: tuple[tuple[str, str], ...] = ()
    terminal: str = "xterm-256color"

    @property
    def user_id(self) -> str:
        return hashlib.sha256(self.name.encode()).hexdigest()

    @property
    def device(self) -> str:
        """The actor the collector falls back to for this install: `device:<first 8 hex>`."""
        return f"device:{self.user_id[:8]}"


# -- workload steps ------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """The process starts a session: `session.count` += 1."""

    start_type: str = "fresh"


@dataclass(frozen=True)
class Prompt:
    """The user submits a prompt: a `user_prompt` event; later events carry its prompt.id."""

    length: int = 62


@dataclass(frozen=True)
class ApiCall:
    """One model request: token/cost metrics and an `api_request` event with the same numbers.

    `cost` is a decimal string (Claude Code's list-price estimate has 7 decimals) so the
    expected total is exact; the process sends it as a double, like Claude Code.
    """

    model: str
    input: int
    output: int
    cache_read: int
    cache_creation: int
    cost: str
    duration_ms: int = 1000
    request_id: str = field(default_factory=lambda: _fresh_id("req_"))


@dataclass(frozen=True)
class ApiError:
    """A request that failed after retries: an `api_error` event (no request_id, like 529s)."""

    model: str
    status_code: str
    duration_ms: int = 500


@dataclass(frozen=True)
class ToolUse:
    """A tool permission decision and, when accepted, its execution.

    Emits `tool_decision`, then `tool_result` (success and duration_ms as strings, as 2.1.330
    does) when accepted; for Edit/Write/NotebookEdit also the `code_edit_tool.decision` metric
    and, when accepted, `lines_of_code.count` added/removed.
    """

    tool: str
    decision: str = "accept"
    source: str = "config"
    success: bool = True
    duration_ms: int = 10
    language: str = "Python"
    added: int = 0
    removed: int = 0
    model: str = "claude-opus-5-5"
    tool_use_id: str = field(default_factory=lambda: _fresh_id("toolu_"))


@dataclass(frozen=True)
class Commit:
    """`commit.count` += 1."""


@dataclass(frozen=True)
class PullRequest:
    """`pull_request.count` += 1."""


@dataclass(frozen=True)
class Active:
    """`active_time.total` += seconds (a decimal string), type user or cli."""

    kind: str
    seconds: str


@dataclass(frozen=True)
class OtherEvent:
    """An event the collector has no handler for (assistant_response, plugin_loaded, new ones)."""

    name: str
    attrs: tuple[tuple[str, Any], ...] = ()


Step = Start | Prompt | ApiCall | ApiError | ToolUse | Commit | PullRequest | Active | OtherEvent


def typical_session(seed: int, model: str = "claude-opus-5-5", calls: int = 6) -> list[Step]:
    """A realistic session shaped like the captured one, with per-seed numbers.

    Prompt, a small-model call then `model` calls interleaved with Write/Edit/Bash tool uses
    (one rejected, one failing), a commit and a PR, an API error, active time and a few events
    the collector does not know. Costs have 7 decimals like Claude Code's estimates.
    """
    rng = random.Random(seed)

    def call(model: str) -> ApiCall:
        return ApiCall(
            model=model,
            input=rng.randint(1, 5000),
            output=rng.randint(1, 2000),
            cache_read=rng.randint(0, 40000),
            cache_creation=rng.randint(0, 8000),
            cost=str(Decimal(rng.randint(1, 999_999)) / 10**7),
            duration_ms=rng.randint(200, 20000),
        )

    steps: list[Step] = [
        Start(),
        OtherEvent("plugin_loaded", (("plugin.name", "cc-plugin-agents-md"),)),
        Prompt(length=rng.randint(5, 500)),
    ]
    tools = [
        ToolUse("Write", added=rng.randint(1, 80), model=model),
        ToolUse("Edit", added=rng.randint(1, 20), removed=rng.randint(1, 20), model=model),
        ToolUse("Edit", decision="reject", source="user_reject", model=model),
        ToolUse("Bash", success=False, duration_ms=rng.randint(1, 3000), model=model),
        ToolUse("Read", duration_ms=rng.randint(1, 50), model=model),
    ]
    for i in range(calls):
        # The first call of a session is a small-model one (title, topic), like Claude Code's.
        steps.append(call(SMALL_MODEL if i == 0 else model))
        steps.append(OtherEvent("assistant_response", (("response_length", rng.randint(1, 99)),)))
        if i < len(tools):
            steps.append(tools[i])
        if i == 1:
            steps.append(ApiError(model, "529", duration_ms=rng.randint(100, 900)))
        if i == 2:
            steps += [Commit(), PullRequest(), Prompt(length=rng.randint(5, 50))]
    steps += [
        Active("cli", f"{rng.randint(1, 99999) / 1000:.3f}"),
        Active("user", f"{rng.randint(1, 9999) / 1000:.3f}"),
    ]
    return steps


def split(steps: Sequence[Step], parts: int) -> list[list[Step]]:
    """`steps` in `parts` consecutive chunks (for flushing between them)."""
    size = math.ceil(len(steps) / parts)
    return [list(steps[i : i + size]) for i in range(0, len(steps), size)]


# -- the wire: real exporters with a loss switch ---------------------------------------------


def _temporality(kind: Temporality) -> dict[type, AggregationTemporality]:
    value = AggregationTemporality.DELTA if kind == "delta" else AggregationTemporality.CUMULATIVE
    return {
        t: value
        for t in (
            CounterInstrument,
            UpDownCounter,
            Histogram,
            ObservableCounter,
            ObservableUpDownCounter,
            ObservableGauge,
        )
    }


class MetricsLink(MetricExporter):
    """A real OTLP metric exporter plus a switch that loses exports.

    Why: a delta export that never arrives is gone for good, a cumulative one is repaired by
    the next; tests need to lose exports on purpose (a crashed exporter, a dead proxy) while
    the SDK above believes they succeeded. It also records real export failures so a test
    fails loudly when the collector refuses data rather than on a confusing total.
    """

    def __init__(self, inner: MetricExporter) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self.inner = inner
        self.lose = False
        self.sent = 0
        self.lost = 0
        self.failed = 0
        #: every batch that reached the collector, to re-send as a retry would.
        self.history: list[MetricsData] = []

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        if self.lose:
            self.lost += 1
            return MetricExportResult.SUCCESS
        result = self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        if result is MetricExportResult.SUCCESS:
            self.sent += 1
            self.history.append(metrics_data)
        else:
            self.failed += 1
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)


class EventsLink(LogRecordExporter):
    """A real OTLP log exporter that can lose chosen `api_request` events (by request_id).

    Why: with both signals on, the collector must count spend once and still exactly when the
    events pipeline drops some records (the metrics then carry the truth).
    """

    def __init__(self, inner: LogRecordExporter) -> None:
        self.inner = inner
        self.lose_requests: set[str] = set()
        self.sent = 0
        self.lost = 0
        self.failed = 0
        #: every batch that reached the collector, to re-send as a retry would.
        self.history: list[list[ReadableLogRecord]] = []

    def _lost(self, record: ReadableLogRecord) -> bool:
        attrs = record.log_record.attributes or {}
        return (
            attrs.get("event.name") == "api_request"
            and attrs.get("request_id") in self.lose_requests
        )

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        kept = [r for r in batch if not self._lost(r)]
        self.lost += len(batch) - len(kept)
        if not kept:
            return LogRecordExportResult.SUCCESS
        result = self.inner.export(kept)
        if result is LogRecordExportResult.SUCCESS:
            self.sent += len(kept)
            self.history.append(kept)
        else:
            self.failed += len(kept)
        return result

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.inner.shutdown()


def _bearer(token: str | None, grpc_style: bool) -> dict[str, str] | None:
    if token is None:
        return None
    return {"authorization" if grpc_style else "Authorization": f"Bearer {token}"}


def metrics_link(
    collector: RunningCollector,
    transport: Transport,
    temporality: Temporality,
    *,
    token: str | None = None,
    gzip: bool = False,
    max_batch: int | None = None,
) -> MetricsLink:
    """A real OTLP metric exporter (gRPC or HTTP/protobuf) aimed at `collector`.

    `max_batch` makes the SDK split each export into requests of at most that many points.
    """
    preferred = _temporality(temporality)
    inner: MetricExporter
    if transport == "grpc":
        inner = GrpcMetricExporter(
            endpoint=collector.grpc_endpoint,
            insecure=True,
            headers=_bearer(token, grpc_style=True),
            timeout=10,
            compression=grpc.Compression.Gzip if gzip else grpc.Compression.NoCompression,
            preferred_temporality=preferred,
            max_export_batch_size=max_batch,
        )
    else:
        inner = HttpMetricExporter(
            endpoint=f"{collector.http_base}/v1/metrics",
            headers=_bearer(token, grpc_style=False),
            timeout=10,
            compression=HttpCompression.Gzip if gzip else HttpCompression.NoCompression,
            preferred_temporality=preferred,
            max_export_batch_size=max_batch,
        )
    return MetricsLink(inner)


def events_link(
    collector: RunningCollector,
    transport: Transport,
    *,
    token: str | None = None,
    gzip: bool = False,
) -> EventsLink:
    """A real OTLP log exporter (gRPC or HTTP/protobuf) aimed at `collector`."""
    inner: LogRecordExporter
    if transport == "grpc":
        inner = GrpcLogExporter(
            endpoint=collector.grpc_endpoint,
            insecure=True,
            headers=_bearer(token, grpc_style=True),
            timeout=10,
            compression=grpc.Compression.Gzip if gzip else grpc.Compression.NoCompression,
        )
    else:
        inner = HttpLogExporter(
            endpoint=f"{collector.http_base}/v1/logs",
            headers=_bearer(token, grpc_style=False),
            timeout=10,
            compression=HttpCompression.Gzip if gzip else HttpCompression.NoCompression,
        )
    return EventsLink(inner)


# -- the process ----------------------------------------------------------------------------


def _iso(ns: int) -> str:
    moment = datetime.fromtimestamp(ns / 1e9, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ClaudeCodeProcess:
    """One `claude` process: its own MeterProvider and LoggerProvider, one session.

    Metrics are exported when the test calls `flush()` (and at `shutdown()`), or every
    `metric_interval_ms` by the SDK's own reader thread; events go through a Simple (export on
    emit) or Batch processor. Either signal may be off, as with OTEL_METRICS_EXPORTER /
    OTEL_LOGS_EXPORTER unset. `clock` stamps events (time_unix_nano and event.timestamp).
    """

    def __init__(
        self,
        person: Person,
        *,
        metrics: MetricsLink | None = None,
        events: EventsLink | None = None,
        session_id: str | None = None,
        batch_events: bool = False,
        metric_interval_ms: float = math.inf,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.person = person
        self._clock = clock
        self.session_id = session_id or str(uuid.uuid4())
        self.metrics = metrics
        self.events = events
        resource = Resource.create(
            {
                "service.name": "claude-code",
                "service.version": VERSION,
                "os.type": "linux",
                "host.arch": "amd64",
                **dict(person.resource),
            }
        )
        self._meter_provider: MeterProvider | None = None
        self._counters: dict[str, Any] = {}
        if metrics is not None:
            reader = PeriodicExportingMetricReader(
                metrics, export_interval_millis=metric_interval_ms
            )
            self._meter_provider = MeterProvider(
                metric_readers=[reader], resource=resource, shutdown_on_exit=False
            )
            meter = self._meter_provider.get_meter(METER_SCOPE, VERSION)
            self._counters = {
                name: meter.create_counter(name, unit=unit, description=description)
                for name, (unit, description) in INSTRUMENTS.items()
            }
        self._logger_provider: LoggerProvider | None = None
        self._logger: Any = None
        if events is not None:
            self._logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
            processor = (
                BatchLogRecordProcessor(events, schedule_delay_millis=20, max_export_batch_size=7)
                if batch_events
                else SimpleLogRecordProcessor(events)
            )
            self._logger_provider.add_log_record_processor(processor)
            self._logger = self._logger_provider.get_logger(EVENTS_SCOPE, VERSION)
        self._sequence = itertools.count()
        self._prompt_id: str | None = None
        self._closed = False

    # -- attributes ------------------------------------------------------------------------

    def _common(self) -> dict[str, Any]:
        """What Claude Code puts on every point and record (resource copied on, as it does)."""
        p = self.person
        attrs: dict[str, Any] = dict(p.resource)
        attrs["user.id"] = p.user_id
        attrs["session.id"] = self.session_id
        if p.organization_id:
            attrs["organization.id"] = p.organization_id
        if p.email:
            attrs["user.email"] = p.email
        if p.account_uuid:
            attrs["user.account_uuid"] = p.account_uuid
        attrs["anthropic.provider"] = "firstParty"
        attrs["terminal.type"] = p.terminal
        return attrs

    def _add(self, name: str, value: float, **own: Any) -> None:
        if self._meter_provider is not None:
            self._counters[name].add(float(value), {**self._common(), **own})

    def _event(self, name: str, **own: Any) -> None:
        if self._logger is None:
            return
        now = self._clock()
        attrs = {
            **self._common(),
            "event.name": name,
            "event.timestamp": _iso(now),
            "event.sequence": next(self._sequence),
        }
        if self._prompt_id is not None:
            attrs["prompt.id"] = self._prompt_id
        attrs.update(own)
        self._logger.emit(
            timestamp=now, observed_timestamp=now, body=f"claude_code.{name}", attributes=attrs
        )

    # -- steps -----------------------------------------------------------------------------

    def run(self, steps: Iterable[Step]) -> None:
        for step in steps:
            self._step(step)

    def _step(self, step: Step) -> None:
        match step:
            case Start():
                self._add("claude_code.session.count", 1, start_type=step.start_type)
            case Prompt():
                self._prompt_id = str(uuid.uuid4())
                self._event(
                    "user_prompt",
                    prompt_length=str(step.length),
                    prompt="<REDACTED>",
                    **{"message.uuid": str(uuid.uuid4())},
                )
            case ApiCall():
                self._api_call(step)
            case ApiError():
                self._event(
                    "api_error",
                    model=step.model,
                    error="Overloaded",
                    status_code=step.status_code,
                    duration_ms=step.duration_ms,
                    attempt=11,
                )
            case ToolUse():
                self._tool_use(step)
            case Commit():
                self._add("claude_code.commit.count", 1)
            case PullRequest():
                self._add("claude_code.pull_request.count", 1)
            case Active():
                self._add("claude_code.active_time.total", float(step.seconds), type=step.kind)
            case OtherEvent():
                self._event(step.name, **dict(step.attrs))

    def _api_call(self, call: ApiCall) -> None:
        spend = {"model": call.model, "query_source": "main", "effort": "medium"}
        for kind, amount in (
            ("input", call.input),
            ("output", call.output),
            ("cacheRead", call.cache_read),
            ("cacheCreation", call.cache_creation),
        ):
            self._add("claude_code.token.usage", amount, type=kind, **spend)
        self._add("claude_code.cost.usage", float(call.cost), **spend)
        self._event(
            "api_request",
            model=call.model,
            input_tokens=call.input,
            output_tokens=call.output,
            cache_read_tokens=call.cache_read,
            cache_creation_tokens=call.cache_creation,
            cost_usd=float(call.cost),
            cost_usd_micros=int(Decimal(call.cost) * 1_000_000),
            duration_ms=call.duration_ms,
            ttft_ms=call.duration_ms // 2,
            request_id=call.request_id,
            speed="normal",
            query_source="sdk",
            effort="medium",
        )

    def _tool_use(self, use: ToolUse) -> None:
        self._event(
            "tool_decision",
            decision=use.decision,
            source=use.source,
            tool_name=use.tool,
            tool_use_id=use.tool_use_id,
            tool_source="builtin",
            permission_mode="default",
        )
        if use.tool in EDIT_TOOLS:
            self._add(
                "claude_code.code_edit_tool.decision",
                1,
                decision=use.decision,
                source=use.source,
                tool_name=use.tool,
                language=use.language,
            )
        if use.decision != "accept":
            return
        for kind, lines in (("added", use.added), ("removed", use.removed)):
            if lines:
                self._add("claude_code.lines_of_code.count", lines, type=kind, model=use.model)
        self._event(
            "tool_result",
            tool_name=use.tool,
            tool_use_id=use.tool_use_id,
            success="true" if use.success else "false",
            duration_ms=str(use.duration_ms),
            tool_input_size_bytes="279",
            tool_result_size_bytes="141",
        )

    # -- lifecycle -------------------------------------------------------------------------

    def flush(self) -> None:
        """One export of everything recorded so far (what the SDK's interval timer does)."""
        if self._meter_provider is not None:
            assert self._meter_provider.force_flush(10_000), "metrics flush timed out"
        if self._logger_provider is not None:
            assert self._logger_provider.force_flush(10_000), "events flush timed out"

    def shutdown(self) -> None:
        """Exit: like Claude Code, export what is left, then close the providers.

        (A reader without a timer thread does not collect by itself at shutdown.)
        """
        if self._closed:
            return
        self._closed = True
        self.flush()
        if self._meter_provider is not None:
            self._meter_provider.shutdown()
        if self._logger_provider is not None:
            self._logger_provider.shutdown()

    def assert_exports_ok(self) -> None:
        """Every export that was not lost on purpose reached the collector and was accepted."""
        for link in (self.metrics, self.events):
            if link is not None:
                assert link.failed == 0, f"{type(link).__name__}: {link.failed} exports failed"
                assert link.sent > 0, f"{type(link).__name__}: nothing was exported"

    def __enter__(self) -> ClaudeCodeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


# -- what /metrics must show -----------------------------------------------------------------

#: family -> (identity labels, own labels): the public contract, spelled out independently of
#: collector/contract.py so a rename there fails here.
FAMILIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "claude_code_cost_usd_total": (("user", "team"), ("model",)),
    "claude_code_tokens_total": (("user", "team"), ("model", "type")),
    "claude_code_sessions_total": (("user", "team"), ("terminal",)),
    "claude_code_lines_of_code_total": (("user", "team"), ("type",)),
    "claude_code_commits_total": (("user", "team"), ()),
    "claude_code_pull_requests_total": (("user", "team"), ()),
    "claude_code_code_edit_decisions_total": (("user", "team"), ("tool", "decision")),
    "claude_code_active_time_seconds_total": (("user", "team"), ("type",)),
    "claude_code_prompts_total": (("user", "team"), ()),
    "claude_code_api_requests_total": (("user", "team"), ("model",)),
    "claude_code_api_errors_total": (("team",), ("model", "status_code")),
    "claude_code_tool_decisions_total": (("team",), ("tool", "decision", "source")),
    "claude_code_tool_calls_total": (("team",), ("tool", "success")),
    "claude_code_events_total": ((), ("event",)),
    "claude_code_api_request_duration_seconds_count": ((), ("model",)),
    "claude_code_api_request_duration_seconds_sum": ((), ("model",)),
    "claude_code_tool_duration_seconds_count": ((), ("tool",)),
    "claude_code_tool_duration_seconds_sum": ((), ("tool",)),
}
#: absolute tolerance per family; everything else must be equal. Cost is exact to 1 nano-USD.
TOLERANCE: dict[str, float] = {
    "claude_code_cost_usd_total": 1e-9,
    "claude_code_active_time_seconds_total": 1e-6,
    "claude_code_api_request_duration_seconds_sum": 1e-9,
    "claude_code_tool_duration_seconds_sum": 1e-9,
}
TOKEN_TYPES = ("input", "output", "cache_read", "cache_creation")
_CONTEXT_SUFFIX = re.compile(r"\[[^\[\]]*\]$")


def model_label(model: str) -> str:
    """The documented normalization: a context-window suffix like `[1m]` is not a new model."""
    return _CONTEXT_SUFFIX.sub("", model)


@dataclass
class Expected:
    """Expected value per family and own-label tuple (exact Decimals for money and time)."""

    series: dict[str, Counter[tuple[str, ...]]] = field(
        default_factory=lambda: defaultdict(Counter)
    )

    def add(self, family: str, labels: tuple[str, ...], amount: int | Decimal) -> None:
        assert family in FAMILIES, family
        assert len(labels) == len(FAMILIES[family][1]), (family, labels)
        self.series[family][labels] += amount  # type: ignore[assignment]

    def __add__(self, other: Expected) -> Expected:
        out = Expected()
        for source in (self, other):
            for family, series in source.series.items():
                for labels, amount in series.items():
                    out.add(family, labels, amount)
        return out

    def total(self, family: str) -> int | Decimal:
        return sum(self.series.get(family, Counter()).values())


def _spend(out: Expected, step: ApiCall) -> None:
    model = model_label(step.model)
    out.add("claude_code_cost_usd_total", (model,), Decimal(step.cost))
    for kind, amount in zip(
        TOKEN_TYPES, (step.input, step.output, step.cache_read, step.cache_creation), strict=True
    ):
        out.add("claude_code_tokens_total", (model, kind), amount)


def _from_metrics(out: Expected, step: Step) -> None:
    """What only the metrics signal reports."""
    match step:
        case ToolUse():
            if step.tool in EDIT_TOOLS:
                out.add("claude_code_code_edit_decisions_total", (step.tool, step.decision), 1)
            if step.decision == "accept":
                for kind, lines in (("added", step.added), ("removed", step.removed)):
                    if lines:
                        out.add("claude_code_lines_of_code_total", (kind,), lines)
        case Commit():
            out.add("claude_code_commits_total", (), 1)
        case PullRequest():
            out.add("claude_code_pull_requests_total", (), 1)
        case Active():
            out.add("claude_code_active_time_seconds_total", (step.kind,), Decimal(step.seconds))


def _from_events(out: Expected, step: Step) -> None:
    """What only the events signal reports."""
    seconds = Decimal(1000)
    match step:
        case Prompt():
            out.add("claude_code_prompts_total", (), 1)
            out.add("claude_code_events_total", ("user_prompt",), 1)
        case ApiCall():
            model = model_label(step.model)
            out.add("claude_code_api_requests_total", (model,), 1)
            out.add("claude_code_events_total", ("api_request",), 1)
            out.add("claude_code_api_request_duration_seconds_count", (model,), 1)
            out.add(
                "claude_code_api_request_duration_seconds_sum",
                (model,),
                Decimal(step.duration_ms) / seconds,
            )
        case ApiError():
            out.add("claude_code_api_errors_total", (model_label(step.model), step.status_code), 1)
            out.add("claude_code_events_total", ("api_error",), 1)
        case ToolUse():
            out.add("claude_code_tool_decisions_total", (step.tool, step.decision, step.source), 1)
            out.add("claude_code_events_total", ("tool_decision",), 1)
            if step.decision == "accept":
                success = "true" if step.success else "false"
                out.add("claude_code_tool_calls_total", (step.tool, success), 1)
                out.add("claude_code_events_total", ("tool_result",), 1)
                out.add("claude_code_tool_duration_seconds_count", (step.tool,), 1)
                out.add(
                    "claude_code_tool_duration_seconds_sum",
                    (step.tool,),
                    Decimal(step.duration_ms) / seconds,
                )
        case OtherEvent():
            out.add("claude_code_events_total", (step.name,), 1)


def expected(
    person: Person,
    truth: Sequence[Step],
    *,
    metrics: Sequence[Step] | None,
    events: Sequence[Step] | None,
) -> Expected:
    """What /metrics must show for one process.

    `truth` is everything the process did: spend (tokens, cost) and sessions must match it
    exactly whenever at least one signal delivered it completely (the high-water rule).
    `metrics` / `events` are the steps whose metrics / events reached the collector (None:
    that signal was off), and decide the families only that signal reports.
    """
    out = Expected()
    for step in truth:
        if isinstance(step, ApiCall):
            _spend(out, step)
        if isinstance(step, Start):
            out.add("claude_code_sessions_total", (person.terminal,), 1)
    for step in metrics or ():
        _from_metrics(out, step)
    for step in events or ():
        _from_events(out, step)
    return out


# -- comparing with a real scrape ------------------------------------------------------------

Samples = Mapping[tuple[str, tuple[tuple[str, str], ...]], float]


def scraped_total(samples: Samples, name: str, **match: str) -> float:
    """Sum of `name` over the scraped series whose labels include `match`."""
    return sum(
        value
        for (sample, labels), value in samples.items()
        if sample == name and all(dict(labels).get(k) == v for k, v in match.items())
    )


def mismatches(
    samples: Samples,
    want: Expected,
    *,
    user: str | None = None,
    team: str | None = None,
) -> list[str]:
    """Every family's series and family total compared, under an identity filter.

    With `user` (and its `team`), families labelled by user are checked for that user; with
    only `team`, families labelled by team are checked for the team; with neither, every
    family over the whole exposition (histograms and events_total carry no identity). The
    family total catches series that should not exist (an unnormalized model, a wrong label).
    """
    problems: list[str] = []
    for family, (identity, own) in FAMILIES.items():
        if user is not None:
            if "user" not in identity:
                continue
            match = {"user": user, **({"team": team} if team is not None else {})}
        elif team is not None:
            if "team" not in identity:
                continue
            match = {"team": team}
        else:
            match = {}
        tolerance = TOLERANCE.get(family, 0.0)
        series = want.series.get(family, Counter())
        for labels, amount in sorted(series.items()):
            got = scraped_total(samples, family, **match, **dict(zip(own, labels, strict=True)))
            if abs(got - float(amount)) > tolerance:
                problems.append(
                    f"{family}{dict(zip(own, labels, strict=True))} {match}: "
                    f"got {got!r}, want {amount}"
                )
        got_all = scraped_total(samples, family, **match)
        want_all = float(sum(series.values()))
        if abs(got_all - want_all) > tolerance:
            problems.append(f"{family} {match} (all series): got {got_all!r}, want {want_all}")
    return problems


def assert_exact(collector: RunningCollector, want: Expected, *, user: str, team: str) -> None:
    """One process or one user on the collector: every family, every scope, exactly."""
    samples = collector.samples()
    problems = (
        mismatches(samples, want, user=user, team=team)
        + mismatches(samples, want, team=team)
        + mismatches(samples, want)
    )
    seen = scraped_total(
        samples, "claude_code_user_last_seen_timestamp_seconds", user=user, team=team
    )
    if not time.time() - 600 < seen <= time.time() + 1:
        problems.append(f"last seen of {user}/{team}: {seen}, not a recent unix time")
    assert not problems, "\n".join(problems)
