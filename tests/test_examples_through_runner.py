"""Each shipped example, end to end: its config file, its handler, a loopback provider.

The files in ``config/`` are loaded as the runner loads them (``${VAR}``
expansion included) with only the endpoint pointed at a fake of the protocol,
and every model is called through the runner's OpenAI-compatible API.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from .fake_providers import GenerateProvider, SessionProvider, SignedProvider
from .helpers import (
    REPO,
    Runner,
    both_call_paths,  # noqa: F401  (every test here runs on both paths)
    serve,
    start_runner,
)


@pytest.fixture(scope="module")
def providers() -> Iterator[dict[str, tuple[object, str]]]:
    generate, session, signed = GenerateProvider(), SessionProvider(), SignedProvider()
    with serve(generate.app()) as g, serve(session.app()) as s, serve(signed.app()) as h:
        yield {
            "proprietary-generate": (generate, g),
            "session-protocol": (session, s),
            "hmac-signed": (signed, h),
        }


@pytest.fixture
def examples(
    tmp_path: Path, providers, monkeypatch: pytest.MonkeyPatch, call_path: str
) -> Iterator[Runner]:
    signed = providers["hmac-signed"][0]
    monkeypatch.setenv("HMAC_SIGNED_SECRET", signed.secret)
    monkeypatch.setenv("SESSION_PROTOCOL_KEY", "session-key")
    config = tmp_path / "config"
    config.mkdir()
    for path in (REPO / "config").glob("*.json"):
        spec = json.loads(path.read_text())
        if path.stem in providers:
            spec["endpoint"] = providers[path.stem][1]
        (config / path.name).write_text(json.dumps(spec))
    with start_runner(
        config,
        fast_path=call_path == "direct",
        custom_llms_enabled=True,
        custom_llms_directory=REPO / "custom_llms",
    ) as runner:
        assert runner.http.get("/health").json()["config_errors"] == []
        yield runner


def _client(runner: Runner) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{runner.url}/v1", api_key="unused")


def test_offline_echo(examples: Runner):
    client = _client(examples)
    reply = client.chat.completions.create(
        model="Offline Echo", messages=[{"role": "user", "content": "hi there"}]
    )
    assert reply.choices[0].message.content == "You said: hi there"
    stream = client.chat.completions.create(
        model="Offline Echo", messages=[{"role": "user", "content": "hi there"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream) == "You said: hi there"


def test_proprietary_generate(examples: Runner, providers):
    provider = providers["proprietary-generate"][0]
    provider.reset()
    reply = _client(examples).chat.completions.create(
        model="Proprietary Generate",
        messages=[{"role": "user", "content": "go"}],
        temperature=0.4,
        max_tokens=9,
    )
    assert reply.choices[0].message.content == "generated: go"
    [received] = provider.received
    assert received.body["temperature"] == 0.4 and received.body["max_tokens"] == 9
    assert received.headers["authorization"] == "Bearer change-me"


def test_session_protocol(examples: Runner, providers):
    provider = providers["session-protocol"][0]
    reply = examples.chat("Session Protocol", "step by step", metadata={"run_id": "run-7"})
    assert reply.status_code == 200, reply.text
    assert "step by step" in reply.json()["choices"][0]["message"]["content"]
    paths = [r.path for r in provider.received]
    assert paths[0] == "/sessions" and paths[-1].startswith("/jobs/")
    assert all(r.headers["x-api-key"] == "session-key" for r in provider.received)
    assert all(r.headers["x-run-id"] == "run-7" for r in provider.received)


def test_hmac_signed(examples: Runner, providers):
    client = _client(examples)
    reply = client.chat.completions.create(
        model="HMAC Signed", messages=[{"role": "user", "content": "sign me"}]
    )
    assert reply.choices[0].message.content
    stream = client.chat.completions.create(
        model="HMAC Signed", messages=[{"role": "user", "content": "sign me"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert providers["hmac-signed"][0].received  # the provider verified each signature
