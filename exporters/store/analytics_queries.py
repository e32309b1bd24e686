"""Reads behind the Analytics-compatible usage report: one row per (day, actor, terminal), or
per (day, team) when grouped by team, from `usage_daily`.

Pagination is keyset: rows are ordered by their key and a page starts after the last key of
the previous one, so a page never depends on how many rows came before it. The first page
fixes a boundary, the newest `created_ns` of the range at that moment; every page only lists
keys whose first `usage_daily` row existed by then. A key that appears later (a new actor,
terminal or day) can therefore neither shift the pages (which would miss or repeat a row)
nor appear half-way through a walk. Amounts are read as they are now: a listed row's values
may have grown since the first page, as data for a day keeps arriving.

Text is compared and ordered by code point on both dialects (SQLite's default BINARY; `"C"`
on PostgreSQL, whose database collation may be locale-aware), so the same data pages in the
same order on SQLite and PostgreSQL, and the order is Python's `sorted()`.

All SQL uses `?` placeholders and portable syntax (Backend.query adapts the placeholders).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from collector import contract as c
from exporters.store.backend import Backend
from exporters.store.ledger import LABEL_SEP

#: (day, actor or team, terminal); the terminal is "" when rows are grouped by team.
Key = tuple[str, str, str]

#: the contract metrics a report row is built from, with their own label names.
REPORT_METRICS: dict[str, tuple[str, ...]] = {
    m.name: m.own
    for m in (
        c.SESSIONS,
        c.LINES,
        c.COMMITS,
        c.PULL_REQUESTS,
        c.CODE_EDIT_DECISIONS,
        c.TOKENS,
        c.COST,
    )
}


@dataclass
class ReportRow:
    """The raw amounts of one report row; collector/api/analytics.py gives it its shape."""

    day: str
    actor: str
    terminal: str
    #: the kind and organization of the first `usage_daily` row read for the key (an actor has
    #: one kind; several organizations under one actor and day are not expected).
    actor_kind: str = ""
    organization: str = ""
    #: (metric name, own label values) -> amount in the metric's integer scale.
    amounts: defaultdict[tuple[str, tuple[str, ...]], int] = field(
        default_factory=lambda: defaultdict(int)
    )


@dataclass(frozen=True, slots=True)
class _Columns:
    """The key columns of a grouping, as written in SQL for one dialect."""

    names: tuple[str, ...]
    #: the same columns for comparisons and ORDER BY (with a byte-order collation if needed).
    ordered: tuple[str, ...]

    @classmethod
    def of(cls, db: Backend, by_team: bool) -> _Columns:
        names = ("day", "team") if by_team else ("day", "actor", "terminal")
        if db.dialect.name == "postgresql":
            return cls(names, tuple(f'{n} COLLATE "C"' for n in names))
        return cls(names, names)

    def beyond(self, key: Sequence[str], op: str, inclusive: bool) -> tuple[str, list[object]]:
        """The lexicographic condition `(columns) op key`, e.g. `>` for "after the cursor".

        Written out (a > ? OR (a = ? AND ...)) rather than as a row-value comparison, which
        would not carry the collation of each column the same way on both dialects.
        """
        values = list(key[: len(self.ordered)])
        last = len(values) - 1
        sql = ""
        params: list[object] = []
        for i in range(last, -1, -1):
            column = self.ordered[i]
            if i == last:
                sql = f"{column} {op}{'=' if inclusive else ''} ?"
                params = [values[i]]
            else:
                sql = f"({column} {op} ? OR ({column} = ? AND {sql}))"
                params = [values[i], values[i], *params]
        return f"({sql})", params


def _metric_filter(db: Backend, by_team: bool) -> tuple[str, list[object]]:
    """`metric IN (...)`. On SQLite, for rows by actor, written `+metric` so the planner
    walks the primary key, which is in (day, actor, terminal) order: grouping then streams
    and LIMIT stops early, instead of sorting every row of the range through the
    (metric, day) index for every page (seconds per page at 10k users, docs/performance.md)."""
    column = "+metric" if db.dialect.name == "sqlite" and not by_team else "metric"
    return f"{column} IN ({','.join('?' * len(REPORT_METRICS))})", list(REPORT_METRICS)


def _seek(
    db: Backend, by_team: bool, low: Key | None, high: Key | None
) -> tuple[str, list[object]]:
    """Redundant bounds on (day, actor) that let SQLite seek the primary key to a page's
    range (the keyset conditions, written out for both dialects, do not). Row values
    compare by the columns' own collation, BINARY on SQLite, the same order as `beyond`."""
    if db.dialect.name != "sqlite" or by_team:
        return "", []
    sql, params = "", []
    if low is not None:
        sql += " AND (day, actor) >= (?, ?)"
        params += [low[0], low[1]]
    if high is not None:
        sql += " AND (day, actor) <= (?, ?)"
        params += [high[0], high[1]]
    return sql, params


def data_boundary(db: Backend) -> int:
    """The newest `created_ns` of all daily rows: a first page's boundary.

    Taken from the data rather than from a clock, so a replica whose clock runs behind the
    one that wrote the rows still lists them. Over the whole table rather than the report's
    range: every row of the range existing now is at or below it either way, and the
    `usage_daily_created` index answers it at once, where the range's own maximum read every
    row of the range (1.5 s for 30 days of 10k users, docs/performance.md).
    """
    found = db.query("SELECT max(created_ns) FROM usage_daily")
    return int(found[0][0] or 0)


def page_keys(
    db: Backend,
    first: str,
    last: str,
    boundary: int,
    after: Key | None,
    limit: int,
    by_team: bool,
) -> list[Key]:
    """Up to `limit` keys of [first, last] after `after` that existed at `boundary`, in order."""
    cols = _Columns.of(db, by_team)
    metrics, params = _metric_filter(db, by_team)
    sql = (
        f"SELECT {', '.join(cols.names)} FROM usage_daily WHERE day >= ? AND day <= ? AND {metrics}"
    )
    params = [first, last, *params]
    if after is not None:
        condition, values = cols.beyond(after, ">", inclusive=False)
        sql += f" AND {condition}"
        params += values
        seek, values = _seek(db, by_team, after, None)
        sql += seek
        params += values
    sql += (
        f" GROUP BY {', '.join(cols.names)} HAVING min(created_ns) <= ?"
        f" ORDER BY {', '.join(cols.ordered)} LIMIT ?"
    )
    params += [boundary, limit]
    return [_key(row) for row in db.query(sql, params)]


def rows_for(db: Backend, keys: Sequence[Key], after: Key | None, by_team: bool) -> list[ReportRow]:
    """The report rows of `keys` (a page from `page_keys` with the same `after`), in order.

    One range read between the cursor and the page's last key; keys in that range that are
    not on the page (they appeared after the boundary) are dropped.
    """
    if not keys:
        return []
    cols = _Columns.of(db, by_team)
    wanted = {k: ReportRow(*k) for k in keys}
    metrics, params = _metric_filter(db, by_team)
    sql = (
        f"SELECT {', '.join(cols.names)}, actor_kind, organization, metric, labels, sum(amount)"
        f" FROM usage_daily WHERE day >= ? AND day <= ? AND {metrics}"
    )
    params = [keys[0][0], keys[-1][0], *params]
    upto, values = cols.beyond(keys[-1], "<", inclusive=True)
    sql += f" AND {upto}"
    params += values
    if after is not None:
        condition, values = cols.beyond(after, ">", inclusive=False)
        sql += f" AND {condition}"
        params += values
    seek, values = _seek(db, by_team, keys[0], keys[-1])
    sql += seek
    params += values
    sql += f" GROUP BY {', '.join(cols.names)}, actor_kind, organization, metric, labels"
    width = len(cols.names)
    for record in db.query(sql, params):
        row = wanted.get(_key(record[:width]))
        if row is None:
            continue
        kind, organization, metric, labels, amount = record[width:]
        row.actor_kind = row.actor_kind or kind
        row.organization = row.organization or organization
        own = REPORT_METRICS[metric]
        values_of = tuple(labels.split(LABEL_SEP)) if own else ()
        row.amounts[(metric, values_of)] += int(amount)
    return [wanted[k] for k in keys]


def report_page(
    db: Backend,
    first: str,
    last: str,
    boundary: int,
    after: Key | None,
    limit: int,
    by_team: bool,
) -> list[ReportRow]:
    """Up to `limit` report rows after `after`: one blocking read for ApiContext.read."""
    keys = page_keys(db, first, last, boundary, after, limit, by_team)
    return rows_for(db, keys, after, by_team)


def _key(row: Sequence[object]) -> Key:
    day, name = str(row[0]), str(row[1])
    return (day, name, str(row[2]) if len(row) > 2 else "")
