"""Reads behind the Analytics-compatible report: rows of (day, actor, terminal) for a day range.

Pagination is keyset: rows are ordered by (day, actor, terminal) and a page starts after the
last key of the previous one. The first page fixes a boundary (`created_ns`); later pages
only list rows that existed then, so rows appearing meanwhile can neither shift the pages
(missing or repeating a row) nor sneak in half-way. Values of listed rows are current.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from collector import contract as c
from exporters.store.backend import Backend
from exporters.store.ledger import LABEL_SEP

Key = tuple[str, str, str]  # (day, actor or team, terminal)

#: the contract metrics a report row is built from.
REPORT_METRICS = (
    c.SESSIONS.name,
    c.LINES.name,
    c.COMMITS.name,
    c.PULL_REQUESTS.name,
    c.CODE_EDIT_DECISIONS.name,
    c.TOKENS.name,
    c.COST.name,
)


@dataclass
class ReportRow:
    day: str
    actor: str
    terminal: str
    actor_kind: str = ""
    organization: str = ""
    #: (metric, labels tuple) -> amount
    amounts: defaultdict[tuple[str, tuple[str, ...]], int] = field(
        default_factory=lambda: defaultdict(int)
    )


def page_keys(
    db: Backend, first: str, last: str, boundary: int, after: Key | None, limit: int, by_team: bool
) -> list[Key]:
    """Up to `limit` keys after `after` that existed at `boundary`."""
    who = "team" if by_team else "actor"
    terminal = "''" if by_team else "terminal"
    marks = ",".join("?" * len(REPORT_METRICS))
    sql = (
        f"SELECT day, {who}, {terminal} FROM usage_daily"
        f" WHERE day >= ? AND day <= ? AND metric IN ({marks})"
        f" GROUP BY day, {who}, {terminal} HAVING min(created_ns) <= ?"
    )
    params: list[object] = [first, last, *REPORT_METRICS, boundary]
    if after is not None:
        sql += f" AND (day > ? OR (day = ? AND ({who} > ? OR ({who} = ? AND {terminal} > ?))))"
        params += [after[0], after[0], after[1], after[1], after[2]]
    sql += f" ORDER BY day, {who}, {terminal} LIMIT ?"
    params.append(limit)
    return [(d, a, t) for d, a, t in db.query(sql, params)]


def rows_for(db: Backend, keys: list[Key], by_team: bool) -> list[ReportRow]:
    """The report rows of `keys`, in the same order."""
    if not keys:
        return []
    who = "team" if by_team else "actor"
    wanted = {k: ReportRow(*k) for k in keys}
    days = sorted({k[0] for k in keys})
    names = sorted({k[1] for k in keys})
    marks_m = ",".join("?" * len(REPORT_METRICS))
    marks_n = ",".join("?" * len(names))
    sql = (
        f"SELECT day, {who}, terminal, actor_kind, organization, metric, labels, sum(amount)"
        f" FROM usage_daily WHERE day >= ? AND day <= ? AND metric IN ({marks_m})"
        f" AND {who} IN ({marks_n})"
        f" GROUP BY day, {who}, terminal, actor_kind, organization, metric, labels"
    )
    for day, name, terminal, kind, org, metric, labels, amount in db.query(
        sql, [days[0], days[-1], *REPORT_METRICS, *names]
    ):
        row = wanted.get((day, name, "" if by_team else terminal))
        if row is None:
            continue
        row.actor_kind = row.actor_kind or kind
        row.organization = row.organization or org
        row.amounts[(metric, tuple(labels.split(LABEL_SEP)) if labels else ())] += int(amount)
    return [wanted[k] for k in keys]
