"""Limits, retries and failure categories, each against a real loopback upstream."""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from .fakes import TokenServer, Upstream
from .helpers import (
    Runner,
    both_call_paths,  # noqa: F401  (every test here runs on both paths)
    free_port,
    integration,
    one_model,
    poll,
    start_runner,
)


def test_upstream_429_then_200_is_retried_after_its_retry_after(runner: Runner, upstream: Upstream):
    upstream.failures["flaky"] = [429]
    upstream.retry_after = "1"
    runner.put("acme", one_model(upstream, "flaky"))
    started = time.monotonic()
    response = runner.chat("M")
    assert response.status_code == 200
    assert len(upstream.received) == 2
    assert time.monotonic() - started >= 1  # it waited as long as the upstream asked


def test_upstream_500_forever_is_retried_then_503(runner: Runner, upstream: Upstream):
    runner.put("acme", one_model(upstream, "status-500"))
    response = runner.chat("M")
    assert response.status_code == 503
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("upstream_unavailable_error", "upstream_unavailable")
    assert len(upstream.received) == 3  # the call and num_retries' default of 2


def test_num_retries_per_model_overrides_the_integration(runner: Runner, upstream: Upstream):
    spec = integration(
        upstream,
        num_retries=4,
        model_properties=[{"name": "status-502", "alias": "M", "num_retries": 0}],
    )
    runner.put("acme", spec)
    assert runner.chat("M").status_code == 503
    assert len(upstream.received) == 1


def test_bad_requests_and_refused_credentials_are_never_retried(runner: Runner, upstream: Upstream):
    runner.put("acme", one_model(upstream, "status-400"))
    assert runner.chat("M").status_code == 400
    runner.put("acme", one_model(upstream, "status-401"))
    response = runner.chat("M")
    assert response.status_code == 502
    assert "gateway misconfiguration" in response.json()["error"]["message"]
    assert len(upstream.received) == 2


def test_upstream_down_is_a_connection_error(runner: Runner, upstream: Upstream):
    port = free_port()  # nothing listens on it
    runner.put("gone", integration(upstream, endpoint=f"http://127.0.0.1:{port}/v1"))
    response = runner.chat("Model A")
    assert response.status_code == 502
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("upstream_connection_error", "upstream_unreachable")


def test_integration_timeout_covers_the_whole_call(
    config_dir: Path, upstream: Upstream, call_path: str
):
    upstream.slow_seconds = 3
    with start_runner(config_dir, fast_path=call_path == "direct") as runner:
        runner.put("slow", one_model(upstream, "slow", timeout=0.5))
        started = time.monotonic()
        response = runner.chat("M")
    assert time.monotonic() - started < 2.5  # RUNNER_UPSTREAM_TIMEOUT here is 5 s
    assert response.status_code == 504
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("timeout_error", "upstream_timeout")
    assert "0.5 s" in error["message"]


def test_a_call_that_had_its_slot_and_ran_out_of_time_is_504_not_429(
    runner: Runner, upstream: Upstream
):
    upstream.slow_seconds = 3
    runner.put("acme", one_model(upstream, "slow", max_concurrency=2, timeout=0.5))
    response = runner.chat("M")
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"


def test_over_the_rate_limit_is_429_with_retry_after(runner: Runner, upstream: Upstream):
    runner.put("acme", one_model(upstream, "model-a", rate_limit=2))
    assert [runner.chat("M").status_code for _ in range(2)] == [200, 200]
    refused = runner.chat("M")
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["code"] == "rate_limited"
    assert len(upstream.received) == 2


def test_max_concurrency_1_serialises_calls(runner: Runner, upstream: Upstream):
    upstream.slow_seconds = 0.2
    runner.put("acme", one_model(upstream, "slow", max_concurrency=1, timeout=10))
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda _: runner.chat("M").status_code, range(4)))
    assert statuses == [200] * 4
    assert upstream.max_in_flight == 1


def test_waiting_for_a_slot_past_the_timeout_is_429(runner: Runner, upstream: Upstream):
    upstream.slow_seconds = 1.0
    spec = integration(
        upstream,
        max_concurrency=1,  # shared by both models
        model_properties=[
            {"name": "slow", "alias": "Patient", "timeout": 10},
            {"name": "slow", "alias": "Hasty", "timeout": 0.4},
        ],
    )
    runner.put("acme", spec)
    with ThreadPoolExecutor(2) as pool:
        patient = pool.submit(runner.chat, "Patient")
        # Patient holds the only slot for a second once its call reaches the upstream.
        poll(lambda: len(upstream.received) == 1, 5, "Patient's call reaching the upstream", 0.01)
        hasty = runner.chat("Hasty")
        assert patient.result().status_code == 200
    assert hasty.status_code == 429
    assert hasty.json()["error"]["code"] == "concurrency_limited"
    assert "retry-after" in hasty.headers
    assert len(upstream.received) == 1  # Hasty never reached the upstream


def test_a_stream_is_never_retried_after_its_first_event(runner: Runner, upstream: Upstream):
    runner.put("acme", one_model(upstream, "broken-stream"))
    body = {"model": "M", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    with runner.http.stream("POST", "/v1/chat/completions", json=body) as response:
        events = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert "error" in json.loads(events[-1].removeprefix("data: "))
    assert len(upstream.received) == 1


def test_a_stream_refused_before_its_first_event_is_retried(runner: Runner, upstream: Upstream):
    upstream.failures["model-a"] = [503]
    runner.put("acme", one_model(upstream, "model-a"))
    body = {"model": "M", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    with runner.http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert any("[DONE]" in line for line in response.iter_lines())
    assert len(upstream.received) == 2


def test_oauth2_token_endpoint_down_is_a_clear_error(
    runner: Runner, upstream: Upstream, token_server: TokenServer
):
    port = free_port()  # nothing listens on it
    spec = integration(
        upstream,
        authentication_type="oauth2",
        oauth2_token_url=f"http://127.0.0.1:{port}/oauth2/token",
        token=json.dumps({"client_id": "c", "client_secret": "s"}),
    )
    runner.put("oauth", spec)
    response = runner.chat("Model A")
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "oauth2_token_failed"
    assert "token" in error["message"] and "not a problem with your request" in error["message"]
    assert upstream.received == []
    assert runner.http.get("/health").status_code == 200


def test_a_refusal_from_the_model_is_an_answer_not_an_error(
    runner: Runner, upstream: Upstream, call_path: str
):
    runner.put("acme", one_model(upstream, "moderated"))
    response = runner.chat("M", content="something the model declines")
    assert response.status_code == 200
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "content_filter"
    if call_path == "direct":  # LiteLLM's normalized message has no 'refusal' field
        assert choice["message"]["refusal"] == "I can't help with that."
    assert len(upstream.received) == 1  # an answer: not retried


async def test_200_concurrent_streams_each_carry_their_own_request(
    runner: Runner, upstream: Upstream
):
    runner.put("acme", one_model(upstream, "model-a"))

    async def stream(client: httpx.AsyncClient, n: int) -> tuple[int, set[str], str]:
        body = {"model": "M", "stream": True, "messages": [{"role": "user", "content": f"r{n}"}]}
        ids, text = set(), ""
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: {"):
                    chunk = json.loads(line.removeprefix("data: "))
                    ids.add(chunk["id"])
                    text += chunk["choices"][0]["delta"].get("content") or ""
        return n, ids, text

    limits = httpx.Limits(max_connections=250)
    async with httpx.AsyncClient(base_url=runner.url, timeout=60, limits=limits) as client:
        results = await asyncio.gather(*(stream(client, n) for n in range(200)))
    for n, ids, text in results:
        assert ids == {f"chatcmpl-r{n}"}
        assert text == "reply from model-a"


async def test_callers_hanging_up_mid_stream_cancel_the_upstream_requests(
    runner: Runner, upstream: Upstream
):
    runner.put("acme", one_model(upstream, "long-stream", max_concurrency=5, timeout=3))
    body = {"model": "M", "stream": True, "messages": [{"role": "user", "content": "x"}]}

    async def hang_up_after_first_event(client: httpx.AsyncClient) -> int:
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    break
            return response.status_code

    async with httpx.AsyncClient(base_url=runner.url, timeout=30) as client:
        for _ in range(2):  # the second round needs every slot the first one held
            statuses = await asyncio.gather(*(hang_up_after_first_event(client) for _ in range(5)))
            assert statuses == [200] * 5
            await asyncio.to_thread(
                poll, lambda: upstream.streams_open == 0, 5, "every upstream request closed"
            )
    assert upstream.chunks_sent < 10 * 200
