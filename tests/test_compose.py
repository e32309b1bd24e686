"""The container stack: Dockerfile and docker-compose.yml, checked without a Docker daemon.

Docker cannot run here, so the compose file is validated and resolved by Debian's
`docker-compose` (`config -q` / `config`), the Dockerfile is read instruction by instruction,
and the config the container runs is loaded by the real `cc-collector validate` with exactly the
environment the image and the compose file give it. Bind-mounted host paths (Prometheus rules,
Alertmanager and Grafana provisioning, dashboards) must exist in the repository.
"""

from __future__ import annotations

import fnmatch
import json
import os
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from collector.config import Config, parse

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
CLI = Path(sys.executable).parent / "cc-collector"
SERVICES = {"collector", "prometheus", "alertmanager", "grafana"}
REQUIRED_ENV = {
    "CC_INGEST_TOKEN": "compose-test-ingest-token-7c1d",
    "CC_API_KEY": "compose-test-api-read-key-0b9e4a",
    "GRAFANA_ADMIN_PASSWORD": "compose-test-grafana-password-5f2a",
}
# Host paths the stack bind-mounts (written alongside this file), and where they go.
BIND_MOUNTS = {
    "prometheus": {
        "prometheus/prometheus.yml": "/etc/prometheus/prometheus.yml",
        "prometheus/rules": "/etc/prometheus/rules",
    },
    "alertmanager": {"alertmanager/alertmanager.yml": "/etc/alertmanager/alertmanager.yml"},
    "grafana": {
        "grafana/provisioning": "/etc/grafana/provisioning",
        "dashboards": "/var/lib/grafana/dashboards",
    },
}
# What the README's "Full stack" section promises on localhost.
PUBLISHED = {
    "collector": {4317, 4318, 8889},
    "prometheus": {9090},
    "alertmanager": {9093},
    "grafana": {3000},
}


# --- docker-compose --------------------------------------------------------------------------


def compose(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`docker-compose -f docker-compose.yml ARGS` with only `env` set: nothing from the shell
    (CC_*, GRAFANA_*, COMPOSE_*) nor from a developer's `.env` file leaks in."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed: run `make deps-debian` (as root)")
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CC_", "GRAFANA_", "COMPOSE_", "DOCKER_"))
    }
    return subprocess.run(
        [binary, "--env-file", str(empty_env_file), "-f", COMPOSE_FILE.name, *args],
        env={**base, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The compose file as docker-compose resolves it (paths absolute, variables substituted)."""
    done = compose("config", env=REQUIRED_ENV, tmp_path=tmp_path_factory.mktemp("compose"))
    assert done.returncode == 0, done.stderr
    document = yaml.safe_load(done.stdout)
    assert isinstance(document, dict)
    return document


def service(resolved: dict[str, Any], name: str) -> dict[str, Any]:
    assert name in resolved["services"], f"service {name} missing"
    return resolved["services"][name]


def environment(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def mounts(svc: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each volume entry; a named volume's source is its name."""
    found = []
    for entry in svc.get("volumes") or []:
        if isinstance(entry, dict):
            found.append((str(entry.get("source", "")), str(entry["target"])))
        else:
            source, target = entry.split(":")[:2]
            found.append((source, target))
    return found


def published_ports(svc: dict[str, Any]) -> set[int]:
    ports = set()
    for entry in svc.get("ports") or []:
        if isinstance(entry, dict):
            ports.add(int(entry["published"]))
        else:
            ports.add(int(str(entry).split("/")[0].split(":")[-2]))
    return ports


def named_volume_at(resolved: dict[str, Any], name: str, target: str) -> str:
    """The named (top-level) volume mounted at `target` in service `name`."""
    declared = set(resolved.get("volumes") or {})
    sources = [s for s, t in mounts(service(resolved, name)) if t.rstrip("/") == target]
    assert sources, f"{name}: nothing mounted at {target}"
    assert sources[0] in declared, f"{name}: {target} is {sources[0]!r}, not a named volume"
    return sources[0]


def test_config_q_passes_with_the_required_env(tmp_path: Path) -> None:
    done = compose("config", "-q", env=REQUIRED_ENV, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("missing", sorted(REQUIRED_ENV))
def test_config_q_fails_naming_a_missing_variable(missing: str, tmp_path: Path) -> None:
    env = {k: v for k, v in REQUIRED_ENV.items() if k != missing}
    done = compose("config", "-q", env=env, tmp_path=tmp_path)
    assert done.returncode != 0
    assert f"set {missing}" in done.stderr, done.stderr


def test_no_variable_falls_back_to_a_default() -> None:
    """A secret must never silently get a default value: `${VAR:?…}`, not `${VAR:-…}`."""
    text = COMPOSE_FILE.read_text()
    for name in REQUIRED_ENV:
        uses = re.findall(r"\$\{" + name + r"(\W[^}]*)?\}", text)
        assert uses, f"{name} is not used"
        assert all(use.startswith(":?") for use in uses), f"{name}: {uses}"


def test_the_four_services(resolved: dict[str, Any]) -> None:
    assert set(resolved["services"]) == SERVICES


def test_images_are_pinned(resolved: dict[str, Any]) -> None:
    for name in SERVICES - {"collector"}:
        image = service(resolved, name).get("image", "")
        repo, _, tag = image.rpartition(":")
        assert repo and re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: {image!r} not pinned"


def test_collector_builds_from_the_repo_dockerfile(resolved: dict[str, Any]) -> None:
    build = service(resolved, "collector")["build"]
    context = Path(build["context"] if isinstance(build, dict) else build)
    dockerfile = context / (
        build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile"
    )
    assert context.resolve() == REPO
    assert dockerfile.resolve() == DOCKERFILE
    assert DOCKERFILE.is_file()


def test_every_service_has_a_health_check(resolved: dict[str, Any]) -> None:
    for name in SERVICES:
        check = service(resolved, name).get("healthcheck") or {}
        test = check.get("test")
        assert test and not check.get("disable"), f"{name}: no health check"
        assert test[0] in ("CMD", "CMD-SHELL") and test != ["NONE"], f"{name}: {test}"


def test_health_checks_ask_the_right_endpoints(resolved: dict[str, Any]) -> None:
    expected = {
        "collector": "http://127.0.0.1:8889/readyz",
        "prometheus": "http://127.0.0.1:9090/-/healthy",
        "alertmanager": "http://127.0.0.1:9093/-/healthy",
        "grafana": "http://127.0.0.1:3000/api/health",
    }
    for name, url in expected.items():
        test = " ".join(service(resolved, name)["healthcheck"]["test"])
        assert url in test, f"{name}: {test}"


def test_depends_on_waits_for_health(resolved: dict[str, Any]) -> None:
    for name, needs in {
        "prometheus": {"collector", "alertmanager"},
        "grafana": {"prometheus"},
    }.items():
        depends = service(resolved, name).get("depends_on") or {}
        assert set(depends) == needs, name
        for dep in needs:
            assert depends[dep] == {"condition": "service_healthy"}, (name, dep)


def test_named_volumes_for_the_store_and_prometheus(resolved: dict[str, Any]) -> None:
    store = named_volume_at(resolved, "collector", container_store_dir())
    command = service(resolved, "prometheus")["command"]
    command = shlex.split(command) if isinstance(command, str) else command
    tsdb = [a.split("=", 1)[1] for a in command if a.startswith("--storage.tsdb.path=")]
    assert tsdb, f"prometheus: no --storage.tsdb.path in {command}"
    tsdb_volume = named_volume_at(resolved, "prometheus", tsdb[0].rstrip("/"))
    grafana = named_volume_at(resolved, "grafana", "/var/lib/grafana")
    assert len({store, tsdb_volume, grafana}) == 3
    assert "--config.file=/etc/prometheus/prometheus.yml" in command


def test_grafana_admin_password_from_env_and_no_anonymous_access(
    resolved: dict[str, Any],
) -> None:
    env = environment(service(resolved, "grafana"))
    assert env.get("GF_SECURITY_ADMIN_PASSWORD") == REQUIRED_ENV["GRAFANA_ADMIN_PASSWORD"]
    assert env.get("GF_AUTH_ANONYMOUS_ENABLED", "").lower() == "false"
    raw = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["grafana"]["environment"]
    raw = raw if isinstance(raw, dict) else dict(i.split("=", 1) for i in raw)
    assert raw["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")


def test_bind_mounted_host_paths_exist_in_the_repo(resolved: dict[str, Any]) -> None:
    missing = []
    for name in SERVICES:
        for source, target in mounts(service(resolved, name)):
            if not source.startswith("/"):
                continue  # a named volume
            path = Path(source)
            assert path.is_relative_to(REPO), f"{name}: {source} is outside the repository"
            if not path.exists():
                missing.append(f"{name}: {path.relative_to(REPO)} -> {target}")
    assert not missing, "bind-mounted paths missing from the repository:\n" + "\n".join(missing)


def test_bind_mounts_are_the_documented_layout(resolved: dict[str, Any]) -> None:
    for name, expected in BIND_MOUNTS.items():
        binds = {
            str(Path(s).relative_to(REPO)): t
            for s, t in mounts(service(resolved, name))
            if s.startswith("/")
        }
        assert binds == expected, name
        raw = yaml.safe_load(COMPOSE_FILE.read_text())["services"][name]["volumes"]
        for entry in raw:
            if isinstance(entry, str) and entry.startswith("./"):
                assert entry.endswith(":ro"), f"{name}: {entry} should be read-only"


def test_published_ports_match_the_readme(resolved: dict[str, Any]) -> None:
    readme = (REPO / "README.md").read_text()
    assert "## Full stack" in readme
    section = readme.split("## Full stack", 1)[1].split("\n## ", 1)[0]
    assert "docker compose up" in section
    for name, ports in PUBLISHED.items():
        assert published_ports(service(resolved, name)) == ports, name
    for port in (3000, 9090, 9093, 8889):
        assert f"http://localhost:{port}" in section, port
    for port in (4317, 4318):
        assert f":{port}" in section, port
    for name in REQUIRED_ENV:
        assert name in section, name


def repo_yaml(relative: str) -> dict[str, Any]:
    path = REPO / relative
    if not path.is_file():
        pytest.fail(f"{relative} is missing from the repository (the stack mounts it)")
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict), f"{relative} is not a YAML mapping"
    return document


def test_stack_wiring_matches_the_service_names(resolved: dict[str, Any]) -> None:
    """Prometheus scrapes the collector and alerts Alertmanager, Grafana reads Prometheus,
    by the compose service names and the ports the containers listen on."""
    prom = repo_yaml("prometheus/prometheus.yml")
    targets = {
        t
        for job in prom.get("scrape_configs") or []
        for sc in job.get("static_configs") or []
        for t in sc.get("targets") or []
    }
    metrics = container_config(resolved).metrics_endpoint.port
    assert f"collector:{metrics}" in targets
    alerting = {
        t
        for am in (prom.get("alerting") or {}).get("alertmanagers") or []
        for sc in am.get("static_configs") or []
        for t in sc.get("targets") or []
    }
    assert "alertmanager:9093" in alerting
    assert any(
        posixpath.dirname(pattern) == "/etc/prometheus/rules"
        for pattern in prom.get("rule_files") or []
    ), prom.get("rule_files")
    datasources = repo_yaml("grafana/provisioning/datasources/prometheus.yml")
    urls = {d.get("url", "").rstrip("/") for d in datasources.get("datasources") or []}
    assert "http://prometheus:9090" in urls


# --- Dockerfile ------------------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    found: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, args = full.partition(" ")
        found.append((keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends in a continuation"
    return found


def arguments(keyword: str) -> list[str]:
    return [args for kw, args in instructions() if kw == keyword]


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for args in arguments("ENV"):
        words = shlex.split(args)
        if words and "=" not in words[0]:
            env[words[0]] = " ".join(words[1:])
        else:
            env.update(word.split("=", 1) for word in words)
    return env


def image_files() -> dict[str, Path]:
    """Container path -> repository path of every single file COPYed into the image."""
    files: dict[str, Path] = {}
    workdir = "/"
    for keyword, args in instructions():
        if keyword == "WORKDIR":
            workdir = posixpath.join(workdir, args)
        if keyword not in ("COPY", "ADD"):
            continue
        words = json.loads(args) if args.startswith("[") else shlex.split(args)
        words = [w for w in words if not w.startswith("--")]
        assert not any(w.startswith("--from") for w in shlex.split(args)), "multi-stage copy"
        *sources, dest = words
        dest = posixpath.join(workdir, dest)
        for source in sources:
            local = REPO / source
            if local.is_file():
                into_dir = dest.endswith("/") or len(sources) > 1
                files[posixpath.join(dest, local.name) if into_dir else dest] = local
            elif local.is_dir():
                for path in local.rglob("*"):
                    if path.is_file():
                        files[posixpath.join(dest, path.relative_to(local).as_posix())] = path
    return files


def cmd() -> list[str]:
    found = arguments("CMD")
    assert found, "no CMD"
    command = json.loads(found[-1])
    assert isinstance(command, list), "CMD must be in exec form (signals reach the collector)"
    return command


def container_config_path() -> str:
    command = cmd()
    assert command[:2] == ["cc-collector", "serve"], command
    assert "--config" in command, command
    return command[command.index("--config") + 1]


def container_env(resolved: dict[str, Any]) -> dict[str, str]:
    """What the collector process sees: the image's ENV, overridden by compose's."""
    return {**dockerfile_env(), **environment(service(resolved, "collector"))}


def container_config(resolved: dict[str, Any]) -> Config:
    path = container_config_path()
    source = image_files()[path]
    return parse(
        yaml.safe_load(source.read_text()),
        container_env(resolved),
        base=Path(PurePosixPath(path).parent),
    )


def container_store_dir() -> str:
    """The directory of the SQLite store of the config the image runs (env-independent)."""
    source = image_files()[container_config_path()]
    store = yaml.safe_load(source.read_text())["exporters"]["store"]
    assert "path" in store, "the container's config should use SQLite on the data volume"
    path = posixpath.join(posixpath.dirname(container_config_path()), store["path"])
    return posixpath.dirname(posixpath.normpath(path))


def test_base_image_is_python_311_slim() -> None:
    froms = arguments("FROM")
    assert froms and froms[0].split()[0] == "python:3.11-slim", froms


def test_runs_as_a_non_root_user() -> None:
    users = arguments("USER")
    assert users, "no USER: the collector would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), user
    runs = " ".join(arguments("RUN"))
    assert re.search(rf"useradd\b[^&;]*\b{re.escape(user)}\b", runs), f"user {user} not created"


def test_data_dir_is_a_volume_owned_by_the_app_user() -> None:
    store_dir = container_store_dir()
    volumes = []
    for args in arguments("VOLUME"):
        volumes += json.loads(args) if args.startswith("[") else args.split()
    assert store_dir in [v.rstrip("/") for v in volumes], (store_dir, volumes)
    user = arguments("USER")[-1].split(":")[0]
    chowns = [r for r in arguments("RUN") if re.search(rf"chown (-R )?{user}\b", r)]
    assert any(store_dir in r for r in chowns), f"{store_dir} is not chowned to {user}"


def test_installs_the_package_with_pip() -> None:
    assert any("pip install --no-cache-dir" in r for r in arguments("RUN"))
    copied = set(image_files().values())
    needed_files = (
        "pyproject.toml",
        "setup.py",
        "collector/decoding/_fastotlp.c",
        "README.md",
        "collector/__init__.py",
        "exporters/__init__.py",
    )
    for needed in needed_files:
        assert REPO / needed in copied, needed


def test_exposes_otlp_and_metrics_ports() -> None:
    exposed = {int(p.split("/")[0]) for args in arguments("EXPOSE") for p in args.split()}
    assert {4317, 4318, 8889} <= exposed, exposed


def test_healthcheck_asks_readyz_with_urllib() -> None:
    checks = arguments("HEALTHCHECK")
    assert checks and checks[-1] != "NONE", "no HEALTHCHECK"
    assert "urllib.request" in checks[-1] and "/readyz" in checks[-1], checks[-1]
    assert "curl" not in checks[-1], "python:3.11-slim has no curl"


def test_cmd_config_is_copied_into_the_image() -> None:
    path = container_config_path()
    assert path.startswith("/"), f"use an absolute config path, got {path}"
    assert path in image_files(), f"{path} is not COPYed into the image"


def test_dockerignore_keeps_secrets_out_but_not_the_sources() -> None:
    patterns = [
        line.strip().strip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(relative: str) -> bool:
        parts = relative.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        return any(
            fnmatch.fnmatch(prefix, pattern.removeprefix("**/"))
            or fnmatch.fnmatch(parts[-1], pattern.removeprefix("**/"))
            for pattern in patterns
            for prefix in prefixes
        )

    for secret in ("data/ingest-token", "data/api-key", "data/collector.db", ".env", ".git"):
        assert ignored(secret), secret
    # A locally built extension is for the host, not the image: the image builds its own.
    assert ignored("collector/decoding/_fastotlp.cpython-311-x86_64-linux-gnu.so")
    for local in set(image_files().values()):
        relative = local.relative_to(REPO).as_posix()
        if "__pycache__" not in relative and not relative.endswith(".so"):
            assert not ignored(relative), f"{relative} is COPYed but .dockerignore drops it"


# --- the config the container runs -----------------------------------------------------------


def test_cc_collector_validate_accepts_the_container_config(resolved: dict[str, Any]) -> None:
    """The real console script, on the file the image copies, with the container's env only."""
    source = image_files()[container_config_path()]
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    done = subprocess.run(
        [str(CLI), "validate", str(source)],
        env={**base, **container_env(resolved)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{source}: ok"


def test_container_config_without_the_compose_env_is_refused(resolved: dict[str, Any]) -> None:
    """The image alone (no CC_INGEST_TOKEN) must not start an open collector."""
    source = image_files()[container_config_path()]
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    done = subprocess.run(
        [str(CLI), "validate", str(source)],
        env={**base, **dockerfile_env()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "CC_INGEST_TOKEN is not set" in done.stderr, done.stderr


def test_container_config_listens_everywhere_with_auth_and_stores_on_the_volume(
    resolved: dict[str, Any],
) -> None:
    config = container_config(resolved)
    for endpoint in (config.grpc_endpoint, config.http_endpoint, config.metrics_endpoint):
        assert endpoint.host == "0.0.0.0", endpoint
    assert {config.grpc_endpoint.port, config.http_endpoint.port} == {4317, 4318}
    assert config.metrics_endpoint.port == 8889
    assert config.auth_required
    assert [t.token for t in config.tokens] == [REQUIRED_ENV["CC_INGEST_TOKEN"]]
    assert config.api_keys, "the REST API has no read key"
    assert PurePosixPath(config.store).parent == PurePosixPath(container_store_dir())
    volume_targets = [t for _, t in mounts(service(resolved, "collector"))]
    assert container_store_dir() in volume_targets
