"""Every API route module, mounted in one place."""

from __future__ import annotations

from aiohttp import web

from collector.api import analytics, dashboard


def register(app: web.Application) -> None:
    analytics.register(app)
    dashboard.register(app)
