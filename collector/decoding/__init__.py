"""OTLP wire formats (protobuf, OTLP/JSON, gzip) to our internal records."""
