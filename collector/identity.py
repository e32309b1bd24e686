"""Who and which team a point or event belongs to, and the normalized model id.

Actor order (telemetry reference; API-key, Bedrock and Vertex clients send no email):
`user.email` -> `user.account_uuid` -> the identity bound to the ingest token ->
`user.id` shortened to `device:<8 hex>`. The kind is kept because the Analytics API reports
`user_actor` (email) apart from `api_actor` (key or device name).

Team order: the directory file (by email, account, token name or device id), else the team
bound to the ingest token, else the attributes `team.id`, `team`, `department`, else
`unassigned`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal

from collector.decoding.attributes import Attributes, as_str
from collector.directory import Directory, DirectoryEntry

ActorKind = Literal["email", "account", "token", "device", "unknown"]
UNASSIGNED = "unassigned"
UNKNOWN_ACTOR = "unknown"
_CONTEXT_SUFFIX = re.compile(r"\[[^\[\]]*\]$")


@dataclass(frozen=True, slots=True)
class TokenIdentity:
    """What an authenticated ingest token stands for (config `auth.tokens[]`)."""

    name: str
    user: str | None = None
    team: str | None = None


@dataclass(frozen=True, slots=True)
class Identity:
    actor: str
    kind: ActorKind
    team: str
    department: str
    terminal: str
    organization: str


@functools.lru_cache(maxsize=4096)
def normalize_model(model: str | None) -> str:
    """`claude-opus-4-5[1m]` -> `claude-opus-4-5`; everything else is kept as sent.
    Cached: every api_request and token point asks, for a handful of models."""
    if not model:
        return "unknown"
    return _CONTEXT_SUFFIX.sub("", model.strip()) or "unknown"


def device_actor(user_id: str) -> str:
    return f"device:{user_id[:8]}"


class IdentityResolver:
    """Resolves identities, memoized on the handful of attributes that decide them.

    The cache is bounded: identities repeat across every point of a session, so a small
    cache removes nearly all lookups; when full it is simply cleared.
    """

    _KEYS = (
        "user.email",
        "user.account_uuid",
        "user.id",
        "team.id",
        "team",
        "department",
        "terminal.type",
        "organization.id",
    )

    def __init__(self, directory: Directory | None = None, cache_size: int = 65536) -> None:
        self._directory = directory or Directory()
        self._cache: dict[tuple[object, ...], Identity] = {}
        self._cache_size = cache_size

    def resolve(self, attrs: Attributes, token: TokenIdentity | None) -> Identity:
        key = (token, *map(attrs.get, self._KEYS))
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            found = self._cache[key] = self._resolve(attrs, token)
        return found

    def _resolve(self, attrs: Attributes, token: TokenIdentity | None) -> Identity:
        email = as_str(attrs, "user.email")
        account = as_str(attrs, "user.account_uuid")
        user_id = as_str(attrs, "user.id")
        actor: str
        kind: ActorKind
        if email:
            actor, kind = email.lower(), "email"
        elif account:
            actor, kind = account, "account"
        elif token is not None:
            actor = token.user or token.name
            kind = "email" if "@" in actor else "token"
        elif user_id:
            actor, kind = device_actor(user_id), "device"
        else:
            actor, kind = UNKNOWN_ACTOR, "unknown"
        entry = self._directory.lookup(
            email, account, token.name if token else None, user_id, actor
        )
        team, department = self._team(attrs, entry, token)
        return Identity(
            actor=actor,
            kind=kind,
            team=team,
            department=department,
            terminal=as_str(attrs, "terminal.type") or "unknown",
            organization=as_str(attrs, "organization.id") or "",
        )

    @staticmethod
    def _team(
        attrs: Attributes, entry: DirectoryEntry | None, token: TokenIdentity | None
    ) -> tuple[str, str]:
        department = (entry.department if entry else None) or as_str(attrs, "department") or ""
        if entry and entry.team:
            return entry.team, department
        if token is not None and token.team:
            return token.team, department
        for key in ("team.id", "team", "department"):
            value = as_str(attrs, key)
            if value:
                return value, department
        return UNASSIGNED, department
