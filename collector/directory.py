"""The optional people directory: email, account, token name or device id -> team, department.

Telemetry attributes for teams (`OTEL_RESOURCE_ATTRIBUTES`) are set per machine and often
missing, so orgs keep the truth in a file they already have (an HR or SSO export). Two
formats, chosen by file extension:

CSV (header required)::

    key,team,department
    dev@example.com,payments,engineering
    ci-runner,platform,engineering
    device:39f0bc8b,platform,engineering

YAML::

    dev@example.com: {team: payments, department: engineering}
    ci-runner: {team: platform}

Keys match case-insensitively. A device may be given by its full `user.id` or as
`device:<first 8 hex>`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml


class DirectoryError(ValueError):
    """A directory file that cannot be used; the message names the file and the line or key."""


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    team: str | None
    department: str | None


class Directory:
    def __init__(self, entries: Mapping[str, DirectoryEntry] | None = None) -> None:
        self._entries = {k.lower(): v for k, v in (entries or {}).items()}

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, *keys: str | None) -> DirectoryEntry | None:
        """The first entry matching any key, in the order given; device ids also by prefix."""
        for key in keys:
            if not key:
                continue
            found = self._entries.get(key.lower())
            if found is None and len(key) > 8 and ":" not in key:
                found = self._entries.get(f"device:{key[:8]}".lower())
            if found is not None:
                return found
        return None

    @classmethod
    def load(cls, path: str | Path) -> Directory:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise DirectoryError(f"{path}: cannot read: {exc.strerror}") from exc
        if path.suffix.lower() == ".csv":
            return cls(_parse_csv(text, path))
        if path.suffix.lower() in (".yaml", ".yml"):
            return cls(_parse_yaml(text, path))
        raise DirectoryError(f"{path}: unknown format (use .csv, .yaml or .yml)")


def _clean(value: object) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _parse_csv(text: str, path: Path) -> dict[str, DirectoryEntry]:
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    if "key" not in fields or not {"team", "department"} & set(fields):
        raise DirectoryError(f"{path}: header must have 'key' and 'team' and/or 'department'")
    entries: dict[str, DirectoryEntry] = {}
    for row in reader:
        row = {(k or "").strip().lower(): v for k, v in row.items()}
        key = _clean(row.get("key"))
        if key is None:
            raise DirectoryError(f"{path}:{reader.line_num}: empty key")
        entries[key] = DirectoryEntry(_clean(row.get("team")), _clean(row.get("department")))
    return entries


def _parse_yaml(text: str, path: Path) -> dict[str, DirectoryEntry]:
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise DirectoryError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise DirectoryError(f"{path}: must be a mapping of key -> {{team, department}}")
    entries: dict[str, DirectoryEntry] = {}
    for key, value in document.items():
        if isinstance(value, str):
            value = {"team": value}
        if not isinstance(value, dict) or not set(value) <= {"team", "department"}:
            raise DirectoryError(f"{path}: {key}: expected {{team, department}}, got {value!r}")
        entries[str(key)] = DirectoryEntry(
            _clean(value.get("team")), _clean(value.get("department"))
        )
    return entries
