"""One group-commit transaction: decide and record a group of requests atomically.

1. Lock and read the accounting state rows every plan of the group needs.
2. Resolve the plans in arrival order against those rows (collector/accounting/resolve.py),
   each plan seeing the changes of the ones before it.
3. Write back the changed state rows, and add the increments to the daily aggregates, the
   per-session and per-actor rows, and this replica's exposition series.
4. Commit. Only then are the requests acknowledged (groupcommit.py).

Because decisions and their effects commit together, a crash either loses both (the client
retries and is counted once) or keeps both (the retry is a duplicate).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from collector import contract as c
from collector.accounting.claims import (
    CUMULATIVE_KIND,
    DEDUPE_KINDS,
    Plan,
    legacy_dedupe_key,
)
from collector.accounting.records import Accounted, Increment
from collector.accounting.resolve import resolve
from exporters.prometheus import series_deltas
from exporters.store.backend import Backend, Row

LABEL_SEP = "\x1f"
#: joins the parts of an exposition series (exporters.prometheus.Series) into one column.
SERIES_SEP = "\x1e"


@dataclass(frozen=True, slots=True)
class Retention:
    stream_ttl_ns: int
    dedupe_ttl_ns: int
    #: until when dedupe keys of the form before schema version 4 may still be stored (the
    #: store's `store_meta`, read at start); 0 for a store that never had any.
    legacy_dedupe_until_ns: int = 0


_DAY_NS = 86_400 * 10**9


@functools.lru_cache(maxsize=4096)
def _day_name(day_number: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=day_number)).isoformat()


def utc_day(time_ns: int) -> str:
    """YYYY-MM-DD of a Unix time in ns (cached per day: it runs once per increment)."""
    return _day_name(time_ns // _DAY_NS)


def commit_group(
    db: Backend, plans: Sequence[Plan], now_ns: int, retention: Retention, replica: str
) -> list[Accounted]:
    """The body of the transaction; `db` is inside it (see Backend.transaction)."""
    rows = db.fetch_state(set().union(*(plan.keys() for plan in plans)))
    if now_ns < retention.legacy_dedupe_until_ns:
        _legacy_duplicates(db, rows)
    results: list[Accounted] = []
    changed: dict[bytes, tuple[int, int]] = {}
    for plan in plans:
        accounted, plan_changed = resolve(plan, rows)
        changed.update(plan_changed)
        results.append(accounted)
    stream_expiry = now_ns + retention.stream_ttl_ns
    dedupe_expiry = now_ns + retention.dedupe_ttl_ns
    db.store_state(
        (key, a, b, stream_expiry if key[0] == CUMULATIVE_KIND else dedupe_expiry)
        for key, (a, b) in changed.items()
    )
    increments = [inc for accounted in results for inc in accounted.increments]
    _usage_daily(db, increments, now_ns)
    _sessions(db, increments)
    _actors(db, results, now_ns)
    _exposition(db, results, now_ns, replica)
    return results


def _legacy_duplicates(db: Backend, rows: dict[bytes, Row | None]) -> None:
    """Count a new-form dedupe key as present when its legacy form (kind + digest) is stored.

    Only for a store upgraded from before schema version 4, until the last legacy key expires:
    a client retrying across the upgrade must still get a duplicate. Legacy rows are never
    written again, so they are read without locking them.
    """
    legacy = {
        legacy_dedupe_key(key): key
        for key, row in rows.items()
        if row is None and key[0] in DEDUPE_KINDS
    }
    for old, row in db.peek_state(legacy).items():
        if row is not None:
            rows[legacy[old]] = row


def _usage_daily(db: Backend, increments: Iterable[Increment], now_ns: int) -> None:
    totals: defaultdict[tuple[str, ...], int] = defaultdict(int)
    for inc in increments:
        who = inc.identity
        key = (
            utc_day(inc.time_ns or now_ns),
            who.actor,
            who.terminal,
            who.organization,
            inc.metric.name,
            LABEL_SEP.join(inc.labels),
            who.kind,
            who.team,
            who.department,
        )
        totals[key] += inc.amount
    db.executemany(
        "INSERT INTO usage_daily (day, actor, terminal, organization, metric, labels, actor_kind,"
        " team, department, amount, created_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (day, actor, terminal, organization, metric, labels, actor_kind, team,"
        " department) DO UPDATE SET amount = usage_daily.amount + excluded.amount",
        # Sorted: replicas then lock rows in one order and cannot deadlock on them.
        ((*key, amount, now_ns) for key, amount in sorted(totals.items())),
    )


#: where an increment of these metrics adds in a session row (see `_sessions`).
_SESSION_INDEX = {c.COST.name: 6, c.TOKENS.name: 7, c.PROMPTS.name: 10, c.API_REQUESTS.name: 11}


def _sessions(db: Backend, increments: Iterable[Increment]) -> None:
    rows: dict[str, list[object]] = {}
    for inc in increments:
        if not inc.session:
            continue
        row = rows.get(inc.session)
        if row is None:
            who = inc.identity
            # actor, kind, team, terminal, first, last, cost, tokens, added, removed, prompts, api
            row = rows[inc.session] = [
                who.actor,
                who.kind,
                who.team,
                who.terminal,
                inc.time_ns,
                inc.time_ns,
                0,
                0,
                0,
                0,
                0,
                0,
            ]
        row[4] = min(row[4], inc.time_ns)  # type: ignore[call-overload]
        row[5] = max(row[5], inc.time_ns)  # type: ignore[call-overload]
        index = _SESSION_INDEX.get(inc.metric.name)
        if index is not None:
            row[index] += inc.amount  # type: ignore[operator]
        elif inc.metric is c.LINES:
            row[8 if inc.labels == ("added",) else 9] += inc.amount  # type: ignore[operator]
    d = db.dialect
    db.executemany(
        "INSERT INTO sessions (session_id, actor, actor_kind, team, terminal, first_seen_ns,"
        " last_seen_ns, cost_nano, tokens, lines_added, lines_removed, prompts, api_requests)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (session_id) DO UPDATE SET"
        f" first_seen_ns = {d.least}(sessions.first_seen_ns, excluded.first_seen_ns),"
        f" last_seen_ns = {d.greatest}(sessions.last_seen_ns, excluded.last_seen_ns),"
        " cost_nano = sessions.cost_nano + excluded.cost_nano,"
        " tokens = sessions.tokens + excluded.tokens,"
        " lines_added = sessions.lines_added + excluded.lines_added,"
        " lines_removed = sessions.lines_removed + excluded.lines_removed,"
        " prompts = sessions.prompts + excluded.prompts,"
        " api_requests = sessions.api_requests + excluded.api_requests",
        ((session, *row) for session, row in sorted(rows.items())),
    )


def _actors(db: Backend, results: Iterable[Accounted], now_ns: int) -> None:
    seen = {who.actor: who for accounted in results for who in accounted.seen}
    d = db.dialect
    db.executemany(
        "INSERT INTO actors (actor, actor_kind, team, department, first_seen_ns, last_seen_ns)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (actor) DO UPDATE SET"
        " actor_kind = excluded.actor_kind, team = excluded.team,"
        " department = excluded.department,"
        f" last_seen_ns = {d.greatest}(actors.last_seen_ns, excluded.last_seen_ns)",
        ((w.actor, w.kind, w.team, w.department, now_ns, now_ns) for _, w in sorted(seen.items())),
    )


def _exposition(db: Backend, results: Iterable[Accounted], now_ns: int, replica: str) -> None:
    totals: defaultdict[str, int] = defaultdict(int)
    seen: set[tuple[str, str, str]] = set()
    for accounted in results:
        for series, amount in series_deltas(accounted).items():
            totals[SERIES_SEP.join(series)] += amount
        seen.update((who.actor, who.team, who.department) for who in accounted.seen)
    db.executemany(
        "INSERT INTO exposition (replica, series, amount) VALUES (?, ?, ?) "
        "ON CONFLICT (replica, series) DO UPDATE SET amount = exposition.amount + excluded.amount",
        ((replica, series, amount) for series, amount in sorted(totals.items())),
    )
    d = db.dialect
    db.executemany(
        "INSERT INTO exposition_seen (replica, actor, team, department, seen_ns)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (replica, actor, team) DO UPDATE SET"
        " department = excluded.department,"
        f" seen_ns = {d.greatest}(exposition_seen.seen_ns, excluded.seen_ns)",
        ((replica, actor, team, dept, now_ns) for actor, team, dept in sorted(seen)),
    )
