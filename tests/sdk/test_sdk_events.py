"""Claude Code events (OTLP log records) sent by the real OpenTelemetry SDK.

Events are the only source of prompts, API requests and errors, tool decisions and tool
results, and the spend source when metrics are off. The SDK exports them one by one
(SimpleLogRecordProcessor) or in batches from a background thread (BatchLogRecordProcessor);
either way each event counts once, names the collector does not know are kept, and the
string-typed numbers of 2.1.330 (`duration_ms: "12"`, `success: "false"`) are read.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.harness import running_collector
from tests.sdk.claude_like import (
    ApiCall,
    ApiError,
    ClaudeCodeProcess,
    OtherEvent,
    Person,
    Prompt,
    Start,
    ToolUse,
    assert_exact,
    events_link,
    expected,
    split,
    typical_session,
)

BOB = Person(
    "bob-workstation",
    email="bob@example.com",
    resource=(("team.id", "payments"), ("department", "engineering")),
    terminal="vscode",
)


@pytest.mark.parametrize("transport", ["grpc", "http"])
@pytest.mark.parametrize("batch", [False, True], ids=["simple", "batch-gzip"])
def test_events_only_session_is_exact(transport, batch) -> None:
    """Events alone carry spend (api_request), sessions (any event with a session.id) and all
    the event-only families; exported one by one, or batched by a background thread and
    gzip-compressed."""
    steps = typical_session(seed=10, calls=8)
    with running_collector() as collector:
        link = events_link(collector, transport, gzip=batch)
        with ClaudeCodeProcess(BOB, events=link, batch_events=batch) as claude:
            for part in split(steps, 3):
                claude.run(part)
                claude.flush()
        claude.assert_exports_ok()
        want = expected(BOB, steps, metrics=None, events=steps)
        assert_exact(collector, want, user="bob@example.com", team="payments")


def test_unknown_and_string_typed_events() -> None:
    """New event names are counted by name and never refused; numbers and booleans sent as
    strings count like real ones; the failure of a tool is `success="false"`."""
    steps = [
        Start(),
        OtherEvent("managed_settings_resolved", (("managed_settings.trigger", "startup"),)),
        OtherEvent("plugin_loaded", (("has_hooks", True), ("skill_path_count", 0))),
        OtherEvent("hook_execution_complete", (("hook.duration_ms", "7"),)),
        OtherEvent("some_future_event", (("whatever", "x"), ("cost_usd", "not-a-number"))),
        OtherEvent("some_future_event"),
        Prompt(length=12),
        ToolUse("Bash", success=False, duration_ms=12),
        ToolUse("Bash", success=True, duration_ms=3),
        ToolUse("Grep", success=False, duration_ms=2500),
        ToolUse("WebFetch", decision="reject", source="user_reject"),
        ApiCall("claude-haiku-4-5", 10, 5, 0, 0, "0.0000150", duration_ms=321),
        ApiError("claude-haiku-4-5", "429", duration_ms=50),
        ApiError("claude-haiku-4-5", "529"),
        ApiError("claude-haiku-4-5", "529"),
    ]
    with running_collector() as collector:
        link = events_link(collector, "grpc")
        with ClaudeCodeProcess(BOB, events=link) as claude:
            claude.run(steps)
        claude.assert_exports_ok()
        want = expected(BOB, steps, metrics=None, events=steps)
        # Spelled out too, so the rule is visible and not only in the helper's arithmetic.
        assert want.series["claude_code_events_total"][("some_future_event",)] == 2
        assert want.series["claude_code_tool_calls_total"][("Bash", "false")] == 1
        assert want.series["claude_code_tool_duration_seconds_sum"][("Grep",)] == Decimal("2.5")
        assert want.series["claude_code_api_errors_total"][("claude-haiku-4-5", "529")] == 2
        assert_exact(collector, want, user="bob@example.com", team="payments")
        # Nothing was refused: not even the future event with a non-numeric `cost_usd`.
        assert collector.total("cc_collector_items_total", signal="logs", outcome="rejected") == 0


def test_same_events_exported_twice_count_once() -> None:
    """An exporter retry after a lost response re-sends the same records, possibly over another
    transport: api_request and tool events dedupe by their ids, the others by (user, session,
    name, timestamp, sequence). Re-sent in reverse order, batch by batch, they add nothing."""
    steps = typical_session(seed=11, calls=4)
    with running_collector() as collector:
        link = events_link(collector, "http")
        with ClaudeCodeProcess(BOB, events=link, batch_events=True) as claude:
            claude.run(steps)
        claude.assert_exports_ok()
        retry = events_link(collector, "grpc")
        for batch in reversed(link.history):
            assert retry.export(batch).name == "SUCCESS"
        retry.shutdown()
        want = expected(BOB, steps, metrics=None, events=steps)
        assert_exact(collector, want, user="bob@example.com", team="payments")
        sent = sum(len(batch) for batch in link.history)
        assert sent == link.sent > 0
        assert (
            collector.total("cc_collector_items_total", signal="logs", outcome="accepted") == sent
        )
        assert (
            collector.total("cc_collector_items_total", signal="logs", outcome="duplicate") == sent
        )
