"""Anthropic's error envelope: `{"type": "error", "error": {"type": ..., "message": ...}}`.

Tools written against the Analytics Admin API parse errors in this shape, so every API error
here uses it, with the status code Anthropic pairs with each type.
"""

from __future__ import annotations

from aiohttp import web

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
}


class ApiError(Exception):
    def __init__(self, status: int, error_type: str | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type or ERROR_TYPES.get(status, "api_error")
        self.message = message

    def response(self) -> web.Response:
        body = {"type": "error", "error": {"type": self.error_type, "message": self.message}}
        return web.json_response(body, status=self.status)


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_request_error", message)
