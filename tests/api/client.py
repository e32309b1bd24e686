"""Small HTTP helpers for API tests: send OTLP built with tests.builders, read the API."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

VIEWER_KEY = "viewer-key-for-tests-0123"
ADMIN_KEY = "admin-key-for-tests-456789"
INGEST_TOKEN = "ingest-token-for-tests"
API_CONFIG: dict[str, Any] = {
    "extensions": {
        "api": {
            "keys": [
                {"name": "viewer", "key": VIEWER_KEY, "role": "viewer"},
                {"name": "admin", "key": ADMIN_KEY, "role": "admin"},
            ],
            "organization_id": "org-test",
        }
    },
    "receivers": {
        "otlp": {
            "auth": {
                "required": False,
                "tokens": [{"name": "ci-runner", "token": INGEST_TOKEN, "team": "platform"}],
            }
        }
    },
}


def post_otlp(collector: Any, signal: str, message: Any, token: str | None = None) -> int:
    headers = {"Content-Type": "application/x-protobuf"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"{collector.http_base}/v1/{signal}", data=message.SerializeToString(), headers=headers
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def get(
    collector: Any, path: str, key: str | None = VIEWER_KEY, header: str = "x-api-key"
) -> tuple[int, str, dict[str, str]]:
    headers = {}
    if key is not None:
        headers[header] = key if header == "x-api-key" else f"Bearer {key}"
    request = urllib.request.Request(
        f"http://127.0.0.1:{collector.service.ports.metrics}{path}", headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), dict(error.headers)


def get_json(collector: Any, path: str, key: str | None = VIEWER_KEY) -> tuple[int, Any]:
    status, body, _ = get(collector, path, key)
    return status, json.loads(body)
