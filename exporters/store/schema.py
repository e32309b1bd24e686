"""Tables and versioned migrations, written once for both SQL dialects.

Every write the ingest path makes is an *adding* upsert (`amount = amount + excluded.amount`)
or a MIN/MAX, so concurrent transactions of several replicas commute. Accounting state
(dedupe keys, cumulative streams, high-water totals) lives in `acc_state`, read under a row
lock inside the same transaction that applies what it decided.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    blob: str
    greatest: str
    least: str

    def blob_literal(self, data: bytes) -> str:
        """A bytes constant in SQL text (migrations take no parameters)."""
        return f"X'{data.hex()}'" if self.name == "sqlite" else f"'\\x{data.hex()}'::bytea"

    def sql(self, statement: str) -> str:
        """Our statements use `?` placeholders; psycopg wants `%s`."""
        return statement if self.name == "sqlite" else statement.replace("?", "%s")


SQLITE = Dialect("sqlite", "BLOB", "max", "min")
POSTGRES = Dialect("postgresql", "BYTEA", "GREATEST", "LEAST")


def migrations(d: Dialect) -> list[list[str]]:
    """Schema versions in order; version N is `migrations(d)[N - 1]`. Never edit a released
    one: add a new version."""
    return [
        [
            f"""CREATE TABLE acc_state (
                key {d.blob} PRIMARY KEY,
                a BIGINT NOT NULL,
                b BIGINT NOT NULL,
                expires_at BIGINT NOT NULL)""",
            "CREATE INDEX acc_state_expires ON acc_state (expires_at)",
            # One row per UTC day, actor and series; `labels` is the contract metric's own
            # label values joined by \x1f. `created_ns` fixes API pagination boundaries.
            """CREATE TABLE usage_daily (
                day TEXT NOT NULL,
                actor TEXT NOT NULL,
                actor_kind TEXT NOT NULL,
                team TEXT NOT NULL,
                department TEXT NOT NULL,
                terminal TEXT NOT NULL,
                organization TEXT NOT NULL,
                metric TEXT NOT NULL,
                labels TEXT NOT NULL,
                amount BIGINT NOT NULL,
                created_ns BIGINT NOT NULL,
                PRIMARY KEY (day, actor, terminal, organization, metric, labels, actor_kind,
                             team, department))""",
            "CREATE INDEX usage_daily_metric_day ON usage_daily (metric, day)",
            """CREATE TABLE sessions (
                session_id TEXT PRIMARY KEY,
                actor TEXT NOT NULL,
                actor_kind TEXT NOT NULL,
                team TEXT NOT NULL,
                terminal TEXT NOT NULL,
                first_seen_ns BIGINT NOT NULL,
                last_seen_ns BIGINT NOT NULL,
                cost_nano BIGINT NOT NULL,
                tokens BIGINT NOT NULL,
                lines_added BIGINT NOT NULL,
                lines_removed BIGINT NOT NULL,
                prompts BIGINT NOT NULL,
                api_requests BIGINT NOT NULL)""",
            "CREATE INDEX sessions_actor ON sessions (actor, last_seen_ns)",
            """CREATE TABLE actors (
                actor TEXT PRIMARY KEY,
                actor_kind TEXT NOT NULL,
                team TEXT NOT NULL,
                department TEXT NOT NULL,
                first_seen_ns BIGINT NOT NULL,
                last_seen_ns BIGINT NOT NULL)""",
            # What each replica exposed on /metrics, so its counters resume after a restart.
            # `series` is metric \x1e user \x1e team \x1e labels; histogram parts add a suffix.
            """CREATE TABLE exposition (
                replica TEXT NOT NULL,
                series TEXT NOT NULL,
                amount BIGINT NOT NULL,
                PRIMARY KEY (replica, series))""",
            """CREATE TABLE exposition_seen (
                replica TEXT NOT NULL,
                actor TEXT NOT NULL,
                team TEXT NOT NULL,
                department TEXT NOT NULL,
                seen_ns BIGINT NOT NULL,
                PRIMARY KEY (replica, actor, team))""",
        ],
        # 2: OTLP forwarding (exporters/otlp_forward.py, docs/forwarding.md). Per replica and
        # target: the start time its cumulative series carry (stable across restarts), and
        # per series what the downstream acknowledged, so a restart neither resends nor loses.
        [
            """CREATE TABLE forward_targets (
                replica TEXT NOT NULL,
                target TEXT NOT NULL,
                temporality TEXT NOT NULL,
                start_ns BIGINT NOT NULL,
                PRIMARY KEY (replica, target))""",
            # `amounts`: delta targets, the acknowledged running totals of the series as
            # comma-separated integers (one for a counter; buckets, count, sum in microseconds
            # for a histogram) and `start_ns` the end of the acknowledged interval; cumulative
            # targets, '' and the series' own start time after a reset.
            """CREATE TABLE forward_series (
                replica TEXT NOT NULL,
                target TEXT NOT NULL,
                series TEXT NOT NULL,
                amounts TEXT NOT NULL,
                start_ns BIGINT NOT NULL,
                PRIMARY KEY (replica, target, series))""",
        ],
        # 3: the Analytics report's first page fixes its boundary as the newest `created_ns`
        # (exporters/store/analytics_queries.py). `created_ns` is written once per new row, so
        # this index costs an insert per new daily row, not per increment.
        ["CREATE INDEX usage_daily_created ON usage_daily (created_ns)"],
        # 4: dedupe keys of delta points and events start with the record's own second
        # (claims.dedupe_key); the keys stored before, 17 bytes of kind + digest, are still
        # looked up until the last of them expires (ledger.commit_group), so a retry that
        # spans the upgrade is still a duplicate. `store_meta` holds when that is.
        [
            """CREATE TABLE store_meta (
                name TEXT PRIMARY KEY,
                value BIGINT NOT NULL)""",
            f"""INSERT INTO store_meta (name, value)
                SELECT 'legacy_dedupe_until_ns', COALESCE(MAX(expires_at), 0) FROM acc_state
                WHERE length(key) = 17
                AND key >= {d.blob_literal(b"D")} AND key < {d.blob_literal(b"F")}""",
        ],
    ]
