"""OTLP transports: thin adapters from gRPC and HTTP onto `collector.ingest.Ingest`."""
