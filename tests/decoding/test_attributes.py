"""AnyValue conversion and coercion of attributes by name, whatever their wire type."""

from __future__ import annotations

import math

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from collector.decoding.attributes import any_value, as_bool, as_float, as_int, as_str, to_dict
from tests.builders import any_value as build
from tests.builders import key_values


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("text", "text"),
        (True, True),
        (False, False),
        (0, 0),
        (-(2**63), -(2**63)),
        (1.5, 1.5),
        (b"\x00\xff", b"\x00\xff"),
        (["a", 1, True], ("a", 1, True)),
        ([], ()),
        ({"k": "v", "n": 2}, (("k", "v"), ("n", 2))),
        ([["nested"], {"x": 1.0}], (("nested",), (("x", 1.0),))),
    ],
)
def test_any_value_to_python(value: object, expected: object) -> None:
    converted = any_value(build(value))
    assert converted == expected
    assert type(converted) is type(expected)
    hash(converted)  # usable in stream keys


def test_unset_any_value_is_none() -> None:
    assert any_value(AnyValue()) is None


def test_to_dict_later_duplicate_key_wins() -> None:
    kvs = [*key_values({"a": 1, "b": "x"}), KeyValue(key="a", value=AnyValue(int_value=2))]
    assert to_dict(kvs) == {"a": 2, "b": "x"}


ATTRS = {
    "int": 12,
    "zero": 0,
    "str_int": "12",
    "str_padded": " 12 ",
    "str_float": "12.75",
    "str_float_int": "1259.0",
    "double": 1035.0,
    "double_frac": 0.0276558,
    "nan": math.nan,
    "inf": math.inf,
    "str_nan": "NaN",
    "str_inf": "inf",
    "true": True,
    "false": False,
    "str_true": "true",
    "str_TRUE": "TRUE",
    "str_false": " False ",
    "str_1": "1",
    "str_0": "0",
    "word": "lots",
    "empty": "",
    "bytes": b"12",
    "array": (1, 2),
    "none": None,
}


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("int", 12),
        ("zero", 0),
        ("str_int", 12),
        ("str_padded", 12),
        ("str_float_int", 1259),
        ("double", 1035),
        ("str_float", 13),
        ("nan", None),
        ("inf", None),
        ("str_nan", None),
        ("true", None),  # a bool is not a number
        ("false", None),
        ("word", None),
        ("empty", None),
        ("bytes", None),
        ("array", None),
        ("none", None),
        ("missing", None),
    ],
)
def test_as_int(key: str, expected: int | None) -> None:
    got = as_int(ATTRS, key)
    assert got == expected
    if expected is not None:
        assert type(got) is int


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("int", 12.0),
        ("str_int", 12.0),
        ("str_padded", 12.0),
        ("str_float", 12.75),
        ("double_frac", 0.0276558),
        ("nan", None),
        ("inf", None),
        ("str_nan", None),
        ("str_inf", None),
        ("true", None),
        ("word", None),
        ("empty", None),
        ("bytes", None),
        ("missing", None),
    ],
)
def test_as_float(key: str, expected: float | None) -> None:
    got = as_float(ATTRS, key)
    assert got == expected
    if expected is not None:
        assert type(got) is float


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("true", True),
        ("false", False),
        ("str_true", True),
        ("str_TRUE", True),
        ("str_false", False),
        ("str_1", True),
        ("str_0", False),
        ("int", True),
        ("zero", False),
        ("word", None),
        ("empty", None),
        ("none", None),
        ("missing", None),
    ],
)
def test_as_bool(key: str, expected: bool | None) -> None:
    assert as_bool(ATTRS, key) is expected


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("str_int", "12"),
        ("str_padded", " 12 "),
        ("int", "12"),
        ("zero", "0"),
        ("double", "1035"),  # an integral double prints as an int: 529.0 -> "529"
        ("double_frac", "0.0276558"),
        ("true", "true"),
        ("false", "false"),
        ("empty", None),
        ("none", None),
        ("missing", None),
    ],
)
def test_as_str(key: str, expected: str | None) -> None:
    assert as_str(ATTRS, key) == expected
