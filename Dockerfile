# cc-collector image. The full stack (collector, Prometheus, Alertmanager, Grafana) is in
# docker-compose.yml; see README.md "Full stack".
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Unprivileged user that owns the store; fixed ids so a bind-mounted data dir can be chowned.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin app

# Install the package from a throwaway source tree. gcc builds the C fast path of the OTLP
# decoder (collector/decoding/_fastotlp.c, docs/performance.md) and leaves in the same layer;
# the import check fails the build rather than ship an image that decodes 3x slower.
COPY pyproject.toml setup.py README.md /src/
COPY collector /src/collector
COPY exporters /src/exporters
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install --no-cache-dir /src && rm -rf /src \
    && apt-get purge -y --auto-remove gcc libc6-dev && rm -rf /var/lib/apt/lists/* \
    && cd / && python -c "import collector.decoding._fastotlp"

# The bundled config: everything comes from the environment (docs/configuration.md). Its
# store path, data/collector.db, is relative to the config file: /app/data/collector.db.
WORKDIR /app
COPY otel-config.yaml /app/otel-config.yaml
RUN mkdir -p /app/data && chown app:app /app/data && chmod 0750 /app/data

# In a container, loopback-only listeners are unreachable; the OTLP ports still require
# CC_INGEST_TOKEN (the config refuses to start without it).
ENV CC_LISTEN_HOST=0.0.0.0 \
    CC_METRICS_HOST=0.0.0.0

USER app
VOLUME ["/app/data"]
EXPOSE 4317 4318 8889

# slim has no curl: ask /readyz with the standard library (non-2xx raises, exit status 1).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8889/readyz', timeout=4)"]

CMD ["cc-collector", "serve", "--config", "/app/otel-config.yaml"]
