"""Benchmarks of the collector: scripts that print figures, never timed tests.

`python -m bench.run [--quick]` runs the suite (see docs/performance.md). Everything here runs
a real `cc-collector serve` process and real OTLP clients on loopback only.
"""
