# The runner as a container: a slim Python, a non-root user, `runner serve`.
#
# Build stages, all from the same base: `requirements` extracts the dependency list
# from pyproject.toml; `deps` installs it into a virtual environment at /opt/venv,
# from wheels only (`--only-binary`: the slim base has no compiler, and none is
# wanted in the image), and is rebuilt only when that list changes; `wheel` builds
# the runner package. The final stage copies the environment and installs that one
# wheel on top, so a code change rebuilds a small layer and reinstalls nothing.
FROM python:3.11-slim AS requirements
WORKDIR /src
COPY pyproject.toml ./
# Only [project].dependencies: editing other parts of pyproject.toml keeps the cache.
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > requirements.txt

FROM python:3.11-slim AS deps
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=requirements /src/requirements.txt /tmp/requirements.txt
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --only-binary=:all: -r /tmp/requirements.txt

FROM deps AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY runner ./runner
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH \
    RUNNER_HOST=0.0.0.0 \
    RUNNER_PORT=8000 \
    RUNNER_CONFIG_DIR=/app/config \
    RUNNER_DATA_DIR=/var/lib/runner
# Handlers are read from /opt/custom_llms, the runner's default. It is not set here:
# CUSTOM_LLMS_DIRECTORY in the image would take precedence over a user's
# GALILEO_CUSTOM_LLMS_DIRECTORY.

# The config and handler folders start empty, so a fresh container serves no
# integration and reports no config error; mount (or COPY) yours there. The data
# folder belongs to the runner user, and a new named volume on it inherits that.
RUN useradd --create-home --uid 10001 runner \
    && mkdir -p /app/config /opt/custom_llms /var/lib/runner \
    && chown runner:runner /var/lib/runner
COPY --from=deps /opt/venv /opt/venv
COPY --from=wheel /wheels /tmp/wheels
RUN pip install --no-deps /tmp/wheels/*.whl && rm -rf /tmp/wheels
# The examples, opt-in: RUNNER_CONFIG_DIR=/app/examples/config,
# CUSTOM_LLMS_ENABLED=true, CUSTOM_LLMS_DIRECTORY=/app/examples/custom_llms.
COPY config /app/examples/config
COPY custom_llms /app/examples/custom_llms

WORKDIR /app
USER runner
# The SQLite store and the generated secret key (unless RUNNER_DATABASE_URL and
# RUNNER_SECRET_KEY point elsewhere): keep this volume, or POSTed integrations are lost.
VOLUME ["/var/lib/runner"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s CMD ["runner", "health"]
CMD ["runner", "serve"]
