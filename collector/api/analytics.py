"""`GET /v1/organizations/usage_report/claude_code`: Anthropic's Claude Code Analytics shape.

Tools written for Anthropic's Admin API (dashboards, connectors, finance scripts) work against
this collector by changing only the base URL and the key: same request parameters, same
response and error shapes. Documented extensions (docs/api-analytics.md): `ending_at` (an
inclusive day range), `group_by=team`, `format=csv`.

How the telemetry maps onto Anthropic's fields, and why, is in docs/api-analytics.md; the
short version is in `actor_fields` and `report_row`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from collector import contract as c
from collector.api import csvout
from collector.api.context import CONTEXT, ApiContext
from collector.api.errors import ApiError, invalid
from exporters.store.analytics_queries import Key, ReportRow, data_boundary, report_page

PATH = "/v1/organizations/usage_report/claude_code"
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
#: a CSV export is for a spreadsheet: by default every row of the range, up to this many.
CSV_MAX_ROWS = 100_000
#: keys read per store call; a CSV export makes several calls so ingest can commit between.
CHUNK = 1000
#: the longest range `ending_at` may ask for, to bound one request's work.
MAX_DAYS = 366
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
NANO_PER_CENT = 10_000_000
TOKEN_TYPES = ("input", "output", "cache_read", "cache_creation")
#: Claude Code's tool names (the `tool` label of code_edit_decisions) -> Anthropic's keys.
TOOL_KEYS = {
    "Edit": "edit_tool",
    "MultiEdit": "multi_edit_tool",
    "Write": "write_tool",
    "NotebookEdit": "notebook_edit_tool",
}
OUTCOMES = {"accept": "accepted", "reject": "rejected"}
#: actor kinds that only an OAuth (Claude subscription) login sends: email and account uuid.
SUBSCRIPTION_KINDS = frozenset({"email", "account"})


# -- the request -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportQuery:
    first: dt.date
    last: dt.date
    by_team: bool
    csv: bool
    limit: int
    page: str | None

    @property
    def scope(self) -> list[str]:
        """What a cursor is bound to: the same range and grouping (the format may change)."""
        return [self.first.isoformat(), self.last.isoformat(), "team" if self.by_team else ""]


def _day(value: str | None, name: str) -> dt.date:
    if not value:
        raise invalid(f"{name} is required, as a UTC date YYYY-MM-DD")
    # fromisoformat alone also takes 20261001 and 2026-W40-4; the API promises YYYY-MM-DD.
    if not _DATE.fullmatch(value):
        raise invalid(f"{name} must be a date as YYYY-MM-DD, got {value!r}")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise invalid(f"{name} must be a valid date as YYYY-MM-DD, got {value!r}") from None


def _limit(value: str | None, default: int, most: int) -> int:
    if value is None:
        return default
    try:
        limit = int(value)
    except ValueError:
        raise invalid(f"limit must be an integer, got {value!r}") from None
    if not 1 <= limit <= most:
        raise invalid(f"limit must be between 1 and {most}, got {limit}")
    return limit


def parse_query(query: Mapping[str, str]) -> ReportQuery:
    """Validate like Anthropic's API (400 invalid_request_error); unknown parameters are
    ignored, as there."""
    first = _day(query.get("starting_at"), "starting_at")
    last = _day(query["ending_at"], "ending_at") if query.get("ending_at") else first
    if last < first:
        raise invalid("ending_at must not be before starting_at")
    if (last - first).days >= MAX_DAYS:
        raise invalid(f"a report covers at most {MAX_DAYS} days")
    group_by = query.get("group_by") or None
    if group_by not in (None, "team"):
        raise invalid(f"group_by must be team, got {group_by!r}")
    output = query.get("format") or "json"
    if output not in ("json", "csv"):
        raise invalid(f"format must be json or csv, got {output!r}")
    csv = output == "csv"
    limit = (
        _limit(query.get("limit"), CSV_MAX_ROWS, CSV_MAX_ROWS)
        if csv
        else _limit(query.get("limit"), DEFAULT_LIMIT, MAX_LIMIT)
    )
    return ReportQuery(first, last, group_by == "team", csv, limit, query.get("page") or None)


# -- the cursor ------------------------------------------------------------------------------


def encode_cursor(boundary: int, key: Key, scope: list[str]) -> str:
    """`page_` + urlsafe base64 (unpadded) of {"b": boundary, "k": last key, "s": scope}.

    Opaque to clients; it holds nothing secret, only the position and the fixed boundary.
    """
    raw = json.dumps({"b": boundary, "k": list(key), "s": scope}, separators=(",", ":"))
    return "page_" + base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(page: str, scope: list[str]) -> tuple[int, Key]:
    """A cursor is only valid for the query that made it (same range and grouping)."""
    try:
        if not page.startswith("page_"):
            raise ValueError("it does not start with page_")
        body = page.removeprefix("page_")
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        boundary, key = data["b"], data["k"]
        if not isinstance(boundary, int) or isinstance(boundary, bool):
            raise ValueError("no boundary")
        if not (isinstance(key, list) and len(key) == 3 and all(isinstance(v, str) for v in key)):
            raise ValueError("no position")
        if data["s"] != scope:
            raise ValueError("it belongs to another range or grouping")
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise invalid(f"invalid page cursor: {exc}") from None
    return boundary, (key[0], key[1], key[2])


# -- the shape -------------------------------------------------------------------------------


def cents(nano: int) -> int | float:
    """nano-USD -> cents, as the JSON number with exactly the decimal value.

    1 cent is 10^7 nano-USD, so the value has at most 7 decimals; int / int is correctly
    rounded, and the shortest repr of the nearest double is that decimal (exact up to 2^53
    nano-USD, about 9 million USD per row and model). Whole cents are sent as integers,
    like Anthropic's examples.
    """
    whole, rest = divmod(nano, NANO_PER_CENT)
    return whole if rest == 0 else round(nano / NANO_PER_CENT, 7)


def actor_fields(kind: str, name: str) -> tuple[dict[str, str], str]:
    """The actor object and customer_type of an actor of the store.

    - email (sent by OAuth logins, or the user bound to an ingest token when it is an
      email) -> user_actor with email_address: the only kind that really is an email.
    - account (an OAuth login without an email) -> api_actor named by the account uuid:
      user_actor promises an email address that tools join with directories and mail to,
      and a uuid is not one; api_key_name is a free-form name. customer_type stays
      "subscription", since only OAuth logins send an account uuid.
    - token (the ingest token's user or name), device (`device:<8 hex>`), unknown ->
      api_actor named as on /metrics; customer_type "api" (API-key, Bedrock, Vertex).
    """
    customer = "subscription" if kind in SUBSCRIPTION_KINDS else "api"
    if kind == "email":
        return {"type": "user_actor", "email_address": name}, customer
    return {"type": "api_actor", "api_key_name": name}, customer


def report_row(row: ReportRow, context: ApiContext, by_team: bool) -> dict[str, Any]:
    """One `data` item: Anthropic's fields, in Anthropic's order."""
    totals: dict[str, int] = {}
    lines = {"added": 0, "removed": 0}
    tools = {key: {"accepted": 0, "rejected": 0} for key in TOOL_KEYS.values()}
    tokens: dict[str, dict[str, int]] = {}
    cost: dict[str, int] = {}
    for (metric, labels), amount in row.amounts.items():
        if metric == c.LINES.name:
            if labels[0] in lines:
                lines[labels[0]] += amount
        elif metric == c.CODE_EDIT_DECISIONS.name:
            tool, outcome = TOOL_KEYS.get(labels[0]), OUTCOMES.get(labels[1])
            if tool and outcome:
                tools[tool][outcome] += amount
        elif metric == c.TOKENS.name:
            per_model = tokens.setdefault(labels[0], dict.fromkeys(TOKEN_TYPES, 0))
            if labels[1] in per_model:
                per_model[labels[1]] += amount
        elif metric == c.COST.name:
            cost[labels[0]] = cost.get(labels[0], 0) + amount
        else:
            totals[metric] = totals.get(metric, 0) + amount
    if by_team:
        actor: dict[str, str] = {"type": "team", "team": row.actor}
        customer: str | None = None
    else:
        actor, customer = actor_fields(row.actor_kind, row.actor)
    return {
        "date": f"{row.day}T00:00:00Z",
        "actor": actor,
        "organization_id": row.organization or context.organization_id or None,
        "customer_type": customer,
        "subscription_type": None,
        "terminal_type": None if by_team else row.terminal,
        "is_remote": False,
        "core_metrics": {
            "num_sessions": totals.get(c.SESSIONS.name, 0),
            "lines_of_code": lines,
            "commits_by_claude_code": totals.get(c.COMMITS.name, 0),
            "pull_requests_by_claude_code": totals.get(c.PULL_REQUESTS.name, 0),
        },
        "tool_actions": tools,
        "model_breakdown": [
            {
                "model": model,
                "tokens": tokens.get(model, dict.fromkeys(TOKEN_TYPES, 0)),
                "estimated_cost": {"currency": "USD", "amount": cents(cost.get(model, 0))},
            }
            for model in sorted(tokens.keys() | cost.keys())
        ],
    }


# -- CSV -------------------------------------------------------------------------------------

CSV_HEADER = (
    "date",
    "actor_type",
    "actor",
    "organization_id",
    "customer_type",
    "subscription_type",
    "terminal_type",
    "is_remote",
    "num_sessions",
    "lines_added",
    "lines_removed",
    "commits_by_claude_code",
    "pull_requests_by_claude_code",
    *(f"{tool}_{o}" for tool in TOOL_KEYS.values() for o in ("accepted", "rejected")),
    *(f"{kind}_tokens" for kind in TOKEN_TYPES),
    "estimated_cost_cents",
    "models",
)


def csv_row(row: ReportRow, item: dict[str, Any]) -> list[object]:
    """One data item flattened: token counts and cost summed over models, models listed."""
    actor = item["actor"]
    core = item["core_metrics"]
    breakdown = item["model_breakdown"]
    nano = sum(n for (metric, _), n in row.amounts.items() if metric == c.COST.name)
    return [
        item["date"][:10],
        actor["type"],
        actor.get("email_address") or actor.get("api_key_name") or actor.get("team"),
        item["organization_id"],
        item["customer_type"],
        item["subscription_type"],
        item["terminal_type"],
        "true" if item["is_remote"] else "false",
        core["num_sessions"],
        core["lines_of_code"]["added"],
        core["lines_of_code"]["removed"],
        core["commits_by_claude_code"],
        core["pull_requests_by_claude_code"],
        *(item["tool_actions"][t][o] for t in TOOL_KEYS.values() for o in ("accepted", "rejected")),
        *(sum(m["tokens"][kind] for m in breakdown) for kind in TOKEN_TYPES),
        cents(nano),
        ";".join(m["model"] for m in breakdown),
    ]


# -- the handler -----------------------------------------------------------------------------


async def read_rows(
    context: ApiContext, q: ReportQuery, boundary: int, after: Key | None
) -> tuple[list[ReportRow], bool]:
    """Up to `q.limit` rows after `after`, and whether more exist.

    In chunks of CHUNK keys, one store call each, so a large CSV export does not hold the
    store thread (which also commits ingest) for its whole duration.
    """
    first, last = q.first.isoformat(), q.last.isoformat()
    rows: list[ReportRow] = []
    while True:
        want = min(CHUNK, q.limit - len(rows))
        position = after

        def read(db: Any, want: int = want, position: Key | None = position) -> list[ReportRow]:
            return report_page(db, first, last, boundary, position, want + 1, q.by_team)

        chunk = await context.read(read)
        rows += chunk[:want]
        if len(chunk) <= want:
            return rows, False
        if len(rows) >= q.limit:
            return rows, True
        after = (rows[-1].day, rows[-1].actor, rows[-1].terminal)


async def usage_report(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    q = parse_query(request.query)
    if q.page is not None:
        boundary, after = decode_cursor(q.page, q.scope)
    else:
        boundary = await context.read(data_boundary)
        after = None
    rows, has_more = await read_rows(context, q, boundary, after)
    next_page = None
    if has_more:
        end = rows[-1]
        next_page = encode_cursor(boundary, (end.day, end.actor, end.terminal), q.scope)
    items = [report_row(row, context, q.by_team) for row in rows]
    if q.csv:
        headers = {"X-Has-More": "true" if has_more else "false"}
        if next_page:
            headers["X-Next-Page"] = next_page
        name = f"claude_code_usage_{q.first.isoformat()}_{q.last.isoformat()}.csv"
        return csvout.response(
            CSV_HEADER,
            (csv_row(row, item) for row, item in zip(rows, items, strict=True)),
            name,
            headers,
        )
    return web.json_response({"data": items, "has_more": has_more, "next_page": next_page})


async def handle(request: web.Request) -> web.Response:
    try:
        return await usage_report(request)
    except ApiError as error:
        return error.response()


def register(app: web.Application) -> None:
    """Adds the route; the read-key middleware (collector/api/auth.py) guards it."""
    app.router.add_get(PATH, handle)
