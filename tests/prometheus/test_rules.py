"""Prometheus rules, their unit tests and the Alertmanager configuration, checked with the
real `promtool` and `amtool` (Debian packages `prometheus` and `prometheus-alertmanager`;
`make deps-debian` installs them). Without the tools these tests fail, they do not skip.

The compose layout mounts the rules at /etc/prometheus/rules/, so `promtool check config`
runs on a copy of prometheus/prometheus.yml whose rule_files point into this checkout.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "prometheus" / "rules"
TESTS_DIR = ROOT / "prometheus" / "tests"
PROMETHEUS_CONFIG = ROOT / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = ROOT / "alertmanager" / "alertmanager.yml"
ALERTS_DOC = ROOT / "docs" / "alerts.md"
COMPOSE_RULES_DIR = "/etc/prometheus/rules/"

RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
TEST_FILES = sorted(TESTS_DIR.glob("*.yml"))


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"`{name}` is not installed: run `make deps-debian` (as root) to install the "
            "Debian packages prometheus and prometheus-alertmanager",
            pytrace=False,
        )
    return path


def run(*args: str | Path) -> str:
    """Runs a command; fails the test with its output unless it exits 0."""
    argv = [str(a) for a in args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        pytest.fail(f"`{' '.join(argv)}` exited {proc.returncode}:\n{output}", pytrace=False)
    return output


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def groups() -> list[dict[str, Any]]:
    return [group for path in RULE_FILES for group in load(path)["groups"]]


def alerting_rules() -> list[dict[str, Any]]:
    return [rule for group in groups() for rule in group["rules"] if "alert" in rule]


def recording_rules() -> list[dict[str, Any]]:
    return [rule for group in groups() for rule in group["rules"] if "record" in rule]


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown page."""
    anchors = set()
    for line in markdown.splitlines():
        match = re.match(r"#{1,6}\s+(.*)", line)
        if match:
            text = match.group(1).strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return anchors


def test_rule_and_test_files_exist():
    assert {p.name for p in RULE_FILES} >= {"recording.yml", "alerts.yml"}
    assert TEST_FILES, "no promtool unit tests in prometheus/tests/"


def test_promtool_check_rules():
    output = run(tool("promtool"), "check", "rules", *RULE_FILES)
    assert output.count("SUCCESS") == len(RULE_FILES), output


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests(test_file: Path):
    output = run(tool("promtool"), "test", "rules", test_file)
    assert "SUCCESS" in output, output


def test_promtool_check_config(tmp_path: Path):
    text = PROMETHEUS_CONFIG.read_text()
    config = yaml.safe_load(text)
    assert config["rule_files"] == [COMPOSE_RULES_DIR + "*.yml"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "alertmanager:9093"
    ]
    (job,) = (j for j in config["scrape_configs"] if j["job_name"] == "claude-code-collector")
    assert job["scrape_interval"] == "15s"
    assert job["static_configs"][0]["targets"] == ["collector:8889"]

    # The same file with the rules of this checkout instead of the container's mount point.
    copy = tmp_path / "prometheus.yml"
    copy.write_text(text.replace(COMPOSE_RULES_DIR, f"{RULES_DIR}/"))
    output = run(tool("promtool"), "check", "config", copy)
    assert "is valid prometheus config file syntax" in output, output
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in output, output
    for rule_file in RULE_FILES:
        assert f"Checking {rule_file}" in output, output


def test_amtool_check_config():
    output = run(tool("amtool"), "check-config", ALERTMANAGER_CONFIG)
    assert "SUCCESS" in output, output


def test_alertmanager_examples_stay_valid(tmp_path: Path):
    """The commented e-mail and Slack examples, uncommented, still make a valid config."""
    lines, inside, examples = [], False, 0
    for line in ALERTMANAGER_CONFIG.read_text().splitlines():
        marker = line.strip()
        if marker.startswith("# >>> example"):
            inside, examples = True, examples + 1
        elif marker.startswith("# <<< example"):
            inside = False
        elif inside:
            match = re.fullmatch(r"(\s*)# ?(.*)", line)
            assert match, f"example line is not commented: {line!r}"
            line = match.group(1) + match.group(2)
        lines.append(line)
    assert not inside, "an example block is not closed"
    assert examples >= 3
    uncommented = tmp_path / "alertmanager.yml"
    uncommented.write_text("\n".join(lines) + "\n")
    config = yaml.safe_load(uncommented.read_text())
    receivers = {r["name"]: r for r in config["receivers"]}
    assert "email_configs" in receivers["oncall"] and "slack_configs" in receivers["oncall"]
    assert "SUCCESS" in run(tool("amtool"), "check-config", uncommented)


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (["severity=critical", "alertname=ClaudeCodeCollectorDown"], "oncall"),
        (["severity=critical", "team=web", "alertname=ClaudeCodeBudgetExceeded"], "oncall,teams"),
        (["severity=warning", "team=web", "alertname=ClaudeCodeUserSpendSpike"], "teams"),
        (
            ["severity=warning", "team=platform", "alertname=ClaudeCodeApiErrorRateHigh"],
            "team-platform",
        ),
        (
            ["severity=critical", "team=platform", "alertname=ClaudeCodeBudgetExceeded"],
            "oncall,team-platform",
        ),
        (["severity=warning", "alertname=ClaudeCodeCollectorOverloaded"], "default"),
    ],
)
def test_alertmanager_routes(labels: list[str], receivers: str):
    run(
        tool("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_CONFIG}",
        f"--verify.receivers={receivers}",
        *labels,
    )


def test_every_alert_is_documented_and_labelled():
    anchors = github_anchors(ALERTS_DOC.read_text())
    names = [rule["alert"] for rule in alerting_rules()]
    assert len(names) == len(set(names)), "duplicate alert names"
    for rule in alerting_rules():
        name = rule["alert"]
        assert rule.get("labels", {}).get("severity") in ("critical", "warning"), name
        annotations = rule.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            assert annotations.get(key, "").strip(), f"{name} has no {key}"
        assert annotations["runbook_url"] == f"docs/alerts.md#{name.lower()}", name
        assert name.lower() in anchors, f"docs/alerts.md has no section for {name}"


def test_links_into_alerts_doc_exist():
    anchors = github_anchors(ALERTS_DOC.read_text())
    sources = [*RULE_FILES, PROMETHEUS_CONFIG, ALERTMANAGER_CONFIG, ALERTS_DOC]
    for source in sources:
        text = source.read_text()
        targets = re.findall(r"docs/alerts\.md#([\w-]+)", text)
        if source == ALERTS_DOC:
            targets += re.findall(r"\]\(#([\w-]+)\)", text)
        for anchor in targets:
            assert anchor in anchors, f"{source.name} links to a missing anchor #{anchor}"


def test_rules_only_read_recorded_series_that_exist():
    """A typo in a recorded name is not an error in PromQL, just an empty result: catch it."""
    recorded = {rule["record"] for rule in recording_rules()}
    for rule in recording_rules() + alerting_rules():
        texts = [rule["expr"], *rule.get("annotations", {}).values()]
        for text in texts:
            for name in re.findall(r"(?<![\w:])[a-zA-Z_]\w*:[\w:]*\w", text):
                assert name in recorded, f"{rule.get('alert') or rule['record']} reads {name}"


def test_tunables_are_documented():
    doc = ALERTS_DOC.read_text()
    (tunables,) = (g for g in groups() if g["name"] == "claude_code_tunables")
    for rule in tunables["rules"]:
        assert re.fullmatch(r"vector\([0-9.]+\)", rule["expr"]), rule
        assert f"`{rule['record']}`" in doc, f"{rule['record']} is not in docs/alerts.md"


def test_unit_tests_load_every_rule_file_and_order_every_group():
    # Recording groups first (in file order), then alerting groups.
    ordered = sorted(groups(), key=lambda g: any("alert" in rule for rule in g["rules"]))
    group_names = [group["name"] for group in ordered]
    for test_file in TEST_FILES:
        spec = load(test_file)
        loaded = {(test_file.parent / path).resolve() for path in spec["rule_files"]}
        assert loaded == {p.resolve() for p in RULE_FILES}, test_file.name
        # Recording rules must run before the alerts that read them at the same instant.
        assert spec.get("group_eval_order") == group_names, test_file.name


def test_every_alert_fires_in_a_test_and_stays_quiet_in_another():
    fires: set[str] = set()
    quiet: set[str] = set()
    for test_file in TEST_FILES:
        for case in load(test_file)["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    for name in (rule["alert"] for rule in alerting_rules()):
        assert name in fires, f"no promtool test case where {name} fires"
        assert name in quiet, f"no promtool test case where {name} must not fire"
