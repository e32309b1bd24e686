"""One error taxonomy for every transport, and its one mapping table.

Receivers never pick status codes themselves: they raise or catch an `IngestError` and
translate its `kind` through `HTTP_STATUS` / `GRPC_CODE`. Permanent errors (the client must
not retry) map to 400/413/415 and INVALID_ARGUMENT; transient ones (retry later) map to
429/503 and RESOURCE_EXHAUSTED/UNAVAILABLE with a retry delay, as the OTLP spec asks.
"""

from __future__ import annotations

import enum

import grpc


class ErrorKind(enum.Enum):
    """Why a request was refused as a whole."""

    INVALID = "invalid"
    TOO_LARGE = "too_large"
    UNSUPPORTED_MEDIA = "unsupported_media_type"
    UNAUTHENTICATED = "unauthenticated"
    OVERLOADED = "overloaded"
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"


HTTP_STATUS: dict[ErrorKind, int] = {
    ErrorKind.INVALID: 400,
    ErrorKind.TOO_LARGE: 413,
    ErrorKind.UNSUPPORTED_MEDIA: 415,
    ErrorKind.UNAUTHENTICATED: 401,
    ErrorKind.OVERLOADED: 429,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.TIMEOUT: 408,
}

GRPC_CODE: dict[ErrorKind, grpc.StatusCode] = {
    ErrorKind.INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorKind.TOO_LARGE: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorKind.UNSUPPORTED_MEDIA: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorKind.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    ErrorKind.OVERLOADED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorKind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorKind.TIMEOUT: grpc.StatusCode.DEADLINE_EXCEEDED,
}


class IngestError(Exception):
    """A whole request refused; `retry_after` (seconds) is set only for transient kinds."""

    def __init__(self, kind: ErrorKind, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.retry_after is not None
