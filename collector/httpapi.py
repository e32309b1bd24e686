"""The one HTTP port for people and Prometheus: `/metrics`, `/healthz`, `/readyz`, and the
REST API (collector/api/) when a store is configured.

`/metrics` negotiates Prometheus text or OpenMetrics from `Accept`, and gzip from
`Accept-Encoding`, using prometheus_client's own encoders on a private registry.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from collector.api import register as register_api
from collector.api.context import ApiContext

READY = web.AppKey("ready", dict)


def make_app(
    registry: CollectorRegistry, ready: dict[str, bool], api: ApiContext | None = None
) -> web.Application:
    app = web.Application()
    app[READY] = ready
    if api is not None:
        register_api(app, api)

    async def metrics(request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        response = web.Response(body=encoder(registry), headers={"Content-Type": content_type})
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            response.enable_compression()
        return response

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
