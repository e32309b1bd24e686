"""ExportLogsServiceRequest to `Event`s.

Every log record is an event: Claude Code names it in the `event.name` attribute (2.1.330),
older or other emitters in the body (`claude_code.api_request`) or in LogRecord.event_name.
Unknown names are kept, never refused: the spec grows new events every few releases.
"""

from __future__ import annotations

from typing import Any

from collector.decoding.attributes import to_dict
from collector.model import Event, EventsBatch

UNNAMED = "_unnamed"


def _strip(name: str) -> str:
    return name.removeprefix("claude_code.")


def event_name(attrs: dict[str, Any], record: Any) -> str:
    """`event.name`, else a string body, else LogRecord.event_name, without `claude_code.`."""
    name = attrs.get("event.name")
    if isinstance(name, str) and name:
        return _strip(name)
    if record.body.WhichOneof("value") == "string_value" and record.body.string_value:
        return _strip(record.body.string_value)
    if record.event_name:
        return _strip(record.event_name)
    return UNNAMED


def decode_logs(request: Any) -> EventsBatch:
    """Flatten a request into events, keeping resource attributes under the record's own."""
    batch = EventsBatch()
    for resource_logs in request.resource_logs:
        resource = to_dict(resource_logs.resource.attributes)
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                attrs = {**resource, **to_dict(record.attributes)}
                batch.events.append(
                    Event(
                        name=event_name(attrs, record),
                        time_ns=record.time_unix_nano or record.observed_time_unix_nano,
                        attributes=attrs,
                    )
                )
    return batch


def count_spans(request: Any) -> int:
    """Traces are accepted and counted only, so a client with the traces beta on never fails."""
    return sum(
        len(scope_spans.spans)
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
    )
