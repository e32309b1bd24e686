"""What leaves the collector: the Prometheus exposition (and later store and OTLP sinks)."""
