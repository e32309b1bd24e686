"""A raw OTLP/HTTP request whose chunked body arrives in two halves, for tests that need a
request held in flight (overload, graceful shutdown)."""

from __future__ import annotations

import http.client
import socket


class SplitRequest:
    """Sends the headers and the first half of the body now, the rest on `finish`."""

    def __init__(self, port: int, signal_name: str, body: bytes, timeout: float = 20) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        half = len(body) // 2
        self.sock.sendall(
            f"POST /v1/{signal_name} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
            + b"Content-Type: application/x-protobuf\r\nTransfer-Encoding: chunked\r\n\r\n"
            + f"{half:x}\r\n".encode()
            + body[:half]
            + b"\r\n"
        )
        self.rest = body[half:]

    def finish(self) -> tuple[int, bytes]:
        self.sock.sendall(f"{len(self.rest):x}\r\n".encode() + self.rest + b"\r\n0\r\n\r\n")
        response = http.client.HTTPResponse(self.sock)
        response.begin()
        return response.status, response.read()

    def close(self) -> None:
        self.sock.close()
