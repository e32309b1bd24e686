"""OTLP AnyValue/KeyValue to plain Python values, and coercion by attribute name.

Claude Code 2.1.330 sends some numbers and booleans as strings (`duration_ms`, `success`,
`prompt_length` on tool_result/user_prompt), and clients before 2.1.122 did so for all of
them. Accounting therefore never trusts the wire type: it asks for `as_int`/`as_float`/
`as_bool` of a key, and those accept both spellings.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

AttrValue = str | bool | int | float | bytes | tuple[Any, ...] | None
Attributes = Mapping[str, AttrValue]


def any_value(value: Any) -> AttrValue:
    """Convert one `opentelemetry.proto.common.v1.AnyValue` to a hashable Python value."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return tuple(any_value(v) for v in value.array_value.values)
    if kind == "kvlist_value":
        return tuple((kv.key, any_value(kv.value)) for kv in value.kvlist_value.values)
    result: AttrValue = getattr(value, kind)
    return result


def to_dict(key_values: Iterable[Any]) -> dict[str, AttrValue]:
    """Repeated KeyValue to a dict; a later duplicate key wins, as in the OTel SDKs."""
    return {kv.key: any_value(kv.value) for kv in key_values}


def as_str(attrs: Attributes, key: str) -> str | None:
    """The attribute as a non-empty string, whatever its wire type."""
    value = attrs.get(key)
    if value.__class__ is str:  # nearly always: answer without the checks below
        return value or None
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def as_float(attrs: Attributes, key: str) -> float | None:
    """A finite number from an int, double or numeric string; None when absent or not numeric."""
    value = attrs.get(key)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def as_int(attrs: Attributes, key: str) -> int | None:
    """An integer from an int, an integral double or a numeric string."""
    value = attrs.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = as_float(attrs, key)
    return None if number is None else round(number)


def as_bool(attrs: Attributes, key: str) -> bool | None:
    """A boolean from a bool or the strings true/false (any case), 1/0."""
    value = attrs.get(key)
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
    if isinstance(value, int):
        return value != 0
    return None
