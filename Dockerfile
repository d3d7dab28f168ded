# The runner as a container: a slim Python, a non-root user, `runner serve`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    RUNNER_HOST=0.0.0.0 \
    RUNNER_PORT=8000 \
    RUNNER_CONFIG_DIR=/app/config \
    RUNNER_DATA_DIR=/var/lib/runner \
    CUSTOM_LLMS_DIRECTORY=/opt/custom_llms

WORKDIR /app
COPY pyproject.toml README.md ./
COPY runner ./runner
RUN pip install . && useradd --create-home --uid 10001 runner \
    && mkdir -p /var/lib/runner && chown runner /var/lib/runner
COPY config ./config
# The examples; mount a volume here (or build FROM this image and COPY) for your own.
COPY custom_llms /opt/custom_llms

USER runner
# The SQLite store and the generated secret key (unless RUNNER_DATABASE_URL and
# RUNNER_SECRET_KEY point elsewhere): keep this volume, or POSTed integrations are lost.
VOLUME ["/opt/custom_llms", "/var/lib/runner"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s CMD ["runner", "health"]
CMD ["runner", "serve"]
