"""Read access: API keys with a role (admin, viewer) from the config; ingest tokens may not read.

A key comes in `x-api-key` (as Anthropic's Admin API expects) or `Authorization: Bearer`.
It is hashed and compared with every configured digest in constant time (no early exit), and
is never logged. Missing or unknown -> 401 authentication_error; an ingest token -> 403
permission_error. `/metrics`, `/healthz` and `/readyz` stay open, as Prometheus expects.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from collector.api.context import CONTEXT
from collector.api.errors import ApiError
from collector.auth import bearer

OPEN_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})
READ_ROLES = frozenset({"admin", "viewer"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def presented_key(request: web.Request) -> str | None:
    return request.headers.get("x-api-key") or bearer(request.headers.get("Authorization"))


def role_of(request: web.Request, presented: str) -> str | None:
    """The role of a presented key: admin/viewer, "ingest" for an ingest token, else None."""
    context = request.app[CONTEXT]
    digest = hashlib.sha256(presented.encode()).digest()
    role: str | None = None
    for key in context.api_keys:
        if hmac.compare_digest(key.sha256, digest):
            role = key.role
    for token in context.ingest_tokens:
        if hmac.compare_digest(hashlib.sha256(token.token.encode()).digest(), digest):
            role = role or "ingest"
    return role


@web.middleware
async def read_access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in OPEN_PATHS:
        return await handler(request)
    try:
        presented = presented_key(request)
        if presented is None:
            raise ApiError(401, None, "missing API key: send x-api-key or Authorization: Bearer")
        role = role_of(request, presented)
        if role is None:
            raise ApiError(401, None, "invalid API key")
        if role not in READ_ROLES:
            raise ApiError(403, None, "this key may send telemetry but not read reports")
        return await handler(request)
    except ApiError as error:
        return error.response()
    except web.HTTPNotFound:
        return ApiError(404, None, f"no such endpoint: {request.path}").response()
    except web.HTTPMethodNotAllowed as exc:
        return ApiError(405, "invalid_request_error", f"{exc.method} not allowed here").response()
