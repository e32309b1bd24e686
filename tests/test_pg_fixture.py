"""The PostgreSQL test fixtures give a real, writable server and independent databases.

If these fail, every PostgreSQL store test would fail for reasons that have nothing to do with
the store; this file says so first, and plainly.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import psycopg
import pytest

from tests.pg import PgCluster, pg_cluster, pg_url

# The fixtures are used by name; importing them here makes them available to this module
# whether or not tests/conftest.py imports them too.
__all__ = ["pg_cluster", "pg_url"]


def test_roundtrip_through_a_real_server(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE spend (user_id text PRIMARY KEY, usd numeric NOT NULL)")
        conn.execute("INSERT INTO spend VALUES (%s, %s), (%s, %s)", ("a", "1.25", "b", "0.5"))
        conn.commit()
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT user_id, usd::text FROM spend ORDER BY user_id").fetchall()
        server_version = conn.info.server_version
    assert rows == [("a", "1.25"), ("b", "0.5")]
    assert server_version >= 130000  # DROP DATABASE ... WITH (FORCE) needs 13


def test_url_is_loopback_tcp_with_password(pg_url: str) -> None:
    parts = urlsplit(pg_url)
    assert parts.scheme == "postgresql"
    assert parts.hostname == "127.0.0.1"
    assert parts.port and parts.password


def test_wrong_password_is_rejected(pg_cluster: PgCluster) -> None:
    # Password auth really is on: another local user cannot just walk in.
    bad = pg_cluster.url().replace(pg_cluster.password, "wrong")
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(bad, connect_timeout=5)


def test_databases_are_independent(pg_cluster: PgCluster) -> None:
    first, second = pg_cluster.new_database(), pg_cluster.new_database()
    try:
        assert first != second
        with psycopg.connect(first, autocommit=True) as conn:
            conn.execute("CREATE TABLE t (x int)")
            conn.execute("INSERT INTO t VALUES (1)")
        with psycopg.connect(second, autocommit=True) as conn:
            assert conn.execute("SELECT to_regclass('t')").fetchone() == (None,)
            conn.execute("CREATE TABLE t (x int)")  # same name, no clash
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
    finally:
        pg_cluster.drop_database(first)
        pg_cluster.drop_database(second)


def test_each_test_gets_a_fresh_database(pg_url: str) -> None:
    # The roundtrip test above made `spend` in its own database; this one must not see it.
    with psycopg.connect(pg_url) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    assert tables == []


def test_server_does_not_run_as_root(pg_cluster: PgCluster) -> None:
    # As root (CI), the server runs as the unprivileged `postgres` user; else as us.
    status = (pg_cluster.datadir / "postmaster.pid").stat()
    assert status.st_uid != 0 or os.geteuid() != 0
