"""Each authentication type, seen from the upstream's side of the wire."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import httpx
import pytest

from .fakes import TokenServer, Upstream
from .helpers import (
    Runner,
    both_call_paths,  # noqa: F401  (every test here runs on both paths)
    integration,
    oauth2_fields,
)


def oauth2_integration(upstream: Upstream, tokens: TokenServer, **overrides):
    return integration(
        upstream, **oauth2_fields(tokens), authentication_scope="inference", **overrides
    )


def test_api_key_sent_in_the_named_header_and_nothing_else(runner: Runner, upstream: Upstream):
    spec = integration(
        upstream,
        authentication_type="api_key",
        api_key_header="x-portkey-api-key",
        api_key_value="pk-123",
    )
    assert runner.put("portkey", spec).status_code == 201
    assert runner.chat("Model A").status_code == 200
    headers = upstream.last.headers
    assert headers["x-portkey-api-key"] == "pk-123"
    assert "authorization" not in headers


def test_bearer_token_via_authorization_header(runner: Runner, upstream: Upstream):
    spec = integration(
        upstream,
        authentication_type="api_key",
        api_key_header="Authorization",
        api_key_value="Bearer tg-456",
    )
    runner.put("together", spec)
    assert runner.chat("Model A").status_code == 200
    assert upstream.last.headers["authorization"] == "Bearer tg-456"


def test_none_sends_no_credentials(runner: Runner, upstream: Upstream):
    runner.put("internal", integration(upstream))
    assert runner.chat("Model A").status_code == 200
    assert "authorization" not in upstream.last.headers


def test_oauth2_client_credentials_in_form_body_and_token_as_bearer(
    runner: Runner, upstream: Upstream, token_server: TokenServer
):
    upstream.accepted_tokens.update({"access-1"})
    assert runner.put("oauth", oauth2_integration(upstream, token_server)).status_code == 201
    response = runner.chat("Model A")
    assert response.status_code == 200, response.text
    assert upstream.last.headers["authorization"] == "Bearer access-1"
    [form] = token_server.requests
    assert form == {
        "grant_type": "client_credentials",
        "client_id": token_server.client_id,
        "client_secret": token_server.client_secret,
        "scope": "inference",
    }


def test_oauth2_token_is_cached_between_requests(
    runner: Runner, upstream: Upstream, token_server: TokenServer
):
    runner.put("oauth", oauth2_integration(upstream, token_server))
    for _ in range(3):
        assert runner.chat("Model A").status_code == 200
    assert len(token_server.requests) == 1


async def test_oauth2_cold_cache_concurrent_requests_fetch_one_token(
    runner: Runner, upstream: Upstream, token_server: TokenServer
):
    runner.put("oauth", oauth2_integration(upstream, token_server))
    body = {"model": "Model A", "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(base_url=runner.url, timeout=30) as client:
        responses = await asyncio.gather(
            *(client.post("/v1/chat/completions", json=body) for _ in range(20))
        )
    assert [r.status_code for r in responses] == [200] * 20
    assert len(token_server.requests) == 1
    assert {r.headers["authorization"] for r in upstream.received} == {"Bearer access-1"}


def test_oauth2_upstream_401_refreshes_once_and_retries(
    runner: Runner, upstream: Upstream, token_server: TokenServer
):
    runner.put("oauth", oauth2_integration(upstream, token_server))
    upstream.accepted_tokens.update({"access-1"})
    assert runner.chat("Model A").status_code == 200
    upstream.accepted_tokens.clear()
    upstream.accepted_tokens.add("access-2")  # the upstream revoked access-1
    response = runner.chat("Model A")
    assert response.status_code == 200, response.text
    assert [r.headers["authorization"] for r in upstream.received] == [
        "Bearer access-1",
        "Bearer access-1",
        "Bearer access-2",
    ]
    assert len(token_server.requests) == 2


def test_oauth2_persistent_401_is_reported_after_one_retry(
    runner: Runner, upstream: Upstream, token_server: TokenServer
):
    runner.put("oauth", oauth2_integration(upstream, token_server))
    upstream.accepted_tokens.add("never-issued")
    response = runner.chat("Model A")
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["type"] == "upstream_authorization_error"
    assert "gateway misconfiguration" in error["message"]
    assert len(upstream.received) == 2
    assert len(token_server.requests) == 2


def test_oauth2_token_renewed_when_it_expires(
    runner: Runner, upstream: Upstream, token_server: TokenServer
):
    token_server.expires_in = 1  # renewed half-way through its life
    runner.put("oauth", oauth2_integration(upstream, token_server))
    runner.chat("Model A")
    runner.chat("Model A")
    assert len(token_server.requests) == 1
    # Time passing is what is tested (past half its 1 s life, the token is renewed).
    time.sleep(0.6)
    runner.chat("Model A")
    assert len(token_server.requests) == 2
    assert upstream.last.headers["authorization"] == "Bearer access-2"


def test_oauth2_bad_client_secret_is_a_clear_502(
    runner: Runner, upstream: Upstream, token_server: TokenServer
):
    spec = oauth2_integration(upstream, token_server)
    spec["token"] = json.dumps({"client_id": token_server.client_id, "client_secret": "wrong"})
    runner.put("oauth", spec)
    response = runner.chat("Model A")
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "oauth2_token_failed"
    assert "invalid_client" in error["message"]
    assert "wrong" not in response.text
    assert upstream.received == []


def test_secrets_never_reach_the_logs(
    runner: Runner,
    upstream: Upstream,
    token_server: TokenServer,
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.DEBUG)
    keyed = integration(
        upstream,
        authentication_type="api_key",
        api_key_header="x-key",
        api_key_value="sk-never-log-me",
        model_properties=[{"name": "status-500", "alias": "Failing"}],
    )
    runner.put("keyed", keyed)
    spec = oauth2_integration(
        upstream, token_server, model_properties=[{"name": "o", "alias": "O"}]
    )
    spec["token"] = json.dumps(
        {"client_id": token_server.client_id, "client_secret": "oauth-never-log-me"}
    )
    runner.put("oauth", spec)
    assert runner.chat("Failing").status_code == 503
    assert runner.chat("O").status_code == 502  # the token endpoint refuses that secret
    assert caplog.records, "nothing was logged, so the check below proves nothing"
    for secret in ("sk-never-log-me", "oauth-never-log-me"):
        assert secret not in caplog.text
