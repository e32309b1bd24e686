"""Grafana dashboards (dashboards/*.json): a static lint and real-Prometheus query tests.

The helpers here read the dashboards the way Grafana does (panels, targets, template
variables, units) and pick apart PromQL far enough to name the metrics and labels a query uses;
both test modules share them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards"
METRICS_DOC = ROOT / "docs" / "metrics.md"

#: The datasource every panel, target and query variable must use: the dashboards' own
#: `datasource` variable, never a concrete datasource uid (docs/dashboards.md).
DS_VAR = "DS_PROMETHEUS"
DS_REF = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}

#: Series a query may name although docs/metrics.md does not list them, with their labels
#: (None: any). docs/dashboards.md lists the same exceptions.
BUILTIN_SERIES: dict[str, frozenset[str] | None] = {
    # Prometheus' own series of firing and pending alerts (rule evaluation); its labels are the
    # alert's, so any.
    "ALERTS": None,
    # Prometheus' scrape health of each target.
    "up": frozenset({"job", "instance"}),
}
#: Labels Prometheus adds to every scraped series.
TARGET_LABELS = frozenset({"job", "instance"})


@dataclass(frozen=True)
class Target:
    dashboard: str
    panel: dict[str, Any]
    target: dict[str, Any]

    @property
    def title(self) -> str:
        return self.panel.get("title", "")

    @property
    def ref(self) -> str:
        return self.target["refId"]

    @property
    def expr(self) -> str:
        return self.target["expr"]

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.title!r} / {self.ref}"


def load_dashboards() -> dict[str, dict[str, Any]]:
    """dashboards/<name>.json by file name (without .json)."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def targets(name: str, dashboard: dict[str, Any]) -> Iterator[Target]:
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            yield Target(name, panel, target)


def variables(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return dashboard.get("templating", {}).get("list", [])


def variable_query(variable: dict[str, Any]) -> str:
    query = variable.get("query", "")
    return query.get("query", "") if isinstance(query, dict) else query


# -- PromQL, far enough to name metrics and labels ----------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GRAFANA_VAR = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[\w+\]\]")
_BRACES = re.compile(r"\{[^{}]*\}")
_GROUPING = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_RANGE = re.compile(r"\[[^\[\]]*\]")
_IDENT = re.compile(r"(?<![\w.$:])[A-Za-z_:][\w:]*")
_KEYWORDS = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "offset",
        "bool",
        "and",
        "or",
        "unless",
        "atan2",
        "inf",
        "nan",
    }
)
_SELECTOR = re.compile(r"(?<![\w.$:])([A-Za-z_:][\w:]*)\s*\{([^{}]*)\}")
_MATCHER_LABEL = re.compile(r"([A-Za-z_][\w]*)\s*(?:=~|!~|!=|=)")


def strip_strings(expr: str) -> str:
    return _STRING.sub('""', expr)


def metric_names(expr: str) -> set[str]:
    """Every metric name a PromQL expression selects (not functions, keywords or labels)."""
    text = _GRAFANA_VAR.sub(" 1 ", strip_strings(expr))
    text = _BRACES.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _RANGE.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        word = match.group(0)
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or word.lower() in _KEYWORDS:
            continue  # a function or aggregation (`sum (`), or a keyword
        names.add(word)
    return names


def selector_labels(expr: str) -> list[tuple[str, set[str]]]:
    """(metric, label names matched in its `{...}`) for every `metric{...}` selector."""
    text = strip_strings(expr)
    return [(m.group(1), set(_MATCHER_LABEL.findall(m.group(2)))) for m in _SELECTOR.finditer(text)]


def split_top_level(expr: str, op: str) -> list[str]:
    """`expr` split at binary `op` (one character) outside parentheses, brackets and strings."""
    text = strip_strings(expr)
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == op and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


# -- docs/metrics.md ------------------------------------------------------------------------


def documented_metrics(doc: str) -> dict[str, frozenset[str] | None]:
    """Metric name -> documented labels, from every markdown table with a Metric and a Labels
    column; names only mentioned in backticks elsewhere map to None (labels unknown)."""
    out: dict[str, frozenset[str] | None] = {}
    for name in re.findall(r"`([a-z_:][a-z0-9_:]*)`", doc):
        out.setdefault(name, None)
    header: list[str] | None = None
    for line in doc.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = [c.lower() for c in cells]
            continue
        if set("".join(cells)) <= set("-: "):
            continue  # the |---|---| line
        if "metric" not in header or "labels" not in header:
            continue
        names = re.findall(r"`([a-z_:][a-z0-9_:]*)`", cells[header.index("metric")])
        # "`scope` (`org`, `team`, `user`), `name`": the parentheses list values, not labels
        cell = re.sub(r"\([^()]*\)", "", cells[header.index("labels")])
        labels = frozenset(re.findall(r"`([a-z_][a-z0-9_]*)`", cell))
        for name in names:
            out[name] = labels
    return out


def base_metric(name: str, documented: dict[str, Any]) -> tuple[str, set[str]]:
    """The documented family of a series name, and the labels its suffix adds (`le`)."""
    if name in documented:
        return name, set()
    for suffix, extra in (("_bucket", {"le"}), ("_sum", set()), ("_count", set())):
        if name.endswith(suffix) and name[: -len(suffix)] in documented:
            return name[: -len(suffix)], extra
    if name.endswith("_total") and name[: -len("_total")] in documented:
        return name[: -len("_total")], set()
    return name, set()
