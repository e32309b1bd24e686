"""OTLP/gRPC: the three `Export` methods, served by one generic handler on raw bytes.

Taking the request as bytes (no grpc deserializer) lets us refuse an oversize message with
INVALID_ARGUMENT and a malformed one with INVALID_ARGUMENT, instead of grpc's INTERNAL for a
deserializer failure. grpc-core itself still refuses anything beyond 4x the limit
(RESOURCE_EXHAUSTED) before allocating it, which bounds gzip-compressed bombs.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import grpc
from grpc import aio

from collector.auth import Authenticator
from collector.decoding.wire import SIGNAL_TYPES, Signal, encode_response
from collector.errors import GRPC_CODE, ErrorKind, IngestError
from collector.ingest import Admission, Ingest
from collector.receivers.status import retry_info, status_message

Handler = Callable[[bytes, aio.ServicerContext], Awaitable[bytes]]


class OtlpGrpcReceiver(grpc.GenericRpcHandler):
    def __init__(
        self, ingest: Ingest, auth: Authenticator, admission: Admission, max_bytes: int
    ) -> None:
        self.ingest = ingest
        self.auth = auth
        self.admission = admission
        self.max_bytes = max_bytes
        self._methods = {f"/{SIGNAL_TYPES[s].grpc_service}/Export": s for s in Signal}

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        signal = self._methods.get(handler_call_details.method)
        if signal is None:
            return None
        return grpc.unary_unary_rpc_method_handler(self._handler(signal))

    def _handler(self, signal: Signal) -> Handler:
        async def export(raw: bytes, context: aio.ServicerContext) -> bytes:
            return await self.export(signal, raw, context)

        return export

    async def export(self, signal: Signal, raw: bytes, context: aio.ServicerContext) -> bytes:
        started = time.perf_counter()
        outcome = "cancelled"  # stays so if the call ends before we answer
        try:
            metadata = dict(context.invocation_metadata() or ())
            token = self.auth.authenticate(_text(metadata.get("authorization")))
            with self.admission.slot():
                if len(raw) > self.max_bytes:
                    raise IngestError(
                        ErrorKind.TOO_LARGE,
                        f"message of {len(raw)} bytes exceeds the limit of {self.max_bytes}",
                    )
                plan = await self.ingest.plan("grpc", signal, raw, False, token)
                result = await self.ingest.export(signal, plan)
            outcome = "partial" if result.rejected else "success"
            body, _ = encode_response(signal, result.rejected, result.message, as_json=False)
            return body
        except IngestError as error:
            outcome = error.kind.value
            status = status_message(error)
            trailer = [("grpc-status-details-bin", status.SerializeToString())]
            if error.retry_after is not None:
                # Where the OpenTelemetry Python exporter looks for the delay (the others read
                # it from the status details above).
                trailer.append(("google.rpc.retryinfo-bin", retry_info(error.retry_after)))
            await context.abort(
                GRPC_CODE[error.kind], error.message, trailing_metadata=tuple(trailer)
            )
            raise AssertionError("unreachable: abort raises") from error
        except Exception:
            outcome = "error"  # a bug of ours: grpc answers UNKNOWN and logs the traceback
            raise
        finally:
            self.ingest.stats.request("grpc", signal.value, outcome, time.perf_counter() - started)


def _text(value: str | bytes | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
