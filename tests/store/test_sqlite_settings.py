"""The SQLite connection settings an acknowledgement's durability rests on.

A crash test cannot show a power loss, so the settings that make a COMMIT survive one are
pinned here: WAL with `synchronous=FULL` syncs the log at every commit (NORMAL would not).
"""

from __future__ import annotations

from pathlib import Path

from exporters.store.backend import Backend


def test_commits_are_synced(tmp_path: Path) -> None:
    backend = Backend.open(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        assert backend.query("PRAGMA journal_mode") == [("wal",)]
        assert backend.query("PRAGMA synchronous") == [(2,)]  # FULL
    finally:
        backend.close()
