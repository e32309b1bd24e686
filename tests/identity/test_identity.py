"""IdentityResolver: actor and team order, normalize_model."""

from __future__ import annotations

import pytest

from collector.directory import Directory, DirectoryEntry
from collector.identity import (
    UNASSIGNED,
    Identity,
    IdentityResolver,
    TokenIdentity,
    device_actor,
    normalize_model,
)

USER_ID = "39f0bc8b17feb2fe0e9291b4dc40c73ec6d6de02ccec3be18fd0babdde227507"
ACCOUNT = "5c0e7a52-8f44-4c1b-9a55-8f7fa0c6a5e1"
EMAIL = "Dev@Example.com"

FULL = {"user.email": EMAIL, "user.account_uuid": ACCOUNT, "user.id": USER_ID}


def _resolve(attrs: dict, token: TokenIdentity | None = None, directory=None) -> Identity:
    return IdentityResolver(directory).resolve(attrs, token)


# -- actor -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "token", "actor", "kind"),
    [
        pytest.param(FULL, TokenIdentity("laptop"), "dev@example.com", "email", id="email-first"),
        pytest.param(
            {"user.account_uuid": ACCOUNT, "user.id": USER_ID},
            TokenIdentity("laptop"),
            ACCOUNT,
            "account",
            id="account-next",
        ),
        pytest.param(
            {"user.id": USER_ID}, TokenIdentity("laptop"), "laptop", "token", id="token-name"
        ),
        pytest.param(
            {"user.id": USER_ID},
            TokenIdentity("laptop", user="ci-bot"),
            "ci-bot",
            "token",
            id="token-bound-user",
        ),
        pytest.param(
            {"user.id": USER_ID},
            TokenIdentity("laptop", user="Ops@Example.com"),
            "Ops@Example.com",
            "email",
            id="token-bound-email",
        ),
        pytest.param({"user.id": USER_ID}, None, "device:39f0bc8b", "device", id="device"),
        pytest.param({}, None, "unknown", "unknown", id="unknown"),
        pytest.param(
            {"user.email": "", "user.account_uuid": "", "user.id": ""},
            None,
            "unknown",
            "unknown",
            id="empty-strings-are-absent",
        ),
    ],
)
def test_actor_order(attrs: dict, token: TokenIdentity | None, actor: str, kind: str) -> None:
    identity = _resolve(attrs, token)
    assert (identity.actor, identity.kind) == (actor, kind)


def test_device_actor_is_the_first_eight_hex() -> None:
    assert device_actor(USER_ID) == "device:39f0bc8b"


def test_terminal_and_organization() -> None:
    identity = _resolve({"terminal.type": "vscode", "organization.id": "org-1"})
    assert (identity.terminal, identity.organization) == ("vscode", "org-1")
    identity = _resolve({})
    assert (identity.terminal, identity.organization) == ("unknown", "")


# -- team ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "attrs", "token"),
    [
        pytest.param("dev@example.com", FULL, None, id="by-email-any-case"),
        pytest.param(ACCOUNT.upper(), {"user.account_uuid": ACCOUNT}, None, id="by-account"),
        pytest.param("ci-runner", {}, TokenIdentity("ci-runner"), id="by-token-name"),
        pytest.param(
            "ci-runner",
            {"user.email": "someone@example.com"},
            TokenIdentity("ci-runner"),
            id="by-token-name-under-an-email-actor",
        ),
        pytest.param(USER_ID, {"user.id": USER_ID}, None, id="by-full-device-id"),
        pytest.param("device:39f0bc8b", {"user.id": USER_ID}, None, id="by-short-device-id"),
        pytest.param("DEVICE:39F0BC8B", {"user.id": USER_ID}, None, id="by-short-device-any-case"),
        pytest.param("bot@example.com", {}, TokenIdentity("t", user="bot@example.com"), id="bound"),
    ],
)
def test_directory_matches_by_every_key(key: str, attrs: dict, token) -> None:
    directory = Directory({key: DirectoryEntry("payments", "engineering")})
    attrs = {**attrs, "team.id": "from-attrs", "department": "attrs-dept"}
    identity = _resolve(attrs, token, directory)
    assert (identity.team, identity.department) == ("payments", "engineering")


def test_directory_prefers_the_email_entry_over_the_device_entry() -> None:
    directory = Directory(
        {
            "device:39f0bc8b": DirectoryEntry("device-team", None),
            "dev@example.com": DirectoryEntry("email-team", None),
            ACCOUNT: DirectoryEntry("account-team", None),
        }
    )
    assert _resolve(FULL, None, directory).team == "email-team"
    assert _resolve({"user.id": USER_ID}, None, directory).team == "device-team"
    assert _resolve({"user.account_uuid": ACCOUNT, "user.id": USER_ID}, None, directory).team == (
        "account-team"
    )


@pytest.mark.parametrize(
    ("entry", "token", "attrs", "team"),
    [
        pytest.param(
            DirectoryEntry("dir-team", None),
            TokenIdentity("t", team="token-team"),
            {"team.id": "a", "team": "b", "department": "c"},
            "dir-team",
            id="directory",
        ),
        pytest.param(
            None,
            TokenIdentity("t", team="token-team"),
            {"team.id": "a", "team": "b", "department": "c"},
            "token-team",
            id="token-team",
        ),
        pytest.param(
            DirectoryEntry(None, "dept-only"),
            TokenIdentity("t", team="token-team"),
            {"team.id": "a"},
            "token-team",
            id="directory-without-team-falls-through",
        ),
        pytest.param(
            None, None, {"team.id": "a", "team": "b", "department": "c"}, "a", id="team.id"
        ),
        pytest.param(None, None, {"team": "b", "department": "c"}, "b", id="team"),
        pytest.param(None, None, {"department": "c"}, "c", id="department"),
        pytest.param(None, TokenIdentity("t"), {}, UNASSIGNED, id="unassigned"),
    ],
)
def test_team_order(entry, token, attrs: dict, team: str) -> None:
    attrs = {"user.id": USER_ID, **attrs}
    directory = Directory({USER_ID: entry}) if entry else None
    assert _resolve(attrs, token, directory).team == team


def test_department_from_directory_else_attribute() -> None:
    directory = Directory({USER_ID: DirectoryEntry("t", "dir-dept")})
    attrs = {"user.id": USER_ID, "department": "attr-dept"}
    assert _resolve(attrs, None, directory).department == "dir-dept"
    assert _resolve(attrs).department == "attr-dept"
    assert _resolve({"user.id": USER_ID}).department == ""


def test_cached_resolution_respects_token_and_attributes() -> None:
    resolver = IdentityResolver()
    attrs = {"user.id": USER_ID}
    a = resolver.resolve(attrs, TokenIdentity("a", team="x"))
    b = resolver.resolve(attrs, TokenIdentity("b", team="y"))
    none = resolver.resolve(attrs, None)
    assert (a.actor, a.team) == ("a", "x")
    assert (b.actor, b.team) == ("b", "y")
    assert none.actor == "device:39f0bc8b"
    assert resolver.resolve({**attrs, "team.id": "z"}, None).team == "z"
    assert resolver.resolve(attrs, TokenIdentity("a", team="x")) == a


def test_a_full_cache_is_cleared_not_wrong() -> None:
    resolver = IdentityResolver(cache_size=2)
    identities = [resolver.resolve({"user.email": f"u{i}@example.com"}, None) for i in range(5)]
    assert [i.actor for i in identities] == [f"u{i}@example.com" for i in range(5)]
    assert len(resolver._cache) <= 2


# -- model -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("claude-opus-4-5[1m]", "claude-opus-4-5"),
        ("claude-sonnet-4-5-20250929[1m]", "claude-sonnet-4-5-20250929"),
        (" claude-opus-4-5 ", "claude-opus-4-5"),
        ("claude-haiku-4-5", "claude-haiku-4-5"),
        (
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        ),
        ("[1m]", "unknown"),
        ("", "unknown"),
        (None, "unknown"),
    ],
)
def test_normalize_model(raw: str | None, expected: str) -> None:
    assert normalize_model(raw) == expected
