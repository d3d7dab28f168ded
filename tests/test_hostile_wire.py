"""Hostile bytes on the wire, both ways: absurd JSON and parameter names from callers;
answers from upstreams that are not chat completions, are too long, or never come;
callers that hang up; and integration tests that would flood an upstream.

The hostile upstreams here are raw asyncio servers on loopback, scripted byte for
byte, which also record when the runner closes a connection.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from .fakes import Upstream, chat_completion
from .helpers import (
    Runner,
    both_call_paths,  # noqa: F401  (every test here runs on both paths)
    integration,
    one_model,
    poll,
    start_runner,
)

# --- a scriptable upstream -------------------------------------------------------------


@dataclass
class Reply:
    """What the upstream writes for one request; with ``hold``, it then says nothing
    more and waits for the runner to close the connection."""

    data: bytes = b""
    hold: bool = False


@dataclass
class WireUpstream:
    """A raw HTTP/1.1 upstream: request ``n`` gets ``replies[n]`` (the last one repeats)."""

    replies: list[Reply]
    url: str = ""
    requests: int = 0
    hung_up_at: list[float] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length: *(\d+)", head)
            await reader.readexactly(int(length.group(1)) if length else 0)
            reply = self.replies[min(self.requests, len(self.replies) - 1)]
            self.requests += 1
            writer.write(reply.data)
            await writer.drain()
            if reply.hold:
                await reader.read()  # returns once the runner closes the connection
                self.hung_up_at.append(time.monotonic())
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@contextmanager
def wire_upstream(*replies: Reply) -> Iterator[WireUpstream]:
    upstream = WireUpstream(list(replies))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    started = asyncio.run_coroutine_threadsafe(
        asyncio.start_server(upstream.handle, "127.0.0.1", 0), loop
    )
    server = started.result(timeout=5)
    upstream.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"

    async def shut_down() -> None:
        server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    try:
        yield upstream
    finally:
        asyncio.run_coroutine_threadsafe(shut_down(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()


def http_200(body: bytes, content_type: bytes = b"application/json") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: %s\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
        % (content_type, len(body))
    ) + body


def sse_200(body: bytes) -> bytes:
    """A stream without a length: it ends where the upstream closes the connection."""
    return b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n" + body


def completion_reply() -> Reply:
    return Reply(http_200(json.dumps(chat_completion("chatcmpl-1", "m", "fine", (1, 1))).encode()))


def chunk_event(text: str) -> bytes:
    chunk = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "finish_reason": None, "delta": {"content": text}}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def stream_events(runner: Runner, model: str = "M") -> tuple[int, list[str], dict[str, Any]]:
    """The status, the ``data:`` payloads, and the JSON body when refused outright."""
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "x"}]}
    with runner.http.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            response.read()
            return response.status_code, [], response.json()
        lines = [line.removeprefix("data: ") for line in response.iter_lines()]
    return 200, [line for line in lines if line], {}


MESSAGES = [{"role": "user", "content": "hi"}]

# --- JSON from callers --------------------------------------------------------------------


def _client_address(response: httpx.Response) -> object:
    return response.extensions["network_stream"].get_extra_info("client_addr")


def test_json_nested_100000_deep_is_400_and_the_connection_stays_usable(
    runner: Runner, upstream: Upstream
):
    runner.put("acme", integration(upstream))
    deep = b"[" * 100_000 + b"]" * 100_000
    chat = b'{"model": "Model A", "messages": [{"role": "user", "content": "x"}], "x": %s}' % deep
    with httpx.Client(base_url=runner.url, limits=httpx.Limits(max_connections=1)) as client:
        for path, body in (("/v1/chat/completions", chat), ("/integrations/deep", deep)):
            refused = client.post(path, content=body)
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"]["code"] == "invalid_json"
            assert "nested deeper than 100 levels" in refused.json()["error"]["message"]
            answered = client.post(
                "/v1/chat/completions", json={"model": "Model A", "messages": MESSAGES}
            )
            assert answered.status_code == 200
            assert _client_address(answered) == _client_address(refused)  # the same connection
    assert runner.http.get("/integrations/deep").status_code == 404


@pytest.mark.parametrize(("depth", "status"), [(100, 200), (101, 400)])
def test_json_nesting_is_limited_to_100_levels(
    runner: Runner, upstream: Upstream, depth: int, status: int
):
    runner.put("acme", integration(upstream))
    body = {"model": "Model A", "messages": MESSAGES, "metadata": {}}
    for _ in range(depth - 2):  # the body is level 1, the innermost metadata object the last
        body["metadata"] = {"k": body["metadata"]}
    response = runner.http.post("/v1/chat/completions", json=body)
    assert response.status_code == status, response.text


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_nan_and_infinity_are_400_and_never_reach_the_upstream(
    runner: Runner, upstream: Upstream, value: str
):
    runner.put("acme", integration(upstream))
    chat = json.dumps({"model": "Model A", "messages": MESSAGES})
    body = f'{{"temperature": {value}, {chat[1:]}'
    response = runner.http.post("/v1/chat/completions", content=body.encode())
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    assert upstream.received == []
    posted = f'{{"timeout": {value}, {json.dumps(integration(upstream))[1:]}'
    refused = runner.http.post("/integrations/nan", content=posted.encode())
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid_json"


def test_the_demo_route_and_the_token_string_read_json_strictly(
    config_dir: Path, runner: Runner, upstream: Upstream
):
    deep = "[" * 100_000 + "]" * 100_000
    with start_runner(config_dir, demo=True) as demo:
        for body in (b"{not json", deep.encode(), b'{"messages": [], "temperature": NaN}'):
            refused = demo.http.post("/demo/v1/chat/completions", content=body)
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"]["code"] == "invalid_json"
    oauth2 = integration(
        upstream,
        authentication_type="oauth2",
        oauth2_token_url="https://auth.example.com/token",
        token=deep,
    )
    refused = runner.put("deep-token", oauth2)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["param"] == "token"


def test_metadata_with_control_characters_is_422_and_never_sent(runner: Runner, upstream: Upstream):
    runner.put("acme", integration(upstream, custom_header_mapping={"job_id": "X-Job"}))
    for value in ("j-1\r\nX-Injected: yes", "j\u202e1"):
        response = runner.chat("Model A", metadata={"job_id": value})
        assert response.status_code == 422, response.text
        assert response.json()["error"]["param"] == "metadata.job_id"
    assert upstream.received == []
    assert runner.chat("Model A", metadata={"job_id": "j-1"}).status_code == 200
    assert upstream.last.headers["x-job"] == "j-1"


# --- the dropped-parameters header -----------------------------------------------------------


def test_a_dropped_parameter_named_with_crlf_never_reaches_the_header(
    runner: Runner, upstream: Upstream
):
    runner.put("acme", integration(upstream))
    evil = "x\r\nx-injected: yes"
    response = runner.chat("Model A", **{evil: 1, "logprobs": True, "température": 1})
    assert response.status_code == 200, response.text
    assert response.headers["x-runner-dropped-params"] == "logprobs, and 2 more"
    assert "x-injected" not in response.headers


def test_thousands_of_dropped_parameters_make_a_short_header_the_openai_client_reads(
    runner: Runner, upstream: Upstream
):
    runner.put("acme", integration(upstream))
    client = openai.OpenAI(base_url=f"{runner.url}/v1", api_key="unused", max_retries=0)
    for names in (
        [f"{'long' * 100}{n}" for n in range(2000)],  # 400-byte names: none shown
        [f"param_{n}" for n in range(2000)],  # plain names: as many as fit
    ):
        raw = client.chat.completions.with_raw_response.create(
            model="Model A", messages=MESSAGES, extra_body=dict.fromkeys(names, 1)
        )
        header = raw.headers["x-runner-dropped-params"]
        assert len(header) <= 256
        listed, _, more = header.rpartition(", ")
        assert re.fullmatch(r"and \d+ more", more or listed)
        shown = listed.split(",") if listed else []
        assert shown == names[: len(shown)]
        assert len(shown) + int(header.split()[-2]) == 2000
        assert raw.parse().choices[0].message.content == "reply from model-a"


# --- what comes back from upstream --------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        http_200(b"<html>please log in</html>", b"text/html"),
        http_200(b'{"foo": 1}'),
        http_200(b'{"choices": "none"}'),
        http_200(b"[1, 2]"),
        http_200(b""),
    ],
    ids=["html", "no-choices", "choices-not-a-list", "array", "empty"],
)
def test_a_200_that_is_not_a_chat_completion_is_502(runner: Runner, answer: bytes):
    with wire_upstream(Reply(answer)) as wire:
        runner.put("acme", one_model(wire, "m"))
        response = runner.chat("M")
        assert response.status_code == 502, response.text
        error = response.json()["error"]
        assert (error["type"], error["code"]) == (
            "upstream_connection_error",
            "upstream_invalid_response",
        )
        assert "'M'" in error["message"] and "acme" in error["message"]
        assert wire.requests == 1  # an answer, even a bad one: not retried


@pytest.mark.parametrize("wait", [b"inf", b"1e400", b"nan"])
def test_an_absurd_retry_after_from_upstream_is_ignored(runner: Runner, wait: bytes):
    body = b'{"error": {"message": "slow down"}}'
    refusal = (
        b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n"
        b"retry-after: %s\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % (wait, len(body))
    ) + body
    with wire_upstream(Reply(refusal)) as wire:
        runner.put("acme", one_model(wire, "m", num_retries=0))
        response = runner.chat("M")
        assert response.status_code == 429, response.text
        assert response.json()["error"]["code"] == "upstream_rate_limited"
        assert "retry-after" not in response.headers


@pytest.mark.parametrize(
    "events",
    [
        b"data: [DONE]\n\n",
        b": keep-alive\n\n",
        b"data: not json\n\ndata: [DONE]\n\n",
        b"data: [1]\n\n",
    ],
    ids=["only-done", "no-data", "junk-first", "array-first"],
)
def test_a_stream_without_any_valid_event_is_502_not_a_bare_done(runner: Runner, events: bytes):
    with wire_upstream(Reply(sse_200(events))) as wire:
        runner.put("acme", one_model(wire, "m"))
        status, payloads, refused = stream_events(runner)
    assert status == 502 and payloads == []
    assert refused["error"]["code"] == "upstream_invalid_response"


def test_a_stream_that_turns_to_junk_ends_with_an_error_event(runner: Runner):
    stream = chunk_event("fine") + b"data: <html>oops</html>\n\n" + chunk_event("never")
    with wire_upstream(Reply(sse_200(stream + b"data: [DONE]\n\n"))) as wire:
        runner.put("acme", one_model(wire, "m"))
        status, payloads, _ = stream_events(runner)
    assert status == 200
    assert json.loads(payloads[0])["choices"][0]["delta"]["content"] == "fine"
    assert json.loads(payloads[-1])["error"]["code"] == "upstream_invalid_response"
    assert len(payloads) == 2 and "[DONE]" not in payloads


OVER_32_MIB = 33 * 1024 * 1024


def test_an_answer_over_the_default_32_mib_is_cut_off(runner: Runner):
    huge = json.dumps(chat_completion("chatcmpl-1", "m", "x" * OVER_32_MIB, (1, 1))).encode()
    with wire_upstream(Reply(http_200(huge))) as wire:
        runner.put("acme", one_model(wire, "m"))
        response = runner.chat("M")
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "upstream_response_too_large"
    assert str(32 * 1024 * 1024) in error["message"]


def test_a_stream_over_the_default_32_mib_ends_with_an_error_event(runner: Runner):
    endless_line = b"data: " + b"x" * OVER_32_MIB
    with wire_upstream(Reply(sse_200(chunk_event("fine") + endless_line))) as wire:
        runner.put("acme", one_model(wire, "m"))
        status, payloads, _ = stream_events(runner)
    assert status == 200
    assert json.loads(payloads[0])["choices"][0]["delta"]["content"] == "fine"
    assert json.loads(payloads[-1])["error"]["code"] == "upstream_response_too_large"


def test_max_response_bytes_sets_the_limit_for_answers_and_streams(
    config_dir: Path, call_path: str
):
    small = 64 * 1024
    big = json.dumps(chat_completion("chatcmpl-1", "m", "x" * small, (1, 1))).encode()
    many_events = chunk_event("fine") + chunk_event("y" * 1000) * 100
    replies = (Reply(http_200(big)), Reply(sse_200(many_events)))
    with (
        start_runner(
            config_dir, fast_path=call_path == "direct", max_response_bytes=small
        ) as runner,
        wire_upstream(*replies) as wire,
    ):
        runner.put("acme", one_model(wire, "m"))
        response = runner.chat("M")
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "upstream_response_too_large"
        status, payloads, _ = stream_events(runner)
    assert status == 200
    assert 2 <= len(payloads) < 100
    assert json.loads(payloads[-1])["error"]["code"] == "upstream_response_too_large"


# --- callers that hang up ----------------------------------------------------------------------


def _request_bytes(runner: Runner, stream: bool) -> bytes:
    body = json.dumps({"model": "M", "messages": MESSAGES, "stream": stream}).encode()
    host = runner.url.removeprefix("http://")
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n" % (host.encode(), len(body))
    ) + body


def _connect(runner: Runner) -> socket.socket:
    host, port = runner.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=5)


@pytest.mark.parametrize("stream", [False, True], ids=["answer", "stream"])
def test_a_caller_hanging_up_frees_its_slot_and_the_upstream_at_once(runner: Runner, stream: bool):
    """The upstream says nothing (a stream: nothing after its first event); the caller
    gives up. Its slot (max_concurrency 1) and the upstream connection are freed within
    a second, not at the 30 s timeout, and the next call gets through."""
    first = Reply(sse_200(chunk_event("first")), hold=True) if stream else Reply(hold=True)
    with wire_upstream(first, completion_reply()) as wire:
        runner.put("acme", one_model(wire, "m", max_concurrency=1, timeout=30))
        with _connect(runner) as caller:
            caller.sendall(_request_bytes(runner, stream))
            if stream:
                received = bytearray()

                def first_event() -> bool:
                    received.extend(caller.recv(65536))
                    return b"data:" in received

                poll(first_event, 5, "the stream's first event", 0.01)
            else:
                poll(lambda: wire.requests == 1, 5, "the request reached the upstream", 0.01)
        hung_up = time.monotonic()
        poll(lambda: bool(wire.hung_up_at), 1.0, "the upstream connection closed", 0.01)
        assert wire.hung_up_at[0] - hung_up < 1.0
        response = runner.http.post(
            "/v1/chat/completions", json={"model": "M", "messages": MESSAGES}, timeout=3
        )
        assert response.status_code == 200, response.text
        assert wire.requests == 2


# --- POST /integrations/{name}/test ---------------------------------------------------------------


def test_testing_an_integration_probes_a_few_models_at_a_time(runner: Runner, upstream: Upstream):
    upstream.slow_seconds = 0.05
    models = [{"name": "slow", "alias": f"Model {n}"} for n in range(40)]
    runner.put("many", integration(upstream, model_properties=models))
    response = runner.http.post("/integrations/many/test")
    assert response.status_code == 200
    assert response.json()["ok"] is True
    assert [r["alias"] for r in response.json()["results"]] == [m["alias"] for m in models]
    assert len(upstream.received) == 40
    assert 1 < upstream.max_in_flight <= 4


def test_testing_an_integration_answers_within_its_deadline(runner: Runner, upstream: Upstream):
    upstream.slow_seconds = 2
    models = [{"name": "slow", "alias": f"Slow {n}"} for n in range(6)]
    runner.put("slow", integration(upstream, model_properties=models))
    started = time.monotonic()
    response = runner.http.post("/integrations/slow/test", params={"timeout": 1})
    assert time.monotonic() - started < 3
    assert response.status_code == 200
    results = response.json()["results"]
    assert response.json()["ok"] is False and not any(r["ok"] for r in results)
    messages = [r["error"]["message"] for r in results]
    assert messages[:4] == ["no answer before the test's deadline of 1 s"] * 4
    assert messages[4:] == ["not probed: the test's deadline of 1 s passed first"] * 2
    # The shared upstream, left as found.
    poll(lambda: upstream.in_flight == 0, 5, "the probes' upstream calls ended", 0.01)


@pytest.mark.parametrize("timeout", ["0", "-1", "soon", "nan"])
def test_testing_with_a_timeout_that_is_not_a_positive_number_is_422(
    runner: Runner, upstream: Upstream, timeout: str
):
    runner.put("acme", integration(upstream))
    response = runner.http.post("/integrations/acme/test", params={"timeout": timeout})
    assert response.status_code == 422
    assert response.json()["error"]["param"] == "timeout"


def test_the_demo_route_is_served_only_when_asked_for(runner: Runner):
    hello = {"model": "x", "messages": [{"role": "user", "content": "hi"}]}
    assert runner.http.post("/demo/v1/chat/completions", json=hello).status_code == 404
