"""BASELINE FOR COMPARISON ONLY, NOT PART OF THE PRODUCT.

A deliberately naive OTLP receiver, written the way most small receivers are: decode with
`MessageToDict`, count into prometheus_client labelled metrics, acknowledge. No durability,
no deduplication, no metrics/events reconciliation. The benchmarks report the collector's
throughput as a ratio to it (docs/performance.md).
"""
