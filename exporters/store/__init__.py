"""The durable store: SQLite (embedded default) or PostgreSQL (several replicas).

Start at `ledger.py` (what one group-commit transaction does), then `groupcommit.py` (how
requests wait for it) and `schema.py` (the tables).
"""
