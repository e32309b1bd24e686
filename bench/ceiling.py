"""The parse ceiling: how fast the same request bodies can merely be decoded, in-process.

No network, no accounting, no store: `ExportXServiceRequest.FromString` (upb, which parses
the whole body in C without building Python objects) for protobuf bodies, `json.loads` for
OTLP/JSON. No Python receiver can accept records faster than it can parse them, so the
collector's end-to-end throughput divided by this is the share of the time spent on
everything else.

`stages()` goes further along the collector's own pipeline, still in-process and without I/O
(its parse with the fast paths, then collector/decoding, then Accountant.plan_*), to show
where the CPU goes between the ceiling and the end-to-end figure. It imports the collector's
modules read-only.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.payloads import Request, _message_class


def _timed(fn: Callable[[Request], Any], requests: list[Request], repeat: int) -> list[float]:
    """records/s of `fn` over all requests, once per repeat."""
    records = sum(r.records for r in requests)
    rates = []
    for _ in range(repeat):
        started = time.perf_counter()
        for request in requests:
            fn(request)
        rates.append(records / (time.perf_counter() - started))
    return rates


def parse_protobuf(request: Request) -> Any:
    return _message_class(request.signal).FromString(request.body)


def parse_json(request: Request) -> Any:
    return json.loads(request.body)


def ceiling(requests: list[Request], as_json: bool = False, repeat: int = 5) -> dict[str, Any]:
    """Median records/s of parsing every request (`repeat` passes)."""
    rates = _timed(parse_json if as_json else parse_protobuf, requests, repeat)
    return {"records_per_s": statistics.median(rates), "runs": rates}


def stages(requests: list[Request], repeat: int = 3) -> dict[str, float]:
    """Median records/s of successive prefixes of the collector's pipeline (protobuf)."""
    from collector.accounting.engine import Accountant
    from collector.decoding import wire
    from collector.decoding.logs import decode_logs
    from collector.decoding.metrics import decode_metrics
    from collector.identity import IdentityResolver

    accountant = Accountant(IdentityResolver())

    def parse(request: Request) -> Any:
        return wire.parse_protobuf(wire.Signal(request.signal), request.body)

    def decode(request: Request) -> Any:
        message = parse(request)
        return (decode_metrics if request.signal == "metrics" else decode_logs)(message)

    def plan(request: Request) -> Any:
        batch = decode(request)
        if request.signal == "metrics":
            return accountant.plan_metrics(batch, None)
        return accountant.plan_logs(batch, None)

    out = {}
    for name, fn in (("parse", parse), ("parse+decode", decode), ("+plan", plan)):
        out[name] = statistics.median(_timed(fn, requests, repeat))
    return out
