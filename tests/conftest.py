"""Fixtures shared by every test module, built on the helpers in ``helpers.py``."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .fake_collector import Collector
from .fakes import TokenServer, Upstream
from .helpers import Runner, serve, start_runner
from .stores import drop_postgres_database, new_postgres_database, own_postgres_server


@pytest.fixture(autouse=True)
def _own_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's runners keep their store and key in that test's folder, never in
    the working directory and never shared with another test."""
    monkeypatch.setenv("RUNNER_DATA_DIR", str(tmp_path / "runner-data"))


@pytest.fixture(autouse=True)
def _unfrozen_heap() -> Iterator[None]:
    """A started runner freezes the objects alive and collects young ones less often
    (:mod:`runner.heap`); in this process those are the tests' too, so each test hands
    them back to the collector as it was."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


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
def handler_dir(tmp_path: Path) -> Path:
    """An empty folder for the handler files a test writes."""
    path = tmp_path / "custom_llms"
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


@pytest.fixture(scope="session")
def _otlp_collector() -> Iterator[Collector]:
    collector = Collector()
    with serve(collector.app()) as url:
        collector.url = url
        yield collector


@pytest.fixture
def collector(_otlp_collector: Collector) -> Collector:
    """A loopback OTLP/HTTP collector, emptied for each test."""
    _otlp_collector.spans.clear()
    _otlp_collector.exports.clear()
    _otlp_collector.answers.clear()
    return _otlp_collector
