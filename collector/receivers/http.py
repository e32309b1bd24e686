"""OTLP/HTTP: `POST /v1/{metrics,logs,traces}` with protobuf or JSON bodies, gzip optional.

Replies use the request's encoding (OTLP spec). The body is read and inflated by us with a
hard byte limit (aiohttp's own auto-decompression is switched off in `server.py`), so an
oversize or gzip-bomb body costs at most `max_bytes` of memory and gets a 413.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from collector.auth import Authenticator
from collector.decoding.wire import Signal, encode_response, gunzip
from collector.errors import HTTP_STATUS, ErrorKind, IngestError
from collector.ingest import Admission, Ingest
from collector.receivers.status import encode_status

PROTOBUF_TYPES = frozenset({"application/x-protobuf", "application/protobuf"})
JSON_TYPE = "application/json"
#: A client gets this long to deliver its body; a stalled sender must not hold a slot forever.
BODY_TIMEOUT_S = 30.0


async def read_body(request: web.Request, limit: int) -> bytes:
    """The raw (still encoded) body, refusing with 413 past `limit` bytes, chunked or not."""
    if request.content_length is not None and request.content_length > limit:
        raise IngestError(
            ErrorKind.TOO_LARGE,
            f"body of {request.content_length} bytes exceeds the limit of {limit}",
        )
    body = bytearray()
    while True:
        chunk = await request.content.read(min(65536, limit + 1 - len(body)))
        if not chunk:
            return bytes(body)
        body += chunk
        if len(body) > limit:
            raise IngestError(ErrorKind.TOO_LARGE, f"body exceeds the limit of {limit} bytes")


class OtlpHttpReceiver:
    def __init__(
        self, ingest: Ingest, auth: Authenticator, admission: Admission, max_bytes: int
    ) -> None:
        self.ingest = ingest
        self.auth = auth
        self.admission = admission
        self.max_bytes = max_bytes

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_bytes + 1)
        for signal in Signal:
            app.router.add_post(f"/v1/{signal.value}", self._handler(signal))
        return app

    def _handler(self, signal: Signal):  # noqa: ANN202 - aiohttp handler factory
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self.handle(request, signal)

        return handle

    async def handle(self, request: web.Request, signal: Signal) -> web.Response:
        started = time.perf_counter()
        # Reply in the request's encoding; anything not protobuf gets readable JSON errors.
        as_json = request.content_type not in PROTOBUF_TYPES
        outcome = "cancelled"  # stays so if the client goes away before we answer
        try:
            token = self.auth.authenticate(request.headers.get("Authorization"))
            with self.admission.slot():
                body = await self._read(request, as_json)
                plan = await self.ingest.plan("http", signal, body, as_json, token)
                result = await self.ingest.export(signal, plan)
            outcome = "partial" if result.rejected else "success"
            body, content_type = encode_response(signal, result.rejected, result.message, as_json)
            return web.Response(body=body, headers={"Content-Type": content_type})
        except IngestError as error:
            outcome = error.kind.value
            return self._refuse(error, as_json)
        except Exception:
            outcome = "error"  # a bug of ours: aiohttp answers 500 and logs the traceback
            raise
        finally:
            self.ingest.stats.request("http", signal.value, outcome, time.perf_counter() - started)

    async def _read(self, request: web.Request, as_json: bool) -> bytes:
        """The body, inflated, after checking its media type and encoding."""
        if as_json and request.content_type != JSON_TYPE:
            raise IngestError(
                ErrorKind.UNSUPPORTED_MEDIA,
                f"unsupported Content-Type {request.content_type!r}: use application/x-protobuf "
                "or application/json",
            )
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("gzip", "identity", ""):
            raise IngestError(
                ErrorKind.UNSUPPORTED_MEDIA, f"unsupported Content-Encoding {encoding!r}: use gzip"
            )
        try:
            async with asyncio.timeout(BODY_TIMEOUT_S):
                body = await read_body(request, self.max_bytes)
        except TimeoutError:
            raise IngestError(
                ErrorKind.TIMEOUT, f"request body not received within {BODY_TIMEOUT_S:g} s"
            ) from None
        return gunzip(body, self.max_bytes) if encoding == "gzip" else body

    @staticmethod
    def _refuse(error: IngestError, as_json: bool) -> web.Response:
        body, content_type = encode_status(error, as_json)
        headers = {"Content-Type": content_type}
        if error.retry_after is not None:
            headers["Retry-After"] = str(error.retry_after)
        if error.kind is ErrorKind.UNAUTHENTICATED:
            headers["WWW-Authenticate"] = 'Bearer realm="otlp"'
        return web.Response(status=HTTP_STATUS[error.kind], body=body, headers=headers)
