"""decode_logs: log records to Events; event name resolution; spans counted."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.decoding.logs import UNNAMED, count_spans, decode_logs
from collector.decoding.wire import Signal, parse_protobuf
from tests.builders import (
    RESOURCE,
    STANDARD,
    T0,
    any_value,
    decoded_logs,
    event,
    log_record,
    logs_request,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "claude-code-2.1.330"


def _name(record) -> str:
    (ev,) = decoded_logs(logs_request(record)).events
    return ev.name


@pytest.mark.parametrize(
    ("attribute", "body", "event_name", "expected"),
    [
        pytest.param("api_request", "claude_code.other", "x", "api_request", id="attribute-wins"),
        pytest.param("claude_code.api_request", None, None, "api_request", id="attribute-prefixed"),
        pytest.param(None, "claude_code.tool_result", "x", "tool_result", id="body-next"),
        pytest.param(None, "tool_result", None, "tool_result", id="body-unprefixed"),
        pytest.param(None, None, "claude_code.user_prompt", "user_prompt", id="event-name-last"),
        pytest.param(None, "", "user_prompt", "user_prompt", id="empty-body-skipped"),
        pytest.param("", "claude_code.api_error", None, "api_error", id="empty-attribute-skipped"),
        pytest.param(None, None, None, UNNAMED, id="unnamed"),
    ],
)
def test_event_name_resolution_order(attribute, body, event_name, expected) -> None:
    attributes = dict(STANDARD)
    if attribute is not None:
        attributes["event.name"] = attribute
    record = log_record(
        None,
        attributes,
        time_ns=T0,
        body=body,
        event_name=event_name,
    )
    assert _name(record) == expected


def test_non_string_body_falls_through_to_event_name() -> None:
    record = log_record(None, {}, time_ns=T0, event_name="claude_code.api_request")
    record.body.CopyFrom(any_value({"message": "claude_code.tool_result"}))
    assert _name(record) == "api_request"


def test_non_string_event_name_attribute_is_skipped() -> None:
    record = log_record(None, {"event.name": 7}, time_ns=T0, body="claude_code.user_prompt")
    assert _name(record) == "user_prompt"


def test_only_the_leading_prefix_is_stripped() -> None:
    assert _name(log_record("claude_code.claude_code.x", {}, time_ns=T0)) == "claude_code.x"
    assert _name(log_record("my.claude_code.x", {}, time_ns=T0)) == "my.claude_code.x"


def test_time_falls_back_to_observed_time() -> None:
    batch = decoded_logs(
        logs_request(
            log_record("a", {}, time_ns=T0, observed_ns=T0 + 5),
            log_record("b", {}, time_ns=0, observed_ns=T0 + 7),
        )
    )
    assert [e.time_ns for e in batch.events] == [T0, T0 + 7]


def test_record_attributes_win_over_resource_attributes() -> None:
    record = log_record("user_prompt", {"team.id": "mine", "prompt_length": "62"}, time_ns=T0)
    batch = decoded_logs(logs_request(record, resource={"team.id": "theirs", "os.type": "linux"}))
    (ev,) = batch.events
    assert ev.attributes == {
        "team.id": "mine",
        "os.type": "linux",
        "prompt_length": "62",
        "event.name": "user_prompt",
    }


def test_every_record_is_an_event_known_or_not() -> None:
    records = [event(n, time_ns=T0) for n in ("api_request", "never_heard_of_it", "hook_ran")]
    batch = decoded_logs(logs_request(*records))
    assert [e.name for e in batch.events] == ["api_request", "never_heard_of_it", "hook_ran"]
    assert batch.rejected.count == 0


def test_real_captures_decode_with_the_expected_names_and_attributes() -> None:
    folder = FIXTURES / "grpc" / "otlp"
    names = []
    for path in sorted(folder.glob("*_logs.pb")):
        batch = decode_logs(parse_protobuf(Signal.LOGS, path.read_bytes()))
        for ev in batch.events:
            names.append(ev.name)
            assert ev.time_ns > 0
            assert ev.attributes["service.version"] == RESOURCE["service.version"]
            assert not ev.name.startswith("claude_code.")
    assert names.count("api_request") == 4
    assert names.count("user_prompt") == 1
    assert names.count("tool_result") == names.count("tool_decision") == 3
    assert {"managed_settings_resolved", "plugin_loaded", "assistant_response"} <= set(names)


def test_count_spans() -> None:
    request = ExportTraceServiceRequest()
    for n in (2, 3):
        rs = request.resource_spans.add()
        ss = rs.scope_spans.add()
        for _ in range(n):
            ss.spans.add(name="claude_code.interaction")
        rs.scope_spans.add()  # an empty scope
    assert count_spans(request) == 5
    assert count_spans(ExportTraceServiceRequest()) == 0
