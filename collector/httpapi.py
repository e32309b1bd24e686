"""The one HTTP port for people and Prometheus: `/metrics`, `/healthz`, `/readyz`, and the
REST API (collector/api/) when a store is configured.

`/metrics` negotiates Prometheus text or OpenMetrics from `Accept`, and gzip from
`Accept-Encoding`. The contract families come from the fast renderer
(exporters/exposition_text.py); the collector's own metrics from prometheus_client's encoders
on a private registry.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
from collections.abc import Callable

from aiohttp import web
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from collector.api import register as register_api
from collector.api.context import ApiContext

READY = web.AppKey("ready", dict)


def make_app(
    registry: CollectorRegistry,
    ready: dict[str, bool],
    api: ApiContext | None = None,
    contract: Callable[[bool], str] | None = None,
) -> web.Application:
    """`contract(openmetrics)` renders the `claude_code_*` families, served before the
    registry's own (exporters/exposition_text.py)."""
    app = web.Application()
    app[READY] = ready
    if api is not None:
        register_api(app, api)

    async def metrics(request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = encoder(registry)
        if contract is not None:
            openmetrics = content_type.startswith("application/openmetrics-text")
            body = contract(openmetrics).encode() + body
        headers = {"Content-Type": content_type, "Vary": "Accept-Encoding"}
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            # Off the loop (zlib releases the GIL) and at level 1: a 10k-user exposition is
            # ~15 MiB of very repetitive text, which level 1 already shrinks ~15x.
            loop = asyncio.get_running_loop()
            body = await loop.run_in_executor(None, functools.partial(gzip.compress, body, 1))
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        ok = request.app[READY].get("ready", False)
        return web.json_response(
            {"status": "ready" if ok else "not ready"}, status=200 if ok else 503
        )

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
