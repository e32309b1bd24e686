"""`/openapi.json` is valid OpenAPI 3.1, matches the routes the app really serves, and real
responses (from telemetry sent by the real SDK exporters) validate against its schemas.

Why: a document written by hand drifts. These tests fail when a route is added without being
documented, when a documented path is not served, and when a response gains, loses or
changes a field the schema describes (objects are checked closed here, so an undocumented
field fails too).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from prometheus_client.registry import CollectorRegistry

from collector.api.context import ApiContext
from collector.api.openapi import document
from collector.httpapi import make_app
from tests.api.client import VIEWER_KEY, get
from tests.api.test_dashboard import ALICE, MALLORY, api_config, at, send_session
from tests.harness import RunningCollector, make_config, running_collector
from tests.sdk.claude_like import typical_session

#: Prometheus and load-balancer endpoints, outside the REST API by design.
NOT_API = {"/metrics", "/healthz", "/readyz"}


def served_routes() -> set[tuple[str, str]]:
    """(method, path template) of every route of the real app, HEAD aside (aiohttp adds it
    to every GET)."""
    app = make_app(CollectorRegistry(), {}, ApiContext((), (), "", ()))
    return {
        (route.method.lower(), resource.canonical)
        for resource in app.router.resources()
        for route in resource
        if route.method != "HEAD" and resource.canonical not in NOT_API
    }


def documented_routes(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for path, item in doc["paths"].items() for method in item}


def test_document_is_valid_openapi_3_1() -> None:
    doc = document()
    assert doc["openapi"].startswith("3.1.")
    validate(doc)  # raises on any violation of the OpenAPI 3.1 schema
    assert doc["components"]["securitySchemes"] == {
        "ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "x-api-key"},
        "BearerAuth": {"type": "http", "scheme": "bearer"},
    }
    assert doc["security"] == [{"ApiKeyAuth": []}, {"BearerAuth": []}]


def test_every_route_is_documented_and_every_documented_path_is_served() -> None:
    served, documented = served_routes(), documented_routes(document())
    assert served - documented == set(), "routes missing from /openapi.json"
    assert documented - served == set(), "documented paths the app does not serve"
    assert ("get", "/v1/organizations/usage_report/claude_code") in served
    assert ("get", "/openapi.json") in served


def test_the_analytics_parameters_are_documented() -> None:
    operation = document()["paths"]["/v1/organizations/usage_report/claude_code"]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert set(params) == {
        "starting_at",
        "ending_at",
        "limit",
        "page",
        "group_by",
        "format",
        "anthropic-version",
    }
    assert params["starting_at"]["required"] is True
    assert params["group_by"]["schema"] == {"enum": ["team"]}
    assert set(operation["responses"]["200"]["content"]) == {"application/json", "text/csv"}


# -- real responses against the schemas ------------------------------------------------------


def closed(schema: Any) -> Any:
    """`schema` with every object that lists its properties closed to other properties."""
    if isinstance(schema, list):
        return [closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: closed(v) for k, v in schema.items()}
    if out.get("type") == "object" and "properties" in out:
        out.setdefault("additionalProperties", False)
    return out


def response_schema(doc: dict[str, Any], path: str, status: int, content_type: str) -> Any:
    responses = doc["paths"][path]["get"]["responses"]
    assert str(status) in responses, f"{path} answered {status}, which is not documented"
    response = responses[str(status)]
    if "$ref" in response:
        response = doc["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
    media = content_type.split(";")[0].strip()
    assert media in response["content"], f"{path} {status}: {media} is not documented"
    return response["content"][media]["schema"]


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningCollector, str]]:
    config = make_config(api_config(tmp_path_factory.mktemp("openapi")))
    with running_collector(config) as collector:
        sent = send_session(collector, ALICE, typical_session(1, calls=4), at("2026-11-01T10:00Z"))
        send_session(collector, MALLORY, typical_session(2, calls=3), at("2026-11-02T10:00Z"))
        yield collector, sent.session_id


def calls(session_id: str) -> list[tuple[str, str, int, str | None]]:
    """(documented path, request, expected status, key) covering every documented path."""
    report = "/v1/organizations/usage_report/claude_code"
    alice = quote("alice@example.com", safe="")
    return [
        (report, f"{report}?starting_at=2026-11-01&ending_at=2026-11-02", 200, VIEWER_KEY),
        (report, f"{report}?starting_at=2026-11-01&limit=1", 200, VIEWER_KEY),
        (report, f"{report}?starting_at=2026-11-01&ending_at=2026-11-02&group_by=team", 200, None),
        (report, f"{report}?starting_at=2026-11-01&format=csv", 200, VIEWER_KEY),
        (report, f"{report}?ending_at=2026-11-01", 400, VIEWER_KEY),
        (report, report, 401, None),
        ("/api/v1/summary", "/api/v1/summary?from=2026-11-01&to=2026-11-02", 200, VIEWER_KEY),
        ("/api/v1/summary", "/api/v1/summary?from=2026-11-01&to=2026-11-02", 401, None),
        ("/api/v1/summary", "/api/v1/summary?from=2027-01-01&to=2027-01-02", 200, VIEWER_KEY),
        ("/api/v1/summary", "/api/v1/summary?from=x", 400, VIEWER_KEY),
        ("/api/v1/daily", "/api/v1/daily?from=2026-10-31&to=2026-11-02", 200, VIEWER_KEY),
        ("/api/v1/team", "/api/v1/team?month=2026-11", 200, VIEWER_KEY),
        ("/api/v1/team", "/api/v1/team?month=2026-11&team=core", 200, VIEWER_KEY),
        ("/api/v1/team", "/api/v1/team?month=11", 400, VIEWER_KEY),
        ("/api/v1/leaderboard", "/api/v1/leaderboard?from=2026-11-01", 200, VIEWER_KEY),
        ("/api/v1/leaderboard", "/api/v1/leaderboard?by=prs&limit=1", 200, VIEWER_KEY),
        ("/api/v1/leaderboard", "/api/v1/leaderboard?by=x", 400, VIEWER_KEY),
        (
            "/api/v1/sessions/{session_id}",
            f"/api/v1/sessions/{session_id}",
            200,
            VIEWER_KEY,
        ),
        ("/api/v1/sessions/{session_id}", "/api/v1/sessions/nope", 404, VIEWER_KEY),
        (
            "/api/v1/users/{actor}/sessions",
            f"/api/v1/users/{alice}/sessions?limit=1",
            200,
            VIEWER_KEY,
        ),
        ("/api/v1/users/{actor}/sessions", "/api/v1/users/nobody/sessions", 404, VIEWER_KEY),
        (
            "/api/v1/users/{actor}/sessions",
            f"/api/v1/users/{alice}/sessions?limit=x",
            400,
            VIEWER_KEY,
        ),
        ("/api/v1/export/users.csv", "/api/v1/export/users.csv", 200, VIEWER_KEY),
        ("/api/v1/export/users.csv", "/api/v1/export/users.csv?to=2026", 400, VIEWER_KEY),
        ("/openapi.json", "/openapi.json", 200, VIEWER_KEY),
        ("/openapi.json", "/openapi.json", 401, None),
    ]


def test_real_responses_match_the_documented_schemas(filled) -> None:
    collector, session_id = filled
    doc = document()
    components = closed(doc["components"])
    checked: set[str] = set()
    for path, url, want_status, key in calls(session_id):
        # group_by=team with a bearer key instead of x-api-key: both schemes are documented.
        if key is None and "group_by" in url:
            status, body, headers = get(collector, url, VIEWER_KEY, header="Authorization")
        else:
            status, body, headers = get(collector, url, key)
        assert status == want_status, (url, status, body)
        schema = response_schema(doc, path, status, headers["Content-Type"])
        if headers["Content-Type"].startswith("text/csv"):
            assert body.startswith(("date,", "actor,"))
            continue
        validator = Draft202012Validator({**schema, "components": components})
        errors = [e.message for e in validator.iter_errors(json.loads(body))]
        assert errors == [], (url, errors[:5])
        checked.add(path)
    assert checked == set(doc["paths"]), "every documented path is exercised"


def test_served_document_is_the_document_and_needs_a_key(filled) -> None:
    collector, _ = filled
    status, body, headers = get(collector, "/openapi.json")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert json.loads(body) == document()
    status, _, _ = get(collector, "/openapi.json", key=None)
    assert status == 401
