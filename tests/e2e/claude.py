"""Install and run the real Claude Code CLI against the fake API and a collector.

The CLI is installed once with npm into `.cache/claude-code/` (reused across runs) at the
pinned version; the ~380 MB native binary ships in the optional dependency
`@anthropic-ai/claude-code-linux-x64` and is run directly. If npm cannot install it, the
e2e tests fail with that message: they are never skipped silently.
"""

from __future__ import annotations

import json
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

VERSION = "2.1.330"
REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "claude-code"
BINARY = CACHE / "node_modules" / "@anthropic-ai" / "claude-code-linux-x64" / "claude"
PROMPT = "Create hello.py, improve the greeting, commit it with git and open a pull request."
_install_lock = threading.Lock()


def claude_binary() -> Path:
    """The pinned native binary, installing it with npm on first use."""
    with _install_lock:
        if not _installed():
            CACHE.mkdir(parents=True, exist_ok=True)
            done = subprocess.run(
                [
                    "npm",
                    "install",
                    "--engine-strict=false",
                    "--no-audit",
                    "--no-fund",
                    "--prefix",
                    str(CACHE),
                    f"@anthropic-ai/claude-code@{VERSION}",
                ],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if done.returncode != 0 or not _installed():
                pytest.fail(
                    f"cannot install @anthropic-ai/claude-code@{VERSION} with npm (the e2e tests "
                    f"need the npm registry):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
                )
    return BINARY


def _installed() -> bool:
    if not BINARY.exists():
        return False
    try:
        out = subprocess.run(
            [str(BINARY), "--version"], capture_output=True, text=True, timeout=60, check=False
        ).stdout
    except OSError:
        return False
    return out.startswith(VERSION)


@dataclass
class Session:
    """One headless `claude -p` run in a fresh git repository and HOME."""

    root: Path
    api_port: int
    otel: dict[str, str]
    allowed_tools: tuple[str, ...] = ("Write", "Edit", "Bash")
    extra_env: dict[str, str] = field(default_factory=dict)
    #: a HOME shared with another session makes both the same user (one `user.id`).
    home: Path | None = None

    @property
    def workdir(self) -> Path:
        return self.root / "repo"

    @property
    def home_dir(self) -> Path:
        return self.home or self.root / "home"

    def prepare(self) -> None:
        home, stubs = self.home_dir, self.root / "bin"
        for folder in (home, stubs, self.workdir):
            folder.mkdir(parents=True, exist_ok=True)
        (home / ".gitconfig").write_text("[user]\n\tname = E2E\n\temail = e2e@example.com\n")
        gh = stubs / "gh"
        gh.write_text("#!/bin/sh\necho https://github.com/example/hello/pull/1\n")
        gh.chmod(0o755)
        git = {"HOME": str(home), "PATH": "/usr/bin:/bin"}
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=self.workdir, env=git, check=True)
        (self.workdir / "README.md").write_text("e2e\n")
        subprocess.run(["git", "add", "-A"], cwd=self.workdir, env=git, check=True)
        subprocess.run(["git", "commit", "-q", "-m", "init"], cwd=self.workdir, env=git, check=True)

    def environment(self) -> dict[str, str]:
        return {
            "PATH": f"{self.root / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home_dir),
            "TERM": "xterm-256color",
            "LANG": "C.UTF-8",
            "USER": "e2e",
            "SHELL": "/bin/bash",
            "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{self.api_port}",
            "ANTHROPIC_API_KEY": "sk-ant-test-" + "0" * 32,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "DISABLE_BUG_COMMAND": "1",
            "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            "OTEL_LOGS_EXPORT_INTERVAL": "1000",
            "OTEL_RESOURCE_ATTRIBUTES": "department=platform,team.id=core",
            **self.otel,
            **self.extra_env,
        }

    def run(self, timeout: float = 120) -> dict[str, Any]:
        """Runs the CLI under `env -i`; returns its JSON result (its own usage and cost)."""
        self.prepare()
        command = [
            "env",
            "-i",
            *(f"{k}={v}" for k, v in self.environment().items()),
            str(claude_binary()),
            "-p",
            PROMPT,
            "--output-format",
            "json",
            "--allowedTools",
            *self.allowed_tools,
        ]
        done = subprocess.run(
            command, cwd=self.workdir, capture_output=True, text=True, timeout=timeout, check=False
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if not lines:
            pytest.fail(
                f"claude printed no JSON result (exit {done.returncode}):\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return json.loads(lines[-1])

    def commits(self) -> int:
        git = {"HOME": str(self.home_dir), "PATH": "/usr/bin:/bin"}
        out = subprocess.run(
            ["git", "rev-list", "--count", "HEAD"],
            cwd=self.workdir,
            env=git,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return int(out) - 1  # minus the initial commit
