"""`cc-collector serve` as a real process: start, readiness, graceful SIGTERM, defaults.

On SIGTERM the collector stops accepting (listeners closed, /readyz 503), lets requests in
flight finish and be answered, then exits 0. Every subprocess is killed in `finally`, and
every wait has a bound so a broken build fails instead of hanging.
"""

from __future__ import annotations

import dataclasses
import signal
import socket
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

from collector.config import Config, Endpoint
from collector.server import CollectorService
from tests.harness import make_config, running_collector
from tests.procs import (
    DEFAULT_PORTS,
    free_ports,
    http_status,
    refuses_connections,
    scrape,
    serve,
    total,
    wait_for,
    write_config,
)
from tests.rawhttp import SplitRequest
from tests.replay import GRPC_METHODS, captured, expected, replay

# -- graceful shutdown -------------------------------------------------------------------


def test_sigterm_finishes_in_flight_request_refuses_new_ones_and_exits_0(tmp_path: Path) -> None:
    grpc_port, http_port, metrics_port = free_ports(3)
    config = write_config(tmp_path / "config.yaml", grpc_port, http_port, metrics_port)
    log = tmp_path / "collector.log"
    base = f"http://127.0.0.1:{metrics_port}"
    target = SimpleNamespace(
        http_base=f"http://127.0.0.1:{http_port}", grpc_endpoint=f"127.0.0.1:{grpc_port}"
    )
    with serve(["--config", str(config)], log) as proc:
        wait_for(lambda: http_status(base + "/readyz") == 200, "/readyz 200", proc, log)
        assert http_status(base + "/healthz") == 200

        # Data over both transports is counted exactly, as the CLI reported it.
        assert replay("http-protobuf", target) == [200] * 10
        assert replay("grpc", target) == [grpc.StatusCode.OK] * 10
        samples = scrape(base + "/metrics")
        cli_cost = expected("http-protobuf")["total_cost_usd"] + expected("grpc")["total_cost_usd"]
        assert total(samples, "claude_code_cost_usd_total") == pytest.approx(cli_cost, abs=1e-9)
        assert total(samples, "claude_code_sessions_total") == 2

        # A slow request is in flight when SIGTERM arrives.
        item = next(i for i in captured("gzip-headers") if i.signal == "metrics")
        slow = SplitRequest(http_port, "metrics", item.body)
        try:
            wait_for(
                lambda: total(scrape(base + "/metrics"), "cc_collector_inflight_requests") == 1,
                "the slow request to be in flight",
                proc,
                log,
            )
            proc.send_signal(signal.SIGTERM)

            # Draining: not ready, and no new OTLP connections on either port.
            wait_for(lambda: http_status(base + "/readyz") == 503, "/readyz 503", proc, log)
            wait_for(lambda: refuses_connections("127.0.0.1", http_port), "HTTP listener closed")
            wait_for(lambda: refuses_connections("127.0.0.1", grpc_port), "gRPC listener closed")
            assert proc.poll() is None, "exited before answering the request in flight"

            status, body = slow.finish()
            assert status == 200, body
            response = metrics_service_pb2.ExportMetricsServiceResponse.FromString(body)
            assert not response.HasField("partial_success")
        finally:
            slow.close()
        assert proc.wait(timeout=30) == 0, log.read_text()
    output = log.read_text()
    assert "shutting down" in output
    assert "stopped" in output
    assert "Traceback" not in output


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_plan_workers_do_not_outlive_a_killed_collector(tmp_path: Path) -> None:
    """`kill -9` (or the OOM killer) gives the collector no chance to stop its workers: they
    must notice on their own and exit, not linger as orphans holding memory."""
    grpc_port, http_port, metrics_port = free_ports(3)
    config = write_config(tmp_path / "config.yaml", grpc_port, http_port, metrics_port)
    config.write_text(config.read_text() + "processors:\n  claude_code:\n    workers: 2\n")
    log = tmp_path / "collector.log"
    base = f"http://127.0.0.1:{metrics_port}"
    with serve(["--config", str(config)], log) as proc:
        wait_for(lambda: http_status(base + "/readyz") == 200, "/readyz 200", proc, log)
        children = _children(proc.pid)
        workers = [
            pid for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        assert len(workers) == 2, children
        assert total(scrape(base + "/metrics"), "cc_collector_plan_workers") == 2
        proc.kill()
        proc.wait(timeout=30)
        wait_for(
            lambda: not any(_running(pid) for pid in children),
            "the collector's child processes to exit",
        )


def test_sigint_also_stops_gracefully(tmp_path: Path) -> None:
    ports = free_ports(3)
    config = write_config(tmp_path / "config.yaml", *ports)
    log = tmp_path / "collector.log"
    with serve(["--config", str(config)], log) as proc:
        ready = f"http://127.0.0.1:{ports[2]}/readyz"
        wait_for(lambda: http_status(ready) == 200, "/readyz 200", proc, log)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, log.read_text()
    assert "Traceback" not in log.read_text()


@pytest.mark.parametrize("busy", ["grpc", "http", "metrics"])
def test_port_in_use_exits_1_with_a_clear_message(tmp_path: Path, busy: str) -> None:
    ports = dict(zip(("grpc", "http", "metrics"), free_ports(3), strict=True))
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", ports[busy]))
        blocker.listen()
        config = write_config(
            tmp_path / "config.yaml", ports["grpc"], ports["http"], ports["metrics"]
        )
        log = tmp_path / "collector.log"
        with serve(["--config", str(config)], log) as proc:
            code = proc.wait(timeout=30)
        output = log.read_text()
    assert code == 1, output
    assert "Traceback" not in output, output
    assert "cc-collector: " in output
    assert str(ports[busy]) in output


# -- defaults ----------------------------------------------------------------------------


def test_default_config_is_loopback_only() -> None:
    config = Config()
    for endpoint in (config.grpc_endpoint, config.http_endpoint, config.metrics_endpoint):
        assert endpoint.loopback, endpoint
        assert endpoint.host == "127.0.0.1"
    assert (config.grpc_endpoint.port, config.http_endpoint.port, config.metrics_endpoint.port) == (
        DEFAULT_PORTS
    )
    assert config.auth_required is False
    assert config.allow_unauthenticated is False


def _listening(port: int) -> set[str]:
    """Local addresses of TCP sockets in LISTEN state on `port` (Linux /proc/net)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if fields[3] == "0A" and int(port_hex, 16) == port:
                if width == 8:
                    found.add(socket.inet_ntop(socket.AF_INET, bytes.fromhex(address)[::-1]))
                else:
                    raw = bytes.fromhex(address)
                    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                    text = socket.inet_ntop(socket.AF_INET6, words)
                    # An IPv6 socket bound to an IPv4-mapped address serves IPv4 only.
                    found.add(text.removeprefix("::ffff:"))
    return found


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return not _listening(port)


def test_serving_the_default_config_binds_loopback_only(tmp_path: Path) -> None:
    """The built-in config, served on this machine, listens on 127.0.0.1 and nowhere else.

    When the default ports are free, the real `cc-collector serve` (no --config) is started
    and its listening sockets are read from /proc/net. Either way the default Config() is
    served in-process with only the port numbers changed to ephemeral ones.
    """
    default = Config()
    ephemeral = dataclasses.replace(
        default,
        grpc_endpoint=Endpoint(default.grpc_endpoint.host, 0),
        http_endpoint=Endpoint(default.http_endpoint.host, 0),
        metrics_endpoint=Endpoint(default.metrics_endpoint.host, 0),
        store=str(tmp_path / "in-process" / "collector.db"),  # not the repo's data/
    )
    with running_collector(ephemeral) as collector:
        ports = collector.service.ports
        for port in (ports.grpc, ports.http, ports.metrics):
            assert _listening(port) == {"127.0.0.1"}, port
        assert replay("http-protobuf", collector) == [200] * 10

    if all(_port_free(port) for port in DEFAULT_PORTS):
        log = tmp_path / "collector.log"
        with serve([], log) as proc:
            wait_for(
                lambda: http_status("http://127.0.0.1:8889/readyz") == 200, "readyz", proc, log
            )
            for port in DEFAULT_PORTS:
                assert _listening(port) == {"127.0.0.1"}, (port, _listening(port))
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0, log.read_text()
        assert "auth off" in log.read_text()


def test_in_process_service_stops_only_what_started() -> None:
    """A service whose start failed half-way can still be stopped (no AttributeError)."""
    import asyncio

    grpc_port, http_port, metrics_port = free_ports(3)
    config = make_config(
        {
            "receivers": {
                "otlp": {
                    "protocols": {
                        "grpc": {"endpoint": f"127.0.0.1:{grpc_port}"},
                        "http": {"endpoint": f"127.0.0.1:{http_port}"},
                    }
                }
            },
            "exporters": {"prometheus": {"endpoint": f"127.0.0.1:{metrics_port}"}},
        }
    )

    async def scenario() -> None:
        with socket.socket() as blocker:
            blocker.bind(("127.0.0.1", http_port))
            blocker.listen()
            service = CollectorService(config)
            with pytest.raises(OSError):
                await service.start()
            await service.stop(grace=1)
        assert refuses_connections("127.0.0.1", metrics_port)
        assert not service.ready["ready"]

    asyncio.run(scenario())


def test_ipv6_loopback_endpoints_can_be_served() -> None:
    with socket.socket(socket.AF_INET6) as probe:
        try:
            probe.bind(("::1", 0))
        except OSError:
            pytest.skip("this machine has no IPv6 loopback")
    config = make_config(
        {
            "receivers": {
                "otlp": {
                    "protocols": {"grpc": {"endpoint": "[::1]:0"}, "http": {"endpoint": "[::1]:0"}}
                }
            },
        }
    )
    with running_collector(config) as collector:
        ports = collector.service.ports
        item = captured("grpc")[0]
        with grpc.insecure_channel(f"[::1]:{ports.grpc}") as channel:
            assert channel.unary_unary(GRPC_METHODS[item.signal])(item.body, timeout=10) == b""
        assert collector.total("cc_collector_items_total", outcome="accepted") > 0
