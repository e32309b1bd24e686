"""Read access: role keys may read, ingest tokens may not, nothing else gets in."""

from __future__ import annotations

import hashlib
import json
import logging
import urllib.error
import urllib.request

import pytest

from tests.api.client import ADMIN_KEY, API_CONFIG, INGEST_TOKEN, VIEWER_KEY, get
from tests.harness import make_config, running_collector

REPORT = "/v1/organizations/usage_report/claude_code?starting_at=2026-11-21"


@pytest.fixture(scope="module")
def collector():
    with running_collector(make_config(API_CONFIG)) as running:
        yield running


@pytest.mark.parametrize("header", ["x-api-key", "Authorization"])
@pytest.mark.parametrize("key", [VIEWER_KEY, ADMIN_KEY])
def test_viewer_and_admin_keys_read(collector, key, header) -> None:
    status, body, _ = get(collector, REPORT, key, header)
    assert status == 200, body
    assert json.loads(body)["data"] == []


@pytest.mark.parametrize(
    ("key", "status", "error_type"),
    [
        (None, 401, "authentication_error"),
        ("", 401, "authentication_error"),
        ("not-a-key-at-all-xxxx", 401, "authentication_error"),
        (VIEWER_KEY[:-1], 401, "authentication_error"),
        (VIEWER_KEY + "x", 401, "authentication_error"),
        (INGEST_TOKEN, 403, "permission_error"),
    ],
)
@pytest.mark.parametrize("header", ["x-api-key", "Authorization"])
def test_everything_else_is_refused_in_anthropics_envelope(
    collector, key, status, error_type, header
) -> None:
    got, body, _ = get(collector, REPORT, key, header)
    assert got == status
    payload = json.loads(body)
    assert payload["type"] == "error"
    assert payload["error"]["type"] == error_type
    if key:
        assert key not in body


@pytest.mark.parametrize(
    "authorization",
    [f"Basic {VIEWER_KEY}", VIEWER_KEY, "Bearer", "Bearer  ", f"Token {VIEWER_KEY}"],
)
def test_a_key_outside_x_api_key_or_bearer_does_not_count(collector, authorization) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{collector.service.ports.metrics}{REPORT}",
        headers={"Authorization": authorization, "anthropic-version": "2023-06-01"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401
    assert json.loads(refused.value.read())["error"]["type"] == "authentication_error"
    refused.value.close()


@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/readyz"])
def test_scrape_and_probes_stay_open(collector, path) -> None:
    status, _, _ = get(collector, path, None)
    assert status == 200


def test_unknown_api_path_is_a_404_in_the_envelope(collector) -> None:
    status, body, _ = get(collector, "/v1/organizations/nothing_here")
    assert status == 404
    assert json.loads(body)["error"]["type"] == "not_found_error"


def test_hashed_keys_work_and_keys_are_never_logged(caplog) -> None:
    secret = "a-hashed-key-nobody-sees-123"
    config = make_config(
        {
            "extensions": {
                "api": {
                    "keys": [
                        {
                            "name": "g",
                            "key_sha256": hashlib.sha256(secret.encode()).hexdigest(),
                            "role": "viewer",
                        }
                    ]
                }
            }
        }
    )
    caplog.set_level(logging.DEBUG)
    with running_collector(config) as running:
        assert get(running, REPORT, secret)[0] == 200
        assert get(running, REPORT, secret + "!")[0] == 401
    assert secret not in caplog.text
