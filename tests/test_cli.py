"""The `cc-collector` console script, run as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from collector import __version__

REPO = Path(__file__).resolve().parents[1]
CASES = sorted((REPO / "tests" / "config" / "cases").glob("*.yaml"))
CLI = Path(sys.executable).parent / "cc-collector"
TOKEN = "cli-test-token-1f2e3d"
API_KEY = "an-api-read-key-for-the-bundled-config"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the console script with a clean environment (no CC_* leaking in from the shell)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CC_")}
    return subprocess.run(
        [str(CLI), *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )


def expectation(case: Path) -> str:
    """The `# expect: <message>` first line of a case file."""
    return case.read_text().splitlines()[0].removeprefix("# expect: ").strip()


def test_console_script_is_installed() -> None:
    assert CLI.exists(), f"{CLI} missing: pip install -e ."


def test_version() -> None:
    done = run("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"cc-collector {__version__}"


def test_no_command_is_a_usage_error() -> None:
    done = run()
    assert done.returncode == 2
    assert "usage: cc-collector" in done.stderr


def test_validate_bundled_config_ok() -> None:
    done = run(
        "validate", "otel-config.yaml", env={"CC_INGEST_TOKEN": TOKEN, "CC_API_KEY": API_KEY}
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "otel-config.yaml: ok"
    assert TOKEN not in done.stdout + done.stderr
    assert API_KEY not in done.stdout + done.stderr


def test_validate_bundled_config_with_all_interfaces_ok() -> None:
    done = run(
        "validate",
        str(REPO / "otel-config.yaml"),
        env={"CC_INGEST_TOKEN": TOKEN, "CC_API_KEY": API_KEY, "CC_LISTEN_HOST": "0.0.0.0"},
    )
    assert done.returncode == 0, done.stderr


def test_validate_bundled_config_without_token_names_the_key() -> None:
    done = run("validate", "otel-config.yaml")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip() == (
        "cc-collector: invalid config: receivers.otlp.auth.tokens[0].token: "
        "environment variable CC_INGEST_TOKEN is not set"
    )


def test_validate_bundled_config_with_short_token() -> None:
    done = run("validate", "otel-config.yaml", env={"CC_INGEST_TOKEN": "short"})
    assert done.returncode == 2
    assert "receivers.otlp.auth.tokens[0].token: must be at least 8 characters" in done.stderr
    assert "short" not in done.stderr.replace("must be at least", "")


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_validate_invalid_case_exits_2_with_key_path(case: Path) -> None:
    done = run("validate", str(case))
    assert done.returncode == 2, done.stdout
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("cc-collector: invalid config: ")
    assert expectation(case) in done.stderr.splitlines()[0]


def test_validate_missing_file() -> None:
    done = run("validate", "/nonexistent/cc-collector.yaml")
    assert done.returncode == 2
    assert "cannot read /nonexistent/cc-collector.yaml" in done.stderr


def test_validate_bad_directory_file(tmp_path: Path) -> None:
    """The people directory is loaded at validate time too, not on the first data point."""
    config = tmp_path / "config.yaml"
    config.write_text("processors:\n  claude_code:\n    directory: missing-directory.csv\n")
    done = run("validate", str(config))
    assert done.returncode == 2
    assert "missing-directory.csv" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_with_invalid_config_exits_2_without_listening(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("receivers:\n  otlp:\n    max_inflight_requests: 0\n")
    done = run("serve", "--config", str(config))
    assert done.returncode == 2
    assert "receivers.otlp.max_inflight_requests: must be >= 1, got 0" in done.stderr


def test_unknown_subcommand() -> None:
    done = run("start")
    assert done.returncode == 2
    assert "invalid choice" in done.stderr
