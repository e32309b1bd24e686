"""The OTLP/JSON fast path (collector/decoding/otlp_json.py) against ParseDict, the reference.

Same two claims as for the C fast path: whatever it accepts, the reference path accepts too
and decodes to identical shapes; and it accepts what Claude Code sends. Checked on the real
http-json captures, on generated documents in both field spellings, and on mutated documents.
"""

from __future__ import annotations

import base64
import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict

from collector.decoding import shapes
from collector.decoding.otlp_json import logs_rows, metrics_rows
from collector.decoding.wire import Signal, json_message
from collector.errors import IngestError
from tests.decoding.test_fast_decoder import BUILDERS

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "claude-code-2.1.330"
FAST = {"logs": logs_rows, "metrics": metrics_rows}
REFERENCE = {"logs": shapes.logs_from_message, "metrics": shapes.metrics_from_message}


def check(signal: str, document: dict[str, Any], must_accept: bool = False) -> bool:
    got = FAST[signal](copy.deepcopy(document))
    if got is None:
        assert not must_accept, "the JSON fast path declined a document it must handle"
        return False
    try:
        message = json_message(Signal(signal), document)
    except IngestError as exc:
        raise AssertionError(f"fast path accepted a document ParseDict refuses: {exc}") from exc
    assert repr(got) == repr(REFERENCE[signal](message))
    return True


def otlp_json(message, snake: bool, rng: random.Random, plain: bool = True) -> dict[str, Any]:
    """What an OTLP/JSON exporter sends: ids in hex, int64 as strings or numbers, enums as
    names or numbers. `plain`: no bytes values and no NaN/Infinity (which the fast path
    leaves to ParseDict), so that most documents exercise the fast path."""
    document = MessageToDict(message, preserving_proto_field_name=snake)

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if key in ("traceId", "spanId", "trace_id", "span_id"):
                    value = base64.b64decode(value).hex()
                elif plain and key in ("bytesValue", "bytes_value"):
                    key, value = "stringValue", "was bytes"
                elif plain and isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity"):
                    value = 1.5
                elif isinstance(value, str) and value.isdigit() and rng.random() < 0.5:
                    value = int(value)
                elif key in ("aggregationTemporality", "aggregation_temporality"):
                    value = rng.choice([value, {"AGGREGATION_TEMPORALITY_DELTA": 1}.get(value, 2)])
                else:
                    value = walk(value)
                out[key] = value
            return out
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    return walk(document)


def test_every_json_capture_takes_the_fast_path_and_decodes_identically() -> None:
    folder = FIXTURES / "http-json" / "otlp"
    entries = [json.loads(line) for line in (folder / "index.jsonl").read_text().splitlines()]
    checked = 0
    for entry in entries:
        if entry["signal"] in FAST:
            document = json.loads((folder / entry["raw"]).read_bytes())
            check(entry["signal"], document, must_accept=True)
            checked += 1
    assert checked > 5


@pytest.mark.parametrize("signal", ["logs", "metrics"])
@pytest.mark.parametrize("snake", [False, True], ids=["camel", "snake"])
def test_generated_documents_decode_identically(signal: str, snake: bool) -> None:
    rng = random.Random(11)
    accepted = 0
    for _ in range(300):
        document = otlp_json(BUILDERS[signal](rng), snake, rng)
        accepted += check(signal, document)
    assert accepted > 250


@pytest.mark.parametrize("signal", ["logs", "metrics"])
def test_bytes_and_special_doubles_are_left_to_parse_dict(signal: str) -> None:
    rng = random.Random(12)
    declined = 0
    for _ in range(100):
        document = otlp_json(BUILDERS[signal](rng), False, rng, plain=False)
        text = json.dumps(document)
        special = any(x in text for x in ('"bytesValue"', '"NaN"', "Infinity"))
        accepted = check(signal, document)
        assert not (special and accepted)
        declined += special
    assert declined > 10


LEAVES = [None, "x", "", 1, -1, 1.5, 2.0, True, [], {}, "12", "-3", "1e3", 2**70, "ff", "\ud800"]
LEAVES += ["AGGREGATION_TEMPORALITY_DELTA", "SEVERITY_NUMBER_INFO", {"stringValue": "s"}]


def mutate(node: Any, rng: random.Random) -> Any:
    """One random change somewhere in the document."""
    if isinstance(node, dict) and node:
        key = rng.choice(sorted(node))
        action = rng.randrange(6)
        if action == 0:
            node[key] = copy.deepcopy(rng.choice(LEAVES))
        elif action == 1:
            del node[key]
        elif action == 2:
            node[rng.choice(["unknownKey", "traceId", "span_id", "schemaUrl", key + "X"])] = (
                copy.deepcopy(rng.choice(LEAVES))
            )
        elif action == 3:  # the same field under its other spelling
            other = "".join("_" + c.lower() if c.isupper() else c for c in key)
            node[other if other != key else key.split("_")[0]] = copy.deepcopy(node[key])
        else:
            mutate(node[key], rng)
    elif isinstance(node, list) and node:
        i = rng.randrange(len(node))
        if rng.random() < 0.3:
            node[i] = copy.deepcopy(rng.choice(LEAVES))
        else:
            mutate(node[i], rng)
    return node


@pytest.mark.parametrize("signal", ["logs", "metrics"])
def test_mutated_documents_are_declined_or_decoded_identically(signal: str) -> None:
    rng = random.Random(23)
    accepted = declined = 0
    for _ in range(40):
        base = otlp_json(BUILDERS[signal](rng), rng.random() < 0.5, rng)
        for _ in range(40):
            document = copy.deepcopy(base)
            for _ in range(rng.randrange(1, 3)):
                mutate(document, rng)
            if check(signal, document):
                accepted += 1
            else:
                declined += 1
    assert accepted > 100 and declined > 100


def test_a_lone_surrogate_is_refused_as_by_parse_dict() -> None:
    """json.loads turns a \\ud800 escape into a str that no UTF-8 store or scrape can encode:
    the reference refuses the document (400), so the fast path must not accept it."""
    record = {"attributes": [{"key": "a", "value": {"stringValue": "ok \ud800"}}]}
    document = {"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}
    assert logs_rows(document) is None
    with pytest.raises(IngestError):
        json_message(Signal.LOGS, document)
    record["attributes"][0]["key"] = "\udfff"
    record["attributes"][0]["value"] = {"stringValue": "fine"}
    assert logs_rows(document) is None
