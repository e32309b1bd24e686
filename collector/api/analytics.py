"""`GET /v1/organizations/usage_report/claude_code`: Anthropic's Claude Code Analytics shape.

Tools written for Anthropic's Admin API (dashboards, connectors, finance scripts) work against
this collector by changing only the base URL and key. Same request parameters, same response
and error shapes (docs/api.md), plus documented extensions: `ending_at` (inclusive range),
`group_by=team`, `format=csv`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from typing import Any

from aiohttp import web

from collector import contract as c
from collector.api import csvout
from collector.api.context import CONTEXT, ApiContext
from collector.api.errors import ApiError, invalid
from exporters.store.analytics_queries import Key, ReportRow, page_keys, rows_for

PATH = "/v1/organizations/usage_report/claude_code"
MAX_LIMIT = 1000
DEFAULT_LIMIT = 20
#: the longest range `ending_at` may ask for, to bound one request's work.
MAX_DAYS = 366
CSV_ROWS = 1_000_000
TOOL_KEYS = {
    "Edit": "edit_tool",
    "MultiEdit": "multi_edit_tool",
    "Write": "write_tool",
    "NotebookEdit": "notebook_edit_tool",
}
USER_KINDS = ("email", "account")


def _day(value: str | None, name: str) -> dt.date:
    if not value:
        raise invalid(f"{name} is required (YYYY-MM-DD)")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise invalid(f"{name} must be a date as YYYY-MM-DD, got {value!r}") from None


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    try:
        limit = int(value)
    except ValueError:
        raise invalid(f"limit must be an integer, got {value!r}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise invalid(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    return limit


def encode_cursor(boundary: int, key: Key, scope: list[str]) -> str:
    raw = json.dumps({"b": boundary, "k": list(key), "s": scope}, separators=(",", ":"))
    return "page_" + base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(page: str, scope: list[str]) -> tuple[int, Key]:
    """A cursor is only valid for the query that made it (same range and grouping)."""
    try:
        if not page.startswith("page_"):
            raise ValueError("no page_ prefix")
        body = page[5:]
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        boundary, key = int(data["b"]), tuple(str(v) for v in data["k"])
        if data["s"] != scope or len(key) != 3:
            raise ValueError("cursor of another query")
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise invalid(f"invalid page cursor: {exc}") from None
    return boundary, (key[0], key[1], key[2])


def _cents(nano: int) -> float:
    """nano-USD to cents, exactly representable to 7 decimals (1 cent = 10^7 nano-USD)."""
    return round(nano / 10_000_000, 7)


def _actor(row: ReportRow, by_team: bool) -> dict[str, Any]:
    if by_team:
        return {"type": "team", "team": row.actor}
    if row.actor_kind == "email":
        return {"type": "user_actor", "email_address": row.actor}
    return {"type": "api_actor", "api_key_name": row.actor}


def report_row(row: ReportRow, context: ApiContext, by_team: bool) -> dict[str, Any]:
    a = row.amounts

    def total(metric: c.Metric, **match: str) -> int:
        names = metric.own
        return sum(
            n
            for (m, labels), n in a.items()
            if m == metric.name
            and all(dict(zip(names, labels, strict=False)).get(k) == v for k, v in match.items())
        )

    tools = {key: {"accepted": 0, "rejected": 0} for key in TOOL_KEYS.values()}
    for (metric, labels), n in a.items():
        if metric == c.CODE_EDIT_DECISIONS.name and labels[0] in TOOL_KEYS:
            outcome = {"accept": "accepted", "reject": "rejected"}.get(labels[1])
            if outcome:
                tools[TOOL_KEYS[labels[0]]][outcome] += n
    models = sorted(
        {labels[0] for (m, labels), _ in a.items() if m in (c.TOKENS.name, c.COST.name)}
    )
    return {
        "date": f"{row.day}T00:00:00Z",
        "actor": _actor(row, by_team),
        "organization_id": row.organization or context.organization_id or None,
        "customer_type": None
        if by_team
        else ("subscription" if row.actor_kind in USER_KINDS else "api"),
        "subscription_type": None,
        "terminal_type": None if by_team else row.terminal,
        "is_remote": False,
        "core_metrics": {
            "num_sessions": total(c.SESSIONS),
            "lines_of_code": {
                "added": total(c.LINES, type="added"),
                "removed": total(c.LINES, type="removed"),
            },
            "commits_by_claude_code": total(c.COMMITS),
            "pull_requests_by_claude_code": total(c.PULL_REQUESTS),
        },
        "tool_actions": tools,
        "model_breakdown": [
            {
                "model": model,
                "tokens": {
                    kind: total(c.TOKENS, model=model, type=kind)
                    for kind in ("input", "output", "cache_read", "cache_creation")
                },
                "estimated_cost": {"currency": "USD", "amount": _cents(total(c.COST, model=model))},
            }
            for model in models
        ],
    }


CSV_HEADER = (
    "date",
    "actor_type",
    "actor",
    "organization_id",
    "customer_type",
    "terminal_type",
    "is_remote",
    "num_sessions",
    "lines_added",
    "lines_removed",
    "commits",
    "pull_requests",
    *(f"{tool}_{o}" for tool in TOOL_KEYS.values() for o in ("accepted", "rejected")),
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_creation_tokens",
    "estimated_cost_cents",
    "models",
)


def csv_row(item: dict[str, Any]) -> list[object]:
    actor = item["actor"]
    name = actor.get("email_address") or actor.get("api_key_name") or actor.get("team")
    core = item["core_metrics"]
    breakdown = item["model_breakdown"]
    return [
        item["date"][:10],
        actor["type"],
        name,
        item["organization_id"],
        item["customer_type"],
        item["terminal_type"],
        str(item["is_remote"]).lower(),
        core["num_sessions"],
        core["lines_of_code"]["added"],
        core["lines_of_code"]["removed"],
        core["commits_by_claude_code"],
        core["pull_requests_by_claude_code"],
        *(item["tool_actions"][t][o] for t in TOOL_KEYS.values() for o in ("accepted", "rejected")),
        *(
            sum(m["tokens"][k] for m in breakdown)
            for k in ("input", "output", "cache_read", "cache_creation")
        ),
        round(sum(m["estimated_cost"]["amount"] for m in breakdown), 7),
        ";".join(m["model"] for m in breakdown),
    ]


async def usage_report(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    query = request.query
    first = _day(query.get("starting_at"), "starting_at")
    last = _day(query["ending_at"], "ending_at") if "ending_at" in query else first
    if last < first:
        raise invalid("ending_at must not be before starting_at")
    if (last - first).days >= MAX_DAYS:
        raise invalid(f"a report covers at most {MAX_DAYS} days")
    group_by = query.get("group_by")
    if group_by not in (None, "team"):
        raise invalid(f"group_by must be team, got {group_by!r}")
    by_team = group_by == "team"
    output = query.get("format", "json")
    if output not in ("json", "csv"):
        raise invalid(f"format must be json or csv, got {output!r}")
    # A CSV export is for a spreadsheet: all rows at once unless a limit is asked for.
    limit = CSV_ROWS if output == "csv" and "limit" not in query else _limit(query.get("limit"))
    scope = [first.isoformat(), last.isoformat(), group_by or ""]
    boundary, after = context.clock(), None
    if query.get("page"):
        boundary, after = decode_cursor(query["page"], scope)

    def read(db: Any) -> list[ReportRow]:
        keys = page_keys(db, scope[0], scope[1], boundary, after, limit + 1, by_team)
        return rows_for(db, keys, by_team)

    rows = await context.read(read)
    has_more = len(rows) > limit
    rows = rows[:limit]
    data = [report_row(row, context, by_team) for row in rows]
    if output == "csv":
        return csvout.response(
            CSV_HEADER, (csv_row(item) for item in data), "claude_code_usage.csv"
        )
    next_page = None
    if has_more:
        last_row = rows[-1]
        next_page = encode_cursor(
            boundary, (last_row.day, last_row.actor, last_row.terminal), scope
        )
    return web.json_response({"data": data, "has_more": has_more, "next_page": next_page})


async def handle(request: web.Request) -> web.Response:
    try:
        return await usage_report(request)
    except ApiError as error:
        return error.response()


def register(app: web.Application) -> None:
    app.router.add_get(PATH, handle)
