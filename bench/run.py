"""The benchmark suite: every figure of docs/performance.md, printed as it is measured.

    python -m bench.run                      # the full suite (make bench; about an hour)
    python -m bench.run --quick              # scaled down, under 2 minutes (make bench-quick)
    python -m bench.run --only throughput,latency [--quick]
    python -m bench.run --only profile       # py-spy profile of the collector under load

Figures (NAME for --only): `ceiling` (parse-only throughput of the same bodies), `throughput`
(max sustained records/s with durable acks per protocol, CPU s per million records, and the
naive baseline on the same bodies), `latency` (p50/p99 ack latency at fixed rates), `reports`
(/metrics scrape time and size at 1k and 10k users, Analytics API latency for a 30-day
report), `soak` (RSS over 10 million records), `profile` (where the time goes).

Every run starts a fresh `cc-collector serve` (SQLite store, group commit: an ack means the
records are durable) and ends by comparing the collector's `/metrics` totals with what the
generator sent. A run that does not match is marked invalid, printed as such, and left out of
the figure's median: a benchmark that loses data has no score. Results go to
bench/results/<date>-<name>.json.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from bench import ceiling as ceiling_mod
from bench import loadgen
from bench.collector_proc import ROOT, Collector, NaiveReceiver, Server, samples
from bench.payloads import CHECKS, SCALES, Expected, Request, Spec, generate, selfcheck, to_json

RESULTS = ROOT / "bench" / "results"
FIGURES = ("ceiling", "throughput", "latency", "reports", "soak", "profile")
MB = 1024 * 1024

#: The issue's targets; docs/performance.md reports each as target / measured / status.
TARGETS = {
    "throughput_http_protobuf": 40_000,  # records/s, durable acks
    "ratio_to_baseline_http_protobuf": 5.0,
    "p99_ms_at_10k": 250.0,
    "soak_peak_rss_mb": 300.0,
    "scrape_ms_10k_users": 200.0,
}
#: what Prometheus sends: it negotiates OpenMetrics and gzip.
PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
}


@dataclass(frozen=True)
class Settings:
    """How big each figure's runs are. QUICK scales everything down to under 2 minutes."""

    name: str
    runs: int
    baseline_runs: int
    #: records sent per throughput run, per protocol.
    throughput: dict[str, int]
    lanes: int
    #: (protocol, records/s, batch size, seconds)
    latency: tuple[tuple[str, int, int, float], ...]
    latency_runs: int
    soak: Spec
    soak_workers: int
    #: the 1k-user and 10k-user loads of the reports figure (each user one session a day).
    reports_small: Spec
    reports_large: Spec
    repeats: int
    profile_seconds: float
    #: passes over the bodies in the ceiling figure (parse-only, JSON, pipeline stages).
    ceiling_repeats: tuple[int, int, int] = (5, 2, 3)


def _reports_spec(users: int, days: int, seed: int) -> Spec:
    sessions = users * days
    return Spec(
        records=sessions * 7, users=users, sessions=sessions, profile="light", days=days, seed=seed
    )


FULL = Settings(
    name="full",
    runs=3,
    baseline_runs=3,
    throughput={
        "grpc": 300_000,
        "http-protobuf": 300_000,
        "http-json": 60_000,
        "http-protobuf/cumulative": 300_000,
    },
    lanes=16,
    latency=(
        ("http-protobuf", 1_000, 512, 45.0),
        ("http-protobuf", 10_000, 512, 20.0),
        ("grpc", 10_000, 512, 20.0),
        ("http-protobuf", 10_000, 32, 20.0),
    ),
    latency_runs=3,
    soak=Spec(records=10_000_000, users=10_000, sessions=100_000, seed=7),
    soak_workers=2,
    reports_small=_reports_spec(1_000, 30, seed=11),
    reports_large=_reports_spec(10_000, 30, seed=12),
    repeats=7,
    profile_seconds=20.0,
)
QUICK = Settings(
    name="quick",
    runs=3,
    baseline_runs=1,
    throughput={
        "grpc": 20_000,
        "http-protobuf": 30_000,
        "http-json": 4_000,
        "http-protobuf/cumulative": 15_000,
    },
    lanes=16,
    latency=(("http-protobuf", 1_000, 512, 5.0), ("http-protobuf", 10_000, 512, 5.0)),
    latency_runs=1,
    soak=Spec(records=200_000, users=1_000, sessions=10_000, seed=7),
    soak_workers=2,
    reports_small=_reports_spec(1_000, 3, seed=11),
    reports_large=_reports_spec(10_000, 1, seed=12),
    repeats=3,
    profile_seconds=0.0,
    ceiling_repeats=(5, 1, 1),
)


def split_variant(variant: str) -> tuple[str, str]:
    """`http-protobuf/cumulative` -> (`http-protobuf`, `cumulative`); default delta."""
    protocol, _, temporality = variant.partition("/")
    return protocol, temporality or "delta"


def say(*parts: object) -> None:
    print(*parts, flush=True)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


# -- verification ---------------------------------------------------------------------------


def observed_totals(text: str) -> collections.Counter[tuple[str, tuple[str, ...]]]:
    """The collector's /metrics, summed the way `Expected` groups its totals (in the
    contract's integer units, so cost compares to the nano-USD)."""
    out: collections.Counter[tuple[str, tuple[str, ...]]] = collections.Counter()
    for name, labels, value in samples(text, tuple(CHECKS)):
        group = CHECKS.get(name)
        if group is None:
            continue
        key = (name, tuple(labels.get(label, "") for label in group))
        out[key] += round(value * SCALES.get(name, 1))
    return out


def verify_collector(text: str, expected: Expected) -> list[str]:
    """Problems found comparing the collector's /metrics `text` with what was sent; empty
    when exact."""
    problems = []
    got, want = observed_totals(text), +expected.totals
    for key in sorted(got.keys() | want.keys()):
        if got[key] != want[key]:
            metric, group = key
            problems.append(f"{metric}{list(group)}: sent {want[key]}, collector {got[key]}")
    items: collections.Counter[tuple[str, str]] = collections.Counter()
    for _, labels, value in samples(text, ("cc_collector_items_total",)):
        items[(labels.get("signal", ""), labels.get("outcome", ""))] += int(value)
    counted_points = items[("metrics", "accepted")] + items[("metrics", "stale")]
    if counted_points != expected.points:
        problems.append(f"metric points: sent {expected.points}, accepted {counted_points}")
    if items[("logs", "accepted")] != expected.events:
        problems.append(f"events: sent {expected.events}, accepted {items[('logs', 'accepted')]}")
    for (signal, outcome), n in items.items():
        if outcome in ("rejected", "duplicate") and n:
            problems.append(f"{signal}: {n} {outcome}")
    return problems


def verify_baseline(text: str, expected: Expected) -> list[str]:
    got = {labels["signal"]: int(v) for _, labels, v in samples(text, ("naive_records_total",))}
    want = {"metrics": expected.points, "logs": expected.events}
    return [f"{s}: sent {want[s]}, counted {got.get(s, 0)}" for s in want if got.get(s) != want[s]]


def check_load(result: loadgen.LoadResult) -> list[str]:
    problems = []
    if result.errors:
        problems.append(f"{result.errors} requests failed: {result.error_samples}")
    if result.rejected:
        problems.append(f"{result.rejected} items rejected (partial success)")
    return problems


def store_stats(text: str) -> dict[str, float]:
    """Group-commit figures from the collector's own metrics."""
    out: dict[str, float] = collections.defaultdict(float)
    for name, labels, value in samples(text, ("cc_collector_store_",)):
        if name == "cc_collector_store_transactions_total" and labels.get("outcome") == "committed":
            out["transactions"] += value
        elif name == "cc_collector_store_committed_requests_total":
            out["requests"] += value
        elif name == "cc_collector_store_commit_duration_seconds_sum":
            out["commit_seconds"] += value
    return dict(out)


# -- the figures ------------------------------------------------------------------------------


@dataclass
class Suite:
    settings: Settings
    only: tuple[str, ...]
    figures: dict[str, Any] = field(default_factory=dict)
    invalid: list[str] = field(default_factory=list)
    _payloads: dict[str, tuple[list[Request], Expected]] = field(default_factory=dict)

    def payload(self, variant: str) -> tuple[list[Request], Expected]:
        """The throughput workload of a variant (`protocol` or `protocol/cumulative`): one set
        of bodies per size and temporality, the JSON form derived from the protobuf one, so
        every protocol, the ceiling and the baseline get the same records."""
        protocol, temporality = split_variant(variant)
        records = self.settings.throughput[variant]
        as_json = protocol == "http-json"
        key = f"{records}-{temporality}-{'json' if as_json else 'protobuf'}"
        if key not in self._payloads:
            started = time.perf_counter()
            spec = Spec(records=records, users=100, sessions=1000, temporality=temporality)
            pb_key = f"{records}-{temporality}-protobuf"
            if pb_key not in self._payloads:
                self._payloads[pb_key] = generate(spec)
            requests, expected = self._payloads[pb_key]
            if as_json:
                requests = [Request(r.signal, to_json(r), r.records) for r in requests]
                self._payloads[key] = (requests, expected)
            size = sum(len(r.body) for r in requests)
            say(
                f"  payload ({'OTLP/JSON' if as_json else 'protobuf'}): {spec.label()}: "
                f"{len(requests)} requests, {size / MB:.1f} MiB "
                f"({time.perf_counter() - started:.1f} s to build)"
            )
        return self._payloads[key]

    # -- ceiling --------------------------------------------------------------------------

    def ceiling(self) -> None:
        say("\n== ceiling: parse-only throughput of the same bodies (in-process, one core)")
        pb_repeat, json_repeat, stage_repeat = self.settings.ceiling_repeats
        requests, _ = self.payload("http-protobuf")
        pb = ceiling_mod.ceiling(requests, repeat=pb_repeat)
        say(f"  protobuf decode: {pb['records_per_s']:,.0f} records/s")
        json_requests, _ = self.payload("http-json")
        js = ceiling_mod.ceiling(json_requests, as_json=True, repeat=json_repeat)
        say(f"  OTLP/JSON decode (json.loads): {js['records_per_s']:,.0f} records/s")
        # The pipeline stages are slow (Python): a fixed share of the bodies is enough.
        stages = ceiling_mod.stages(requests[:120], repeat=stage_repeat)
        for name, rate in stages.items():
            say(f"  collector pipeline, {name}: {rate:,.0f} records/s (no I/O)")
        self.figures["ceiling"] = {"protobuf": pb, "json": js, "stages": stages}

    # -- throughput -----------------------------------------------------------------------

    def throughput(self) -> None:
        s = self.settings
        say(f"\n== throughput: closed loop, {s.lanes} requests in flight, durable acks (SQLite)")
        ours: dict[str, Any] = {}
        base: dict[str, Any] = {}
        for variant in s.throughput:
            requests, expected = self.payload(variant)
            ours[variant] = self._throughput_runs(variant, requests, expected, s.runs, False)
        say("\n== baseline: the naive receiver (MessageToDict + prometheus_client), same bodies")
        for variant in s.throughput:
            if split_variant(variant)[1] != "delta":
                continue  # the baseline adds cumulative totals as if deltas: nothing to compare
            requests, expected = self.payload(variant)
            base[variant] = self._throughput_runs(
                variant, requests, expected, s.baseline_runs, True
            )
        self.figures["throughput"] = ours
        self.figures["baseline"] = base
        self.figures["cpu_s_per_million"] = {
            v: {
                "collector": ours[v]["cpu_s_per_million"],
                "baseline": base[v]["cpu_s_per_million"] if v in base else None,
            }
            for v in ours
        }
        self._ratios()

    def _throughput_runs(
        self,
        variant: str,
        requests: list[Request],
        expected: Expected,
        runs: int,
        baseline: bool,
    ) -> dict[str, Any]:
        protocol = split_variant(variant)[0]
        results = []
        for i in range(runs):
            server: Server = NaiveReceiver() if baseline else Collector()
            with server:
                cpu0 = server.cpu()
                job = loadgen.Job(
                    protocol, server.grpc_target, server.http_base, lanes=self.settings.lanes
                )
                load = loadgen.run(job, requests)
                cpu = server.cpu() - cpu0
                problems = check_load(load)
                verify = verify_baseline if baseline else verify_collector
                problems += verify(server.scrape()[0], expected)
                store = {} if baseline else store_stats(server.scrape()[0])
                rss = server.rss()
            run = {
                "records_per_s": load.records_per_s,
                "records": load.records,
                "seconds": load.seconds,
                "cpu_s": cpu,
                "cpu_s_per_million": cpu / load.records * 1e6 if load.records else None,
                "request_p50_ms": load.percentile(0.5) * 1000,
                "request_p99_ms": load.percentile(0.99) * 1000,
                "retries": load.retries,
                "rss_mb": rss / MB,
                "valid": not problems,
                "problems": problems[:10],
            }
            if store.get("transactions"):
                run["requests_per_commit"] = store.get("requests", 0) / store["transactions"]
                run["commit_share_of_wall"] = store.get("commit_seconds", 0) / load.seconds
            results.append(run)
            who = "baseline" if baseline else "collector"
            say(
                f"  {who} {variant} run {i + 1}/{runs}: {load.records_per_s:,.0f} records/s, "
                f"{cpu / load.records * 1e6 if load.records else 0:.1f} CPU s/M records, "
                f"{'VERIFIED' if not problems else 'INVALID: ' + '; '.join(problems[:3])}"
            )
            if problems:
                self.invalid.append(f"{who} throughput {variant} run {i + 1}: {problems[:3]}")
        valid = [r for r in results if r["valid"]]
        figure = {
            "records_per_s": median([r["records_per_s"] for r in valid]),
            "cpu_s_per_million": median([r["cpu_s_per_million"] for r in valid]),
            "valid": len(valid) == len(results),
            "valid_runs": len(valid),
            "runs": results,
        }
        if figure["records_per_s"] is not None:
            say(
                f"  => {'baseline' if baseline else 'collector'} {variant}: median "
                f"{figure['records_per_s']:,.0f} records/s over {len(valid)} verified runs"
            )
        return figure

    def _ratios(self) -> None:
        ceiling = self.figures.get("ceiling")
        ratios = {}
        for protocol, ours in self.figures["throughput"].items():
            if protocol not in self.figures["baseline"]:
                continue
            rate = ours["records_per_s"]
            base = self.figures["baseline"][protocol]["records_per_s"]
            roof = None
            if ceiling:
                roof = ceiling["json" if protocol == "http-json" else "protobuf"]["records_per_s"]
            ratios[protocol] = {
                "to_ceiling": rate / roof if rate and roof else None,
                "to_baseline": rate / base if rate and base else None,
            }
            say(
                f"  ratio {protocol}: {_fmt_ratio(ratios[protocol]['to_baseline'])} of the "
                f"baseline, {_fmt_ratio(ratios[protocol]['to_ceiling'], pct=True)} of the "
                "parse ceiling"
            )
        self.figures["ratios"] = ratios

    # -- latency --------------------------------------------------------------------------

    def latency(self) -> None:
        s = self.settings
        say("\n== latency: open loop at fixed rates, ack latency from the scheduled send time")
        rows = []
        for protocol, rate, batch, seconds in s.latency:
            spec = Spec(records=int(rate * seconds), users=100, sessions=1000, batch_size=batch)
            requests, expected = generate(spec)
            runs = []
            for i in range(s.latency_runs):
                with Collector() as server:
                    job = loadgen.Job(
                        protocol,
                        server.grpc_target,
                        server.http_base,
                        mode="open",
                        records_per_s=rate,
                    )
                    load = loadgen.run(job, requests)
                    problems = check_load(load) + verify_collector(server.scrape()[0], expected)
                achieved = load.records_per_s
                if achieved < 0.9 * rate or load.late > len(requests) // 20:
                    problems.append(f"rate not sustained: {achieved:,.0f} records/s")
                run = {
                    "p50_ms": load.percentile(0.5) * 1000,
                    "p99_ms": load.percentile(0.99) * 1000,
                    "max_ms": max(load.latencies, default=float("nan")) * 1000,
                    "samples": len(load.latencies),
                    "achieved_records_per_s": achieved,
                    "late": load.late,
                    "valid": not problems,
                    "problems": problems[:10],
                }
                runs.append(run)
                say(
                    f"  {protocol} {rate:,} records/s, batch {batch}, run {i + 1}: p50 "
                    f"{run['p50_ms']:.1f} ms, p99 {run['p99_ms']:.1f} ms, max "
                    f"{run['max_ms']:.1f} ms ({run['samples']} requests) "
                    f"{'VERIFIED' if not problems else 'INVALID: ' + '; '.join(problems[:3])}"
                )
                if problems:
                    self.invalid.append(f"latency {protocol} {rate} batch {batch}: {problems[:3]}")
            valid = [r for r in runs if r["valid"]]
            rows.append(
                {
                    "protocol": protocol,
                    "records_per_s": rate,
                    "batch": batch,
                    "seconds": seconds,
                    "p50_ms": median([r["p50_ms"] for r in valid]),
                    "p99_ms": median([r["p99_ms"] for r in valid]),
                    "valid": len(valid) == len(runs),
                    "runs": runs,
                }
            )
        self.figures["latency"] = rows

    # -- reports: scrape and Analytics API ------------------------------------------------

    def reports(self) -> None:
        s = self.settings
        say("\n== reports: /metrics scrape cost and the Analytics API on a loaded store")
        out: dict[str, Any] = {"scrape": {}, "analytics": {}}
        expected = Expected()
        problems: list[str] = []
        with Collector() as server:
            for spec in (s.reports_small, s.reports_large):
                say(f"  loading {spec.label()} ...")
                job = loadgen.Job(
                    "http-protobuf",
                    server.grpc_target,
                    server.http_base,
                    workers=2,
                    lanes=4,
                    spec=spec,
                )
                load = loadgen.run(job)
                expected.merge(load.expected)
                problems += check_load(load)
                say(
                    f"  loaded {load.records:,} records in {load.seconds:.1f} s "
                    f"({load.records_per_s:,.0f} records/s)"
                )
                users = len(expected.users)
                out["scrape"][str(users)] = self._scrape(server, users)
                out["analytics"][str(users)] = self._analytics(server, spec, users)
            problems += verify_collector(server.scrape()[0], expected)
            out["store_mb"] = server.store_bytes() / MB
            out["rss_mb"] = server.rss() / MB
        out["valid"] = not problems
        out["problems"] = problems[:10]
        say(
            f"  totals after both loads: "
            f"{'VERIFIED' if not problems else 'INVALID: ' + '; '.join(problems[:3])}"
        )
        if problems:
            self.invalid.append(f"reports: {problems[:3]}")
        self.figures["reports"] = out

    def _scrape(self, server: Server, users: int) -> dict[str, Any]:
        from bench.collector_proc import http_get

        plain, prom = [], []
        size = gz_size = series = 0
        # The first scrape after the load: every series is new to the renderer's line cache
        # (the worst case; later scrapes re-format only series whose value changed).
        _, _, first = http_get(server.metrics_url, headers=PROMETHEUS_HEADERS)
        for _ in range(self.settings.repeats):
            _, body, seconds = http_get(server.metrics_url)
            plain.append(seconds)
            size = len(body)
            series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
            _, body, seconds = http_get(server.metrics_url, headers=PROMETHEUS_HEADERS)
            prom.append(seconds)
            gz_size = len(body)
        row = {
            "users": users,
            "series": series,
            "text_ms": median(plain) * 1000,  # type: ignore[operator]
            "text_bytes": size,
            "prometheus_ms": median(prom) * 1000,  # type: ignore[operator]
            "prometheus_gzip_bytes": gz_size,
            "first_scrape_ms": first * 1000,
        }
        say(
            f"  /metrics at {users:,} users: {series:,} series; text {row['text_ms']:.0f} ms, "
            f"{size / MB:.1f} MiB; as Prometheus asks (OpenMetrics, gzip) "
            f"{row['prometheus_ms']:.0f} ms, {gz_size / MB:.2f} MiB; first scrape after the "
            f"load (every series new) {row['first_scrape_ms']:.0f} ms"
        )
        return row

    def _analytics(self, server: Collector, spec: Spec, users: int) -> dict[str, Any]:
        end = dt.date.fromisoformat(spec.end_day)
        first = end - dt.timedelta(days=29)
        base = (
            "/v1/organizations/usage_report/claude_code"
            f"?starting_at={first.isoformat()}&ending_at={end.isoformat()}"
        )
        row: dict[str, Any] = {
            "users": users,
            "range": f"{first} .. {end}",
            "days_of_data": max(self.settings.reports_small.days, spec.days),
        }
        for label, query in (("page_20_ms", ""), ("page_1000_ms", "&limit=1000")):
            times = []
            for _ in range(self.settings.repeats):
                status, body, seconds = server.api_get(base + query)
                if status != 200:
                    raise RuntimeError(f"usage report answered {status}: {body[:300]!r}")
                times.append(seconds)
            row[label] = median(times) * 1000  # type: ignore[operator]
        # The whole 30-day report, as a finance export would fetch it: CSV, paged.
        started = time.perf_counter()
        rows = pages = 0
        page = ""
        while True:
            status, body, _, headers = _api_get_headers(server, base + "&format=csv" + page)
            if status != 200:
                raise RuntimeError(f"CSV report answered {status}: {body[:300]!r}")
            rows += body.count(b"\n") - 1
            pages += 1
            cursor = headers.get("X-Next-Page")
            if not cursor or pages > 1000:
                break
            page = f"&page={cursor}"
        row["full_csv_ms"] = (time.perf_counter() - started) * 1000
        row["rows"] = rows
        row["csv_pages"] = pages
        say(
            f"  Analytics API, 30-day report at {users:,} users "
            f"({row['days_of_data']} days of data): first page (20 rows) "
            f"{row['page_20_ms']:.0f} ms, 1000 rows {row['page_1000_ms']:.0f} ms; all {rows:,} "
            f"rows as CSV {row['full_csv_ms']:.0f} ms ({pages} pages)"
        )
        return row

    # -- soak -----------------------------------------------------------------------------

    def soak(self) -> None:
        s = self.settings
        spec = s.soak
        say(f"\n== soak: RSS while sending {spec.label()}")
        samples_: list[dict[str, float]] = []
        with Collector() as server:
            start_rss = server.rss()
            last = [0.0]

            def tick(seconds: float, records: int) -> None:
                if seconds - last[0] >= 2.0 or not samples_:
                    last[0] = seconds
                    samples_.append(
                        {"seconds": seconds, "records": records, "rss_mb": server.rss() / MB}
                    )

            cpu0 = server.cpu()
            job = loadgen.Job(
                "http-protobuf",
                server.grpc_target,
                server.http_base,
                workers=s.soak_workers,
                lanes=4,
                spec=spec,
            )
            load = loadgen.run(job, on_tick=tick, tick_s=0.5)
            cpu = server.cpu() - cpu0
            end_rss, peak = server.rss(), server.peak_rss()
            problems = check_load(load) + verify_collector(server.scrape()[0], load.expected)
            store = server.store_bytes()
        total = load.records or 1
        checkpoints = {}
        for pct in (10, 25, 50, 75, 100):
            target = total * pct / 100
            near = [x for x in samples_ if x["records"] <= target]
            checkpoints[f"{pct}%"] = near[-1]["rss_mb"] if near else None
        checkpoints["100%"] = end_rss / MB
        mid = checkpoints.get("50%")
        growth = (end_rss / MB - mid) / mid if mid else None
        figure = {
            "records": load.records,
            "users": len(load.expected.users) if load.expected else None,
            "sessions": load.expected.sessions if load.expected else None,
            "seconds": load.seconds,
            "records_per_s": load.records_per_s,
            "cpu_s_per_million": cpu / total * 1e6,
            "start_rss_mb": start_rss / MB,
            "end_rss_mb": end_rss / MB,
            "peak_rss_mb": peak / MB,
            "rss_at": checkpoints,
            "second_half_growth": growth,
            "store_mb": store / MB,
            "samples": samples_,
            "valid": not problems,
            "problems": problems[:10],
        }
        say(
            f"  {load.records:,} records in {load.seconds:.0f} s ({load.records_per_s:,.0f}/s); "
            f"RSS start {start_rss / MB:.0f} MiB, "
            + ", ".join(f"{k} {v:.0f}" for k, v in checkpoints.items() if v is not None)
            + f" MiB; peak {peak / MB:.0f} MiB; second half "
            + (f"{growth:+.1%}" if growth is not None else "n/a")
            + f"; store {store / MB:.0f} MiB; "
            + ("VERIFIED" if not problems else "INVALID: " + "; ".join(problems[:3]))
        )
        if problems:
            self.invalid.append(f"soak: {problems[:3]}")
        self.figures["soak"] = figure

    # -- profile --------------------------------------------------------------------------

    def profile(self) -> None:
        s = self.settings
        seconds = s.profile_seconds or 15.0
        say(f"\n== profile: py-spy on the collector for {seconds:.0f} s of HTTP/protobuf load")
        pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(pyspy).exists():
            say("  skipped: py-spy is not installed (.venv/bin/pip install py-spy)")
            return
        records = max(s.throughput["http-protobuf"], int(seconds * 25_000))
        requests, _ = generate(Spec(records=records, users=100, sessions=1000))
        raw = Path(tempfile.mkdtemp(prefix="cc-bench-profile-")) / "profile.txt"
        with Collector() as server:
            spy = subprocess.Popen(
                [
                    *(pyspy, "record", "-p", str(server.pid), "--duration", str(int(seconds))),
                    *("--rate", "200", "--format", "raw", "--threads", "--nonblocking"),
                    "--subprocesses",
                    *("-o", str(raw)),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
            time.sleep(1.0)
            job = loadgen.Job("http-protobuf", server.grpc_target, server.http_base, lanes=8)
            load = loadgen.run(job, requests)
            spy.wait(timeout=seconds + 60)
        if not raw.exists():
            say("  py-spy produced no profile (ptrace not permitted?)")
            return
        figure = summarize_profile(raw.read_text())
        figure["load_records_per_s"] = load.records_per_s
        shutil.rmtree(raw.parent, ignore_errors=True)
        say(f"  {figure['samples']} samples; by thread: {figure['threads']}")
        say("  self time (leaf frames), share of all samples:")
        for row in figure["self"][:12]:
            say(f"    {row['share']:6.1%}  {row['function']}")
        for thread, rows in figure["self_by_thread"].items():
            say(f"  self time in {thread}:")
            for row in rows[:8]:
                say(f"    {row['share']:6.1%}  {row['function']}")
        say("  inclusive time (collector/exporters frames):")
        for row in figure["inclusive"][:15]:
            say(f"    {row['share']:6.1%}  {row['function']}")
        self.figures["profile"] = figure


def summarize_profile(text: str) -> dict[str, Any]:
    """Self and inclusive sample shares per function from py-spy's raw (collapsed) output."""
    own: collections.Counter[str] = collections.Counter()
    by_thread: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    inclusive: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        n = int(count_text)
        frames = stack.split(";")
        # With --subprocesses every stack starts with its process (and a child's with its
        # parent's too): a sample of a plan worker counts as the thread "plan-worker".
        processes = 0
        while frames and frames[0].startswith("process "):
            frames.pop(0)
            processes += 1
        if not frames:
            continue
        thread = frames[0].split(":", 1)[-1].strip() if frames[0].startswith("thread") else "?"
        frames = [_function(f) for f in frames[1:]]
        total += n
        thread = "plan-worker" if processes > 1 else thread.split("_")[0]
        threads[thread] += n
        if frames:
            own[frames[-1]] += n
            by_thread[thread][frames[-1]] += n
        for f in set(frames):
            if f.split(" (")[-1].startswith(("collector/", "exporters/")) and f not in _ROOTS:
                inclusive[f] += n
    total = total or 1
    return {
        "samples": total,
        "threads": {t: f"{n / total:.0%}" for t, n in threads.most_common()},
        "self": [{"function": f, "share": n / total} for f, n in own.most_common(25)],
        "self_by_thread": {
            t: [{"function": f, "share": n / total} for f, n in c.most_common(15)]
            for t, c in by_thread.items()
        },
        "inclusive": [{"function": f, "share": n / total} for f, n in inclusive.most_common(25)],
    }


#: frames every sample of a thread shares: no information.
_ROOTS = frozenset({"main (collector/cli.py)"})


def _function(frame: str) -> str:
    """`func (path/file.py:123)` -> `func (path/file.py)`, shortened to the package path."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "lib/python3."):
        if marker in where:
            where = where.split(marker, 1)[1]
            if marker.startswith("lib/"):
                where = where.split("/", 1)[-1]
    return f"{name} ({where})"


def _api_get_headers(server: Collector, path: str) -> tuple[int, bytes, float, dict[str, str]]:
    import urllib.error
    import urllib.request

    from bench.collector_proc import API_KEY

    request = urllib.request.Request(
        f"http://127.0.0.1:{server.metrics_port}{path}", headers={"x-api-key": API_KEY}
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            body = response.read()
            return response.status, body, time.perf_counter() - started, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), time.perf_counter() - started, dict(error.headers)


def _fmt_ratio(value: float | None, pct: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1%}" if pct else f"{value:.2f}x"


# -- machine, targets, output -------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    versions = {}
    from importlib.metadata import version

    for package in ("grpcio", "protobuf", "aiohttp", "prometheus-client", "opentelemetry-proto"):
        try:
            versions[package] = version(package)
        except Exception:
            versions[package] = None
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "cpu_model": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "packages": versions,
    }


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    import hashlib

    diff = git("diff", "HEAD", "--", "collector", "exporters")
    untracked = git("ls-files", "--others", "--exclude-standard", "--", "collector", "exporters")
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        # The measured code may have uncommitted changes: this names them.
        "product_code_modified": bool(diff or untracked),
        "product_diff_sha1": hashlib.sha1((diff + untracked).encode()).hexdigest()[:12]
        if diff or untracked
        else None,
    }


def targets(figures: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []

    def add(name: str, target: str, measured: float | None, ok: bool | None, unit: str) -> None:
        status = "n/a" if measured is None or ok is None else ("pass" if ok else "FAIL")
        rows.append(
            {
                "name": name,
                "target": target,
                "measured": None if measured is None else round(measured, 0 if unit == "/s" else 1),
                "unit": unit,
                "status": status,
            }
        )

    tp = figures.get("throughput", {}).get("http-protobuf", {})
    rate = tp.get("records_per_s") if tp.get("valid") else None
    limit = TARGETS["throughput_http_protobuf"]
    add(
        "HTTP/protobuf throughput, durable acks",
        f">= {limit:,}",
        rate,
        rate and rate >= limit,
        "/s",
    )
    ratio = figures.get("ratios", {}).get("http-protobuf", {}).get("to_baseline")
    limit_r = TARGETS["ratio_to_baseline_http_protobuf"]
    add("HTTP/protobuf vs naive baseline", f">= {limit_r}x", ratio, ratio and ratio >= limit_r, "x")
    p99 = None
    for row in figures.get("latency", []):
        wanted = (row["protocol"], row["records_per_s"], row["batch"])
        if wanted == ("http-protobuf", 10_000, 512) and row["valid"]:
            p99 = row["p99_ms"]
    limit_l = TARGETS["p99_ms_at_10k"]
    add(
        "p99 ack latency at 10k records/s (HTTP/protobuf)",
        f"<= {limit_l:.0f} ms",
        p99,
        p99 is not None and p99 <= limit_l,
        "ms",
    )
    soak = figures.get("soak")
    if soak and soak.get("valid"):
        peak = soak["peak_rss_mb"]
        growth = soak["second_half_growth"]
        flat = growth is not None and growth <= 0.10
        limit_m = TARGETS["soak_peak_rss_mb"]
        add(
            f"peak RSS over {soak['records']:,} records",
            f"<= {limit_m:.0f} MiB",
            peak,
            peak <= limit_m,
            "MiB",
        )
        add(
            "RSS flat: growth over the second half of the soak",
            "<= +10 %",
            None if growth is None else growth * 100,
            flat,
            "%",
        )
    else:
        add("peak RSS over the soak", "<= 300 MiB", None, None, "MiB")
    scrape = figures.get("reports", {}).get("scrape", {})
    big = scrape.get("10000")
    worst = max(big["text_ms"], big["prometheus_ms"]) if big else None
    limit_s = TARGETS["scrape_ms_10k_users"]
    add(
        "/metrics scrape at 10k users (worse of text and gzip)",
        f"<= {limit_s:.0f} ms",
        worst,
        worst is not None and worst <= limit_s,
        "ms",
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the collector benchmarks.")
    parser.add_argument("--quick", action="store_true", help="scaled down, under 2 minutes")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {FIGURES}")
    parser.add_argument("--name", default="", help="results file name (default: quick|full)")
    parser.add_argument("--runs", type=int, default=0, help="runs per figure (median)")
    parser.add_argument("--profile", action="store_true", help="include the py-spy profile")
    parser.add_argument(
        "--markdown", metavar="RESULTS_JSON", help="print a results file as markdown tables"
    )
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return 0
    settings = QUICK if args.quick else FULL
    if args.runs:
        settings = replace(settings, runs=args.runs, baseline_runs=args.runs)
    only = tuple(x for x in args.only.split(",") if x) or tuple(
        f for f in FIGURES if f != "profile" or not args.quick or args.profile
    )
    unknown = set(only) - set(FIGURES)
    if unknown:
        parser.error(f"unknown figure(s) {sorted(unknown)}; choose from {FIGURES}")
    started = time.perf_counter()
    info = machine()
    say(
        f"cc-collector benchmarks ({settings.name}): {info['nproc']} cores, "
        f"{info['memory_gib']} GiB, {info['cpu_model']}, Python {info['python']}"
    )
    selfcheck()
    say("payload self-check: generated bodies parse and their totals match the accounting rules")
    suite = Suite(settings, only)
    steps: dict[str, Callable[[], None]] = {
        "ceiling": suite.ceiling,
        "throughput": suite.throughput,
        "latency": suite.latency,
        "reports": suite.reports,
        "soak": suite.soak,
        "profile": suite.profile,
    }
    elapsed_by_figure: dict[str, float] = {}
    for name in FIGURES:
        if name in only:
            began = time.perf_counter()
            steps[name]()
            took = time.perf_counter() - began
            elapsed_by_figure[name] = round(took, 1)
            say(f"  ({name}: {took:.0f} s)")
    elapsed = time.perf_counter() - started
    document = {
        "name": args.name or settings.name,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "mode": settings.name,
        "elapsed_s": round(elapsed, 1),
        "elapsed_by_figure_s": elapsed_by_figure,
        "machine": info,
        "git": git_state(),
        "settings": _jsonable(asdict(settings)),
        "figures": suite.figures,
        "targets": targets(suite.figures),
        "invalid": suite.invalid,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{dt.date.today().isoformat()}-{document['name']}.json"
    path.write_text(json.dumps(document, indent=1, default=str) + "\n")
    say(f"\n== targets ({settings.name} mode)")
    for row in document["targets"]:
        measured = "n/a" if row["measured"] is None else f"{row['measured']:,g} {row['unit']}"
        say(f"  {row['status']:>4}  {row['name']}: target {row['target']}, measured {measured}")
    if suite.invalid:
        say(f"\n{len(suite.invalid)} INVALID run(s) (totals did not match what was sent):")
        for line in suite.invalid:
            say(f"  {line}")
    say(f"\nwrote {path.relative_to(ROOT)} ({elapsed:.0f} s)")
    return 1 if suite.invalid else 0


def markdown(doc: dict[str, Any]) -> str:
    """The tables of docs/performance.md from one results file (so the doc is regenerated,
    never retyped)."""
    f = doc["figures"]
    m = doc["machine"]
    out = [
        f"Run `{doc['name']}` ({doc['mode']} mode), {doc['date']}, {doc['elapsed_s']:.0f} s; "
        f"commit {doc['git']['commit']}"
        + (
            f" with uncommitted product changes (diff {doc['git']['product_diff_sha1']})"
            if doc["git"].get("product_code_modified")
            else ""
        )
        + f". Machine: {m['nproc']} cores, {m['memory_gib']} GiB, {m['cpu_model']}, "
        f"Python {m['python']}, kernel {m['kernel']}.",
        "",
        "| Target | Measured | Status |",
        "|---|---|---|",
    ]
    for row in targets(f):
        value = "n/a" if row["measured"] is None else f"{row['measured']:,g} {row['unit']}"
        out.append(f"| {row['name']}: {row['target']} | {value} | {row['status']} |")

    def num(value: Any, fmt: str = ",.0f") -> str:
        return "n/a" if value is None else format(value, fmt)

    if "throughput" in f:
        ceiling = f.get("ceiling", {})
        out += [
            "",
            "| Protocol | Collector records/s | CPU s / M records | Naive baseline records/s "
            "| Collector / baseline | Parse ceiling records/s | Collector / ceiling | Runs |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for variant, row in f["throughput"].items():
            if not isinstance(row, dict):
                continue
            base = f.get("baseline", {}).get(variant) or {}
            ratio = f.get("ratios", {}).get(variant, {})
            roof = ceiling.get("json" if variant == "http-json" else "protobuf", {})
            valid = f"{row['valid_runs']}/{len(row['runs'])} verified"
            out.append(
                f"| {variant} | {num(row['records_per_s'])} "
                f"| {num(row['cpu_s_per_million'], '.1f')}"
                f" | {num(base.get('records_per_s'))} | {_fmt_ratio(ratio.get('to_baseline'))}"
                f" | {num(roof.get('records_per_s') if base else None)}"
                f" | {_fmt_ratio(ratio.get('to_ceiling'), pct=True)} | {valid} |"
            )
        if ceiling.get("stages"):
            stages = ", ".join(f"{k} {v:,.0f}/s" for k, v in ceiling["stages"].items())
            out += ["", f"Collector pipeline in-process, no I/O (protobuf): {stages}."]
    if f.get("latency"):
        out += [
            "",
            "| Protocol | Rate records/s | Batch | Seconds | p50 ms | p99 ms | max ms | Runs |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in f["latency"]:
            runs = row["runs"]
            worst = max((r["max_ms"] for r in runs), default=None)
            verified = sum(r["valid"] for r in runs)
            out.append(
                f"| {row['protocol']} | {row['records_per_s']:,} | {row['batch']} | "
                f"{row['seconds']:g} | {num(row['p50_ms'], '.1f')} | {num(row['p99_ms'], '.1f')} "
                f"| {num(worst, '.1f')} | {verified}/{len(runs)} verified, "
                f"{runs[0]['samples']} requests each |"
            )
    reports = f.get("reports")
    if reports:
        out += [
            "",
            "| Users | Series | Text: ms | Text: MiB | OpenMetrics+gzip: ms | gzip: MiB "
            "| First scrape after the load: ms |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in reports["scrape"].values():
            first = row.get("first_scrape_ms")
            out.append(
                f"| {row['users']:,} | {row['series']:,} | {row['text_ms']:.0f} | "
                f"{row['text_bytes'] / MB:.1f} | {row['prometheus_ms']:.0f} | "
                f"{row['prometheus_gzip_bytes'] / MB:.2f} | {num(first)} |"
            )
        out += [
            "",
            "| Users | Days of data | Report rows | First page (20) ms | 1000 rows ms "
            "| Whole report as CSV ms (pages) |",
            "|---|---|---|---|---|---|",
        ]
        for row in reports["analytics"].values():
            out.append(
                f"| {row['users']:,} | {row.get('days_of_data', 'n/a')} | {row['rows']:,} | "
                f"{row['page_20_ms']:.0f} | {row['page_1000_ms']:.0f} | "
                f"{row['full_csv_ms']:.0f} ({row['csv_pages']}) |"
            )
        out += [
            "",
            f"Store after the loads: {reports['store_mb']:.0f} MiB; collector RSS "
            f"{reports['rss_mb']:.0f} MiB; totals {'verified' if reports['valid'] else 'INVALID'}.",
        ]
    soak = f.get("soak")
    if soak:
        at = ", ".join(f"{k}: {v:.0f}" for k, v in soak["rss_at"].items() if v is not None)
        out += [
            "",
            f"Soak: {soak['records']:,} records, {soak['users']:,} users, {soak['sessions']:,} "
            f"sessions in {soak['seconds']:.0f} s ({soak['records_per_s']:,.0f} records/s, "
            f"{soak['cpu_s_per_million']:.1f} CPU s / M records). RSS MiB at start "
            f"{soak['start_rss_mb']:.0f}; at share of records sent {at}; peak "
            f"{soak['peak_rss_mb']:.0f}; second half {soak['second_half_growth']:+.1%}. "
            f"Store {soak['store_mb']:.0f} MiB. Totals "
            f"{'verified' if soak['valid'] else 'INVALID'}.",
        ]
    profile = f.get("profile")
    if profile:
        out += ["", f"Profile ({profile['samples']} samples, threads {profile['threads']}):", ""]
        out += ["| Self time | Function |", "|---|---|"]
        out += [f"| {r['share']:.1%} | `{r['function']}` |" for r in profile["self"][:15]]
        out += ["", "| Inclusive | Function |", "|---|---|"]
        out += [f"| {r['share']:.1%} | `{r['function']}` |" for r in profile["inclusive"][:15]]
    return "\n".join(out)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


if __name__ == "__main__":
    sys.exit(main())
