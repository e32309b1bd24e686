"""Every query of every dashboard, run by a real Prometheus against a real collector that real
OpenTelemetry SDK clients fed a known workload.

Setup (once for the module, ~15 s):
1. a collector on loopback (SQLite store, budgets configured) and Debian's `prometheus` binary
   scraping its /metrics every second, with prometheus/rules/*.yml loaded so a broken rule
   file fails here too;
2. part 1 of the workload (Alice and Carol, one session each) through the real SDK exporters;
   wait until Prometheus holds exactly what the collector's /metrics shows; remember that
   moment (`t_mid`);
3. part 2 (Alice again, Bob, Dan) the same way.

Then each panel target is rendered as Grafana would render it (template variables as Grafana
formats multi-value regexes, `$__range`, `$__interval` with the panel's minimum interval,
`$__rate_interval`, time range aligned to the step) and sent to Prometheus' HTTP API: instant
queries for stat, bar gauge and table panels, range queries for time series. Every query must
succeed without warnings and, with every variable on All, return data (except the few panels
listed in MAY_BE_EMPTY). The headline numbers must equal what the workload implies:

- over a range that covers everything: spend, spend this month, tokens by type, lines, accept
  rate, sessions, commits/PRs, active users, the members table per user, teams, departments,
  budgets used and the month-end forecast, and the daily charts' bar for today;
- over a range that starts at `t_mid`: only part 2, which proves the range panels are exact
  differences of the counters rather than totals since the collector started;
- with a team/user selection and with multi-value selections: that subset.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporters.store_gauges import StoreGauges
from tests.dashboards import (
    ROOT,
    Target,
    load_dashboards,
    targets,
    variable_query,
    variables,
)
from tests.harness import RunningCollector, make_config, running_collector
from tests.sdk.claude_like import (
    FAMILIES,
    ClaudeCodeProcess,
    Expected,
    Person,
    Step,
    events_link,
    expected,
    metrics_link,
    split,
    typical_session,
)

SCRAPE_S = 1
RANGE_S = 300
JOB = "claude-code-collector"  # as in prometheus/prometheus.yml (the alert rules select it)
START_TIMEOUT_S = 30.0
SCRAPE_TIMEOUT_S = 30.0
#: the shortest range starting at t_mid that the since-the-middle test queries.
MID_RANGE_MIN_S = 5

OPUS = "claude-opus-5-5"
SONNET = "claude-sonnet-4-5"


@dataclass(frozen=True)
class Member:
    person: Person
    user: str
    team: str
    department: str


ALICE = Member(
    Person(
        "alice-laptop",
        email="alice@example.com",
        resource=(("team.id", "core"), ("department", "platform")),
    ),
    "alice@example.com",
    "core",
    "platform",
)
BOB = Member(
    Person(
        "bob-desktop",
        email="bob@example.com",
        resource=(("team.id", "core"), ("department", "platform")),
        terminal="vscode",
    ),
    "bob@example.com",
    "core",
    "platform",
)
CAROL = Member(
    Person(
        "carol-mbp",
        email="carol@example.com",
        resource=(("team.id", "payments"), ("department", "finance-eng")),
    ),
    "carol@example.com",
    "payments",
    "finance-eng",
)
DAN = Member(
    Person(
        "dan-vm",
        email="dan@example.com",
        resource=(("team.id", "payments"), ("department", "finance-eng")),
    ),
    "dan@example.com",
    "payments",
    "finance-eng",
)
MEMBERS = (ALICE, BOB, CAROL, DAN)


@dataclass(frozen=True)
class Run:
    """One Claude Code process: who, which session, and how it reaches the collector."""

    member: Member
    seed: int
    model: str
    transport: str
    temporality: str

    @property
    def steps(self) -> list[Step]:
        return typical_session(self.seed, model=self.model, calls=6)

    def expected(self) -> Expected:
        steps = self.steps
        return expected(self.member.person, steps, metrics=steps, events=steps)


PART_1 = (
    Run(ALICE, 11, OPUS, "grpc", "delta"),
    Run(CAROL, 12, SONNET, "http", "cumulative"),
)
PART_2 = (
    Run(ALICE, 13, OPUS, "http", "cumulative"),
    Run(BOB, 14, OPUS, "grpc", "cumulative"),
    Run(DAN, 15, SONNET, "grpc", "delta"),
)
BUDGETS = [
    {"scope": "org", "period": "month", "usd": 10},
    {"scope": "team", "name": "core", "period": "month", "usd": 2.5},
    {"scope": "user", "name": CAROL.user, "period": "month", "usd": 1},
    {"scope": "team", "name": "payments", "period": "day", "usd": 0.5},
]

#: Panels that may rightly return nothing for this workload (with every variable on All).
MAY_BE_EMPTY = {
    ("budgets-and-alerts", "Firing alerts"): "no alert fires unless a rule's condition holds",
    ("budgets-and-alerts", "Firing alerts over time"): "likewise",
    ("collector-health", "Rejected, duplicate and stale records"): "nothing is refused or resent",
    ("collector-health", "Decode errors and label overflow"): "no bad bodies, no label cap hit",
    ("collector-health", "State evictions"): "no state expires within the test",
}


# -- the workload and what it implies -----------------------------------------------------------


@dataclass
class Totals:
    """What the workload implies, per user (and team), from the steps alone."""

    runs: list[Run] = field(default_factory=list)

    def add(self, runs: tuple[Run, ...]) -> None:
        self.runs += runs

    def expected(self) -> Expected:
        out = Expected()
        for run in self.runs:
            out = out + run.expected()
        return out

    def by_user(self, family: str, **own: str) -> dict[str, float]:
        """{user: total of `family`} over series whose own labels include `own` (0 for a
        member who did not run anything here)."""
        out = {member.user: 0.0 for member in MEMBERS}
        for run in self.runs:
            out[run.member.user] += _sum(run.expected(), family, **own)
        return out


def _series(want: Expected, family: str) -> Iterator[tuple[dict[str, str], Decimal]]:
    """(own labels, amount) of each expected series of `family`."""
    names = FAMILIES[family][1]
    for labels, amount in want.series.get(family, Counter()).items():
        yield dict(zip(names, labels, strict=True)), Decimal(amount)


def _sum(want: Expected, family: str, **own: str) -> float:
    return float(
        sum(
            (n for labels, n in _series(want, family) if own.items() <= labels.items()),
            Decimal(0),
        )
    )


def _by(want: Expected, family: str, label: str) -> dict[str, float]:
    out: dict[str, Decimal] = defaultdict(Decimal)
    for labels, amount in _series(want, family):
        out[labels[label]] += amount
    return {k: float(v) for k, v in out.items()}


def send(collector: RunningCollector, runs: tuple[Run, ...]) -> None:
    """Each run as its own Claude Code process through the real SDK exporters, exported in
    three flushes, then closed (its last export), like a session that ends."""
    for run in runs:
        process = ClaudeCodeProcess(
            run.member.person,
            metrics=metrics_link(collector, run.transport, run.temporality),
            events=events_link(collector, run.transport),
        )
        with process:
            for part in split(run.steps, 3):
                process.run(part)
                process.flush()
        process.assert_exports_ok()


# -- a real Prometheus ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class QueryError(AssertionError):
    pass


class Prometheus:
    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        self.log = log

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def api(self, path: str, method: str = "POST", **params: Any) -> Any:
        """Call the HTTP API; the `data` of a success without warnings, else QueryError."""
        query = urllib.parse.urlencode(params, doseq=True)
        if method == "GET":
            request = urllib.request.Request(f"{self.url}{path}?{query}")
        else:
            request = urllib.request.Request(self.url + path, data=query.encode())
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as exc:  # 400/422/503 carry a JSON error
            with exc:
                text = exc.read().decode(errors="replace")
            try:
                answer = json.loads(text)
            except ValueError:
                raise QueryError(f"HTTP {exc.code}: {text}") from None
        if answer.get("status") != "success":
            raise QueryError(f"{answer.get('errorType')}: {answer.get('error')}")
        if answer.get("warnings"):
            raise QueryError(f"warnings: {answer['warnings']}")
        return answer["data"]

    def instant(self, query: str, at: float) -> list[dict[str, Any]]:
        data = self.api("/api/v1/query", query=query, time=f"{at:.3f}")
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def range(self, query: str, start: float, end: float, step: int) -> list[dict[str, Any]]:
        data = self.api("/api/v1/query_range", query=query, start=start, end=end, step=step)
        return data["result"]


def _wait_ready(process: subprocess.Popen[bytes], prom: Prometheus) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            pytest.fail(f"prometheus exited with {process.returncode}:\n{prom.log_tail()}")
        try:
            with urllib.request.urlopen(prom.url + "/-/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as exc:  # 503 while starting
            exc.close()
        except OSError:  # refused, reset, timed out: not listening yet
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"prometheus not ready after {START_TIMEOUT_S} s:\n{prom.log_tail()}")
        time.sleep(0.1)


@contextmanager
def running_prometheus(scrape_target: str) -> Iterator[Prometheus]:
    """Debian's prometheus on a free loopback port, scraping `scrape_target` every second,
    with the repository's rule files; stopped and deleted at the end."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(
            "the `prometheus` binary is not installed; run `make deps-debian` (as root, installs "
            "Debian's prometheus package)",
            pytrace=False,
        )
    workdir = Path(tempfile.mkdtemp(prefix="cc-prometheus-"))
    rule_dir = ROOT / "prometheus" / "rules"
    rules = sorted(str(p) for p in [*rule_dir.glob("*.yml"), *rule_dir.glob("*.yaml")])
    config = {
        "global": {
            "scrape_interval": f"{SCRAPE_S}s",
            "scrape_timeout": f"{SCRAPE_S}s",
            "evaluation_interval": f"{SCRAPE_S}s",
        },
        "rule_files": rules,
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [scrape_target]}]}],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = workdir / "prometheus.log"
    prom = Prometheus(f"http://127.0.0.1:{_free_port()}", log)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address={prom.url.removeprefix('http://')}",
                "--storage.tsdb.retention.time=1d",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    try:
        _wait_ready(process, prom)
        yield prom
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


# -- the stack ------------------------------------------------------------------------------------


def refresh_store_gauges(collector: RunningCollector) -> None:
    """Run the store gauges' refresh now (the collector runs it every 30 s), so month-to-date
    and active users include what was just sent."""
    gauges = [v for v in vars(collector.service).values() if isinstance(v, StoreGauges)]
    if len(gauges) != 1:
        pytest.fail(
            "the collector serves no store gauges (claude_code_cost_month_to_date_usd, ...): "
            "exporters/store_gauges.StoreGauges is not wired into CollectorService",
            pytrace=False,
        )
    asyncio.run_coroutine_threadsafe(gauges[0].refresh(), collector.loop).result(30)


def _series_key(name: str, labels: dict[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(
        sorted((k, v) for k, v in labels.items() if k not in ("__name__", "job", "instance"))
    )


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


def settle(collector: RunningCollector, prom: Prometheus) -> None:
    """Wait until Prometheus' latest samples of every claude_code_* series equal the
    collector's own /metrics (bounded; not a timed assertion)."""
    refresh_store_gauges(collector)
    deadline = time.monotonic() + SCRAPE_TIMEOUT_S
    while True:
        want = {k: v for k, v in collector.samples().items() if k[0].startswith("claude_code_")}
        got = {
            _series_key(r["metric"]["__name__"], r["metric"]): float(r["value"][1])
            for r in prom.instant('{__name__=~"claude_code_.+"}', time.time())
        }
        differ = sorted(
            k
            for k in want.keys() | got.keys()
            if not _close(want.get(k, math.nan), got.get(k, math.nan))
        )
        if not differ:
            return
        if time.monotonic() > deadline:
            shown = "\n".join(
                f"{k}: collector {want.get(k)}, prometheus {got.get(k)}" for k in differ[:10]
            )
            pytest.fail(f"Prometheus did not catch up with /metrics:\n{shown}\n{prom.log_tail()}")
        time.sleep(0.2)


@dataclass
class Stack:
    collector: RunningCollector
    prom: Prometheus
    everything: Totals
    since_mid: Totals
    #: after part 1 was scraped and before part 2 was sent.
    t_mid: float
    t_start: float
    #: when the instant queries are evaluated (after everything was scraped), ms precision.
    now: float


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    config = make_config({"extensions": {"budgets": BUDGETS}})
    with running_collector(config) as collector:
        target = collector.metrics_url.removeprefix("http://").removesuffix("/metrics")
        with running_prometheus(target) as prom:
            t_start = time.time()
            everything, since_mid = Totals(), Totals()
            send(collector, PART_1)
            everything.add(PART_1)
            settle(collector, prom)
            t_mid = time.time()
            time.sleep(1.5)  # no scrape that starts before t_mid + 1 s can hold part 2
            send(collector, PART_2)
            everything.add(PART_2)
            since_mid.add(PART_2)
            settle(collector, prom)
            # A range from t_mid to now must hold a few scrapes on either side of t_mid.
            time.sleep(max(0.0, t_mid + MID_RANGE_MIN_S + 0.5 - time.time()))
            yield Stack(
                collector, prom, everything, since_mid, t_mid, t_start, round(time.time(), 3)
            )


# -- rendering queries as Grafana does ---------------------------------------------------------

DASHBOARDS = load_dashboards()
ALL_TARGETS = [t for name, d in DASHBOARDS.items() for t in targets(name, d)]
Selection = dict[str, list[str] | None]
#: every variable on All.
ALL: Selection = {"team": None, "user": None, "model": None, "job": None, "instance": None}


def grafana_value(values: list[str] | None) -> str:
    """A multi-value, include-All variable as Grafana's Prometheus datasource interpolates it:
    All is the allValue `.*`; values are regex-escaped (a backslash pair before each special
    character, i.e. one literal backslash in the PromQL string) and joined as `(a|b)`."""
    if values is None:
        return ".*"
    escaped = [re.sub(r"([\\$^*{}\[\]'+?.()|])", r"\\\\\1", v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def _duration_s(text: str | None) -> int | None:
    if not text:
        return None
    m = re.fullmatch(r"(\d+)([smhd])", text)
    assert m, text
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def render(expr: str, selection: Selection, interval_s: int, range_s: int) -> str:
    macros = {
        "__interval": f"{interval_s}s",
        "__interval_ms": str(interval_s * 1000),
        # Grafana: max($__interval + scrape interval, 4 x scrape interval)
        "__rate_interval": f"{max(interval_s + SCRAPE_S, 4 * SCRAPE_S)}s",
        "__range": f"{range_s}s",
        "__range_s": str(range_s),
        "__range_ms": str(range_s * 1000),
    }

    def substitute(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name in macros:
            return macros[name]
        assert name in selection, f"no value for ${name} in {expr}"
        return grafana_value(selection[name])

    return re.sub(r"\$\{([A-Za-z_]\w*)\}|\$([A-Za-z_]\w*)", substitute, expr)


def run(stack: Stack, t: Target, selection: Selection = ALL, range_s: int = RANGE_S) -> list[dict]:
    """The target's result as Grafana would fetch it for a time range ending at `stack.now`.

    Instant queries run at the end of the range; range queries with step = $__interval (the
    panel's minimum interval, else the scrape interval) and the range aligned to the step.
    """
    interval_s = _duration_s(t.panel.get("interval")) or SCRAPE_S
    query = render(t.expr, selection, interval_s, range_s)
    try:
        if t.target["instant"]:
            return stack.prom.instant(query, stack.now)
        start = math.floor((stack.now - range_s) / interval_s) * interval_s
        end = math.floor(stack.now / interval_s) * interval_s
        return stack.prom.range(query, start, end, interval_s)
    except QueryError as exc:
        raise QueryError(f"{t}: {exc}\n  query: {query}") from None


def target(dashboard: str, title: str, ref: str = "A") -> Target:
    for t in ALL_TARGETS:
        if (t.dashboard, t.title, t.ref) == (dashboard, title, ref):
            return t
    raise AssertionError(f"no target {dashboard} / {title} / {ref}")


def value(result: list[dict]) -> float:
    """The single number of an instant result."""
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def by(result: list[dict], *labels: str) -> dict[Any, float]:
    """{label value (tuple if several): number} of an instant result."""
    out = {}
    for r in result:
        key = tuple(r["metric"].get(label, "") for label in labels)
        out[key[0] if len(key) == 1 else key] = float(r["value"][1])
    assert len(out) == len(result), f"labels {labels} do not identify the series: {result}"
    return out


def assert_numbers(
    got: dict[Any, float] | float, want: dict[Any, float] | float, what: str
) -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict)
        assert set(got) == set(want), f"{what}: series {sorted(got)} != {sorted(want)}"
        for key in want:
            assert math.isclose(got[key], want[key], rel_tol=1e-9, abs_tol=1e-9), (
                f"{what}[{key}]: got {got[key]!r}, want {want[key]!r}"
            )
    else:
        assert isinstance(got, float)
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9), (
            f"{what}: got {got!r}, want {want!r}"
        )


# -- every query ----------------------------------------------------------------------------


def test_every_query_runs_and_returns_data(stack: Stack) -> None:
    problems = []
    for t in ALL_TARGETS:
        try:
            result = run(stack, t)
        except QueryError as exc:
            problems.append(str(exc))
            continue
        if not result and (t.dashboard, t.title) not in MAY_BE_EMPTY:
            problems.append(f"{t}: no data (with every variable on All)")
    assert not problems, "\n".join(problems) + "\n" + stack.prom.log_tail(10)


SELECTIONS = {
    "one-team-one-user": {
        **ALL,
        "team": ["core"],
        "user": [ALICE.user],
        "job": [JOB],
        "instance": None,
    },
    "multi-value": {
        **ALL,
        "team": ["core", "payments"],
        "user": [ALICE.user, CAROL.user],
        "model": [OPUS],
    },
}


@pytest.mark.parametrize("selection", SELECTIONS.values(), ids=SELECTIONS.keys())
def test_every_query_runs_with_selected_values(stack: Stack, selection: Selection) -> None:
    problems = []
    for t in ALL_TARGETS:
        try:
            run(stack, t, selection)
        except QueryError as exc:
            problems.append(str(exc))
    assert not problems, "\n".join(problems)


def test_variable_queries_list_the_workload(stack: Stack) -> None:
    """Each `label_values(selector, label)` variable, asked the way Grafana asks (label values
    API with the selector as match[] over the time range), lists the workload's values."""
    port = stack.collector.metrics_url.split(":")[2].split("/")[0]
    want = {
        ("team", "all"): {"core", "payments"},
        ("user", "all"): {m.user for m in MEMBERS},
        ("user", "core"): {ALICE.user, BOB.user},
        ("model", "all"): {OPUS, SONNET, "claude-haiku-4-5"},
        ("job", "all"): {JOB},
        ("instance", "all"): {f"127.0.0.1:{port}"},
    }
    seen = set()
    for name, d in DASHBOARDS.items():
        for var in variables(d):
            if var["type"] != "query":
                continue
            m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable_query(var).strip())
            assert m, var
            for scope, selection in (("all", ALL), ("core", {**ALL, "team": ["core"]})):
                if (var["name"], scope) not in want:
                    continue
                match = render(m.group(1), selection, SCRAPE_S, RANGE_S)
                got = stack.prom.api(
                    f"/api/v1/label/{m.group(2)}/values",
                    "GET",
                    **{"match[]": match, "start": stack.now - RANGE_S, "end": stack.now},
                )
                assert set(got) == want[var["name"], scope], f"{name} ${var['name']} ({scope})"
                seen.add((var["name"], scope))
    assert seen == set(want)


def test_rule_files_load_without_errors(stack: Stack) -> None:
    """Prometheus refuses to start on a rule file that does not parse; a rule that parses but
    fails when evaluated shows up here (health "err"). Rules not yet evaluated are fine."""
    groups = stack.prom.api("/api/v1/rules", "GET")["groups"]
    rule_dir = ROOT / "prometheus" / "rules"
    files = [*rule_dir.glob("*.yml"), *rule_dir.glob("*.yaml")]
    want = sum(len(yaml.safe_load(f.read_text()).get("groups", [])) for f in files)
    assert len(groups) == want
    broken = [
        f"{g['name']}/{r['name']}: {r.get('lastError')}"
        for g in groups
        for r in g["rules"]
        if r.get("health") == "err"
    ]
    assert not broken, "\n".join(broken)


# -- headline numbers --------------------------------------------------------------------------


def panel(
    stack: Stack,
    dashboard: str,
    title: str,
    ref: str = "A",
    *labels: str,
    selection: Selection = ALL,
    range_s: int = RANGE_S,
) -> Any:
    """A panel target's instant result: its single number, or {label values: number}."""
    result = run(stack, target(dashboard, title, ref), selection, range_s)
    return by(result, *labels) if labels else value(result)


def _org(totals: Totals) -> dict[str, Any]:
    """The organization-wide headline numbers of `totals`."""
    want = totals.expected()
    edits = _by(want, "claude_code_code_edit_decisions_total", "decision")
    tokens = _by(want, "claude_code_tokens_total", "type")
    return {
        "spend": _sum(want, "claude_code_cost_usd_total"),
        "tokens_by_type": tokens,
        "tokens_by_model": _by(want, "claude_code_tokens_total", "model"),
        "cost_by_model": _by(want, "claude_code_cost_usd_total", "model"),
        "lines": _by(want, "claude_code_lines_of_code_total", "type"),
        "accept_rate": edits.get("accept", 0.0) / sum(edits.values()),
        "sessions": _sum(want, "claude_code_sessions_total"),
        "commits": _sum(want, "claude_code_commits_total"),
        "prs": _sum(want, "claude_code_pull_requests_total"),
        "prompts": _sum(want, "claude_code_prompts_total"),
        "active_time": _by(want, "claude_code_active_time_seconds_total", "type"),
        "cache_hit": tokens["cache_read"]
        / (tokens["input"] + tokens["cache_read"] + tokens["cache_creation"]),
        "users": float(len({r.member.user for r in totals.runs})),
    }


def _check_overview(stack: Stack, totals: Totals, range_s: int, selection: Selection = ALL) -> None:
    """The Overview's range panels against `totals`."""
    want = _org(totals)
    checks = [
        ("Spend", "A", (), "spend"),
        ("Tokens by type", "A", ("type",), "tokens_by_type"),
        ("Tokens by model", "A", ("model",), "tokens_by_model"),
        ("Cost by model", "A", ("model",), "cost_by_model"),
        ("Lines of code accepted", "A", ("type",), "lines"),
        ("Suggestion accept rate", "A", (), "accept_rate"),
        ("Sessions", "A", (), "sessions"),
        ("Commits and pull requests", "A", (), "commits"),
        ("Commits and pull requests", "B", (), "prs"),
        ("Prompts", "A", (), "prompts"),
        ("Active time", "A", ("type",), "active_time"),
        ("Cache hit ratio", "A", (), "cache_hit"),
        ("Active users", "A", (), "users"),
    ]
    for title, ref, labels, key in checks:
        got = panel(stack, "overview", title, ref, *labels, selection=selection, range_s=range_s)
        assert_numbers(got, want[key], f"Overview {title} {ref}")


def test_headlines_over_the_whole_workload(stack: Stack) -> None:
    """A range that covers everything: every number is the workload's total."""
    totals = stack.everything
    _check_overview(stack, totals, RANGE_S)
    spend = _org(totals)["spend"]
    assert_numbers(panel(stack, "overview", "Spend this month"), spend, "Spend this month")
    assert_numbers(
        panel(stack, "overview", "Active users (1d / 7d / 28d)", "A", "window"),
        {"1d": 4.0, "7d": 4.0, "28d": 4.0},
        "Active users 1d/7d/28d",
    )

    # Members: one row per user and team, every column from the workload.
    def members(ref: str) -> dict[Any, float]:
        return panel(stack, "team-insights", "Members", ref, "user", "team")

    def per_member(family: str, **own: str) -> dict[Any, float]:
        values = totals.by_user(family, **own)
        return {(m.user, m.team): values[m.user] for m in MEMBERS}

    cost = totals.by_user("claude_code_cost_usd_total")
    assert_numbers(members("A"), per_member("claude_code_cost_usd_total"), "Members MTD")
    assert_numbers(members("B"), per_member("claude_code_cost_usd_total"), "Members spend")
    for ref, kind in (("C", "added"), ("D", "removed")):
        want = per_member("claude_code_lines_of_code_total", type=kind)
        assert_numbers(members(ref), want, f"Members lines {kind}")
    assert_numbers(members("E"), per_member("claude_code_sessions_total"), "Members sessions")
    accepts = per_member("claude_code_code_edit_decisions_total", decision="accept")
    decisions = per_member("claude_code_code_edit_decisions_total")
    rates = {k: accepts[k] / decisions[k] for k in decisions}
    assert_numbers(members("F"), rates, "Members accept rate")
    ages = members("G")
    assert set(ages) == set(decisions)
    assert all(0 <= age <= stack.now - stack.t_start + 1 for age in ages.values()), ages

    top_cost = panel(stack, "team-insights", "Top 10 by cost", "A", "user")
    assert_numbers(top_cost, cost, "Top 10 by cost")
    top_prs = panel(stack, "team-insights", "Top 10 by pull requests", "A", "user")
    assert_numbers(top_prs, totals.by_user("claude_code_pull_requests_total"), "Top 10 PRs")

    team_cost = {
        "core": cost[ALICE.user] + cost[BOB.user],
        "payments": cost[CAROL.user] + cost[DAN.user],
    }
    for ref in ("A", "B"):
        assert_numbers(panel(stack, "team-insights", "Teams", ref, "team"), team_cost, "Teams")
    teams_users = panel(stack, "team-insights", "Teams", "E", "team")
    assert_numbers(teams_users, {"core": 2.0, "payments": 2.0}, "Teams active users")
    dept_cost = {"platform": team_cost["core"], "finance-eng": team_cost["payments"]}
    for ref in ("A", "B"):
        got = panel(stack, "team-insights", "Departments", ref, "department")
        assert_numbers(got, dept_cost, f"Departments {ref}")
    dept_users = panel(stack, "team-insights", "Departments", "E", "department")
    assert_numbers(dept_users, {"platform": 2.0, "finance-eng": 2.0}, "Departments users")

    _check_budgets(stack, spend, team_cost, cost)
    _check_daily_bars(stack, totals)


def _month_remaining_s(at: float) -> float:
    """What the dashboards' `(days_in_month() - day_of_month() + 1) * 86400 - time() % 86400`
    gives at `at`."""
    day = datetime.fromtimestamp(at, UTC).date()
    following = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    days_in_month = (following - day.replace(day=1)).days
    return (days_in_month - day.day + 1) * 86400 - at % 86400


def _check_budgets(
    stack: Stack, spend: float, team_cost: dict[str, float], cost: dict[str, float]
) -> None:
    def monthly(ref: str) -> dict[Any, float]:
        return panel(stack, "budgets-and-alerts", "Monthly budgets", ref, "scope", "name")

    spent = {
        ("org", "org"): spend,
        ("team", "core"): team_cost["core"],
        ("user", CAROL.user): cost[CAROL.user],
    }
    budget = {("org", "org"): 10.0, ("team", "core"): 2.5, ("user", CAROL.user): 1.0}
    assert_numbers(monthly("A"), spent, "Monthly budgets: spend this month")
    assert_numbers(monthly("B"), budget, "Monthly budgets: budget")
    used = {k: spent[k] / budget[k] for k in spent}
    assert_numbers(monthly("C"), used, "Monthly budgets: used")
    # Everything was spent within the last 7 days, so the run rate is spend / 7 days.
    remaining = _month_remaining_s(stack.now)
    forecast = {k: v + v / (7 * 86400) * remaining for k, v in spent.items()}
    assert_numbers(monthly("D"), forecast, "Monthly budgets: month-end forecast")
    ratio = {k: forecast[k] / budget[k] for k in spent}
    assert_numbers(monthly("E"), ratio, "Monthly budgets: forecast / budget")
    org = {
        "Org spend this month": spend,
        "Org month-end forecast": forecast[("org", "org")],
        "Org monthly budget": 10.0,
        "Org budget used": spend / 10.0,
    }
    for title, want in org.items():
        assert_numbers(panel(stack, "budgets-and-alerts", title), want, title)
    key = ("team", "payments")
    for ref, want in (("A", team_cost["payments"]), ("C", team_cost["payments"] / 0.5)):
        got = panel(stack, "budgets-and-alerts", "Daily budgets (last 24 h)", ref, "scope", "name")
        assert_numbers(got, {key: want}, f"Daily budgets {ref}")


def _check_daily_bars(stack: Stack, totals: Totals) -> None:
    """Today's bar of the daily charts holds all of today's usage. Checked when the test did
    not straddle midnight UTC (then part of it is in yesterday's bar)."""
    if math.floor(stack.t_start / 86400) != math.floor(stack.now / 86400):
        return
    today = math.floor(stack.now / 86400) * 86400
    want = _org(totals)

    def bar(title: str, ref: str) -> float:
        result = run(stack, target("overview", title, ref))
        points = [float(v) for series in result for t, v in series["values"] if t == today]
        assert len(points) == 1, (title, ref, result)
        return points[0]

    bars = [
        ("Spend per day with users", "A", want["spend"]),
        ("Spend per day with users", "B", want["users"]),
        ("Daily active users and sessions", "A", want["users"]),
        ("Daily active users and sessions", "B", want["sessions"]),
        ("Suggestion accept rate per day", "A", want["accept_rate"]),
    ]
    for title, ref, number in bars:
        assert_numbers(bar(title, ref), number, f"today's bar of {title} {ref}")


def test_headlines_since_the_middle(stack: Stack) -> None:
    """A range that starts after part 1 was scraped: the range panels show part 2 only,
    exactly (part 1's values are the baseline; Bob and Dan are new series, counted in full)."""
    range_s = math.floor(stack.now - stack.t_mid)
    assert range_s >= MID_RANGE_MIN_S
    _check_overview(stack, stack.since_mid, range_s)
    cost = stack.since_mid.by_user("claude_code_cost_usd_total")
    assert cost[CAROL.user] == 0.0 and cost[ALICE.user] > 0
    spend = panel(stack, "team-insights", "Members", "B", "user", "team", range_s=range_s)
    assert_numbers(spend, {(m.user, m.team): cost[m.user] for m in MEMBERS}, "Members spend")
    sessions = panel(stack, "team-insights", "Members", "E", "user", "team", range_s=range_s)
    want = {(m.user, m.team): 0.0 if m is CAROL else 1.0 for m in MEMBERS}
    assert_numbers(sessions, want, "Members sessions")
    # Month to date does not depend on the time range.
    everything = _org(stack.everything)["spend"]
    mtd = panel(stack, "overview", "Spend this month", range_s=range_s)
    assert_numbers(mtd, everything, "Spend this month")


def test_headlines_for_a_selection(stack: Stack) -> None:
    """Team core and user Alice; then two teams, two users and one model as multi-values."""
    one = SELECTIONS["one-team-one-user"]
    alice = Totals()
    alice.add(tuple(r for r in stack.everything.runs if r.member is ALICE))
    _check_overview(stack, alice, RANGE_S, one)
    rows = panel(stack, "team-insights", "Members", "A", "user", "team", selection=one)
    assert set(rows) == {(ALICE.user, "core")}
    budgets = panel(
        stack, "budgets-and-alerts", "Monthly budgets", "B", "scope", "name", selection=one
    )
    assert set(budgets) == {("org", "org"), ("team", "core")}

    multi = SELECTIONS["multi-value"]
    want = Decimal(0)
    for r in stack.everything.runs:
        if r.member in (ALICE, CAROL):
            want += Decimal(_sum(r.expected(), "claude_code_cost_usd_total", model=OPUS))
    assert want > 0
    assert_numbers(panel(stack, "overview", "Spend", selection=multi), float(want), "Spend")
    by_model = panel(stack, "overview", "Cost by model", "A", "model", selection=multi)
    assert set(by_model) == {OPUS}
