"""Self-hosted collector for Claude Code telemetry.

Start reading at `collector/ingest.py` (one export core per signal), then
`collector/accounting/engine.py` (how raw points become exact increments) and
`exporters/prometheus.py` (how increments become the public metrics contract).
"""

__version__ = "0.1.0"
