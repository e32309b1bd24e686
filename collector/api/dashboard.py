"""Dashboard endpoints under `/api/v1/`: summary, daily series, team table, leaderboard,
session drill-down and a users CSV (docs/api.md, "Dashboard endpoints").

Why a JSON API beside `/metrics`: a dashboard needs exact distinct counts (active users, DAU),
calendar-month totals and per-session detail, which PromQL over capped, per-replica counters
cannot give. Every number here is read from the store, in the metrics' integer scales, and
converted only at the edge: money to USD rounded to 9 decimals (nano-USD is the unit, so that
rounding is exact), times to RFC 3339 UTC.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from aiohttp import web

from collector import contract as c
from collector.api import csvout, openapi
from collector.api.context import CONTEXT, ApiContext
from collector.api.errors import ApiError, invalid
from exporters.store import dashboard_queries as q
from exporters.store.backend import Backend

PREFIX = "/api/v1"
#: the longest range one request may ask for, to bound its work.
MAX_DAYS = 366
#: a range without `from` covers this many days, ending with `to` (default: today, UTC).
DEFAULT_DAYS = 30
MAX_LIMIT = 1000
DEFAULT_LEADERS = 10
DEFAULT_SESSIONS = 20
#: leaderboard `by` -> (metric, label tuple or None)
BOARDS: dict[str, tuple[str, str | None]] = {
    "cost": (c.COST.name, None),
    "lines": (c.LINES.name, "added"),
    "prs": (c.PULL_REQUESTS.name, None),
}
USERS_CSV_HEADER = (
    "actor",
    "actor_kind",
    "team",
    "department",
    "first_seen",
    "last_seen",
    "sessions",
    "spend_usd",
    "tokens",
    "lines_added",
    "lines_removed",
    "commits",
    "pull_requests",
    "edits_accepted",
    "edits_rejected",
    "prompts",
)
# fromisoformat() also takes basic forms like 20261121; the API promises YYYY-MM-DD only.
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_MONTH = re.compile(r"(\d{4})-(\d{2})", re.ASCII)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# -- conversions -----------------------------------------------------------------------------


def usd(nano: int) -> float:
    """nano-USD -> USD. int / int is correctly rounded, so this is the double nearest to the
    exact amount (no float sums on the way)."""
    return round(nano / 1_000_000_000, 9)


def usd_text(nano: int) -> str:
    """nano-USD as an exact decimal string for CSV: `0.000000100`, never `1e-07`."""
    return f"{Decimal(nano).scaleb(-9):f}"


def iso(ns: int) -> str:
    """Unix nanoseconds -> RFC 3339 UTC with milliseconds, without float rounding."""
    moment = _EPOCH + dt.timedelta(microseconds=ns // 1000)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def today(context: ApiContext) -> dt.date:
    return (_EPOCH + dt.timedelta(seconds=context.clock() // 10**9)).date()


# -- parameters ------------------------------------------------------------------------------


def parse_day(value: str, name: str) -> dt.date:
    if not _DATE.fullmatch(value):
        raise invalid(f"{name} must be a date as YYYY-MM-DD, got {value!r}")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise invalid(f"{name} is not a valid date: {value!r}") from None


def day_range(request: web.Request, default_to: dt.date) -> tuple[dt.date, dt.date]:
    """`from`/`to` (inclusive, UTC days). Without `to`: today; without `from`: the
    DEFAULT_DAYS days ending with `to`."""
    query = request.query
    last = parse_day(query["to"], "to") if "to" in query else default_to
    if "from" in query:
        first = parse_day(query["from"], "from")
    else:
        try:
            first = last - dt.timedelta(days=DEFAULT_DAYS - 1)
        except OverflowError:
            raise invalid(
                f"to is too early for a default range: give from too, got {last}"
            ) from None
    if last < first:
        raise invalid("to must not be before from")
    if (last - first).days >= MAX_DAYS:
        raise invalid(f"a range covers at most {MAX_DAYS} days")
    return first, last


def parse_month(value: str) -> tuple[dt.date, dt.date]:
    """YYYY-MM -> its first and last day."""
    match = _MONTH.fullmatch(value)
    if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1:
        raise invalid(f"month must be YYYY-MM, got {value!r}")
    year, number = int(match.group(1)), int(match.group(2))
    return dt.date(year, number, 1), dt.date(year, number, calendar.monthrange(year, number)[1])


def parse_limit(request: web.Request, default: int) -> int:
    value = request.query.get("limit")
    if value is None:
        return default
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_LIMIT:
        raise invalid(f"limit must be an integer from 1 to {MAX_LIMIT}, got {value!r}")
    return int(value)


def _days(first: dt.date, last: dt.date) -> list[str]:
    return [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


# -- shapes ----------------------------------------------------------------------------------


def session_json(row: q.SessionRow) -> dict[str, Any]:
    return {
        "session_id": row.session_id,
        "actor": row.actor,
        "actor_kind": row.actor_kind,
        "team": row.team,
        "terminal": row.terminal,
        "started_at": iso(row.first_seen_ns),
        "last_activity_at": iso(row.last_seen_ns),
        "duration_seconds": round((row.last_seen_ns - row.first_seen_ns) / 1e9, 3),
        "spend_usd": usd(row.cost_nano),
        "tokens": row.tokens,
        "lines_of_code": {"added": row.lines_added, "removed": row.lines_removed},
        "prompts": row.prompts,
        "api_requests": row.api_requests,
    }


def member_json(who: q.ActorRow, tally: q.Tally) -> dict[str, Any]:
    return {
        "actor": who.actor,
        "actor_kind": who.actor_kind,
        "team": who.team,
        "department": who.department,
        "spend_usd": usd(tally.cost_nano),
        "lines_of_code": {"added": tally.lines_added, "removed": tally.lines_removed},
        "sessions": tally.sessions,
        "suggestions": {
            "accepted": tally.accepted,
            "rejected": tally.rejected,
            "accept_rate": tally.accept_rate,
        },
        "last_seen": iso(who.last_seen_ns),
    }


# -- handlers --------------------------------------------------------------------------------


async def summary(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    first, last = day_range(request, today(context))
    a, b = first.isoformat(), last.isoformat()

    def read(db: Backend) -> tuple[q.Tally, dict[str, int], int]:
        return q.totals(db, a, b), q.active_by_day(db, a, b), q.active_in_range(db, a, b)

    tally, per_day, distinct = await context.read(read)
    days = (last - first).days + 1
    return web.json_response(
        {
            "from": a,
            "to": b,
            "days": days,
            "spend_usd": usd(tally.cost_nano),
            "sessions": tally.sessions,
            "lines_of_code": {"added": tally.lines_added, "removed": tally.lines_removed},
            "lines_of_code_accepted": tally.lines_added,
            "commits": tally.commits,
            "pull_requests": tally.pull_requests,
            "suggestions": {
                "accepted": tally.accepted,
                "rejected": tally.rejected,
                "accept_rate": tally.accept_rate,
            },
            "active_users": {
                "distinct": distinct,
                "daily_average": sum(per_day.values()) / days,
            },
        }
    )


async def daily(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    first, last = day_range(request, today(context))
    a, b = first.isoformat(), last.isoformat()

    def read(db: Backend) -> tuple[dict[str, q.Tally], dict[str, int]]:
        return q.daily_tallies(db, a, b), q.active_by_day(db, a, b)

    tallies, active = await context.read(read)
    data = []
    for day in _days(first, last):
        tally = tallies.get(day) or q.Tally()
        data.append(
            {
                "date": day,
                "active_users": active.get(day, 0),
                "sessions": tally.sessions,
                "spend_usd": usd(tally.cost_nano),
                "lines_of_code": {"added": tally.lines_added, "removed": tally.lines_removed},
            }
        )
    return web.json_response({"from": a, "to": b, "data": data})


async def team(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    month = request.query.get("month") or today(context).strftime("%Y-%m")
    first, last = parse_month(month)
    only = request.query.get("team")
    if only is not None and not only:
        raise invalid("team must not be empty")
    a, b = first.isoformat(), last.isoformat()

    def read(db: Backend) -> tuple[list[q.ActorRow], dict[str, q.Tally]]:
        return q.actors(db, only), q.actor_tallies(db, a, b)

    members, tallies = await context.read(read)
    members.sort(key=lambda m: (m.team, m.actor))
    return web.json_response(
        {
            "month": month,
            "from": a,
            "to": b,
            "team": only,
            "data": [member_json(m, tallies.get(m.actor) or q.Tally()) for m in members],
        }
    )


async def leaderboard(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    by = request.query.get("by", "cost")
    if by not in BOARDS:
        raise invalid(f"by must be one of {', '.join(BOARDS)}, got {by!r}")
    limit = parse_limit(request, DEFAULT_LEADERS)
    first, last = day_range(request, today(context))
    metric, labels = BOARDS[by]
    a, b = first.isoformat(), last.isoformat()

    def read(db: Backend) -> tuple[dict[str, int], dict[str, q.ActorRow]]:
        values = q.actor_totals(db, a, b, metric, labels)
        return values, {row.actor: row for row in q.actors(db) if row.actor in values}

    values, people = await context.read(read)
    # Highest first, ties by actor; tied values share a rank (1, 2, 2, 4).
    ranked = sorted(((n, name) for name, n in values.items() if n > 0), key=lambda x: (-x[0], x[1]))
    data: list[dict[str, Any]] = []
    rank, previous = 0, None
    for position, (n, name) in enumerate(ranked[:limit], start=1):
        if n != previous:
            rank, previous = position, n
        who = people.get(name)
        data.append(
            {
                "rank": rank,
                "actor": name,
                "actor_kind": who.actor_kind if who else "unknown",
                "team": who.team if who else "",
                "department": who.department if who else "",
                "value": usd(n) if by == "cost" else n,
            }
        )
    return web.json_response({"by": by, "from": a, "to": b, "limit": limit, "data": data})


async def session(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    session_id = request.match_info["session_id"]
    row = await context.read(lambda db: q.session(db, session_id))
    if row is None:
        raise ApiError(404, "not_found_error", f"no session {session_id!r}")
    return web.json_response(session_json(row))


async def user_sessions(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    name = request.match_info["actor"]
    limit = parse_limit(request, DEFAULT_SESSIONS)

    def read(db: Backend) -> tuple[q.ActorRow | None, list[q.SessionRow]]:
        who = q.actor(db, name)
        return who, (q.actor_sessions(db, name, limit + 1) if who else [])

    who, rows = await context.read(read)
    if who is None:
        raise ApiError(404, "not_found_error", f"no user {name!r}")
    return web.json_response(
        {
            "actor": who.actor,
            "actor_kind": who.actor_kind,
            "team": who.team,
            "department": who.department,
            "data": [session_json(row) for row in rows[:limit]],
            "has_more": len(rows) > limit,
        }
    )


async def users_csv(request: web.Request) -> web.Response:
    """Every user with all-time totals, or totals over `from`/`to` when either is given."""
    context = request.app[CONTEXT]
    first = last = None
    if "from" in request.query or "to" in request.query:
        start, end = day_range(request, today(context))
        first, last = start.isoformat(), end.isoformat()

    def read(db: Backend) -> tuple[list[q.ActorRow], dict[str, q.Tally]]:
        return q.actors(db), q.actor_tallies(db, first, last)

    people, tallies = await context.read(read)
    people.sort(key=lambda p: p.actor)
    rows = []
    for who in people:
        t = tallies.get(who.actor) or q.Tally()
        rows.append(
            [
                who.actor,
                who.actor_kind,
                who.team,
                who.department,
                iso(who.first_seen_ns),
                iso(who.last_seen_ns),
                t.sessions,
                usd_text(t.cost_nano),
                t.tokens,
                t.lines_added,
                t.lines_removed,
                t.commits,
                t.pull_requests,
                t.accepted,
                t.rejected,
                t.prompts,
            ]
        )
    return csvout.response(USERS_CSV_HEADER, rows, "users.csv")


def _enveloped(handler: Handler) -> Handler:
    """Errors in Anthropic's envelope even if a handler is reached without the auth
    middleware (which also converts them)."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as error:
            return error.response()

    wrapped.__doc__ = handler.__doc__
    return wrapped


#: path -> handler; the OpenAPI document (openapi.py) describes exactly these.
ROUTES: dict[str, Handler] = {
    f"{PREFIX}/summary": summary,
    f"{PREFIX}/daily": daily,
    f"{PREFIX}/team": team,
    f"{PREFIX}/leaderboard": leaderboard,
    f"{PREFIX}/sessions/{{session_id}}": session,
    f"{PREFIX}/users/{{actor}}/sessions": user_sessions,
    f"{PREFIX}/export/users.csv": users_csv,
}
#: aiohttp patterns where a path parameter may hold any character but `/` is still special:
#: an actor can be a token name with a slash in it.
_PATTERNS = {f"{PREFIX}/users/{{actor}}/sessions": f"{PREFIX}/users/{{actor:.+}}/sessions"}


def register(app: web.Application) -> None:
    """Adds the dashboard routes, and `/openapi.json` (routes.py lists only analytics and
    dashboard; openapi.register is idempotent should it be listed there too)."""
    for path, handler in ROUTES.items():
        app.router.add_get(_PATTERNS.get(path, path), _enveloped(handler))
    openapi.register(app)
