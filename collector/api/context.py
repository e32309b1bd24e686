"""What API handlers may use: config values, a clock, and blocking reads on the store."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from collector.api.errors import ApiError
from collector.config import ApiKey, Budget, TokenConfig
from exporters.store.backend import Backend, StoreError

T = TypeVar("T")
Reader = Callable[[Callable[[Backend], T]], Awaitable[T]]


@dataclass
class ApiContext:
    api_keys: Sequence[ApiKey]
    ingest_tokens: Sequence[TokenConfig]
    organization_id: str
    budgets: Sequence[Budget]
    #: runs `fn(backend)` on the store thread; None when the collector has no store.
    reader: Any = None
    clock: Callable[[], int] = field(default=time.time_ns)

    async def read(self, fn: Callable[[Backend], T]) -> T:
        if self.reader is None:
            raise ApiError(503, "api_error", "no store is configured: the API needs one")
        try:
            result: T = await self.reader(fn)
        except StoreError as exc:
            raise ApiError(503, "api_error", f"store unavailable: {exc}") from exc
        return result


CONTEXT = web.AppKey("api_context", ApiContext)
