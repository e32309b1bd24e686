"""Fast path from a parsed OTLP/JSON document to the decoded shapes of shapes.py.

Why: `json_format.ParseDict` builds the protobuf message field by field in Python (several
hundred microseconds per Claude Code record), then the decoders walk that message again.
Here the document from `json.loads` is read once, straight into the shapes.

Contract, as for the C fast path: the result equals what the reference path (ParseDict, then
`shapes.*_from_message`) builds, or it is None and the reference path decides, accepting or
refusing the body. Anything outside a strict subset of the proto3 JSON mapping returns None:
a value of an unexpected JSON type, an integer as anything but a JSON integer or a string of
digits, a field given under both its names, a oneof set twice, `bytesValue`, exemplars,
non-Sum data, entity references. Field names come from the message descriptors, both
spellings (`timeUnixNano`, `time_unix_nano`); names the schema does not have are ignored,
as the reference path (ignore_unknown_fields) ignores them.
tests/decoding/test_json_fast_path.py checks the contract on captures, generated and mutated
documents.
"""

from __future__ import annotations

import re
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2

from collector.decoding.attributes import AttrValue
from collector.decoding.shapes import LogRow, MetricRow, PointRow, ResourceRow


class Decline(Exception):
    """Not handled here: the reference path decides."""


_DIGITS = re.compile(r"-?[0-9]+")
#: keys wire.py rewrites from hex to base64 wherever they appear (its _HEX_ID_KEYS).
_HEX_ID_KEYS = frozenset(
    {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}
)
_INT_RANGES = {
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
}


def _fields(descriptor: Descriptor) -> dict[str, FieldDescriptor]:
    """JSON key -> field, under both the lowerCamelCase and the proto name."""
    out = {}
    for field in descriptor.fields:
        out[field.json_name] = field
        out[field.name] = field
    return out


def _message(node: Any, descriptor: Descriptor) -> dict[str, Any]:
    """A JSON object's known fields by proto name, values not None; unknown keys dropped."""
    if not isinstance(node, dict):
        raise Decline
    fields = _FIELDS[descriptor.full_name]
    out: dict[str, Any] = {}
    seen: set[str] = set()
    for key, value in node.items():
        field = fields.get(key)
        if field is None:
            # Ignored as unknown, but the reference path first rewrites hex ids found under
            # any key of these names, refusing a bad one; and nested unknowns are not ours.
            if value.__class__ is dict or value.__class__ is list:
                raise Decline
            if key in _HEX_ID_KEYS and value.__class__ is str:
                _hex(value)
            continue
        if field.name in seen:
            raise Decline  # both spellings (even one null): the reference path's rules
        seen.add(field.name)
        if value is not None:
            out[field.name] = value
    return out


def _int(value: Any, kind: int) -> int:
    if value.__class__ is int:
        number = value
    elif value.__class__ is str and _DIGITS.fullmatch(value):
        number = int(value)
    else:
        raise Decline
    low, high = _INT_RANGES[kind]
    if not low <= number <= high:
        raise Decline
    return number


def _hex(value: str) -> None:
    try:
        bytes.fromhex(value)
    except ValueError:
        raise Decline from None


def _str(value: Any) -> str:
    if value.__class__ is not str:
        raise Decline
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape: the reference
            raise Decline from None  # path refuses it, and it could never be stored
    return value


def _list(value: Any) -> list[Any]:
    if value.__class__ is not list:
        raise Decline
    return value


def _check_skipped(field: FieldDescriptor, value: Any) -> None:
    """A field whose value is not kept must still be one the reference path accepts."""
    if field.is_repeated or field.type == FieldDescriptor.TYPE_MESSAGE:
        raise Decline
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        _str(value)
    elif kind in _INT_RANGES:
        _int(value, kind)
    elif kind == FieldDescriptor.TYPE_ENUM:
        if value.__class__ is str:
            if field.enum_type.values_by_name.get(value) is None:
                raise Decline
        else:
            _int(value, FieldDescriptor.TYPE_INT32)
    elif kind == FieldDescriptor.TYPE_BOOL:
        if value.__class__ is not bool:
            raise Decline
    elif kind == FieldDescriptor.TYPE_BYTES and field.name in ("trace_id", "span_id"):
        _hex(_str(value))  # OTLP/JSON sends these as hex (wire.py rewrites them for ParseDict)
    else:
        raise Decline


def _skip_rest(fields: dict[str, Any], used: frozenset[str], descriptor: Descriptor) -> None:
    by_name = descriptor.fields_by_name
    for name, value in fields.items():
        if name not in used:
            _check_skipped(by_name[name], value)


# -- AnyValue, KeyValue ---------------------------------------------------------------------

_ANY = common_pb2.AnyValue.DESCRIPTOR
_KV = common_pb2.KeyValue.DESCRIPTOR
_ARRAY = common_pb2.ArrayValue.DESCRIPTOR
_KVLIST = common_pb2.KeyValueList.DESCRIPTOR
_INT64 = FieldDescriptor.TYPE_INT64
_MAX_DEPTH = 32


def _any(node: Any, depth: int = 0) -> AttrValue:
    if depth > _MAX_DEPTH:
        raise Decline
    fields = _message(node, _ANY)
    if not fields:
        return None
    if len(fields) > 1:
        raise Decline  # a oneof set twice
    ((name, value),) = fields.items()
    if name == "string_value":
        return _str(value)
    if name == "int_value":
        return _int(value, _INT64)
    if name == "bool_value":
        if value.__class__ is not bool:
            raise Decline
        return value
    if name == "double_value":
        if value.__class__ is not float and value.__class__ is not int:
            raise Decline
        return float(value)
    if name == "array_value":
        items = _message(value, _ARRAY).get("values", [])
        return tuple(_any(item, depth + 1) for item in _list(items))
    if name == "kvlist_value":
        items = _message(value, _KVLIST).get("values", [])
        return tuple(_key_value(item, depth + 1) for item in _list(items))
    raise Decline  # bytes_value (base64 rules), string_value_strindex


def _key_value(node: Any, depth: int = 0) -> tuple[str, AttrValue]:
    fields = _message(node, _KV)
    if "key_strindex" in fields:
        raise Decline
    key = _str(fields["key"]) if "key" in fields else ""
    value = _any(fields["value"], depth + 1) if "value" in fields else None
    return key, value


#: AnyValue's scalar members by JSON key, both spellings (the shape nearly every attribute has).
_SCALARS = {
    "stringValue": 1,
    "string_value": 1,
    "intValue": 2,
    "int_value": 2,
    "boolValue": 3,
    "bool_value": 3,
    "doubleValue": 4,
    "double_value": 4,
}


def _attributes(items: Any, into: dict[str, AttrValue]) -> dict[str, AttrValue]:
    for item in _list(items):
        # The common shape, {"key": k, "value": {"<scalar member>": v}}, read without the
        # general walk: exactly the values `_key_value` gives it, about five times faster.
        if item.__class__ is dict and len(item) == 2:
            key, wrapper = item.get("key"), item.get("value")
            if key.__class__ is str and wrapper.__class__ is dict and len(wrapper) == 1:
                ((member, raw),) = wrapper.items()
                kind = _SCALARS.get(member)
                if kind is not None and raw is not None:
                    into[_str(key)] = _scalar(kind, raw)
                    continue
        key, value = _key_value(item)
        into[key] = value
    return into


def _scalar(kind: int, raw: Any) -> AttrValue:
    """A scalar AnyValue member's value, checked as `_any` checks it."""
    if kind == 1:
        return _str(raw)
    if kind == 2:
        return _int(raw, _INT64)
    if kind == 3:
        if raw.__class__ is not bool:
            raise Decline
        return raw
    if raw.__class__ is not float and raw.__class__ is not int:
        raise Decline
    return float(raw)


_RESOURCE = resource_pb2.Resource.DESCRIPTOR
_SCOPE = common_pb2.InstrumentationScope.DESCRIPTOR
_USED_RESOURCE = frozenset({"attributes"})
_USED_SCOPE = frozenset({"name", "attributes"})


def _resource(fields: dict[str, Any]) -> dict[str, AttrValue]:
    if "resource" not in fields:
        return {}
    resource = _message(fields["resource"], _RESOURCE)
    _skip_rest(resource, _USED_RESOURCE, _RESOURCE)
    return _attributes(resource.get("attributes", []), {})


def _scope_name(fields: dict[str, Any]) -> str:
    if "scope" not in fields:
        return ""
    scope = _message(fields["scope"], _SCOPE)
    _skip_rest(scope, _USED_SCOPE, _SCOPE)
    if "attributes" in scope:
        _attributes(scope["attributes"], {})  # not kept; read so a bad one declines
    return _str(scope["name"]) if "name" in scope else ""


# -- logs ----------------------------------------------------------------------------------

_LOGS_REQUEST = logs_service_pb2.ExportLogsServiceRequest.DESCRIPTOR
_RESOURCE_LOGS = logs_pb2.ResourceLogs.DESCRIPTOR
_SCOPE_LOGS = logs_pb2.ScopeLogs.DESCRIPTOR
_RECORD = logs_pb2.LogRecord.DESCRIPTOR
_USED_RESOURCE_LOGS = frozenset({"resource", "scope_logs"})
_USED_SCOPE_LOGS = frozenset({"scope", "log_records"})
_USED_RECORD = frozenset(
    {"time_unix_nano", "observed_time_unix_nano", "body", "attributes", "event_name"}
)
_FIXED64 = FieldDescriptor.TYPE_FIXED64


def logs_rows(document: Any) -> list[LogRow] | None:
    """The logs shapes of an OTLP/JSON document, or None (see the module docstring)."""
    try:
        return _logs(document)
    except (Decline, RecursionError, OverflowError):
        return None


def _logs(document: Any) -> list[LogRow]:
    rows: list[LogRow] = []
    request = _message(document, _LOGS_REQUEST)
    for node in _list(request.get("resource_logs", [])):
        fields = _message(node, _RESOURCE_LOGS)
        _skip_rest(fields, _USED_RESOURCE_LOGS, _RESOURCE_LOGS)
        resource = _resource(fields)
        for scope_node in _list(fields.get("scope_logs", [])):
            scope_fields = _message(scope_node, _SCOPE_LOGS)
            _skip_rest(scope_fields, _USED_SCOPE_LOGS, _SCOPE_LOGS)
            _scope_name(scope_fields)
            for record_node in _list(scope_fields.get("log_records", [])):
                rows.append(_record(record_node, resource))
    return rows


def _record(node: Any, resource: dict[str, AttrValue]) -> LogRow:
    fields = _message(node, _RECORD)
    _skip_rest(fields, _USED_RECORD, _RECORD)
    body = None
    if "body" in fields:
        value = _any(fields["body"])
        body = value if value.__class__ is str else None
    attrs = (
        _attributes(fields["attributes"], dict(resource))
        if "attributes" in fields
        else {**resource}
    )
    return (
        attrs,
        _int(fields["time_unix_nano"], _FIXED64) if "time_unix_nano" in fields else 0,
        _int(fields["observed_time_unix_nano"], _FIXED64)
        if "observed_time_unix_nano" in fields
        else 0,
        body,  # type: ignore[return-value]
        _str(fields["event_name"]) if "event_name" in fields else "",
    )


# -- metrics -------------------------------------------------------------------------------

_METRICS_REQUEST = metrics_service_pb2.ExportMetricsServiceRequest.DESCRIPTOR
_RESOURCE_METRICS = metrics_pb2.ResourceMetrics.DESCRIPTOR
_SCOPE_METRICS = metrics_pb2.ScopeMetrics.DESCRIPTOR
_METRIC = metrics_pb2.Metric.DESCRIPTOR
_SUM = metrics_pb2.Sum.DESCRIPTOR
_POINT = metrics_pb2.NumberDataPoint.DESCRIPTOR
_USED_RESOURCE_METRICS = frozenset({"resource", "scope_metrics"})
_USED_SCOPE_METRICS = frozenset({"scope", "metrics"})
_USED_METRIC = frozenset({"name", "sum"})
_USED_SUM = frozenset({"data_points", "aggregation_temporality"})
_USED_POINT = frozenset(
    {"attributes", "start_time_unix_nano", "time_unix_nano", "as_double", "as_int"}
)
_TEMPORALITY = _SUM.fields_by_name["aggregation_temporality"]


def metrics_rows(document: Any) -> list[ResourceRow] | None:
    """The metrics shapes of an OTLP/JSON document, or None (see the module docstring)."""
    try:
        return _metrics(document)
    except (Decline, RecursionError, OverflowError):
        return None


def _metrics(document: Any) -> list[ResourceRow]:
    rows: list[ResourceRow] = []
    request = _message(document, _METRICS_REQUEST)
    for node in _list(request.get("resource_metrics", [])):
        fields = _message(node, _RESOURCE_METRICS)
        _skip_rest(fields, _USED_RESOURCE_METRICS, _RESOURCE_METRICS)
        resource = _resource(fields)
        scopes = []
        for scope_node in _list(fields.get("scope_metrics", [])):
            scope_fields = _message(scope_node, _SCOPE_METRICS)
            _skip_rest(scope_fields, _USED_SCOPE_METRICS, _SCOPE_METRICS)
            name = _scope_name(scope_fields)
            metrics = [_metric(m) for m in _list(scope_fields.get("metrics", []))]
            scopes.append((name, metrics))
        rows.append((resource, scopes))
    return rows


def _metric(node: Any) -> MetricRow:
    fields = _message(node, _METRIC)
    _skip_rest(fields, _USED_METRIC, _METRIC)  # other data kinds: Decline
    name = _str(fields["name"]) if "name" in fields else ""
    if "sum" not in fields:
        return (name, None, 0, [], 0)
    data = _message(fields["sum"], _SUM)
    _skip_rest(data, _USED_SUM, _SUM)
    temporality = 0
    if "aggregation_temporality" in data:
        value = data["aggregation_temporality"]
        if value.__class__ is str:
            found = _TEMPORALITY.enum_type.values_by_name.get(value)
            if found is None:
                raise Decline
            temporality = found.number
        else:
            temporality = _int(value, FieldDescriptor.TYPE_INT32)
    points = [_point(p) for p in _list(data.get("data_points", []))]
    return (name, "sum", temporality, points, len(points))


def _point(node: Any) -> PointRow:
    fields = _message(node, _POINT)
    _skip_rest(fields, _USED_POINT, _POINT)  # exemplars: Decline
    if "as_double" in fields and "as_int" in fields:
        raise Decline
    kind, value = 0, 0
    if "as_double" in fields:
        raw = fields["as_double"]
        if raw.__class__ is not float and raw.__class__ is not int:
            raise Decline
        kind, value = 1, float(raw)
    elif "as_int" in fields:
        kind, value = 2, _int(fields["as_int"], FieldDescriptor.TYPE_SFIXED64)
    return (
        _int(fields["start_time_unix_nano"], _FIXED64) if "start_time_unix_nano" in fields else 0,
        _int(fields["time_unix_nano"], _FIXED64) if "time_unix_nano" in fields else 0,
        kind,
        value,
        _attributes(fields["attributes"], {}) if "attributes" in fields else {},
    )


_FIELDS: dict[str, dict[str, FieldDescriptor]] = {
    d.full_name: _fields(d)
    for d in (
        _LOGS_REQUEST,
        _RESOURCE_LOGS,
        _SCOPE_LOGS,
        _RECORD,
        _METRICS_REQUEST,
        _RESOURCE_METRICS,
        _SCOPE_METRICS,
        _METRIC,
        _SUM,
        _POINT,
        _RESOURCE,
        _SCOPE,
        _ANY,
        _KV,
        _ARRAY,
        _KVLIST,
    )
}
