"""Reads behind the dashboard endpoints and the store gauges.

Why from the store: counts of people (active users, DAU) must be exact and global. Prometheus
series are capped per label, forgotten when idle and kept per replica, so a distinct count
derived from them would be wrong in exactly the cases that matter (many users, several
replicas). Here every distinct count is a SQL `COUNT(DISTINCT actor)` over `usage_daily`, whose
rows exist only for increments greater than zero, so "a row" means "some usage".

Every function blocks: run it through `ApiContext.read` or `StoreLedger.read`. `sum()` of a
BIGINT is NUMERIC on PostgreSQL (a Decimal in Python), so every amount goes through `int()`.
Orderings that users see (leaderboards, member lists) are made in Python, by code point,
because SQLite and PostgreSQL collate text differently.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from collector import contract as c
from exporters.store.backend import Backend
from exporters.store.ledger import LABEL_SEP

#: the contract metrics a `Tally` is built from.
TALLY_METRICS = (
    c.COST.name,
    c.SESSIONS.name,
    c.LINES.name,
    c.COMMITS.name,
    c.PULL_REQUESTS.name,
    c.CODE_EDIT_DECISIONS.name,
    c.TOKENS.name,
    c.PROMPTS.name,
)
_MARKS = ",".join("?" * len(TALLY_METRICS))


@dataclass(slots=True)
class Tally:
    """What one actor, day or range adds up to, in the metrics' integer scales."""

    cost_nano: int = 0
    sessions: int = 0
    lines_added: int = 0
    lines_removed: int = 0
    commits: int = 0
    pull_requests: int = 0
    #: code edit decisions (Edit, MultiEdit, Write, NotebookEdit) accepted / rejected.
    accepted: int = 0
    rejected: int = 0
    tokens: int = 0
    prompts: int = 0

    def add(self, metric: str, labels: str, amount: Any) -> None:
        n = int(amount)
        own = labels.split(LABEL_SEP) if labels else []
        if metric == c.COST.name:
            self.cost_nano += n
        elif metric == c.SESSIONS.name:
            self.sessions += n
        elif metric == c.LINES.name:
            if own == ["added"]:
                self.lines_added += n
            elif own == ["removed"]:
                self.lines_removed += n
        elif metric == c.COMMITS.name:
            self.commits += n
        elif metric == c.PULL_REQUESTS.name:
            self.pull_requests += n
        elif metric == c.CODE_EDIT_DECISIONS.name and len(own) == 2:
            if own[1] == "accept":
                self.accepted += n
            elif own[1] == "reject":
                self.rejected += n
        elif metric == c.TOKENS.name:
            self.tokens += n
        elif metric == c.PROMPTS.name:
            self.prompts += n

    @property
    def accept_rate(self) -> float | None:
        """accepted / (accepted + rejected); None when there was no decision at all."""
        decided = self.accepted + self.rejected
        return self.accepted / decided if decided else None


@dataclass(frozen=True, slots=True)
class ActorRow:
    actor: str
    actor_kind: str
    team: str
    department: str
    first_seen_ns: int
    last_seen_ns: int


@dataclass(frozen=True, slots=True)
class SessionRow:
    session_id: str
    actor: str
    actor_kind: str
    team: str
    terminal: str
    first_seen_ns: int
    last_seen_ns: int
    cost_nano: int
    tokens: int
    lines_added: int
    lines_removed: int
    prompts: int
    api_requests: int


def _range(first: str | None, last: str | None) -> tuple[str, list[object]]:
    """A WHERE fragment for an optional inclusive day range (days are YYYY-MM-DD text)."""
    sql, params = "", []
    if first is not None:
        sql += " AND day >= ?"
        params.append(first)
    if last is not None:
        sql += " AND day <= ?"
        params.append(last)
    return sql, params


def totals(db: Backend, first: str, last: str) -> Tally:
    out = Tally()
    where, params = _range(first, last)
    for metric, labels, amount in db.query(
        f"SELECT metric, labels, sum(amount) FROM usage_daily WHERE metric IN ({_MARKS}){where}"
        " GROUP BY metric, labels",
        [*TALLY_METRICS, *params],
    ):
        out.add(metric, labels, amount)
    return out


def daily_tallies(db: Backend, first: str, last: str) -> dict[str, Tally]:
    """day -> Tally, for the days that have any of the tallied metrics."""
    out: defaultdict[str, Tally] = defaultdict(Tally)
    where, params = _range(first, last)
    for day, metric, labels, amount in db.query(
        f"SELECT day, metric, labels, sum(amount) FROM usage_daily"
        f" WHERE metric IN ({_MARKS}){where} GROUP BY day, metric, labels",
        [*TALLY_METRICS, *params],
    ):
        out[day].add(metric, labels, amount)
    return dict(out)


def actor_tallies(db: Backend, first: str | None, last: str | None) -> dict[str, Tally]:
    """actor -> Tally over an optional day range (all time without one)."""
    out: defaultdict[str, Tally] = defaultdict(Tally)
    where, params = _range(first, last)
    for actor, metric, labels, amount in db.query(
        f"SELECT actor, metric, labels, sum(amount) FROM usage_daily"
        f" WHERE metric IN ({_MARKS}){where} GROUP BY actor, metric, labels",
        [*TALLY_METRICS, *params],
    ):
        out[actor].add(metric, labels, amount)
    return dict(out)


def actor_totals(
    db: Backend, first: str, last: str, metric: str, labels: str | None = None
) -> dict[str, int]:
    """actor -> sum of one metric (optionally one label tuple) over a day range."""
    where, params = _range(first, last)
    sql = f"SELECT actor, sum(amount) FROM usage_daily WHERE metric = ?{where}"
    params = [metric, *params]
    if labels is not None:
        sql += " AND labels = ?"
        params.append(labels)
    return {actor: int(n) for actor, n in db.query(sql + " GROUP BY actor", params)}


def active_by_day(db: Backend, first: str, last: str) -> dict[str, int]:
    """day -> distinct actors with any usage that day (days without usage are absent)."""
    where, params = _range(first, last)
    rows = db.query(
        f"SELECT day, count(DISTINCT actor) FROM usage_daily WHERE 1 = 1{where} GROUP BY day",
        params,
    )
    return {day: int(n) for day, n in rows}


def active_in_range(db: Backend, first: str, last: str) -> int:
    """Distinct actors with any usage on any day of the range."""
    where, params = _range(first, last)
    [(n,)] = db.query(f"SELECT count(DISTINCT actor) FROM usage_daily WHERE 1 = 1{where}", params)
    return int(n)


def last_active_day(db: Backend, first: str, last: str) -> dict[str, str]:
    """actor -> the latest day of the range with usage. One pass (the primary key starts with
    `day`, so it is a covering index scan) gives every trailing window at once."""
    where, params = _range(first, last)
    rows = db.query(
        f"SELECT actor, max(day) FROM usage_daily WHERE 1 = 1{where} GROUP BY actor", params
    )
    return {actor: day for actor, day in rows}


def month_to_date(
    db: Backend, first: str, last: str
) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str, str], int]]:
    """Cost in nano-USD by (actor, team) and lines by (actor, team, type) over a day range,
    with the team each row was counted under (as the contract counters label it)."""
    cost: dict[tuple[str, str], int] = {}
    lines: dict[tuple[str, str, str], int] = {}
    where, params = _range(first, last)
    for actor, team, metric, labels, amount in db.query(
        "SELECT actor, team, metric, labels, sum(amount) FROM usage_daily"
        f" WHERE metric IN (?, ?){where} GROUP BY actor, team, metric, labels",
        [c.COST.name, c.LINES.name, *params],
    ):
        if metric == c.COST.name:
            cost[(actor, team)] = cost.get((actor, team), 0) + int(amount)
        else:
            key = (actor, team, labels)
            lines[key] = lines.get(key, 0) + int(amount)
    return cost, lines


_ACTOR_COLUMNS = "actor, actor_kind, team, department, first_seen_ns, last_seen_ns"


def actors(db: Backend, team: str | None = None) -> list[ActorRow]:
    """Every actor the store has seen (optionally of one team), with their current team."""
    sql = f"SELECT {_ACTOR_COLUMNS} FROM actors"
    params: list[object] = []
    if team is not None:
        sql += " WHERE team = ?"
        params.append(team)
    return [ActorRow(a, k, t, d, int(f), int(s)) for a, k, t, d, f, s in db.query(sql, params)]


def actor(db: Backend, name: str) -> ActorRow | None:
    rows = db.query(f"SELECT {_ACTOR_COLUMNS} FROM actors WHERE actor = ?", [name])
    return ActorRow(*rows[0][:4], int(rows[0][4]), int(rows[0][5])) if rows else None


_SESSION_COLUMNS = (
    "session_id, actor, actor_kind, team, terminal, first_seen_ns, last_seen_ns, cost_nano,"
    " tokens, lines_added, lines_removed, prompts, api_requests"
)


def _session(row: tuple[Any, ...]) -> SessionRow:
    return SessionRow(*row[:5], *(int(v) for v in row[5:]))


def session(db: Backend, session_id: str) -> SessionRow | None:
    rows = db.query(f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE session_id = ?", [session_id])
    return _session(rows[0]) if rows else None


def actor_sessions(db: Backend, name: str, limit: int) -> list[SessionRow]:
    """The actor's sessions, most recently active first (index sessions_actor)."""
    rows = db.query(
        f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE actor = ?"
        " ORDER BY last_seen_ns DESC, session_id LIMIT ?",
        [name, limit],
    )
    return [_session(row) for row in rows]
