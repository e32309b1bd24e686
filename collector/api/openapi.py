"""`GET /openapi.json`: an OpenAPI 3.1 description of every REST path on the metrics port.

Why: teams point generated clients, Grafana's JSON data sources and API explorers at it, and
the tests hold the document to the running app (every route documented, every documented
path served, real responses valid against the schemas), so it cannot drift silently. It
needs a read key like every API path (auth.py exempts only /metrics, /healthz, /readyz).
`/metrics`, `/healthz` and `/readyz` follow Prometheus and load-balancer conventions and are
not part of this API, so they are not described here.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from aiohttp import web

from collector import __version__

PATH = "/openapi.json"
ANALYTICS_PATH = "/v1/organizations/usage_report/claude_code"
API = "/api/v1"
ERROR_TYPES = (
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "rate_limit_error",
    "api_error",
)

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(description: str | None = None, /, **properties: Schema) -> Schema:
    """An object whose listed properties are all required (responses always carry them)."""
    out: Schema = {"type": "object", "properties": properties, "required": list(properties)}
    if description:
        out["description"] = description
    return out


def _int(description: str = "") -> Schema:
    out: Schema = {"type": "integer", "minimum": 0}
    if description:
        out["description"] = description
    return out


def _str(description: str = "", **extra: Any) -> Schema:
    out: Schema = {"type": "string", **extra}
    if description:
        out["description"] = description
    return out


USD: Schema = {
    "type": "number",
    "minimum": 0,
    "description": "US dollars, exact to 1e-9 (computed from integer nano-USD).",
}
DATE: Schema = {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
TIMESTAMP: Schema = {"type": "string", "format": "date-time", "description": "RFC 3339, UTC."}
ACTOR_KIND: Schema = {
    "type": "string",
    "enum": ["email", "account", "token", "device", "unknown"],
    "description": "How the actor was identified: user.email, user.account_uuid, the ingest "
    "token's binding, the install's user.id (device:<8 hex>), or nothing.",
}


def _schemas() -> dict[str, Schema]:
    lines = _obj("Lines of code written by Claude Code.", added=_int(), removed=_int())
    suggestions = _obj(
        "Accept/reject decisions on Claude Code's edits (Edit, MultiEdit, Write, NotebookEdit).",
        accepted=_int(),
        rejected=_int(),
        accept_rate={
            "type": ["number", "null"],
            "minimum": 0,
            "maximum": 1,
            "description": "accepted / (accepted + rejected); null without any decision.",
        },
    )
    session = _obj(
        "One Claude Code session (session.id).",
        session_id=_str(),
        actor=_str(),
        actor_kind=ACTOR_KIND,
        team=_str(),
        terminal=_str("terminal.type of the session."),
        started_at=TIMESTAMP,
        last_activity_at=TIMESTAMP,
        duration_seconds={"type": "number", "minimum": 0},
        spend_usd=USD,
        tokens=_int("All token types together."),
        lines_of_code=_ref("Lines"),
        prompts=_int(),
        api_requests=_int(),
    )
    tool_action = _obj(accepted=_int(), rejected=_int())
    actor = {
        "oneOf": [
            _obj(
                type={"const": "user_actor"},
                email_address=_str("The user's email (user.email or the token's user)."),
            ),
            _obj(
                type={"const": "api_actor"},
                api_key_name=_str("Ingest token name, account UUID or device:<8 hex>."),
            ),
            _obj(
                "Extension: a team row (group_by=team).",
                type={"const": "team"},
                team=_str(),
            ),
        ]
    }
    report_row = _obj(
        "One (day, actor, terminal) row, or (day, team) with group_by=team.",
        date=_str("Start of the UTC day, e.g. 2026-11-21T00:00:00Z.", format="date-time"),
        actor=actor,
        organization_id={"type": ["string", "null"]},
        customer_type={"enum": ["subscription", "api", None]},
        subscription_type={"type": ["string", "null"]},
        terminal_type={"type": ["string", "null"]},
        is_remote={"type": "boolean"},
        core_metrics=_obj(
            num_sessions=_int(),
            lines_of_code=_ref("Lines"),
            commits_by_claude_code=_int(),
            pull_requests_by_claude_code=_int(),
        ),
        tool_actions=_obj(
            edit_tool=tool_action,
            multi_edit_tool=tool_action,
            write_tool=tool_action,
            notebook_edit_tool=tool_action,
        ),
        model_breakdown={
            "type": "array",
            "items": _obj(
                model=_str(),
                tokens=_obj(input=_int(), output=_int(), cache_read=_int(), cache_creation=_int()),
                estimated_cost=_obj(
                    currency={"const": "USD"},
                    amount={
                        "type": "number",
                        "minimum": 0,
                        "description": "US cents (list-price estimate), exact to 1e-7.",
                    },
                ),
            ),
        },
    )
    return {
        "Error": _obj(
            "Anthropic's error envelope.",
            type={"const": "error"},
            error=_obj(type={"enum": list(ERROR_TYPES)}, message=_str()),
        ),
        "Lines": lines,
        "Suggestions": suggestions,
        "UsageReportRow": report_row,
        "UsageReport": _obj(
            data={"type": "array", "items": _ref("UsageReportRow")},
            has_more={"type": "boolean"},
            next_page={
                "type": ["string", "null"],
                "description": "Cursor for `page`; null on the last page.",
            },
        ),
        "Summary": _obj(
            **{"from": DATE, "to": DATE},
            days=_int("Days in the range."),
            spend_usd=USD,
            sessions=_int(),
            lines_of_code=_ref("Lines"),
            lines_of_code_accepted=_int("Lines added by Claude Code's accepted edits."),
            commits=_int(),
            pull_requests=_int(),
            suggestions=_ref("Suggestions"),
            active_users=_obj(
                distinct=_int("Distinct actors with any usage in the range."),
                daily_average={
                    "type": "number",
                    "minimum": 0,
                    "description": "Distinct actors per day, averaged over every day of the "
                    "range (days without usage count as 0).",
                },
            ),
        ),
        "Daily": _obj(
            **{"from": DATE, "to": DATE},
            data={
                "type": "array",
                "description": "Every day of the range, in order.",
                "items": _obj(
                    date=DATE,
                    active_users=_int("Distinct actors with any usage that day."),
                    sessions=_int(),
                    spend_usd=USD,
                    lines_of_code=_ref("Lines"),
                ),
            },
        ),
        "Member": _obj(
            actor=_str(),
            actor_kind=ACTOR_KIND,
            team=_str("Current team (directory, token binding or attributes)."),
            department=_str(),
            spend_usd=USD,
            lines_of_code=_ref("Lines"),
            sessions=_int(),
            suggestions=_ref("Suggestions"),
            last_seen=TIMESTAMP,
        ),
        "Team": _obj(
            month=_str(pattern=r"^\d{4}-\d{2}$"),
            **{"from": DATE, "to": DATE},
            team={"type": ["string", "null"], "description": "The `team` filter, if any."},
            data={"type": "array", "items": _ref("Member")},
        ),
        "Leaderboard": _obj(
            by={"enum": ["cost", "lines", "prs"]},
            **{"from": DATE, "to": DATE},
            limit=_int(),
            data={
                "type": "array",
                "items": _obj(
                    rank={"type": "integer", "minimum": 1, "description": "Ties share a rank."},
                    actor=_str(),
                    actor_kind=ACTOR_KIND,
                    team=_str(),
                    department=_str(),
                    value={
                        "type": "number",
                        "minimum": 0,
                        "description": "USD for cost, lines added for lines, pull requests "
                        "for prs.",
                    },
                ),
            },
        ),
        "Session": session,
        "UserSessions": _obj(
            actor=_str(),
            actor_kind=ACTOR_KIND,
            team=_str(),
            department=_str(),
            data={"type": "array", "items": _ref("Session")},
            has_more={"type": "boolean"},
        ),
    }


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": _ref("Error")}},
    }


RESPONSES = {
    "BadRequest": _error("invalid_request_error: a parameter is missing or invalid."),
    "Unauthorized": _error("authentication_error: no key, or an unknown one."),
    "Forbidden": _error("permission_error: an ingest token cannot read reports."),
    "NotFound": _error("not_found_error"),
    "Unavailable": _error("api_error: the store is unavailable; retry."),
}


def _ok(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _csv(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }


def _responses(ok: dict[str, Any], *extra: str) -> dict[str, Any]:
    out: dict[str, Any] = {"200": ok}
    codes = {"BadRequest": "400", "NotFound": "404"}
    for name in extra:
        out[codes[name]] = {"$ref": f"#/components/responses/{name}"}
    out["401"] = {"$ref": "#/components/responses/Unauthorized"}
    out["403"] = {"$ref": "#/components/responses/Forbidden"}
    out["503"] = {"$ref": "#/components/responses/Unavailable"}
    return out


def _param(name: str, where: str, schema: Schema, description: str, required: bool = False) -> Any:
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "description": description,
        "schema": schema,
    }


FROM = _param("from", "query", DATE, "First UTC day (inclusive). Default: 29 days before `to`.")
TO = _param("to", "query", DATE, "Last UTC day (inclusive). Default: today (UTC).")
RANGE_NOTE = "A range covers at most 366 days."


def _limit(default: int) -> Any:
    return _param(
        "limit",
        "query",
        {"type": "integer", "minimum": 1, "maximum": 1000, "default": default},
        "Rows at most.",
    )


def _paths() -> dict[str, Any]:
    def get(
        operation: str, summary: str, description: str, params: list[Any], responses: Any
    ) -> dict[str, Any]:
        return {
            "get": {
                "operationId": operation,
                "summary": summary,
                "description": description,
                "parameters": params,
                "responses": responses,
            }
        }

    return {
        ANALYTICS_PATH: get(
            "getClaudeCodeUsageReport",
            "Claude Code usage report (Anthropic Analytics API shape)",
            "Daily rows per (actor, terminal), as Anthropic's Claude Code Analytics Admin API "
            "returns them, so its tools work against this collector unchanged. Extensions: "
            "`ending_at` (inclusive range), `group_by=team`, `format=csv`. Pages are keyset "
            "cursors fixed at the first page's time.",
            [
                _param("starting_at", "query", DATE, "First UTC day.", required=True),
                _param(
                    "ending_at",
                    "query",
                    DATE,
                    "Extension: last UTC day (inclusive); default `starting_at`. At most 366 days.",
                ),
                _param(
                    "limit",
                    "query",
                    {"type": "integer", "minimum": 1, "maximum": 100_000},
                    "Rows per page: JSON 1-1000, default 20; CSV 1-100000, default 100000.",
                ),
                _param("page", "query", {"type": "string"}, "`next_page` of the previous page."),
                _param(
                    "group_by",
                    "query",
                    {"enum": ["team"]},
                    "Extension: one row per (day, team) instead of (day, actor, terminal).",
                ),
                _param(
                    "format",
                    "query",
                    {"enum": ["json", "csv"], "default": "json"},
                    "Extension: `csv` returns the rows as RFC 4180 CSV (formula injection "
                    "neutralized), all of them unless `limit` is given.",
                ),
                _param(
                    "anthropic-version",
                    "header",
                    {"type": "string"},
                    "Accepted for compatibility with Anthropic's API; not required.",
                ),
            ],
            {
                **_responses(_ok("UsageReport", "A page of rows."), "BadRequest"),
                "200": {
                    "description": "A page of rows (JSON), or rows as CSV with format=csv. "
                    "See docs/api-analytics.md.",
                    "headers": {
                        "X-Has-More": {
                            "description": "CSV only: whether more rows follow.",
                            "schema": {"enum": ["true", "false"]},
                        },
                        "X-Next-Page": {
                            "description": "CSV only, when more rows follow: the `page` "
                            "cursor for them.",
                            "schema": {"type": "string"},
                        },
                    },
                    "content": {
                        "application/json": {"schema": _ref("UsageReport")},
                        "text/csv": {"schema": {"type": "string"}},
                    },
                },
            },
        ),
        f"{API}/summary": get(
            "getSummary",
            "Totals and active users over a day range",
            "Spend, sessions, lines, commits, pull requests, edit accept rate and exact "
            f"distinct active users (per day averaged, and over the range). {RANGE_NOTE}",
            [FROM, TO],
            _responses(_ok("Summary", "Totals of the range."), "BadRequest"),
        ),
        f"{API}/daily": get(
            "getDaily",
            "One point per day",
            f"Active users, sessions, spend and lines for every day of the range. {RANGE_NOTE}",
            [FROM, TO],
            _responses(_ok("Daily", "Every day of the range."), "BadRequest"),
        ),
        f"{API}/team": get(
            "getTeam",
            "Every member with this month's numbers",
            "Every actor the collector has seen (optionally of one team), with spend, lines, "
            "sessions and accept rate in the calendar month (UTC), and when they were last "
            "seen. Members without usage that month show zeros.",
            [
                _param(
                    "month",
                    "query",
                    {"type": "string", "pattern": r"^\d{4}-\d{2}$"},
                    "YYYY-MM; default the current month (UTC).",
                ),
                _param("team", "query", {"type": "string"}, "Only members of this team."),
            ],
            _responses(_ok("Team", "Members sorted by team, then actor."), "BadRequest"),
        ),
        f"{API}/leaderboard": get(
            "getLeaderboard",
            "Top actors by cost, lines added or pull requests",
            f"Actors with a value above zero, highest first, ties by actor. {RANGE_NOTE}",
            [
                _param(
                    "by",
                    "query",
                    {"enum": ["cost", "lines", "prs"], "default": "cost"},
                    "cost (USD), lines (lines added) or prs (pull requests).",
                ),
                _limit(10),
                FROM,
                TO,
            ],
            _responses(_ok("Leaderboard", "The top actors."), "BadRequest"),
        ),
        f"{API}/sessions/{{session_id}}": get(
            "getSession",
            "One session",
            "Totals of one Claude Code session (its session.id).",
            [_param("session_id", "path", {"type": "string"}, "The session.id.")],
            _responses(_ok("Session", "The session."), "NotFound"),
        ),
        f"{API}/users/{{actor}}/sessions": get(
            "getUserSessions",
            "A user's sessions",
            "The actor's sessions, most recently active first. 404 for an actor never seen.",
            [
                _param(
                    "actor",
                    "path",
                    {"type": "string"},
                    "The actor (email, account UUID, token name or device:<8 hex>), URL-encoded.",
                ),
                _limit(20),
            ],
            _responses(_ok("UserSessions", "The sessions."), "BadRequest", "NotFound"),
        ),
        f"{API}/export/users.csv": get(
            "exportUsersCsv",
            "Every user as CSV",
            "RFC 4180, UTF-8, CRLF; a text cell starting with =, +, -, @, tab or CR gets a "
            "leading apostrophe so spreadsheets do not run it as a formula. All-time totals, "
            "or over `from`/`to` when either is given.",
            [
                _param("from", "query", DATE, "First UTC day (inclusive)."),
                _param("to", "query", DATE, "Last UTC day (inclusive)."),
            ],
            _responses(
                _csv(
                    "Columns: actor, actor_kind, team, department, first_seen, last_seen, "
                    "sessions, spend_usd, tokens, lines_added, lines_removed, commits, "
                    "pull_requests, edits_accepted, edits_rejected, prompts."
                ),
                "BadRequest",
            ),
        ),
        PATH: get(
            "getOpenApi",
            "This document",
            "The OpenAPI 3.1 description of this API.",
            [],
            {
                "200": {
                    "description": "OpenAPI 3.1 document.",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "403": {"$ref": "#/components/responses/Forbidden"},
            },
        ),
    }


def document() -> dict[str, Any]:
    """A fresh copy of the document (callers may change it)."""
    return copy.deepcopy(_DOCUMENT)


_DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Claude Code collector API",
        "version": __version__,
        "description": "Reports from a self-hosted Claude Code telemetry collector: Anthropic's "
        "Claude Code Analytics report shape, and dashboard endpoints. Every number comes "
        "from the collector's store. Send a read key (extensions.api.keys) as `x-api-key` or "
        "`Authorization: Bearer`. Errors use Anthropic's envelope.",
        "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
    },
    "security": [{"ApiKeyAuth": []}, {"BearerAuth": []}],
    "paths": _paths(),
    "components": {
        "schemas": _schemas(),
        "responses": RESPONSES,
        "securitySchemes": {
            "ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            "BearerAuth": {"type": "http", "scheme": "bearer"},
        },
    },
}
_BODY = json.dumps(_DOCUMENT, separators=(",", ":")).encode()


async def serve(_: web.Request) -> web.Response:
    return web.Response(body=_BODY, content_type="application/json")


def register(app: web.Application) -> None:
    """Adds `GET /openapi.json` once, whichever module registers it first."""
    if any(resource.canonical == PATH for resource in app.router.resources()):
        return
    app.router.add_get(PATH, serve)
