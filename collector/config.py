"""The collector's own config (`otel-config.yaml`), typed and validated when loaded.

Shaped like an OpenTelemetry Collector config (receivers / processors / exporters / service)
so operators read it without a manual; see docs/configuration.md for every key. Loading
fails fast with a `ConfigError` naming the key path and the reason, e.g.
`receivers.otlp.protocols.http.endpoint: expected host:port, got 'localhost'`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from collector.envsubst import EnvError, substitute

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS_NS = {"ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9, "d": 86400 * 10**9}


#: cgroup v2 CPU quota of this process's container (`docker run --cpus`, compose `cpus:`).
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def cpu_quota(cpu_max: Path = CGROUP_CPU_MAX) -> float | None:
    """Cores a cgroup v2 CPU quota allows (`150000 100000` is 1.5), or None without one."""
    try:
        quota, period = cpu_max.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError, ZeroDivisionError):
        return None


def auto_plan_workers(cpus: int | None = None, cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """`workers: auto`: one plan worker per core beyond the serving process's own, at most
    two (the serving process itself tops out at about one core: docs/performance.md), none
    on a single core, where a worker would only add the cost of handing plans over.

    The cores are those this process may run on (cpuset, taskset), fewer if a container's
    CPU quota allows fewer (rounded up: 1.5 cores leave room for a worker)."""
    if cpus is None:
        affinity = getattr(os, "sched_getaffinity", None)
        cpus = len(affinity(0)) if affinity else os.cpu_count() or 1
        quota = cpu_quota(cpu_max)
        if quota is not None:
            cpus = min(cpus, max(1, math.ceil(quota)))
    return max(0, min(2, cpus - 1))


class ConfigError(ValueError):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host.strip("[]")).is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class TokenConfig:
    name: str
    token: str = field(repr=False)
    user: str | None = None
    team: str | None = None


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A read key for the REST API. Only its SHA-256 is kept; `role` is admin or viewer."""

    name: str
    sha256: bytes = field(repr=False)
    role: str


@dataclass(frozen=True, slots=True)
class Budget:
    """A spend budget for alert rules: scope org/team/user, `name` of the team or user (the
    org's is "org"), period day/month, amount in USD."""

    scope: str
    name: str
    period: str
    usd: float


@dataclass(frozen=True, slots=True)
class OtlpTarget:
    """One downstream of the OTLP forwarding exporter (`exporters.otlp[]`, docs/forwarding.md).

    `endpoint` is normalized: `host:port` for gRPC, the full `.../v1/metrics` URL for
    HTTP. `insecure` means plaintext (no TLS). Header values are secrets (API keys, bearer
    tokens), so they are hidden from the representation like ingest tokens are.
    """

    name: str
    endpoint: str
    protocol: str = "grpc"
    insecure: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    temporality: str = "cumulative"
    interval_ns: int = 60 * 10**9
    timeout_ns: int = 10 * 10**9
    compression: str = "gzip"
    max_points_per_request: int = 5000


@dataclass(frozen=True, slots=True)
class Config:
    grpc_endpoint: Endpoint = Endpoint("127.0.0.1", 4317)
    grpc_max_bytes: int = 4 * 1024 * 1024
    http_endpoint: Endpoint = Endpoint("127.0.0.1", 4318)
    http_max_bytes: int = 4 * 1024 * 1024
    max_inflight_requests: int = 64
    tokens: tuple[TokenConfig, ...] = ()
    auth_required: bool = False
    allow_unauthenticated: bool = False
    directory: Path | None = None
    stream_ttl_ns: int = 24 * 3600 * 10**9
    dedupe_ttl_ns: int = 48 * 3600 * 10**9
    max_streams: int = 1_000_000
    max_dedupe_keys: int = 10_000_000
    #: plan worker processes (collector/planning.py); 0 plans in the serving process.
    plan_workers: int = field(default_factory=lambda: auto_plan_workers())
    metrics_endpoint: Endpoint = Endpoint("127.0.0.1", 8889)
    max_users: int = 10_000
    max_label_values: int = 1_000
    user_idle_ns: int = 30 * 86400 * 10**9
    #: SQLite path or postgresql:// URL; "" keeps everything in memory (nothing survives a
    #: restart: for tests and benchmarks only).
    store: str = "data/collector.db"
    replica_id: str = field(default_factory=lambda: socket.gethostname() or "local")
    api_keys: tuple[ApiKey, ...] = ()
    budgets: tuple[Budget, ...] = ()
    organization_id: str = ""
    log_level: str = "info"
    #: OTLP forwarding targets (`exporters.otlp`); empty: no forwarding.
    otlp_targets: tuple[OtlpTarget, ...] = ()


class _Reader:
    """Walks the YAML tree, remembering the key path for error messages."""

    def __init__(self, data: Any, path: str, environ: Mapping[str, str], base: Path) -> None:
        self.data, self.path, self.environ, self.base = data, path, environ, base

    def child(self, key: str) -> _Reader:
        data = self.data.get(key) if isinstance(self.data, dict) else None
        return _Reader(data, f"{self.path}.{key}" if self.path else key, self.environ, self.base)

    def error(self, reason: str) -> ConfigError:
        return ConfigError(self.path, reason)

    def mapping(self, allowed: set[str]) -> dict[str, Any]:
        if self.data is None:
            return {}
        if not isinstance(self.data, dict):
            raise self.error(f"expected a mapping, got {type(self.data).__name__}")
        for key in self.data:
            if key not in allowed:
                raise self.child(str(key)).error(
                    f"unknown key (allowed: {', '.join(sorted(allowed))})"
                )
        return self.data

    def string(self, default: str | None = None) -> str | None:
        if self.data is None:
            return default
        if not isinstance(self.data, str | int | float) or isinstance(self.data, bool):
            raise self.error(f"expected a string, got {type(self.data).__name__}")
        try:
            return substitute(str(self.data), self.environ)
        except EnvError as exc:
            raise self.error(str(exc)) from exc

    def integer(self, default: int, minimum: int = 0) -> int:
        text = self.string()
        if text is None:
            return default
        try:
            value = int(text)
        except ValueError:
            raise self.error(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise self.error(f"must be >= {minimum}, got {value}")
        return value

    def boolean(self, default: bool) -> bool:
        if isinstance(self.data, bool) or self.data is None:
            return default if self.data is None else self.data
        text = (self.string() or "").lower()
        if text in ("true", "yes", "1"):
            return True
        if text in ("false", "no", "0"):
            return False
        raise self.error(f"expected true or false, got {text!r}")

    def duration_ns(self, default: int) -> int:
        text = self.string()
        if text is None:
            return default
        total, pos = 0, 0
        for match in _DURATION.finditer(text):
            if match.start() != pos:
                break
            total += round(float(match.group(1)) * _UNITS_NS[match.group(2)])
            pos = match.end()
        if pos != len(text) or not text or total <= 0:
            raise self.error(f"expected a positive duration like 90s, 30m, 24h or 7d, got {text!r}")
        return total

    def endpoint(self, default: Endpoint) -> Endpoint:
        text = self.string()
        if text is None:
            return default
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise self.error(f"expected host:port, got {text!r}")
        return Endpoint(host.strip("[]"), int(port))

    def path_value(self) -> Path | None:
        text = self.string()
        if text is None:
            return None
        path = Path(text)
        return path if path.is_absolute() else self.base / path


def _tokens(reader: _Reader) -> tuple[TokenConfig, ...]:
    if reader.data is None:
        return ()
    if not isinstance(reader.data, list):
        raise reader.error("expected a list of tokens")
    tokens: list[TokenConfig] = []
    names: set[str] = set()
    for index in range(len(reader.data)):
        item = _Reader(reader.data[index], f"{reader.path}[{index}]", reader.environ, reader.base)
        item.mapping({"name", "token", "token_file", "user", "team"})
        name = item.child("name").string()
        if not name:
            raise item.child("name").error("required")
        if name in names:
            raise item.child("name").error(f"duplicate token name {name!r}")
        names.add(name)
        secret = item.child("token").string()
        token_file = item.child("token_file").path_value()
        if (secret is None) == (token_file is None):
            raise item.error("give exactly one of token or token_file")
        if token_file is not None:
            try:
                secret = token_file.read_text().strip()
            except OSError as exc:
                raise item.child("token_file").error(
                    f"cannot read {token_file}: {exc.strerror}"
                ) from exc
        if not secret or len(secret) < 8:
            raise item.child("token").error("must be at least 8 characters")
        if any(t.token == secret for t in tokens):
            raise item.child("token").error("the same secret is already used by another token")
        tokens.append(
            TokenConfig(name, secret, item.child("user").string(), item.child("team").string())
        )
    return tuple(tokens)


def _api_keys(reader: _Reader, tokens: tuple[TokenConfig, ...]) -> tuple[ApiKey, ...]:
    if reader.data is None:
        return ()
    if not isinstance(reader.data, list):
        raise reader.error("expected a list of API keys")
    keys: list[ApiKey] = []
    for index in range(len(reader.data)):
        item = _Reader(reader.data[index], f"{reader.path}[{index}]", reader.environ, reader.base)
        item.mapping({"name", "key", "key_sha256", "role"})
        name = item.child("name").string()
        if not name:
            raise item.child("name").error("required")
        role = item.child("role").string("viewer")
        if role not in ("admin", "viewer"):
            raise item.child("role").error(f"expected admin or viewer, got {role!r}")
        secret, hashed = item.child("key").string(), item.child("key_sha256").string()
        if (secret is None) == (hashed is None):
            raise item.error("give exactly one of key or key_sha256")
        if secret is not None:
            if len(secret) < 16:
                raise item.child("key").error("must be at least 16 characters")
            if any(t.token == secret for t in tokens):
                raise item.child("key").error("an ingest token cannot also be an API key")
            digest = hashlib.sha256(secret.encode()).digest()
        else:
            try:
                digest = bytes.fromhex(hashed or "")
            except ValueError:
                digest = b""
            if len(digest) != 32:
                raise item.child("key_sha256").error("expected 64 hex characters (SHA-256)")
        keys.append(ApiKey(name, digest, role))
    return tuple(keys)


def _budgets(reader: _Reader) -> tuple[Budget, ...]:
    if reader.data is None:
        return ()
    if not isinstance(reader.data, list):
        raise reader.error("expected a list of budgets")
    budgets: list[Budget] = []
    for index in range(len(reader.data)):
        item = _Reader(reader.data[index], f"{reader.path}[{index}]", reader.environ, reader.base)
        item.mapping({"scope", "name", "period", "usd"})
        scope = item.child("scope").string()
        if scope not in ("org", "team", "user"):
            raise item.child("scope").error(f"expected org, team or user, got {scope!r}")
        name = item.child("name").string("org" if scope == "org" else None)
        if not name:
            raise item.child("name").error("required for team and user budgets")
        period = item.child("period").string()
        if period not in ("day", "month"):
            raise item.child("period").error(f"expected day or month, got {period!r}")
        text = item.child("usd").string()
        try:
            usd = float(text or "")
        except ValueError:
            raise item.child("usd").error(f"expected a number of USD, got {text!r}") from None
        if not usd > 0:
            raise item.child("usd").error("must be > 0")
        budgets.append(Budget(scope, name, period, usd))
    return tuple(budgets)


#: an HTTP header name (RFC 9110 token); gRPC metadata keys are these, lower-cased.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
#: a forwarding target's name: a label value and a store key, so kept plain.
_TARGET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _otlp_targets(reader: _Reader) -> tuple[OtlpTarget, ...]:
    """`exporters.otlp`: a list of downstreams the corrected metrics are forwarded to."""
    if reader.data is None:
        return ()
    if not isinstance(reader.data, list):
        raise reader.error("expected a list of targets")
    targets: list[OtlpTarget] = []
    for index in range(len(reader.data)):
        item = _Reader(reader.data[index], f"{reader.path}[{index}]", reader.environ, reader.base)
        item.mapping(
            {
                "name",
                "endpoint",
                "protocol",
                "headers",
                "tls",
                "temporality",
                "interval",
                "timeout",
                "compression",
                "max_points_per_request",
            }
        )
        name = item.child("name").string()
        if not name:
            raise item.child("name").error("required")
        if not _TARGET_NAME.match(name):
            raise item.child("name").error(
                f"expected letters, digits, '_', '.' or '-' (at most 64), got {name!r}"
            )
        if any(t.name == name for t in targets):
            raise item.child("name").error(f"duplicate target name {name!r}")
        protocol = item.child("protocol").string("grpc")
        if protocol not in ("grpc", "http/protobuf"):
            raise item.child("protocol").error(f"expected grpc or http/protobuf, got {protocol!r}")
        tls = item.child("tls")
        tls.mapping({"insecure", "ca_file", "cert_file", "key_file"})
        files = {key: _readable(tls.child(key)) for key in ("ca_file", "cert_file", "key_file")}
        if (files["cert_file"] is None) != (files["key_file"] is None):
            raise tls.error("give both cert_file and key_file (a client certificate), or neither")
        endpoint, insecure = _target_endpoint(item.child("endpoint"), protocol, tls)
        if insecure and any(files.values()):
            given = next(key for key, path in files.items() if path is not None)
            raise tls.child(given).error("TLS files need a TLS endpoint (https:// or no insecure)")
        temporality = item.child("temporality").string("cumulative")
        if temporality not in ("cumulative", "delta"):
            raise item.child("temporality").error(
                f"expected cumulative or delta, got {temporality!r}"
            )
        compression = item.child("compression").string("gzip")
        if compression not in ("gzip", "none"):
            raise item.child("compression").error(f"expected gzip or none, got {compression!r}")
        targets.append(
            OtlpTarget(
                name=name,
                endpoint=endpoint,
                protocol=protocol,
                insecure=insecure,
                ca_file=files["ca_file"],
                cert_file=files["cert_file"],
                key_file=files["key_file"],
                headers=_headers(item.child("headers"), lower=protocol == "grpc"),
                temporality=temporality,
                interval_ns=item.child("interval").duration_ns(60 * 10**9),
                timeout_ns=item.child("timeout").duration_ns(10 * 10**9),
                compression=compression,
                max_points_per_request=item.child("max_points_per_request").integer(5000, 1),
            )
        )
    return tuple(targets)


def _readable(reader: _Reader) -> Path | None:
    """A file the exporter will read later: fail now, naming the key, if it cannot."""
    path = reader.path_value()
    if path is not None:
        try:
            path.read_bytes()
        except OSError as exc:
            raise reader.error(f"cannot read {path}: {exc.strerror}") from exc
    return path


def _target_endpoint(reader: _Reader, protocol: str, tls: _Reader) -> tuple[str, bool]:
    """(normalized endpoint, plaintext?). gRPC takes `host:port` (TLS unless `tls.insecure`)
    or an `http://` / `https://` URL without a path; HTTP takes a base URL to which
    `/v1/metrics` is appended (unless it already ends with it), plaintext only for http://."""
    text = reader.string()
    if not text:
        raise reader.error("required")
    insecure_given = tls.child("insecure").data is not None
    insecure = tls.child("insecure").boolean(False)
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    if scheme not in ("", "http", "https"):
        raise reader.error(f"expected http:// or https://, got {scheme}://")
    if scheme == "https" and insecure:
        raise tls.child("insecure").error("an https:// endpoint is TLS; use http:// for plaintext")
    hostport, slash, path = rest.partition("/")
    host, colon, port = hostport.rpartition(":")
    if not hostport or (colon and (not host or not port.isdigit() or int(port) > 65535)):
        raise reader.error(f"expected a host and port, got {text!r}")
    if protocol == "grpc":
        if slash and path:
            raise reader.error(f"a gRPC endpoint has no path, got {text!r}")
        if not colon:
            raise reader.error(f"expected host:port, got {text!r}")
        plaintext = scheme == "http" or (scheme == "" and insecure)
        if scheme == "http" and insecure_given and not insecure:
            raise tls.child("insecure").error("an http:// endpoint is plaintext; use https://")
        return hostport, plaintext
    if not scheme:
        raise reader.error(f"expected an http:// or https:// URL, got {text!r}")
    if scheme == "http" and insecure_given and not insecure:
        raise tls.child("insecure").error("an http:// endpoint is plaintext; use https://")
    base = text.rstrip("/")
    url = base if base.endswith("/v1/metrics") else f"{base}/v1/metrics"
    return url, scheme == "http"


def _headers(reader: _Reader, lower: bool) -> tuple[tuple[str, str], ...]:
    if reader.data is None:
        return ()
    if not isinstance(reader.data, dict):
        raise reader.error(f"expected a mapping of header names to values, got {reader.data!r}")
    out: list[tuple[str, str]] = []
    for key in reader.data:
        name = str(key)
        if not _HEADER_NAME.match(name):
            raise reader.child(name).error("not a valid header name")
        value = reader.child(name).string() or ""
        if "\r" in value or "\n" in value:
            raise reader.child(name).error("a header value cannot contain a line break")
        out.append((name.lower() if lower else name, value))
    return tuple(out)


def parse(
    document: Any, environ: Mapping[str, str] | None = None, base: Path | None = None
) -> Config:
    """Build a `Config` from a parsed YAML document; raise `ConfigError` on the first problem."""
    root = _Reader(document, "", environ if environ is not None else os.environ, base or Path.cwd())
    if document is not None and not isinstance(document, dict):
        raise ConfigError("", "the config must be a YAML mapping")
    root.mapping({"receivers", "processors", "exporters", "service", "extensions"})
    d = Config()

    receivers = root.child("receivers")
    receivers.mapping({"otlp"})
    otlp = receivers.child("otlp")
    otlp.mapping({"protocols", "auth", "max_inflight_requests"})
    protocols = otlp.child("protocols")
    protocols.mapping({"grpc", "http"})
    grpc_cfg, http_cfg = protocols.child("grpc"), protocols.child("http")
    grpc_cfg.mapping({"endpoint", "max_recv_msg_size_mib"})
    http_cfg.mapping({"endpoint", "max_request_body_size"})
    auth = otlp.child("auth")
    auth.mapping({"tokens", "required", "allow_unauthenticated"})
    tokens = _tokens(auth.child("tokens"))
    auth_required = auth.child("required").boolean(bool(tokens))
    if auth_required and not tokens:
        raise auth.child("tokens").error("auth is required but no tokens are configured")

    processors = root.child("processors")
    processors.mapping({"claude_code"})
    proc = processors.child("claude_code")
    proc.mapping(
        {"directory", "stream_ttl", "dedupe_ttl", "max_streams", "max_dedupe_keys", "workers"}
    )

    exporters = root.child("exporters")
    exporters.mapping({"prometheus", "store", "otlp"})
    store_cfg = exporters.child("store")
    store_cfg.mapping({"path", "url", "memory", "replica_id"})
    store = _store_target(store_cfg, d.store)
    prom = exporters.child("prometheus")
    prom.mapping({"endpoint", "max_users", "max_label_values", "user_idle_timeout"})
    otlp_targets = _otlp_targets(exporters.child("otlp"))

    extensions = root.child("extensions")
    extensions.mapping({"api", "budgets"})
    api = extensions.child("api")
    api.mapping({"keys", "organization_id"})
    api_keys = _api_keys(api.child("keys"), tokens)
    budgets = _budgets(extensions.child("budgets"))

    service = root.child("service")
    service.mapping({"pipelines", "telemetry"})
    _check_pipelines(service.child("pipelines"), configured_otlp=bool(otlp_targets))
    telemetry = service.child("telemetry")
    telemetry.mapping({"logs"})
    logs = telemetry.child("logs")
    logs.mapping({"level"})
    level = (logs.child("level").string("info") or "info").lower()
    if level not in ("debug", "info", "warning", "error"):
        raise logs.child("level").error(f"expected debug, info, warning or error, got {level!r}")

    config = Config(
        grpc_endpoint=grpc_cfg.child("endpoint").endpoint(d.grpc_endpoint),
        grpc_max_bytes=grpc_cfg.child("max_recv_msg_size_mib").integer(4, minimum=1) * 1024 * 1024,
        http_endpoint=http_cfg.child("endpoint").endpoint(d.http_endpoint),
        http_max_bytes=http_cfg.child("max_request_body_size").integer(
            d.http_max_bytes, minimum=1024
        ),
        max_inflight_requests=otlp.child("max_inflight_requests").integer(
            d.max_inflight_requests, 1
        ),
        tokens=tokens,
        auth_required=auth_required,
        allow_unauthenticated=auth.child("allow_unauthenticated").boolean(False),
        directory=proc.child("directory").path_value(),
        stream_ttl_ns=proc.child("stream_ttl").duration_ns(d.stream_ttl_ns),
        dedupe_ttl_ns=proc.child("dedupe_ttl").duration_ns(d.dedupe_ttl_ns),
        max_streams=proc.child("max_streams").integer(d.max_streams, minimum=1000),
        max_dedupe_keys=proc.child("max_dedupe_keys").integer(d.max_dedupe_keys, minimum=1000),
        plan_workers=_workers(proc.child("workers")),
        metrics_endpoint=prom.child("endpoint").endpoint(d.metrics_endpoint),
        max_users=prom.child("max_users").integer(d.max_users, minimum=1),
        max_label_values=prom.child("max_label_values").integer(d.max_label_values, minimum=1),
        user_idle_ns=prom.child("user_idle_timeout").duration_ns(d.user_idle_ns),
        store=store,
        replica_id=store_cfg.child("replica_id").string(d.replica_id) or d.replica_id,
        api_keys=api_keys,
        budgets=budgets,
        organization_id=api.child("organization_id").string("") or "",
        log_level=level,
        otlp_targets=otlp_targets,
    )
    exposed = [e for e in (config.grpc_endpoint, config.http_endpoint) if not e.loopback]
    if exposed and not config.auth_required and not config.allow_unauthenticated:
        raise auth.error(
            f"OTLP would listen on non-loopback {exposed[0]} without authentication; configure "
            "tokens, or set allow_unauthenticated: true to accept anyone who can reach it"
        )
    return config


_COMPONENTS = {
    "receivers": {"otlp"},
    "processors": {"claude_code"},
    "exporters": {"prometheus", "store", "otlp"},
}


def _workers(reader: _Reader) -> int:
    """`workers`: a count, or `auto` (the default; see auto_plan_workers)."""
    text = reader.string()
    if text is None or text.strip().lower() == "auto":
        return auto_plan_workers()
    return reader.integer(0)


def _store_target(reader: _Reader, default: str) -> str:
    """`path` (SQLite, relative to the config file) or `url` (PostgreSQL), or `memory: true`."""
    path, url = reader.child("path"), reader.child("url")
    memory = reader.child("memory").boolean(False)
    given = [name for name, r in (("path", path), ("url", url)) if r.data is not None]
    if len(given) + memory > 1:
        raise reader.error("give only one of path, url or memory")
    if memory:
        return ""
    if url.data is not None:
        text = url.string() or ""
        if not text.startswith(("postgresql://", "postgres://")):
            raise url.error(f"expected a postgresql:// URL, got {text.split('@')[-1]!r}")
        return text
    found = path.path_value()
    return str(found) if found is not None else default  # default: relative to the cwd


def _check_pipelines(reader: _Reader, configured_otlp: bool = False) -> None:
    """Pipelines are fixed (OTLP -> accounting -> exposition), but a typo should still fail.
    Naming the `otlp` exporter without configuring `exporters.otlp` is such a typo too: the
    operator expects forwarding that would silently not happen."""
    for name in reader.mapping({"metrics", "logs", "traces"}):
        pipeline = reader.child(name)
        pipeline.mapping(set(_COMPONENTS))
        for kind, known in _COMPONENTS.items():
            refs = pipeline.child(kind)
            if refs.data is None:
                continue
            if not isinstance(refs.data, list):
                raise refs.error("expected a list of component names")
            for index, ref in enumerate(refs.data):
                if ref not in known:
                    raise ConfigError(f"{refs.path}[{index}]", f"unknown {kind[:-1]} {ref!r}")
                if kind == "exporters" and ref == "otlp" and not configured_otlp:
                    raise ConfigError(
                        f"{refs.path}[{index}]",
                        "exporter 'otlp' is not configured (add targets under exporters.otlp)",
                    )


def load(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("", f"cannot read {path}: {exc.strerror}") from exc
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("", f"{path} is not valid YAML: {exc}") from exc
    return parse(document, environ, base=path.resolve().parent)
