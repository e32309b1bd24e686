"""Ingest authentication: bearer tokens, compared in constant time, never logged.

Each configured token is kept only as its SHA-256 digest; a presented token is hashed and
compared against *every* digest with `hmac.compare_digest` (no early exit), so neither the
comparison nor the loop reveals how much of a token matched or which one it was.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from collector.config import TokenConfig
from collector.errors import ErrorKind, IngestError
from collector.identity import TokenIdentity


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` value (scheme case-insensitive)."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class Authenticator:
    def __init__(self, tokens: Sequence[TokenConfig], required: bool) -> None:
        self._tokens = [(_digest(t.token), TokenIdentity(t.name, t.user, t.team)) for t in tokens]
        self.required = required

    def authenticate(self, authorization: str | None) -> TokenIdentity | None:
        """The identity a valid token stands for; None when auth is optional and none matched.

        With auth optional a known token still binds its identity (so a team can adopt tokens
        gradually); an unknown or missing one is accepted anonymously.
        """
        presented = bearer(authorization)
        match: TokenIdentity | None = None
        if presented is not None:
            digest = _digest(presented)
            for known, identity in self._tokens:
                if hmac.compare_digest(known, digest):
                    match = identity
        if match is None and self.required:
            reason = "missing bearer token" if presented is None else "invalid bearer token"
            raise IngestError(ErrorKind.UNAUTHENTICATED, reason)
        return match
