"""Who may call /v1, and bad input: keys, body size, malformed JSON, wrong types."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from runner.security.admission import hash_key

from .fakes import Upstream
from .helpers import Runner, integration, start_runner


def test_api_keys_guard_every_inference_route(
    config_dir: Path, upstream: Upstream, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    keys = f"plain-key-one,{hash_key('hashed-key-two')}"
    with start_runner(config_dir, api_keys=keys) as runner:
        runner.put("acme", integration(upstream))  # management is not /v1
        body = {"model": "Model A", "messages": [{"role": "user", "content": "hi"}]}
        for path, method in (("/v1/chat/completions", "POST"), ("/v1/models", "GET")):
            refused = runner.http.request(method, path, json=body)
            assert refused.status_code == 401
            error = refused.json()["error"]
            assert (error["type"], error["code"]) == ("authentication_error", "invalid_api_key")
            wrong = runner.http.request(
                method, path, json=body, headers={"Authorization": "Bearer nope"}
            )
            assert wrong.status_code == 401
        for headers in (
            {"Authorization": "Bearer plain-key-one"},
            {"Authorization": "Bearer hashed-key-two"},
            {"x-api-key": "plain-key-one"},
        ):
            assert (
                runner.http.post("/v1/chat/completions", json=body, headers=headers).status_code
                == 200
            )
        assert runner.http.get("/health").status_code == 200
    assert upstream.received and len(upstream.received) == 3
    for secret in ("plain-key-one", "hashed-key-two"):
        assert secret not in caplog.text


def test_the_official_client_sends_its_key(config_dir: Path, upstream: Upstream):
    import openai

    with start_runner(config_dir, api_keys="sk-runner") as runner:
        runner.put("acme", integration(upstream))
        client = openai.OpenAI(base_url=f"{runner.url}/v1", api_key="sk-runner", max_retries=0)
        reply = client.chat.completions.create(
            model="Model A", messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.choices[0].message.content == "reply from model-a"
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{runner.url}/v1", api_key="x", max_retries=0).models.list()


def test_a_malformed_hashed_key_is_refused_at_start(config_dir: Path):
    with (
        pytest.raises(ValueError, match="64 hex digits"),
        start_runner(config_dir, api_keys="sha256:abc"),
    ):
        pass


def test_request_bodies_past_the_limit_are_413(config_dir: Path, upstream: Upstream):
    with start_runner(config_dir, max_request_bytes=4096) as runner:
        runner.put("acme", integration(upstream))
        big = {"model": "Model A", "messages": [{"role": "user", "content": "x" * 5000}]}
        refused = runner.http.post("/v1/chat/completions", json=big)
        assert refused.status_code == 413
        assert refused.json()["error"]["code"] == "request_too_large"

        def chunked():  # no Content-Length: the limit applies while reading
            yield b'{"model": "Model A", "messages": [{"role": "user", "content": "'
            for _ in range(10):
                yield b"x" * 1000
            yield b'"}]}'

        for path in ("/v1/chat/completions", "/integrations/acme"):
            response = runner.http.post(path, content=chunked())
            assert response.status_code == 413, path
        assert runner.chat("Model A").status_code == 200
        assert len(upstream.received) == 1


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b"{not json", 400, None),
        (b"[1, 2]", 400, None),
        (b'{"model": 5, "messages": [{"role": "user", "content": "x"}]}', 422, "model"),
        (b'{"model": "Model A", "messages": "hi"}', 422, "messages"),
        (b'{"model": "Model A", "messages": ["hi"]}', 422, "messages[0]"),
        (b'{"model": "Model A", "stream": "yes", "messages": [{"role": "user"}]}', 422, "stream"),
        (b'{"model": "Modle A", "messages": [{"role": "user", "content": "x"}]}', 404, "model"),
    ],
)
def test_bad_chat_requests_say_what_is_wrong(
    runner: Runner, upstream: Upstream, body: bytes, status: int, param: str | None
):
    runner.put("acme", integration(upstream))
    response = runner.http.post(
        "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert error["param"] == param
    if status == 404:
        assert "'Model A'" in error["message"]  # the suggestion
    assert upstream.received == []


def test_unknown_alias_over_http_lists_close_ones(runner: Runner, upstream: Upstream):
    runner.put("acme", integration(upstream))
    response = httpx.post(
        f"{runner.url}/v1/chat/completions",
        json={"model": "model a", "messages": [{"role": "user", "content": "x"}]},
    )
    assert response.status_code == 404
    assert "Did you mean 'Model A'" in response.json()["error"]["message"]
