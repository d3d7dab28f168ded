"""Process-wide settings, read from the environment (prefix ``RUNNER_``)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024


class Settings(BaseSettings):
    """Everything an operator can set without touching code.

    Defaults suit a developer machine: listen on loopback only, read ``./config``.
    The container image overrides the host so the port is reachable.
    """

    model_config = SettingsConfigDict(env_prefix="RUNNER_", extra="ignore", populate_by_name=True)

    config_dir: Path = Field(
        default=Path("config"),
        description="Folder whose *.json files are loaded as integrations at start.",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    admin_key: SecretStr | None = Field(
        default=None,
        description=(
            "Bearer key for the management API. Unset: management answers loopback clients only."
        ),
    )
    metrics_key: SecretStr | None = Field(
        default=None,
        description=(
            "Bearer key for GET /metrics (the admin key works too). Unset, with no admin "
            "key: /metrics answers loopback clients only."
        ),
    )
    api_keys: SecretStr | None = Field(
        default=None,
        description=(
            "Comma-separated keys callers must present on /v1/* (or sha256:<hex> digests "
            "of them). Unset: /v1 is open."
        ),
    )
    max_request_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        description="Largest request body accepted; bigger ones get a 413.",
    )
    max_response_bytes: int = Field(
        default=DEFAULT_MAX_RESPONSE_BYTES,
        ge=1024,
        description=(
            "Longest upstream answer passed on, streamed or not (after decompression); "
            "longer ones are cut off with a 502 or a final error event."
        ),
    )
    block_private_networks: bool = Field(
        default=False,
        description=(
            "Refuse upstreams on loopback and private networks too (link-local and cloud "
            "metadata addresses are always refused)."
        ),
    )
    upstream_timeout: float = Field(
        default=120.0,
        gt=0,
        description="Seconds a single upstream call may take before the caller gets a 504.",
    )
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = Field(
        default="info",
        description="What the runner and uvicorn log: info is one line per change of state.",
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="text: readable lines; json: one JSON object per line, for log pipelines.",
    )
    access_log: bool = Field(
        default=True,
        description="One line per request at info: route, alias, status, latency, tokens.",
    )
    stream_usage: bool = Field(
        default=True,
        description=(
            "Ask upstreams for a stream's token usage (stream_options.include_usage) even "
            "when the caller did not, to count its tokens; the caller gets the usage chunk "
            "only if it asked. false for upstreams that refuse stream_options."
        ),
    )
    metrics: bool = Field(
        default=True,
        description="Count every request for GET /metrics (Prometheus text format).",
    )
    fast_path: bool = Field(
        default=True,
        description=(
            "Send plain OpenAI-compatible calls straight over HTTP instead of through "
            "litellm.acompletion (same behaviour, a fraction of the cost)."
        ),
    )
    demo: bool = Field(
        default=False,
        description=(
            "Serve the built-in echo model at /demo/v1 (what config/demo.json calls), so a "
            "fresh clone answers with no network. Off unless asked for."
        ),
    )
    custom_llms_enabled: bool = Field(
        default=False,
        validation_alias=AliasChoices(
            "CUSTOM_LLMS_ENABLED", "GALILEO_CUSTOM_LLMS_ENABLED", "custom_llms_enabled"
        ),
        description="Allow integrations with custom_llm_config to load Python handler files.",
    )
    custom_llms_directory: Path = Field(
        default=Path("/opt/custom_llms"),
        validation_alias=AliasChoices(
            "CUSTOM_LLMS_DIRECTORY", "GALILEO_CUSTOM_LLMS_DIRECTORY", "custom_llms_directory"
        ),
        description="Folder the handler files are read from (no subfolders).",
    )
    data_dir: Path = Field(
        default=Path("data"),
        description="Folder for the SQLite store and the generated secret key file.",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description=(
            "Where integrations POSTed to the API are stored: sqlite:///path or "
            "postgresql://user:pass@host/db. Unset: a SQLite file in RUNNER_DATA_DIR."
        ),
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description=(
            "Fernet keys that encrypt stored secrets, comma-separated, newest first. "
            "Unset: one is generated into RUNNER_DATA_DIR/secret.key."
        ),
    )
    sync_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often a runner checks the store for other replicas' writes.",
    )
    handler_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often handler files are checked for edits, which then take effect.",
    )
    handler_load_timeout: float = Field(
        default=10.0,
        gt=0,
        description=(
            "Seconds a handler file may take to import and construct its class; "
            "beyond it, registering is refused with a 422."
        ),
    )
    workers: int = Field(
        default=1,
        description=(
            "Processes serving the port (auto: one per core). Each keeps its own registry "
            "and follows the store like a replica; limits and caches are per process."
        ),
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _any_case(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("workers", mode="before")
    @classmethod
    def _workers(cls, value: object) -> int:
        return parse_workers(value)

    @property
    def effective_database_url(self) -> str:
        """The store's URL as the operator wrote it (the SQLite default spelled out)."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.data_dir / 'runner.db'}"


def parse_workers(value: object) -> int:
    """``auto`` is one process per core; otherwise a whole number, at least 1.

    Shared by ``RUNNER_WORKERS`` and ``runner serve --workers``, so both refuse
    the same values with the same message.
    """
    if isinstance(value, str) and value.strip().lower() == "auto":
        return os.cpu_count() or 1
    if isinstance(value, str) and re.fullmatch(r"\s*[0-9]+\s*", value):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ValueError(
        f"workers must be a whole number of processes, 1 or more, or 'auto' (one per core); "
        f"got {value!r}"
    )
