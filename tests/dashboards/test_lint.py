"""Static checks of every dashboard in dashboards/: what Grafana would accept silently but a
user would see as a broken or misleading panel.

- layout: unique panel ids, grid positions inside the 24 columns and not overlapping;
- datasource: every panel, target and query variable uses the `${DS_PROMETHEUS}` variable, and
  no concrete datasource uid appears anywhere (the JSON must import into any Grafana);
- units: every panel has one; money is `currencyUSD`, durations `s`/`ms`, shares
  `percentunit`, judged from each query (not the title);
- the metrics contract: every metric a query or variable names is in docs/metrics.md (or a
  Prometheus built-in listed in BUILTIN_SERIES) and every label a selector matches is one the
  metric documents;
- queries: instant for stat/bargauge/table panels, range for timeseries, tables in table
  format; multi-value variables are only matched with `=~`; `$__interval` only in panels with
  a fixed minimum interval (the daily charts).
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
import yaml

from tests.dashboards import (
    BUILTIN_SERIES,
    DS_REF,
    DS_VAR,
    METRICS_DOC,
    ROOT,
    TARGET_LABELS,
    Target,
    all_panels,
    base_metric,
    documented_metrics,
    load_dashboards,
    metric_names,
    selector_labels,
    split_top_level,
    targets,
    variable_query,
    variables,
)

DASHBOARDS = load_dashboards()
EXPECTED = {"overview", "team-insights", "tools-and-api", "budgets-and-alerts", "collector-health"}
TIME_UNITS = {"s", "ms", "dtdurations", "dtdurationms"}
#: metric families whose values are money (USD).
MONEY = re.compile(r"_usd(_total)?$")
#: families whose values are seconds (durations, timestamps).
SECONDS = re.compile(r"_seconds(_total|_bucket|_sum)?$")
GRAFANA_MACROS = {
    "__range",
    "__range_s",
    "__range_ms",
    "__rate_interval",
    "__interval",
    "__interval_ms",
}
PANEL_TYPES = {"row", "stat", "timeseries", "table", "bargauge", "barchart"}

params = pytest.mark.parametrize("name", sorted(DASHBOARDS))


def test_the_five_dashboards_exist() -> None:
    assert set(DASHBOARDS) == EXPECTED
    uids = [d["uid"] for d in DASHBOARDS.values()]
    titles = [d["title"] for d in DASHBOARDS.values()]
    assert len(set(uids)) == len(uids), uids
    assert len(set(titles)) == len(titles), titles


@params
def test_dashboard_header(name: str) -> None:
    d = DASHBOARDS[name]
    assert d["schemaVersion"] >= 36
    assert d.get("id") is None, "an exported id would clash on import; use uid"
    assert re.fullmatch(r"[a-z0-9-]{1,40}", d["uid"]), d["uid"]
    assert "claude-code" in d.get("tags", [])
    assert "__inputs" not in d, "use the DS_PROMETHEUS variable, not import-time inputs"


@params
def test_panel_ids_unique_and_types_known(name: str) -> None:
    panels = list(all_panels(DASHBOARDS[name]))
    ids = [p["id"] for p in panels]
    assert len(set(ids)) == len(ids), f"duplicate panel ids: {sorted(ids)}"
    assert {p["type"] for p in panels} <= PANEL_TYPES
    titles = [p["title"] for p in panels if p["type"] != "row"]
    assert len(set(titles)) == len(titles), "panel titles must be unique within a dashboard"


@params
def test_grid_positions_do_not_overlap(name: str) -> None:
    boxes = []
    for panel in DASHBOARDS[name]["panels"]:
        g = panel["gridPos"]
        assert g["w"] > 0 and g["h"] > 0, panel["title"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, f"{panel['title']}: outside 24 columns"
        assert g["y"] >= 0
        boxes.append((panel["title"], g))
    for (a, ga), (b, gb) in itertools.combinations(boxes, 2):
        overlap_x = ga["x"] < gb["x"] + gb["w"] and gb["x"] < ga["x"] + ga["w"]
        overlap_y = ga["y"] < gb["y"] + gb["h"] and gb["y"] < ga["y"] + ga["h"]
        assert not (overlap_x and overlap_y), f"{a!r} {ga} overlaps {b!r} {gb}"


@params
def test_datasource_variable_everywhere(name: str) -> None:
    d = DASHBOARDS[name]
    ds_vars = [v for v in variables(d) if v["name"] == DS_VAR]
    assert len(ds_vars) == 1, f"one `{DS_VAR}` variable"
    assert ds_vars[0]["type"] == "datasource" and ds_vars[0]["query"] == "prometheus"
    for panel in all_panels(d):
        if panel["type"] == "row":
            assert not panel.get("targets"), panel["title"]
            continue
        assert panel.get("datasource") == DS_REF, f"{panel['title']}: {panel.get('datasource')}"
        assert panel.get("targets"), f"{panel['title']}: no queries"
        for t in panel["targets"]:
            assert t.get("datasource") == DS_REF, f"{panel['title']} {t['refId']}"
    for var in variables(d):
        if var["type"] == "query":
            assert var.get("datasource") == DS_REF, var["name"]


def _walk(node: Any, path: str = "") -> Any:
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}", key, value
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


@params
def test_no_concrete_datasource_anywhere(name: str) -> None:
    """Only `${DS_PROMETHEUS}` may stand for a datasource: a uid of one Grafana's datasource
    (or a name like "Prometheus") breaks the dashboard everywhere else."""
    for path, key, value in _walk(DASHBOARDS[name]):
        if key == "datasource":
            if isinstance(value, dict):
                assert value.get("uid") == "${DS_PROMETHEUS}", f"{path}: {value}"
            elif value is not None:
                assert value == "${DS_PROMETHEUS}", f"{path}: {value!r}"
        if key == "uid" and ".datasource" in path:
            assert value == "${DS_PROMETHEUS}", f"{path}: {value!r}"


# -- units --------------------------------------------------------------------------------------


def _value_column(panel: dict[str, Any], ref: str) -> str:
    """The header a table shows for target `ref`'s value after the organize transformation."""
    field = "Value" if len(panel["targets"]) == 1 else f"Value #{ref}"
    for step in panel.get("transformations", []):
        if step["id"] == "organize":
            field = step["options"].get("renameByName", {}).get(field, field)
    return field


def unit_of(panel: dict[str, Any], ref: str) -> str | None:
    """The unit Grafana applies to target `ref`'s values: an override for its column (tables,
    by name) or its frame (by refId), else the panel default."""
    wanted = (
        ("byName", _value_column(panel, ref)) if panel["type"] == "table" else ("byFrameRefID", ref)
    )
    for override in panel["fieldConfig"].get("overrides", []):
        matcher = override["matcher"]
        if (matcher["id"], matcher.get("options")) == wanted:
            for prop in override["properties"]:
                if prop["id"] == "unit":
                    return prop["value"]
    return panel["fieldConfig"]["defaults"].get("unit")


def _families(expr: str) -> set[str]:
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in metric_names(expr)}


def expected_unit_kind(expr: str) -> str | None:
    """What a query returns, judged from the expression: "count" (a count of series),
    "share" (one quantity over the same quantity), "money", "time", or None (no rule).

    A division is a share when the dividend and a divisor select the same family, or both
    select money; money divided by anything else (a time, a number) stays money.
    """
    stripped = expr.strip()
    if re.match(r"count\b", stripped) and not split_top_level(stripped, "/")[1:]:
        return "count"
    parts = split_top_level(stripped, "/")
    if len(parts) > 1:
        head = _families(parts[0])
        rest = set().union(*(_families(p) for p in parts[1:]))
        both_money = any(MONEY.search(f) for f in head) and any(MONEY.search(f) for f in rest)
        if head & rest or both_money:
            return "share"
    families = _families(stripped)
    if "histogram_quantile" in stripped:
        return "time"
    if any(MONEY.search(f) for f in families):
        return "money"
    if any(SECONDS.search(f) for f in families):
        return "time"
    return None


def _all_targets() -> list[Target]:
    return [t for name, d in DASHBOARDS.items() for t in targets(name, d)]


@params
def test_every_panel_has_a_unit(name: str) -> None:
    for panel in all_panels(DASHBOARDS[name]):
        if panel["type"] != "row":
            assert panel["fieldConfig"]["defaults"].get("unit"), f"{panel['title']}: no unit"


@pytest.mark.parametrize("target", _all_targets(), ids=str)
def test_units_match_what_the_query_returns(target: Target) -> None:
    unit = unit_of(target.panel, target.ref)
    kind = expected_unit_kind(target.expr)
    if kind == "money":
        assert unit == "currencyUSD", f"{target}: money shown as {unit!r}"
    elif kind == "time":
        assert unit in TIME_UNITS, f"{target}: seconds shown as {unit!r}"
    elif kind == "share":
        assert unit == "percentunit", f"{target}: a share shown as {unit!r}"
    elif kind == "count":
        assert unit not in {"currencyUSD", "percentunit", *TIME_UNITS}, f"{target}: {unit!r}"


def test_the_unit_rules_see_the_headline_kinds() -> None:
    """The rules above would pass vacuously if they classified nothing; they must see money,
    time and shares in the dashboards."""
    kinds = {expected_unit_kind(t.expr) for t in _all_targets()}
    assert {"money", "time", "share", "count"} <= kinds


# -- the metrics contract -----------------------------------------------------------------------

DOCUMENTED = documented_metrics(METRICS_DOC.read_text())


def _check_names(where: str, expr: str, missing: dict[str, list[str]]) -> list[str]:
    """Label problems of `expr`; undocumented metrics are collected in `missing`."""
    problems = []
    for name in sorted(metric_names(expr)):
        base, _ = base_metric(name, DOCUMENTED)
        if name not in BUILTIN_SERIES and base not in DOCUMENTED:
            missing.setdefault(name, []).append(where)
    for name, labels in selector_labels(expr):
        if name in BUILTIN_SERIES:
            allowed = BUILTIN_SERIES[name]
            if allowed is not None and not labels <= allowed:
                problems.append(f"{where}: {name} has no label {sorted(labels - allowed)}")
            continue
        base, extra = base_metric(name, DOCUMENTED)
        documented = DOCUMENTED.get(base)
        if documented is None:
            continue  # unknown labels (or unknown metric, reported above)
        unknown = labels - documented - extra - TARGET_LABELS
        if unknown:
            problems.append(
                f"{where}: {name} has no label {sorted(unknown)} "
                f"(documented: {sorted(documented)}); the selector would match nothing"
            )
    return problems


def test_every_metric_and_label_is_in_the_contract() -> None:
    problems: list[str] = []
    missing: dict[str, list[str]] = {}
    for t in _all_targets():
        problems += _check_names(str(t), t.expr, missing)
    for name, d in DASHBOARDS.items():
        for var in variables(d):
            if var["type"] != "query":
                continue
            query = variable_query(var)
            m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query.strip())
            assert m, f"{name} ${var['name']}: expected label_values(selector, label)"
            problems += _check_names(f"{name} ${var['name']}", m.group(1), missing)
            (selector_metric,) = metric_names(m.group(1))
            base, _ = base_metric(selector_metric, DOCUMENTED)
            labels = DOCUMENTED.get(base) or frozenset()
            if m.group(2) not in labels | TARGET_LABELS:
                problems.append(f"{name} ${var['name']}: {selector_metric} has no {m.group(2)}")
    for name, users in sorted(missing.items()):
        shown = ", ".join(sorted(set(users))[:3]) + (" ..." if len(set(users)) > 3 else "")
        problems.append(f"`{name}` is not in docs/metrics.md (used by {shown})")
    assert not problems, "\n".join(problems)


def test_the_contract_parser_reads_the_tables() -> None:
    """Guard against a lint that passes because it read nothing."""
    assert DOCUMENTED["claude_code_cost_usd_total"] == {"user", "team", "model"}
    assert DOCUMENTED["claude_code_api_errors_total"] == {"team", "model", "status_code"}
    assert DOCUMENTED["cc_collector_items_total"] == {"signal", "outcome"}
    assert DOCUMENTED["claude_code_budget_usd"] == {"scope", "name", "period"}
    assert metric_names(
        'sum by (user) (rate(claude_code_tokens_total{type="x"}[$__rate_interval] offset 1d))'
        " / on (user) group_left (team) max(up) * scalar(time())"
    ) == {"claude_code_tokens_total", "up"}


# -- queries ------------------------------------------------------------------------------------


@params
def test_query_shapes(name: str) -> None:
    for panel in all_panels(DASHBOARDS[name]):
        kind = panel["type"]
        for t in panel.get("targets", []):
            where = f"{panel['title']} {t['refId']}"
            assert t.get("expr", "").strip(), where
            if kind in ("stat", "bargauge", "table", "barchart"):
                assert t.get("instant") is True and t.get("range") is False, where
            if kind == "timeseries":
                assert t.get("range") is True and not t.get("instant"), where
            if kind == "table":
                assert t.get("format") == "table", where
        if kind == "table":
            ids = [s["id"] for s in panel.get("transformations", [])]
            assert ids[:1] == ["merge"] and "organize" in ids, panel["title"]
            names = {_value_column(panel, t["refId"]) for t in panel["targets"]}
            for override in panel["fieldConfig"]["overrides"]:
                assert override["matcher"]["options"] in names, (panel["title"], override)


@params
def test_variables_are_defined_and_matched_as_regexes(name: str) -> None:
    d = DASHBOARDS[name]
    defined = {v["name"]: v for v in variables(d)}
    for var in defined.values():
        if var["type"] == "query":
            assert var["multi"] and var["includeAll"] and var["allValue"] == ".*", var["name"]
    texts = [(str(t), t.expr) for t in targets(name, d)]
    texts += [
        (f"${v['name']}", variable_query(v)) for v in defined.values() if v["type"] == "query"
    ]
    for where, expr in texts:
        for used in re.findall(r"\$\{?([A-Za-z_]\w*)", expr):
            assert used in defined or used in GRAFANA_MACROS, f"{where}: undefined ${used}"
        for label, op in re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"\$\{?\w+', expr):
            assert op == "=~", f'{where}: {label}{op}"$..." must be =~ (multi-value, All = .*)'


@params
def test_interval_only_with_a_fixed_panel_interval(name: str) -> None:
    """`$__interval` in a daily chart must be a day, whatever the time range: those panels set
    `interval` (Grafana's minimum interval) and draw bars."""
    for panel in all_panels(DASHBOARDS[name]):
        uses = any(re.search(r"\$__interval\b", t["expr"]) for t in panel.get("targets", []))
        if uses:
            assert panel.get("interval") == "1d", panel["title"]


def test_headline_panels_exist() -> None:
    """The real-Prometheus test checks these panels' numbers; renaming one must be deliberate."""
    titles = {(name, p["title"]) for name, d in DASHBOARDS.items() for p in all_panels(d)}
    for wanted in [
        ("overview", "Spend"),
        ("overview", "Spend this month"),
        ("overview", "Tokens by type"),
        ("overview", "Lines of code accepted"),
        ("overview", "Sessions"),
        ("overview", "Suggestion accept rate"),
        ("team-insights", "Members"),
        ("budgets-and-alerts", "Monthly budgets"),
        ("budgets-and-alerts", "Firing alerts"),
        ("collector-health", "Store commit latency p50 / p95"),
    ]:
        assert wanted in titles, wanted


# -- provisioning -------------------------------------------------------------------------------

PROVISIONING = ROOT / "grafana" / "provisioning"


def test_provisioned_datasource() -> None:
    """The compose stack's Prometheus, the default datasource (so `${DS_PROMETHEUS}` picks it),
    with Grafana's minimum interval equal to the collector's scrape interval: a shorter one
    would make `$__rate_interval` windows hold too few samples."""
    config = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    (ds,) = config["datasources"]
    assert (ds["name"], ds["type"], ds["uid"]) == ("Prometheus", "prometheus", "prometheus")
    assert ds["url"] == "http://prometheus:9090" and ds["isDefault"] is True
    prometheus = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    scrape = prometheus.get("global", {}).get("scrape_interval", "1m")
    for job in prometheus["scrape_configs"]:
        targets = [t for sc in job.get("static_configs", []) for t in sc.get("targets", [])]
        if any(t.startswith("collector:") for t in targets):
            scrape = job.get("scrape_interval", scrape)
    assert ds["jsonData"]["timeInterval"] == scrape


def test_provisioned_dashboards_folder() -> None:
    """Grafana loads every JSON where docker-compose.yml mounts ./dashboards."""
    config = yaml.safe_load((PROVISIONING / "dashboards" / "dashboards.yml").read_text())
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    volumes = compose["services"]["grafana"]["volumes"]
    assert "./dashboards:/var/lib/grafana/dashboards:ro" in volumes
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in volumes
