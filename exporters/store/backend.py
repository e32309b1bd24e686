"""One connection to SQLite or PostgreSQL, with the few dialect-specific operations.

All methods block; callers run them on a dedicated thread (never on the event loop). SQLite
runs in WAL mode with `synchronous=FULL`, so a committed transaction survives a crash or
power loss and an acknowledged request is durable. PostgreSQL runs at READ COMMITTED; the
state rows a transaction decides on are locked first (`fetch_state`), in key order, so
replicas sharing one database never decide on the same row at once.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from exporters.store.schema import POSTGRES, SQLITE, Dialect, migrations

T = TypeVar("T")
Row = tuple[int, int]
_CHUNK = 500
_RETRIES = 8


class StoreError(Exception):
    """The store cannot take or give data right now (down, locked, full)."""


class Backend:
    dialect: Dialect

    def __init__(self, target: str) -> None:
        self.target = target
        self.conn: Any = None

    # -- lifecycle ---------------------------------------------------------------------

    @classmethod
    def open(cls, target: str) -> Backend:
        backend: Backend = (
            PostgresBackend(target)
            if target.startswith(("postgresql://", "postgres://"))
            else SqliteBackend(target)
        )
        backend.connect()
        return backend

    def connect(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    # -- statements --------------------------------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.conn.execute(self.dialect.sql(sql), params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if rows:
            self.conn.cursor().executemany(self.dialect.sql(sql), rows)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self.conn.execute(self.dialect.sql(sql), params).fetchall())

    def transaction(self, work: Callable[[Backend], T]) -> T:
        raise NotImplementedError

    def fetch_state(self, keys: Iterable[bytes]) -> dict[bytes, Row | None]:
        """The state rows of `keys` (None: absent), locked until the transaction ends."""
        raise NotImplementedError

    def peek_state(self, keys: Iterable[bytes]) -> dict[bytes, Row | None]:
        """The state rows of `keys` (None: absent), without locking them."""
        wanted = list(keys)
        found: dict[bytes, Row | None] = dict.fromkeys(wanted)
        for i in range(0, len(wanted), _CHUNK):
            chunk = wanted[i : i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for key, a, b in self.query(
                f"SELECT key, a, b FROM acc_state WHERE key IN ({marks}) AND expires_at <> -1",
                chunk,
            ):
                found[bytes(key)] = (a, b)
        return found

    def legacy_dedupe_until(self) -> int:
        """`store_meta`'s legacy_dedupe_until_ns (see schema version 4)."""
        rows = self.query("SELECT value FROM store_meta WHERE name = 'legacy_dedupe_until_ns'")
        return int(rows[0][0]) if rows else 0

    def store_state(self, rows: Iterable[tuple[bytes, int, int, int]]) -> None:
        self.executemany(
            "INSERT INTO acc_state (key, a, b, expires_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET a = excluded.a, b = excluded.b, "
            "expires_at = excluded.expires_at",
            rows,
        )

    # -- schema ------------------------------------------------------------------------

    def migrate(self) -> int:
        """Apply missing migrations; returns the schema version."""

        def work(db: Backend) -> int:
            db.lock_for_migration()
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            found = db.query("SELECT max(version) FROM schema_version")[0][0] or 0
            steps = migrations(db.dialect)
            for version in range(found + 1, len(steps) + 1):
                for statement in steps[version - 1]:
                    db.execute(statement)
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            return len(steps)

        return self.transaction(work)

    def lock_for_migration(self) -> None:
        """Only one replica migrates at a time."""


class SqliteBackend(Backend):
    dialect = SQLITE

    def connect(self) -> None:
        path = self.target.removeprefix("sqlite:///").removeprefix("sqlite://")
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=30
            )
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite store {path}: {exc}") from exc

    def transaction(self, work: Callable[[Backend], T]) -> T:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(self)
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
            return result
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite: {exc}") from exc

    def fetch_state(self, keys: Iterable[bytes]) -> dict[bytes, Row | None]:
        # BEGIN IMMEDIATE holds the database's write lock: reading is locking.
        return self.peek_state(keys)


class PostgresBackend(Backend):
    dialect = POSTGRES

    def connect(self) -> None:
        import psycopg

        try:
            self.conn = psycopg.connect(self.target, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {_first_line(exc)}") from exc

    def _reconnect_if_broken(self) -> None:
        if self.conn is None or self.conn.closed or self.conn.broken:
            self.close()
            self.connect()

    def transaction(self, work: Callable[[Backend], T]) -> T:
        import psycopg
        from psycopg import errors

        for attempt in range(_RETRIES):
            try:
                self._reconnect_if_broken()
                with self.conn.transaction():
                    return work(self)
            except (errors.DeadlockDetected, errors.SerializationFailure, errors.UniqueViolation):
                time.sleep(0.005 * (attempt + 1))  # another replica raced us; redo from scratch
            except psycopg.Error as exc:
                raise StoreError(f"PostgreSQL: {_first_line(exc)}") from exc
        raise StoreError("PostgreSQL: gave up after repeated lock conflicts")

    def lock_for_migration(self) -> None:
        self.execute("SELECT pg_advisory_xact_lock(7216455)")

    def fetch_state(self, keys: Iterable[bytes]) -> dict[bytes, Row | None]:
        wanted = sorted(keys)
        found: dict[bytes, Row | None] = dict.fromkeys(wanted)
        if not wanted:
            return found
        # Make every row exist (a placeholder with expires_at = -1 means "absent"), so the
        # SELECT ... FOR UPDATE below locks new keys as well as old ones. A concurrent
        # inserter of the same key makes us wait for its commit and then see its row.
        self.execute(
            "INSERT INTO acc_state (key, a, b, expires_at) "
            "SELECT k, 0, 0, -1 FROM unnest(?::bytea[]) AS k ORDER BY k ON CONFLICT DO NOTHING",
            (wanted,),
        )
        rows = self.query(
            "SELECT key, a, b, expires_at FROM acc_state WHERE key = ANY(?) "
            "ORDER BY key FOR UPDATE",
            (wanted,),
        )
        for key, a, b, expires in rows:
            if expires != -1:
                found[bytes(key)] = (a, b)
        return found


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
