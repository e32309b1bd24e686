"""The REST API on the metrics port: Anthropic's Claude Code Analytics shape plus dashboards.

`register(app, context)` mounts every route module; each module has a `register(app)` that
adds its routes. Handlers reach the store only through `ApiContext.read`, which runs a
blocking query function on the store's own thread.
"""

from __future__ import annotations

from aiohttp import web

from collector.api.auth import read_access_middleware
from collector.api.context import CONTEXT, ApiContext


def register(app: web.Application, context: ApiContext) -> None:
    from collector.api import routes  # the route modules, imported once everything exists

    app[CONTEXT] = context
    app.middlewares.append(read_access_middleware)
    routes.register(app)
