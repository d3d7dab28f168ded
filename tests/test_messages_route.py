"""``POST /v1/messages``: the official Anthropic SDK calling any chat alias (an
OpenAI-compatible endpoint, an Anthropic-format one, a handler), streams and tool use
included, with its own key header and its own error shape."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from .fake_formats import AnthropicProvider
from .fakes import Upstream
from .helpers import (
    ECHO_HANDLER,
    Runner,
    both_call_paths,
    handler_integration,
    integration,
    serve,
    start_runner,
    write,
)

call_path = both_call_paths
HELLO = [{"role": "user", "content": "Hello there"}]
WEATHER = {
    "name": "weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def sdk(runner: Runner, key: str = "unused") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=runner.url, api_key=key, max_retries=0)


@pytest.fixture
def plain(runner: Runner, upstream: Upstream) -> Runner:
    spec = integration(
        upstream,
        num_retries=0,
        model_properties=[
            {
                "name": "model-a",
                "alias": "Model A",
                "supported_parameters": ["max_tokens", "temperature", "stop"],
            },
            {"name": "emb", "alias": "Embed", "type": "embedding"},
        ],
    )
    assert runner.put("plain", spec).status_code == 201
    return runner


def test_an_openai_compatible_alias_answers_in_anthropics_shape(plain: Runner, upstream: Upstream):
    message = sdk(plain).messages.create(
        model="Model A",
        max_tokens=50,
        system="Be brief.",
        messages=HELLO,
        extra_body={"temperature": 0.3},  # the SDK's newest versions no longer take it
    )
    assert message.type == "message" and message.role == "assistant"
    assert message.model == "Model A"
    assert message.content[0].type == "text"
    assert message.content[0].text == "reply from model-a"
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (3, 3)
    sent = upstream.last.body
    assert sent["model"] == "model-a"
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello there"},
    ]
    assert sent["max_tokens"] == 50 and sent["temperature"] == 0.3


def test_a_stream_comes_as_anthropics_events(plain: Runner, upstream: Upstream):
    with sdk(plain).messages.stream(model="Model A", max_tokens=50, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "reply from model-a"
    assert final.model == "Model A"
    assert final.stop_reason == "end_turn"
    assert upstream.last.body["stream"] is True


def test_an_anthropic_key_header_is_the_callers_runner_key(config_dir: Path, upstream: Upstream):
    with start_runner(config_dir, api_keys="sk-runner-1") as runner:
        runner.http.headers["authorization"] = "Bearer sk-runner-1"
        runner.put("plain", integration(upstream))
        del runner.http.headers["authorization"]
        message = sdk(runner, "sk-runner-1").messages.create(
            model="Model A", max_tokens=10, messages=HELLO
        )
        assert message.content[0].text == "reply from model-a"
        with pytest.raises(anthropic.AuthenticationError):
            sdk(runner, "sk-wrong").messages.create(model="Model A", max_tokens=10, messages=HELLO)


def test_refusals_come_in_anthropics_error_shape(plain: Runner, upstream: Upstream):
    with pytest.raises(anthropic.NotFoundError) as missing:
        sdk(plain).messages.create(model="No Such", max_tokens=10, messages=HELLO)
    assert "No Such" in str(missing.value)
    with pytest.raises(anthropic.BadRequestError) as wrong:
        sdk(plain).messages.create(model="Embed", max_tokens=10, messages=HELLO)
    assert "/v1/embeddings" in str(wrong.value)
    raw = plain.http.post("/v1/messages", json={"model": "Model A", "messages": "hi"})
    assert raw.status_code == 400
    assert raw.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": raw.json()["error"]["message"]},
        "request_id": raw.headers["x-request-id"],
    }
    assert "'messages'" in raw.json()["error"]["message"]
    upstream.failures["model-a"] = [503]
    with pytest.raises(anthropic.InternalServerError) as down:
        sdk(plain).messages.create(model="Model A", max_tokens=10, messages=HELLO)
    assert down.value.status_code == 503
    assert down.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    assert upstream.received[-1].body["model"] == "model-a"


@pytest.fixture(scope="module")
def _claude() -> Iterator[AnthropicProvider]:
    provider = AnthropicProvider()
    with serve(provider.app()) as url:
        provider.url = url
        yield provider


@pytest.fixture
def claude(runner: Runner, _claude: AnthropicProvider) -> AnthropicProvider:
    _claude.reset()
    spec = {
        "authentication_type": "api_key",
        "api_key_header": "x-api-key",
        "api_key_value": "sk-ant-upstream",
        "endpoint": f"{_claude.url}/v1",
        "format": "anthropic",
        "num_retries": 0,
        "model_properties": [
            {
                "name": "claude-sonnet-4-5",
                "alias": "Claude",
                "supported_parameters": ["max_tokens", "tools", "tool_choice"],
            }
        ],
    }
    assert runner.put("claude", spec).status_code == 201
    return _claude


def _tool_round(client: anthropic.Anthropic, messages: list[dict[str, Any]], stream: bool) -> Any:
    if not stream:
        return client.messages.create(
            model="Claude", max_tokens=100, tools=[WEATHER], messages=messages
        )
    with client.messages.stream(
        model="Claude", max_tokens=100, tools=[WEATHER], messages=messages
    ) as events:
        return events.get_final_message()


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_tool_use_round_trip(runner: Runner, claude: AnthropicProvider, stream: bool):
    client = sdk(runner)
    first = _tool_round(client, HELLO, stream)
    assert first.stop_reason == "tool_use"
    use = next(block for block in first.content if block.type == "tool_use")
    assert (use.name, use.input) == ("weather", {"city": "Oslo"})
    # The upstream got the tool as Anthropic defines it, after two translations.
    assert claude.last.body["tools"][0]["name"] == "weather"
    assert claude.last.body["tools"][0]["input_schema"]["properties"] == {
        "city": {"type": "string"}
    }
    follow_up = [
        *HELLO,
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "Sunny"}],
        },
    ]
    second = _tool_round(client, follow_up, stream)
    assert second.stop_reason == "end_turn"
    assert second.content[0].text == "Claude says: Sunny"
    result = claude.last.body["messages"][-1]["content"][0]
    assert result["type"] == "tool_result" and result["tool_use_id"] == use.id


def test_a_handler_alias_answers_too(config_dir: Path, handler_dir: Path):
    write(handler_dir, "echo.py", ECHO_HANDLER)
    with start_runner(
        config_dir, custom_llms_enabled=True, custom_llms_directory=handler_dir
    ) as runner:
        runner.put("echo", handler_integration("echo.py", "Echo"))
        message = sdk(runner).messages.create(model="Handled", max_tokens=10, messages=HELLO)
        assert message.content[0].text == "v1:m:Hello there"
        with sdk(runner).messages.stream(model="Handled", max_tokens=10, messages=HELLO) as stream:
            assert "".join(stream.text_stream) == "v1:m:Hello there"
