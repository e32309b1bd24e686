"""The contract metrics as exposition text, fast: what `/metrics` serves for `claude_code_*`.

Why not prometheus_client's encoders over `ContractCollector`: at 10k users the contract has
~140k series, and building a `Sample` (a namedtuple with a labels dict) per series, sorting
its labels and escaping them on every scrape costs over a second per scrape, during which
the event loop ingests nothing. Here each series' line is built once and cached with the
value it shows, so a scrape costs a lookup per unchanged series and one number format per
changed one.

The output is byte for byte what prometheus_client renders from `ContractCollector` in both
the Prometheus text format (0.0.4) and OpenMetrics (tests/exporters/test_exposition_text.py),
so the two formats, label order, escaping and number formatting stay the client library's.
`ContractCollector` remains the reference and the source of the families' HELP/TYPE lines.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import generate_latest as text_latest
from prometheus_client.metrics_core import Metric as Family
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.registry import CollectorRegistry
from prometheus_client.utils import floatToGoString

from collector import contract as c
from exporters.prometheus import ExpositionState, _fmt

_FAMILIES = {
    "counter": CounterMetricFamily,
    "gauge": GaugeMetricFamily,
    "histogram": HistogramMetricFamily,
}
#: prefix caches larger than this many entries beyond the live series are rebuilt.
_SLACK = 1024


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _go_float(d: float) -> str:
    """prometheus_client's floatToGoString for the finite values the contract holds, without
    its float() and inf/nan checks: Python's repr, with Go's exponent form from 1e6 up.
    Checked against the installed library at import (`_PROBES`); on any difference the
    library's own function is used instead."""
    s = repr(d)
    if d > 0:
        dot = s.find(".")
        if dot > 6:
            mantissa = f"{s[0]}.{s[1:dot]}{s[dot + 1 :]}".rstrip("0.")
            return f"{mantissa}e+{dot - 1:02d}"
    return s


_PROBES = (0.0, 1e-09, 0.5, 999_999.0, 1e6, 1234567.0, 123_456_789_012.0, 1.7966707e9, 9e15, 2e16)
if any(_go_float(p) != floatToGoString(p) for p in _PROBES):  # pragma: no cover
    _go_float = floatToGoString


def _go(n: int) -> str:
    """`_go_float(float(n))` for counters, with the common small case spelled out."""
    return f"{n}.0" if 0 <= n < 1_000_000 else _go_float(float(n))


def _scaled(scale: int, amount: int) -> str:
    return _go_float(amount / scale)


def _seconds(ns: int) -> str:
    return _go_float(ns / 1e9)


def _prefix(name: str, label_names: tuple[str, ...], values: tuple[str, ...]) -> str:
    """`name{a="x",b="y"} `, labels sorted by name as prometheus_client writes them."""
    pairs = sorted(zip(label_names, values, strict=True))
    if not pairs:
        return name + " "
    return name + "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "} "


class _Header:
    """The HELP/TYPE lines of each contract family in both formats, rendered once by
    prometheus_client from an empty family (so escaping and OpenMetrics naming are its)."""

    def __init__(self) -> None:
        self._text: dict[str, str] = {}
        self._openmetrics: dict[str, str] = {}

    def get(self, name: str, help_text: str, kind: str, openmetrics: bool) -> str:
        cache = self._openmetrics if openmetrics else self._text
        found = cache.get(name)
        if found is None:
            family = _FAMILIES[kind](name, help_text, labels=())
            registry = CollectorRegistry(auto_describe=False)
            registry.register(_One(family))
            rendered = (openmetrics_latest if openmetrics else text_latest)(registry).decode()
            found = cache[name] = rendered.removesuffix("# EOF\n")
        return found


class _One:
    def __init__(self, family: Family) -> None:
        self.family = family

    def collect(self) -> list[Family]:
        return [self.family]


class ContractRenderer:
    """Renders an `ExpositionState` as exposition text; one per state, used on the loop."""

    def __init__(self, state: ExpositionState, clock: Callable[[], int] = time.time_ns) -> None:
        self.state = state
        self.clock = clock
        self._headers = _Header()
        #: family name -> series key -> cached text (see `_lines`, `_histogram_prefixes`).
        self._caches: dict[str, dict[tuple[str, ...], Any]] = {}

    def render(self, openmetrics: bool = False) -> str:
        state = self.state
        state.sweep(self.clock())  # idle users leave even when no data is arriving
        out: list[str] = []
        add = out.append
        for metric, series in state.counters.items():
            add(self._headers.get(metric.name, metric.help, "counter", openmetrics))
            scale = metric.scale
            fmt = _go if scale == 1 else functools.partial(_scaled, scale)
            add(self._lines(metric.name, metric.labels, series, fmt))
        for metric, hists in state.histograms.items():
            add(self._headers.get(metric.name, metric.help, "histogram", openmetrics))
            cache = self._cache(metric.name, hists)
            for labels, hist in hists.items():
                lines_of = cache.get(labels)
                if lines_of is None:
                    lines_of = cache[labels] = self._histogram_prefixes(metric, labels)
                counts = (*hist.buckets, hist.count, hist.count)  # +Inf and _count: the count
                for prefix, n in zip(lines_of[:-1], counts, strict=True):
                    add(prefix + _go(n) + "\n")
                add(lines_of[-1] + _go_float(hist.sum_us / 1_000_000) + "\n")
        seen = c.USER_LAST_SEEN
        add(self._headers.get(seen.name, seen.help, "gauge", openmetrics))
        add(self._lines(seen.name, seen.labels, state.last_seen, _seconds))
        info = c.USER_INFO
        add(self._headers.get(info.name, info.help, "gauge", openmetrics))
        cache = self._cache(info.name, state.departments)
        lines = []
        for key, department in state.departments.items():
            found = cache.get(key)
            if found is None or found[0] != department:
                line = _prefix(info.name, info.labels, (*key, department)) + "1.0\n"
                found = cache[key] = (department, line)
            lines.append(found[1])
        add("".join(lines))
        return "".join(out)

    def _lines(
        self,
        name: str,
        label_names: tuple[str, ...],
        series: dict[tuple[str, ...], int],
        fmt: Callable[[int], str],
    ) -> str:
        """One family's sample lines. Each series' last line is cached with the value it
        showed: between two scrapes most series do not change, and those cost one lookup."""
        cache = self._cache(name, series)
        lines = []
        append = lines.append
        for key, value in series.items():
            found = cache.get(key)
            if found is not None and found[0] == value:
                append(found[1])
                continue
            if found is None:
                prefix = _prefix(name, label_names, key)
            else:  # the value is the text after the line's last space
                prefix = found[1][: found[1].rindex(" ") + 1]
            line = prefix + fmt(value) + "\n"
            cache[key] = (value, line)
            append(line)
        return "".join(lines)

    @staticmethod
    def _histogram_prefixes(metric: c.Metric, labels: tuple[str, ...]) -> tuple[str, ...]:
        """Bucket lines (each bound, then +Inf), `_count`, `_sum`."""
        names = (*metric.labels, "le")
        bounds = [_fmt(b) for b in c.BUCKETS[metric]] + ["+Inf"]
        buckets = [_prefix(metric.name + "_bucket", names, (*labels, b)) for b in bounds]
        return (
            *buckets,
            _prefix(metric.name + "_count", metric.labels, labels),
            _prefix(metric.name + "_sum", metric.labels, labels),
        )

    def _cache(self, name: str, live: dict) -> dict:  # type: ignore[type-arg]
        """The line cache of one family, pruned when series left (idle users)."""
        cache = self._caches.get(name)
        if cache is None or len(cache) > len(live) + _SLACK:
            old = cache or {}
            cache = self._caches[name] = {k: v for k, v in old.items() if k in live}
        return cache
