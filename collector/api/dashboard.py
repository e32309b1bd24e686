"""Dashboard endpoints (placeholder until written)."""

from __future__ import annotations

from aiohttp import web


def register(app: web.Application) -> None:
    """Adds the routes of this module."""
