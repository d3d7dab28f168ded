from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from runner.api import create_app
from runner.settings import Settings

from .fakes import TokenServer, Upstream
from .servers import serve
from .stores import drop_postgres_database, new_postgres_database, own_postgres_server


@dataclass
class Runner:
    """A runner served on loopback, with helpers for the calls tests make most."""

    url: str
    http: httpx.Client

    def put(self, name: str, integration: dict[str, Any]) -> httpx.Response:
        return self.http.post(f"/integrations/{name}", json=integration)

    def chat(self, model: str, content: str = "hi", **params: Any) -> httpx.Response:
        body = {"model": model, "messages": [{"role": "user", "content": content}], **params}
        return self.http.post("/v1/chat/completions", json=body)


@contextmanager
def start_runner(config_dir: Path, **settings: Any) -> Iterator[Runner]:
    defaults = {"config_dir": config_dir, "data_dir": config_dir.parent / "data"}
    app = create_app(Settings(**{**defaults, "upstream_timeout": 5, **settings}))
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield Runner(url, http)


@pytest.fixture(autouse=True)
def _own_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's runners keep their store and key in that test's folder, never in
    the working directory and never shared with another test."""
    monkeypatch.setenv("RUNNER_DATA_DIR", str(tmp_path / "runner-data"))


@pytest.fixture(scope="session")
def _upstream() -> Iterator[Upstream]:
    upstream = Upstream()
    with serve(upstream.app()) as url:
        upstream.url = f"{url}/v1"
        yield upstream


@pytest.fixture
def upstream(_upstream: Upstream) -> Upstream:
    _upstream.reset()
    return _upstream


@pytest.fixture(scope="session")
def _token_server() -> Iterator[TokenServer]:
    tokens = TokenServer()
    with serve(tokens.app()) as url:
        tokens.url = f"{url}/oauth2/token"
        yield tokens


@pytest.fixture
def token_server(_token_server: TokenServer) -> TokenServer:
    _token_server.reset()
    return _token_server


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    path = tmp_path / "config"
    path.mkdir()
    return path


@pytest.fixture
def call_path() -> str:
    """Which way plain OpenAI-compatible calls go; test modules that cover calling
    override this with both values, so one suite proves the two paths alike."""
    return "direct"


@pytest.fixture
def runner(config_dir: Path, call_path: str) -> Iterator[Runner]:
    with start_runner(config_dir, fast_path=call_path == "direct") as running:
        yield running


def integration(upstream: Upstream, **overrides: Any) -> dict[str, Any]:
    """A minimal valid integration pointing at the test upstream."""
    base: dict[str, Any] = {
        "authentication_type": "none",
        "endpoint": upstream.url,
        "model_properties": [{"name": "model-a", "alias": "Model A"}],
    }
    base.update(overrides)
    return base


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A real PostgreSQL server: CI's, or one started here if PostgreSQL is installed."""
    url = os.environ.get("RUNNER_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    with own_postgres_server() as started:
        if started is None:
            pytest.skip(
                "PostgreSQL is not installed; .ci/run installs it and sets RUNNER_TEST_POSTGRES_URL"
            )
        yield started


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty store database of each kind the runner supports."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store' / 'runner.db'}"
        return
    admin_url = request.getfixturevalue("postgres_admin_url")
    url = new_postgres_database(admin_url)
    try:
        yield url
    finally:
        drop_postgres_database(admin_url, url)
