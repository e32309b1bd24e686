"""A real, throwaway PostgreSQL server for the tests of the PostgreSQL store.

Mocks would not catch what matters for a store (SQL errors, types, transactions, locking), so the
tests run against a real server. Rather than needing a configured one, each test session makes
its own: `initdb` into a fresh temp dir, `postgres` on 127.0.0.1 on a free port, every durability
setting turned off (the data is thrown away), and everything is stopped and deleted at the end.
Nothing here touches a system cluster (e.g. Debian's `15/main`) or port 5432.

The server binaries are Debian's, under /usr/lib/postgresql/<version>/bin (`make deps-debian`
installs them); set PG_BINDIR to use others. CI runs as root, and initdb/postgres refuse to run
as root, so as root they run as Debian's `postgres` system user; otherwise as the current user.

Fixtures (import them into a conftest.py, or into a test module):
- `pg_cluster` (session): the running server, a `PgCluster`.
- `pg_url`: a fresh, empty database per test, as a `postgresql://` URL.
If the server cannot be started the fixtures fail with the reason, never skip: a store whose
tests silently did not run is worse than a red build.
"""

from __future__ import annotations

import itertools
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

DEBIAN_PG_ROOT = Path("/usr/lib/postgresql")
HOST = "127.0.0.1"
SUPERUSER = "postgres"
# Unix socket paths are limited to ~107 bytes; keep the temp dir short, and on a base that the
# unprivileged server user can traverse (a root-only TMPDIR would not do).
_MAX_BASE_LEN = 60
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# Durability is pointless for data deleted at the end of the session; these make commits,
# CREATE DATABASE and checkpoints cheap. UTC so that timestamps print the same everywhere.
SERVER_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "1GB",
    "checkpoint_timeout": "1h",
    "timezone": "UTC",
    "logging_collector": "off",
}


class PostgresUnavailable(RuntimeError):
    """The test server could not be found or started; the message says why and what to do."""


def find_bindir() -> Path:
    """The directory with `initdb` and `postgres`: PG_BINDIR, else Debian's highest version.

    Not whatever `initdb` is on PATH: a stray wrapper or another version there would make the
    cluster and the `postgres` binary disagree.
    """
    override = os.environ.get("PG_BINDIR")
    if override:
        candidates = [Path(override)]
    else:
        versions = [p for p in DEBIAN_PG_ROOT.glob("*/bin") if p.parent.name.isdigit()]
        candidates = sorted(versions, key=lambda p: int(p.parent.name), reverse=True)
    for bindir in candidates:
        if all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "postgres", "psql")):
            return bindir
    where = f"PG_BINDIR={override}" if override else f"{DEBIAN_PG_ROOT}/*/bin"
    raise PostgresUnavailable(
        f"no PostgreSQL server binaries (initdb, postgres, psql) in {where}; "
        "run `make deps-debian` (as root, installs Debian's postgresql package) "
        "or set PG_BINDIR to a directory that has them"
    )


@dataclass(frozen=True)
class _RunAs:
    """Who runs initdb/postgres: root cannot, so as root it is the `postgres` system user."""

    uid: int
    gid: int
    home: str

    @classmethod
    def choose(cls) -> _RunAs:
        if os.geteuid() != 0:
            return cls(os.geteuid(), os.getegid(), os.environ.get("HOME", "/"))
        try:
            entry = pwd.getpwnam(SUPERUSER)
        except KeyError:
            raise PostgresUnavailable(
                "running as root, and PostgreSQL refuses to run as root, but there is no "
                f"`{SUPERUSER}` system user to run it as (Debian's postgresql package creates "
                "it: `make deps-debian`); or run the tests as an ordinary user"
            ) from None
        return cls(entry.pw_uid, entry.pw_gid, entry.pw_dir)

    @property
    def switches(self) -> bool:
        return self.uid != os.geteuid()

    def popen_kwargs(self) -> dict[str, Any]:
        """subprocess arguments that drop to this user (and all of root's groups) if needed."""
        if not self.switches:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without PG* variables (a developer's PGHOST etc. must not leak in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(LC_ALL="C", **extra)
    return env


def _make_root(run_as: _RunAs) -> Path:
    """A fresh private temp dir owned by the server user, reachable by it."""
    base = tempfile.gettempdir()
    if len(base) > _MAX_BASE_LEN or (run_as.switches and not _traversable_by_all(Path(base))):
        base = "/tmp"
    root = Path(tempfile.mkdtemp(prefix="cc-pg-", dir=base))
    if run_as.switches:
        os.chown(root, run_as.uid, run_as.gid)
    return root


def _traversable_by_all(path: Path) -> bool:
    """Whether every directory from / to `path` lets other users pass (o+x)."""
    return all(p.stat().st_mode & 0o001 for p in [path, *path.parents])


def _free_port() -> int:
    """A loopback port free right now (the server may still lose a race for it: we retry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


@dataclass
class PgCluster:
    """A running throwaway server; `new_database()` gives each caller its own database.

    Clients connect over TCP on 127.0.0.1 as the superuser with a generated password
    (scram-sha-256), so the URLs work for any client. Administration (CREATE/DROP DATABASE)
    goes over the unix socket in the private temp dir, where trust auth is safe.
    """

    bindir: Path
    root: Path
    port: int
    password: str
    process: subprocess.Popen[bytes]
    run_as: _RunAs
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    def url(self, dbname: str = "postgres") -> str:
        """The client URL for `dbname` on this server."""
        return f"postgresql://{SUPERUSER}:{self.password}@{HOST}:{self.port}/{dbname}"

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run `sql` as the superuser over the unix socket; raise with psql's error on failure."""
        result = subprocess.run(
            [
                *(str(self.bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"),
                *("-h", str(self.socket_dir), "-p", str(self.port), "-U", SUPERUSER),
                *("-d", dbname, "-c", sql),
            ],
            env=_clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed ({sql!r}): {result.stderr.strip()}")
        return result.stdout

    def new_database(self, name: str | None = None) -> str:
        """Create a fresh, empty database (from template1) and return its URL.

        For tests that need isolation from each other; much cheaper than a new server.
        """
        name = name or f"test_{next(self._names)}"
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"database name must be a plain identifier: {name!r}")
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url_or_name: str) -> None:
        """Drop a database made by `new_database`, closing any connections still open to it."""
        name = urlsplit(url_or_name).path.lstrip("/") if "://" in url_or_name else url_or_name
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"database name must be a plain identifier: {name!r}")
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @classmethod
    def start(cls) -> PgCluster:
        """initdb + postgres in a fresh temp dir; on any failure, clean up and raise why."""
        bindir = find_bindir()
        run_as = _RunAs.choose()
        root = _make_root(run_as)
        try:
            password = secrets.token_urlsafe(24)
            _initdb(bindir, root, run_as, password)
            last_error = ""
            for _attempt in range(3):
                port = _free_port()
                process = _spawn_postgres(bindir, root, run_as, port)
                cluster = cls(bindir, root, port, password, process, run_as)
                try:
                    cluster._wait_ready()
                    return cluster
                except PostgresUnavailable as exc:
                    cluster._stop_process()
                    last_error = str(exc)
                    if "could not bind" not in last_error and "in use" not in last_error:
                        break  # not a lost port race: retrying will not help
            raise PostgresUnavailable(last_error)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise

    def _wait_ready(self) -> None:
        """Until postmaster.pid says `ready` (accepting connections), or the server dies."""
        pidfile = self.datadir / "postmaster.pid"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PostgresUnavailable(
                    f"postgres exited with status {self.process.returncode} on startup "
                    f"(port {self.port}); its log:\n{_tail(self.log_path)}"
                )
            try:
                lines = pidfile.read_text().splitlines()
            except OSError:
                lines = []
            if len(lines) >= 8 and lines[7].strip() == "ready":
                return
            time.sleep(0.02)
        raise PostgresUnavailable(
            f"postgres not ready after {START_TIMEOUT:.0f}s; its log:\n{_tail(self.log_path)}"
        )

    def _stop_process(self) -> None:
        """Fast shutdown (SIGINT: abort transactions, close clients), harder if it hangs."""
        for sig, timeout in ((signal.SIGINT, STOP_TIMEOUT), (signal.SIGQUIT, 5.0)):
            if self.process.poll() is not None:
                return
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
                return
            except subprocess.TimeoutExpired:
                continue
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        """Stop the server and delete its temp dir (data, socket, log)."""
        try:
            self._stop_process()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _initdb(bindir: Path, root: Path, run_as: _RunAs, password: str) -> None:
    """A new cluster: password auth over TCP, trust only on the private unix socket."""
    pwfile = root / "pwfile"
    pwfile.write_text(password + "\n")
    pwfile.chmod(0o600)
    (root / "sock").mkdir(mode=0o700)
    if run_as.switches:
        os.chown(pwfile, run_as.uid, run_as.gid)
        os.chown(root / "sock", run_as.uid, run_as.gid)
    cmd = [str(bindir / "initdb"), "-D", str(root / "data"), "-U", SUPERUSER]
    cmd += [f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256"]
    cmd += ["-E", "UTF8", "--locale=C", "--no-sync"]
    try:
        result = subprocess.run(
            cmd,
            cwd=root,
            env=_clean_env(HOME=run_as.home),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            **run_as.popen_kwargs(),
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise PostgresUnavailable(f"could not run {cmd[0]}: {exc}") from exc
    finally:
        pwfile.unlink(missing_ok=True)
    if result.returncode != 0:
        raise PostgresUnavailable(
            f"initdb failed (status {result.returncode}):\n{result.stdout}{result.stderr}"
        )


def _spawn_postgres(bindir: Path, root: Path, run_as: _RunAs, port: int) -> subprocess.Popen[bytes]:
    """The postmaster itself (not pg_ctl), so we own its process and its output."""
    settings = {
        **SERVER_SETTINGS,
        "listen_addresses": HOST,
        "port": str(port),
        "unix_socket_directories": str(root / "sock"),
    }
    cmd = [str(bindir / "postgres"), "-D", str(root / "data")]
    for name, value in settings.items():
        cmd += ["-c", f"{name}={value}"]
    with (root / "postgres.log").open("ab") as log:
        try:
            return subprocess.Popen(
                cmd,
                cwd=root,
                env=_clean_env(HOME=run_as.home),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                **run_as.popen_kwargs(),
            )
        except OSError as exc:
            raise PostgresUnavailable(f"could not run {cmd[0]}: {exc}") from exc


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One server for the whole session: starting one costs ~0.5s, a database ~0.05s."""
    cluster: PgCluster | None = None
    reason = ""
    try:
        cluster = PgCluster.start()
    except PostgresUnavailable as exc:
        reason = str(exc)
    if cluster is None:  # fail outside the except block, so the reason is printed once
        pytest.fail(f"cannot start the PostgreSQL test server: {reason}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh, empty database for one test (dropped afterwards), as a postgresql:// URL."""
    url = pg_cluster.new_database()
    yield url
    pg_cluster.drop_database(url)
