"""The example handlers in ``custom_llms/``, called directly through LiteLLM.

Each handler is registered as a LiteLLM custom provider and called with
``litellm.acompletion``, against a fake of the protocol it speaks, so these
tests pin down the handlers themselves, independently of the runner. LiteLLM
1.106 hands handlers their parameters only inside ``optional_params``; the
runner also passes them as keywords, which ``test_runner_style_keywords_win``
covers. The example integration files in ``config/`` are checked to load.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import openai
import pytest

import runner  # noqa: F401  (first: it stops LiteLLM fetching its cost map at import)

# isort: split
import litellm
from litellm import CustomLLM, ModelResponse
from litellm.utils import custom_llm_setup

from runner.integrations.files import read_integration

from .fake_providers import GenerateProvider, SessionProvider, SignedProvider
from .helpers import REPO, free_port, serve

PROVIDER = "example-x"
MODEL = f"{PROVIDER}/some-model"
HELLO = [{"role": "user", "content": "hello there"}]

Register = Callable[[CustomLLM], None]


def handler(file_name: str, class_name: str, **init_kwargs: Any) -> CustomLLM:
    """An instance of a class from ``custom_llms/``, imported the way a plain file would be."""
    path = REPO / "custom_llms" / file_name
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, class_name)(**init_kwargs)


@pytest.fixture
def register() -> Iterator[Register]:
    """Registers a handler under ``example-x`` for one test, then restores LiteLLM's lists."""
    saved_map = litellm.custom_provider_map
    saved_providers = list(litellm.provider_list)
    saved_custom = list(litellm._custom_providers)

    def add(instance: CustomLLM) -> None:
        litellm.custom_provider_map = [{"provider": PROVIDER, "custom_handler": instance}]
        custom_llm_setup()

    yield add
    litellm.custom_provider_map = saved_map
    # custom_llm_setup appends in place, so restore the same list objects in place.
    litellm.provider_list[:] = saved_providers
    litellm._custom_providers[:] = saved_custom


async def chat(api_base: str | None, **params: Any) -> ModelResponse:
    params = {"messages": HELLO, "temperature": 0.3, "max_tokens": 5, **params}
    return await litellm.acompletion(model=MODEL, api_base=api_base, **params)


async def stream(api_base: str | None, **params: Any) -> list[Any]:
    """Every chunk of a streamed call, with usage asked for."""
    chunks = await chat(api_base, stream=True, stream_options={"include_usage": True}, **params)
    assert isinstance(chunks, AsyncIterator)
    return [chunk async for chunk in chunks]


def text_of(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def finish_of(chunks: list[Any]) -> list[str]:
    return [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]


def usage_of(response: Any) -> tuple[int, int, int]:
    usage = response.usage
    return usage.prompt_tokens, usage.completion_tokens, usage.total_tokens


async def failure(call: Any) -> openai.APIError:
    """The error a call (or, for a stream, its first chunk) raises."""
    with pytest.raises(openai.APIError) as info:
        response = await call
        if isinstance(response, AsyncIterator):
            async for _ in response:
                pass
    return info.value


# --- proprietary_generate.py -------------------------------------------------------------


@pytest.fixture(scope="module")
def _generate() -> Iterator[tuple[GenerateProvider, str]]:
    provider = GenerateProvider()
    with serve(provider.app()) as url:
        yield provider, url


@pytest.fixture
def generate(_generate: tuple[GenerateProvider, str]) -> tuple[GenerateProvider, str]:
    _generate[0].reset()
    return _generate


async def test_generate_translates_request_and_response(
    register: Register, generate: tuple[GenerateProvider, str]
) -> None:
    provider, url = generate
    register(handler("proprietary_generate.py", "ProprietaryGenerateHandler"))
    response = await chat(url, headers={"X-Api-Key": "k-1"})
    [received] = provider.received
    assert received.path == "/generate"
    assert received.body == {"prompt": HELLO, "temperature": 0.3, "max_tokens": 5}
    assert received.headers["x-api-key"] == "k-1"
    assert response.id == "gen-42"
    assert response.choices[0].message.content == "generated: hello there"
    assert response.choices[0].finish_reason == "stop"
    assert usage_of(response) == (4, 3, 7)


async def test_generate_fills_in_required_fields(
    register: Register, generate: tuple[GenerateProvider, str]
) -> None:
    provider, url = generate
    register(handler("proprietary_generate.py", "ProprietaryGenerateHandler"))
    await litellm.acompletion(model=MODEL, api_base=url, messages=HELLO)
    assert provider.received[0].body == {"prompt": HELLO, "temperature": 0.7, "max_tokens": 1024}


@pytest.mark.parametrize("status", [400, 401, 429, 503])
async def test_generate_keeps_the_upstream_status(
    register: Register, generate: tuple[GenerateProvider, str], status: int
) -> None:
    provider, url = generate
    provider.fail_status = status
    register(handler("proprietary_generate.py", "ProprietaryGenerateHandler"))
    error = await failure(chat(url))
    assert getattr(error, "status_code", None) == status
    assert f"generate refused with {status}" in str(error)


async def test_generate_slow_upstream_is_504(
    register: Register, generate: tuple[GenerateProvider, str]
) -> None:
    provider, url = generate
    provider.delay = 1.0
    register(handler("proprietary_generate.py", "ProprietaryGenerateHandler", timeout=0.2))
    error = await failure(chat(url))
    assert getattr(error, "status_code", None) == 504
    assert "did not answer within 0.2 s" in str(error)


async def test_generate_unreachable_upstream_is_502(register: Register) -> None:
    port = free_port()  # a port that was just free, so nothing listens on it
    register(handler("proprietary_generate.py", "ProprietaryGenerateHandler"))
    error = await failure(chat(f"http://127.0.0.1:{port}"))
    assert getattr(error, "status_code", None) == 502
    assert "cannot reach" in str(error)


# --- session_protocol.py -----------------------------------------------------------------


@pytest.fixture(scope="module")
def _sessions() -> Iterator[tuple[SessionProvider, str]]:
    provider = SessionProvider()
    with serve(provider.app()) as url:
        yield provider, url


@pytest.fixture
def sessions(_sessions: tuple[SessionProvider, str]) -> tuple[SessionProvider, str]:
    _sessions[0].reset()
    return _sessions


def session_handler(**init_kwargs: Any) -> CustomLLM:
    return handler(
        "session_protocol.py", "SessionProtocolHandler", poll_interval=0.01, **init_kwargs
    )


async def test_session_runs_every_step_with_the_headers(
    register: Register, sessions: tuple[SessionProvider, str]
) -> None:
    provider, url = sessions
    provider.token = "tok-1"
    register(session_handler())
    response = await chat(url, headers={"Authorization": "Bearer tok-1"})
    paths = [r.path for r in provider.received]
    assert paths == ["/sessions", "/sessions/s-1/messages", *["/jobs/j-1"] * 4]
    assert all(r.headers["authorization"] == "Bearer tok-1" for r in provider.received)
    assert provider.received[0].body == {"model": "some-model"}
    assert provider.received[1].body == {
        "messages": HELLO,
        "parameters": {"temperature": 0.3, "max_tokens": 5},
    }
    assert response.id == "j-1"
    assert response.choices[0].message.content == "session reply to hello there"
    assert usage_of(response) == (5, 4, 9)


async def test_session_refused_credentials_keep_their_status(
    register: Register, sessions: tuple[SessionProvider, str]
) -> None:
    provider, url = sessions
    provider.token = "tok-1"
    register(session_handler())
    error = await failure(chat(url))
    assert getattr(error, "status_code", None) == 401
    assert [r.path for r in provider.received] == ["/sessions"]


async def test_session_failed_job_is_502(
    register: Register, sessions: tuple[SessionProvider, str]
) -> None:
    provider, url = sessions
    provider.fail_jobs = True
    register(session_handler())
    error = await failure(chat(url))
    assert getattr(error, "status_code", None) == 502
    assert "job j-1 failed: model overloaded" in str(error)


async def test_session_gives_up_after_max_polls(
    register: Register, sessions: tuple[SessionProvider, str]
) -> None:
    provider, url = sessions
    provider.polls_before_done = 100
    register(session_handler(max_polls=3))
    error = await failure(chat(url))
    assert getattr(error, "status_code", None) == 504
    assert "unfinished after 3 polls" in str(error)
    assert provider.polls == {"j-1": 3}


# --- hmac_signed.py ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def _signed() -> Iterator[tuple[SignedProvider, str]]:
    provider = SignedProvider()
    with serve(provider.app()) as url:
        yield provider, url


@pytest.fixture
def signed(_signed: tuple[SignedProvider, str]) -> tuple[SignedProvider, str]:
    _signed[0].reset()
    return _signed


def hmac_handler(**init_kwargs: Any) -> CustomLLM:
    return handler("hmac_signed.py", "HmacSignedHandler", **init_kwargs)


async def test_hmac_signs_an_openai_request(
    register: Register, signed: tuple[SignedProvider, str]
) -> None:
    provider, url = signed
    register(hmac_handler(secret=provider.secret))
    response = await chat(url, headers={"X-Run-Id": "r-1"})
    [received] = provider.received  # the fake answers 401 unless the signature is right
    assert received.path == "/chat/completions"
    assert received.body == {
        "model": "some-model",
        "messages": HELLO,
        "temperature": 0.3,
        "max_tokens": 5,
    }
    assert received.headers["x-run-id"] == "r-1"
    assert len(received.headers["x-signature"]) == 64
    assert response.choices[0].message.content == "signed reply to hello there"
    assert usage_of(response) == (6, 4, 10)


async def test_hmac_wrong_secret_is_refused(
    register: Register, signed: tuple[SignedProvider, str]
) -> None:
    _, url = signed
    register(hmac_handler(secret="not-the-secret"))
    error = await failure(chat(url))
    assert getattr(error, "status_code", None) == 401
    assert "bad X-Signature" in str(error)
    streamed = await failure(chat(url, stream=True))
    assert getattr(streamed, "status_code", None) == 401


async def test_hmac_streams_signed_requests(
    register: Register, signed: tuple[SignedProvider, str]
) -> None:
    provider, url = signed
    register(hmac_handler(secret=provider.secret))
    chunks = await stream(url)
    [received] = provider.received
    assert received.body["stream"] is True
    assert received.body["stream_options"] == {"include_usage": True}
    assert received.body["temperature"] == 0.3
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 5
    assert text_of(chunks) == "signed reply to hello there"
    assert finish_of(chunks) == ["stop"]
    assert usage_of(chunks[-1]) == (6, 4, 10)


async def test_hmac_streams_tool_calls(
    register: Register, signed: tuple[SignedProvider, str]
) -> None:
    provider, url = signed
    register(hmac_handler(secret=provider.secret))
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    # LiteLLM 1.106 routes any call with tools through its MCP bridge, which imports
    # the optional `mcp` package; this opt-out is the only way round it without `mcp`.
    chunks = await stream(url, tools=tools, _skip_mcp_handler=True)
    message = litellm.stream_chunk_builder(chunks).choices[0]
    [call] = message.message.tool_calls
    assert (call.id, call.function.name) == ("call_1", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert message.finish_reason == "tool_calls"


async def test_hmac_secret_from_the_environment(
    register: Register, signed: tuple[SignedProvider, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    provider, url = signed
    monkeypatch.delenv("EXAMPLE_HMAC_SECRET", raising=False)
    with pytest.raises(ValueError, match="EXAMPLE_HMAC_SECRET"):
        hmac_handler(secret_env="EXAMPLE_HMAC_SECRET")
    with pytest.raises(ValueError, match="'secret' or 'secret_env'"):
        hmac_handler()
    monkeypatch.setenv("EXAMPLE_HMAC_SECRET", provider.secret)
    register(hmac_handler(secret_env="EXAMPLE_HMAC_SECRET"))
    response = await chat(url)
    assert response.choices[0].message.content == "signed reply to hello there"


# --- offline_echo.py ---------------------------------------------------------------------


async def test_echo_answers_offline(register: Register) -> None:
    register(handler("offline_echo.py", "OfflineEchoHandler"))
    response = await chat(None)
    assert response.choices[0].message.content == "You said: hello there"
    assert response.choices[0].finish_reason == "stop"
    assert usage_of(response) == (2, 4, 6)


async def test_echo_cuts_to_max_tokens_words(register: Register) -> None:
    register(handler("offline_echo.py", "OfflineEchoHandler"))
    messages = [{"role": "user", "content": "one two three four five six"}]
    response = await chat(None, messages=messages)
    assert response.choices[0].message.content == "You said: one two three"
    assert response.choices[0].finish_reason == "length"
    assert usage_of(response) == (6, 5, 11)


async def test_echo_prefix_and_content_parts(register: Register) -> None:
    register(handler("offline_echo.py", "OfflineEchoHandler", prefix="Echo: "))
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "second"}]},
    ]
    response = await chat(None, messages=messages)
    assert response.choices[0].message.content == "Echo: second"


async def test_echo_streams_word_by_word(register: Register) -> None:
    register(handler("offline_echo.py", "OfflineEchoHandler"))
    chunks = await stream(None)
    words = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert words == ["You", " said:", " hello", " there"]
    assert finish_of(chunks) == ["stop"]
    assert usage_of(chunks[-1]) == (2, 4, 6)
    cut = await stream(None, max_tokens=2)
    assert (text_of(cut), finish_of(cut)) == ("You said:", ["length"])


async def test_runner_style_keywords_win(
    generate: tuple[GenerateProvider, str],
) -> None:
    """The runner passes each parameter as a keyword too; handlers read it from there first."""
    provider, url = generate
    flat = {"optional_params": {"temperature": 0.3, "max_tokens": 5}, "temperature": 0.9}
    await handler("proprietary_generate.py", "ProprietaryGenerateHandler").acompletion(
        model="m", messages=HELLO, api_base=url, custom_llm_provider="x", headers={}, **flat
    )
    assert provider.received[0].body["temperature"] == 0.9
    echo = handler("offline_echo.py", "OfflineEchoHandler")
    response = await echo.acompletion(
        model="m", messages=HELLO, api_base=None, optional_params={}, max_tokens=1
    )
    assert response.choices[0].message.content == "You"


# --- config/ -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file_name", "alias"),
    [
        ("offline-echo.json", "Offline Echo"),
        ("proprietary-generate.json", "Proprietary Generate"),
        ("session-protocol.json", "Session Protocol"),
        ("hmac-signed.json", "HMAC Signed"),
    ],
)
def test_example_integration_files_load(file_name: str, alias: str) -> None:
    integration = read_integration(REPO / "config" / file_name, {})
    assert [m.caller_alias for m in integration.model_properties] == [alias]
    config = integration.custom_llm_config
    assert config is not None
    instance = handler(config.file_name, config.class_name, **config.init_kwargs)
    assert isinstance(instance, CustomLLM)
