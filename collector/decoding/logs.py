"""ExportLogsServiceRequest to `Event`s.

Every log record is an event: Claude Code names it in the `event.name` attribute (2.1.330),
older or other emitters in the body (`claude_code.api_request`) or in LogRecord.event_name.
Unknown names are kept, never refused: the spec grows new events every few releases.
"""

from __future__ import annotations

from typing import Any

from collector.decoding.shapes import FastDecoded, logs_from_message
from collector.model import Event, EventsBatch

UNNAMED = "_unnamed"


def _strip(name: str) -> str:
    return name.removeprefix("claude_code.")


def event_name(attrs: dict[str, Any], body: str | None, record_event_name: str) -> str:
    """`event.name`, else a string body, else LogRecord.event_name, without `claude_code.`."""
    name = attrs.get("event.name")
    if isinstance(name, str) and name:
        return _strip(name)
    if body:
        return _strip(body)
    if record_event_name:
        return _strip(record_event_name)
    return UNNAMED


def decode_logs(request: Any) -> EventsBatch:
    """Flatten a request (a parsed message, or the fast path's rows) into events, keeping
    resource attributes under the record's own."""
    rows = request.rows if isinstance(request, FastDecoded) else logs_from_message(request)
    batch = EventsBatch()
    events = batch.events
    for attrs, time_ns, observed_ns, body, record_event_name in rows:
        events.append(
            Event(event_name(attrs, body, record_event_name), time_ns or observed_ns, attrs)
        )
    return batch


def count_spans(request: Any) -> int:
    """Traces are accepted and counted only, so a client with the traces beta on never fails."""
    return sum(
        len(scope_spans.spans)
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
    )
