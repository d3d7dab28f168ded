"""The proxy choice, made once per backend from the environment."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runner.security import outbound
from runner.security.outbound import env_proxy


@pytest.fixture
def fresh_environment() -> Iterator[None]:
    """The runner reads proxy variables once per process; these tests change them."""
    outbound._environment_proxies.cache_clear()
    yield
    outbound._environment_proxies.cache_clear()


def test_env_proxy_follows_https_proxy_and_no_proxy(
    monkeypatch: pytest.MonkeyPatch, fresh_environment: None
):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert env_proxy("https://api.example.com/v1/chat/completions") is None
    outbound._environment_proxies.cache_clear()
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "gateway.internal")
    assert env_proxy("https://api.example.com/v1/chat/completions") == (
        "http://proxy.internal:3128"
    )
    assert env_proxy("https://gateway.internal/v1/chat/completions") is None
    assert env_proxy("http://api.example.com/v1/chat/completions") is None
