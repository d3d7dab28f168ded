"""Endpoints that speak another wire format than OpenAI's, chosen by ``format``: the exact
requests the provider expects, answers and streams back in OpenAI's shape, tool calls,
and the provider's errors in the runner's categories."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from .fake_formats import (
    AnthropicProvider,
    AzureProvider,
    FakeProvider,
    GeminiProvider,
    OllamaProvider,
    ResponsesProvider,
)
from .helpers import Runner, both_call_paths, oauth2_fields, serve

call_path = both_call_paths

HELLO = [{"role": "user", "content": "Hello there"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.fixture(scope="module")
def _fakes() -> Iterator[dict[str, FakeProvider]]:
    """One loopback server per provider format, for the whole module."""
    fakes: dict[str, FakeProvider] = {
        "anthropic": AnthropicProvider(),
        "azure": AzureProvider(),
        "gemini": GeminiProvider(),
        "ollama": OllamaProvider(),
        "responses": ResponsesProvider(),
    }
    with contextlib.ExitStack() as stack:
        for fake in fakes.values():
            fake.url = stack.enter_context(serve(fake.app()))
        yield fakes


def _fresh(fakes: dict[str, FakeProvider], name: str) -> Any:
    fakes[name].reset()
    return fakes[name]


@pytest.fixture
def anthropic(_fakes: dict[str, FakeProvider]) -> AnthropicProvider:
    return _fresh(_fakes, "anthropic")


@pytest.fixture
def azure(_fakes: dict[str, FakeProvider]) -> AzureProvider:
    return _fresh(_fakes, "azure")


@pytest.fixture
def gemini(_fakes: dict[str, FakeProvider]) -> GeminiProvider:
    return _fresh(_fakes, "gemini")


@pytest.fixture
def responses(_fakes: dict[str, FakeProvider]) -> ResponsesProvider:
    return _fresh(_fakes, "responses")


@pytest.fixture
def ollama(_fakes: dict[str, FakeProvider]) -> OllamaProvider:
    return _fresh(_fakes, "ollama")


def claude(provider: AnthropicProvider, **overrides: Any) -> dict[str, Any]:
    return {
        "authentication_type": "api_key",
        "api_key_header": "x-api-key",
        "api_key_value": "sk-ant-test-0123456789",
        "endpoint": f"{provider.url}/v1",
        "format": "anthropic",
        "num_retries": 0,
        "model_properties": [
            {
                "name": "claude-sonnet-4-5",
                "alias": "Claude",
                "supported_parameters": ["max_tokens", "temperature", "tools", "tool_choice"],
            }
        ],
        **overrides,
    }


def client(runner: Runner) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{runner.url}/v1", api_key="unused", max_retries=0)


def test_anthropic_gets_the_messages_api_request_it_expects(
    runner: Runner, anthropic: AnthropicProvider
):
    spec = claude(anthropic, custom_header_mapping={"job_id": "X-Job"})
    assert runner.put("claude", spec).status_code == 201, runner.put("claude", spec).text
    reply = client(runner).chat.completions.create(
        model="Claude",
        messages=[{"role": "system", "content": "Be brief."}, *HELLO],
        max_tokens=50,
        temperature=0.2,
        extra_body={"metadata": {"job_id": "job-7"}},
    )
    assert reply.model == "Claude"
    assert reply.choices[0].message.content == "Claude says: Hello there"
    assert reply.choices[0].finish_reason == "stop"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (11, 7)
    sent = anthropic.last
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == "sk-ant-test-0123456789"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["x-job"] == "job-7"
    assert sent.body["model"] == "claude-sonnet-4-5"
    assert sent.body["max_tokens"] == 50 and sent.body["temperature"] == 0.2
    assert sent.body["system"] in ("Be brief.", [{"type": "text", "text": "Be brief."}])
    assert [m["role"] for m in sent.body["messages"]] == ["user"]


def test_anthropic_version_is_the_integrations_and_fixed_headers_come_last(
    runner: Runner, anthropic: AnthropicProvider
):
    spec = claude(
        anthropic,
        endpoint=f"{anthropic.url}/v1/messages",  # a pasted full path works too
        anthropic_version="2024-10-22",
        headers={"anthropic-beta": "tools-2024"},
    )
    runner.put("claude", spec)
    assert runner.chat("Claude").status_code == 200
    assert anthropic.last.path == "/v1/messages"
    assert anthropic.last.headers["anthropic-version"] == "2024-10-22"
    assert anthropic.last.headers["anthropic-beta"] == "tools-2024"


def test_an_anthropic_stream_comes_back_as_openai_chunks(
    runner: Runner, anthropic: AnthropicProvider
):
    runner.put("claude", claude(anthropic))
    chunks = list(
        client(runner).chat.completions.create(model="Claude", messages=HELLO, stream=True)
    )
    assert anthropic.last.body["stream"] is True
    assert {c.model for c in chunks} == {"Claude"}
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Claude says: Hello there"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_tool_call_round_trip_through_anthropic(
    runner: Runner, anthropic: AnthropicProvider, stream: bool
):
    runner.put("claude", claude(anthropic))
    asked = [{"role": "user", "content": "Weather in Oslo?"}]
    if stream:
        chunks = list(
            client(runner).chat.completions.create(
                model="Claude", messages=asked, tools=TOOLS, stream=True
            )
        )
        deltas = [c.choices[0].delta for c in chunks if c.choices]
        calls = [t for d in deltas for t in d.tool_calls or []]
        call_id, name = calls[0].id, calls[0].function.name
        arguments = "".join(t.function.arguments or "" for t in calls)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
    else:
        reply = client(runner).chat.completions.create(model="Claude", messages=asked, tools=TOOLS)
        [call] = reply.choices[0].message.tool_calls
        call_id, name, arguments = call.id, call.function.name, call.function.arguments
        finish = reply.choices[0].finish_reason
    assert (call_id, name, json.loads(arguments), finish) == (
        "toolu_01",
        "weather",
        {"city": "Oslo"},
        "tool_calls",
    )
    assert anthropic.last.body["tools"][0]["name"] == "weather"
    assert "input_schema" in anthropic.last.body["tools"][0]
    answered = client(runner).chat.completions.create(
        model="Claude",
        tools=TOOLS,
        messages=[
            *asked,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call_id, "content": "Sunny, 21 C"},
        ],
    )
    assert answered.choices[0].message.content == "Claude says: Sunny, 21 C"
    [result] = [
        part
        for message in anthropic.last.body["messages"]
        if isinstance(message["content"], list)
        for part in message["content"]
        if part.get("type") == "tool_result"
    ]
    assert result["tool_use_id"] == "toolu_01"


@pytest.mark.parametrize(
    ("upstream_status", "status", "code"),
    [
        (400, 400, "upstream_bad_request"),
        (401, 502, "upstream_credentials_rejected"),
        (429, 429, "upstream_rate_limited"),
        (500, 503, "upstream_unavailable"),
    ],
)
def test_anthropic_errors_fall_in_the_runners_categories(
    runner: Runner, anthropic: AnthropicProvider, upstream_status: int, status: int, code: str
):
    runner.put("claude", claude(anthropic))
    anthropic.fail_status = upstream_status
    response = runner.chat("Claude")
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert "'Claude'" in error["message"] and "'claude'" in error["message"]
    assert "sk-ant-test" not in response.text


def test_oauth2_credentials_reach_an_anthropic_format_endpoint(
    runner: Runner, anthropic: AnthropicProvider, token_server
):
    spec = claude(anthropic, **oauth2_fields(token_server))
    for field in ("api_key_header", "api_key_value"):
        spec.pop(field)
    assert runner.put("claude", spec).status_code == 201
    assert runner.chat("Claude").status_code == 200
    assert anthropic.last.headers["authorization"].startswith("Bearer ")
    assert "sk-ant" not in json.dumps(anthropic.last.headers)


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (
            {"format": "bedrock"},
            "format",
            "'openai', 'azure', 'anthropic', 'gemini', 'ollama' or 'openai-responses'",
        ),
        ({"format": "azure", "api_version": "v2"}, "api_version", "2024-10-21"),
        ({"api_version": "2024-10-21"}, "api_version", '"format": "azure"'),
        ({"format": "anthropic", "anthropic_version": "latest"}, "anthropic_version", "2023-06-01"),
        ({"anthropic_version": "2023-06-01"}, "anthropic_version", '"format": "anthropic"'),
    ],
)
def test_format_settings_are_refused_with_the_field_and_the_fix(
    runner: Runner, anthropic: AnthropicProvider, change: dict[str, Any], field: str, words: str
):
    spec = {**claude(anthropic), "format": "openai", **change}
    response = runner.put("claude", spec)
    assert response.status_code == 422, response.text
    [problem] = response.json()["error"]["problems"]
    assert problem["field"] == field and words in problem["message"]


def test_models_say_how_each_model_is_reached(runner: Runner, anthropic: AnthropicProvider):
    runner.put("claude", claude(anthropic))
    runner.put(
        "plain", {**claude(anthropic), "format": "openai", "model_properties": [{"name": "p"}]}
    )
    listed = {m["id"]: m for m in runner.http.get("/v1/models").json()["data"]}
    assert (listed["Claude"]["format"], listed["Claude"]["type"]) == ("anthropic", "chat")
    assert (listed["p"]["format"], listed["p"]["owned_by"]) == ("openai", "plain")


def llama(provider: OllamaProvider, **overrides: Any) -> dict[str, Any]:
    return {
        "authentication_type": "none",
        "endpoint": f"{provider.url}/api",
        "format": "ollama",
        "num_retries": 0,
        "model_properties": [
            {"name": "llama3.2", "alias": "Llama", "supported_parameters": ["max_tokens", "tools"]}
        ],
        **overrides,
    }


def test_ollama_gets_its_chat_request_and_answers_in_openai_shape(
    runner: Runner, ollama: OllamaProvider
):
    assert runner.put("llama", llama(ollama, headers={"X-Team": "evals"})).status_code == 201
    reply = client(runner).chat.completions.create(model="Llama", messages=HELLO, max_tokens=20)
    assert (reply.model, reply.choices[0].message.content) == ("Llama", "Ollama says: Hello there")
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (9, 4)
    sent = ollama.last
    assert sent.path == "/api/chat"
    assert sent.body["model"] == "llama3.2" and sent.body["stream"] is False
    assert sent.body["options"]["num_predict"] == 20
    assert sent.headers["x-team"] == "evals"
    assert "authorization" not in sent.headers  # "none": not even LiteLLM's placeholder


def test_an_ollama_stream_of_json_lines_comes_back_as_openai_chunks(
    runner: Runner, ollama: OllamaProvider
):
    runner.put("llama", llama(ollama))
    answer = client(runner).chat.completions.create(model="Llama", messages=HELLO, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in answer if c.choices)
    assert text.strip() == "Ollama says: Hello there"
    assert ollama.last.body["stream"] is True


def test_an_ollama_tool_call_comes_back_as_tool_calls(runner: Runner, ollama: OllamaProvider):
    runner.put("llama", llama(ollama))
    reply = client(runner).chat.completions.create(
        model="Llama", messages=[{"role": "user", "content": "Weather?"}], tools=TOOLS
    )
    [call] = reply.choices[0].message.tool_calls
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "weather",
        {"city": "Oslo"},
    )
    assert ollama.last.body["tools"][0]["function"]["name"] == "weather"


@pytest.mark.parametrize(("upstream_status", "status"), [(404, 404), (500, 503)])
def test_ollama_errors_fall_in_the_runners_categories(
    runner: Runner, ollama: OllamaProvider, upstream_status: int, status: int
):
    runner.put("llama", llama(ollama))
    ollama.fail_status = upstream_status
    response = runner.chat("Llama")
    assert response.status_code == status, response.text
    assert "'Llama'" in response.json()["error"]["message"]


def flash(provider: GeminiProvider, **overrides: Any) -> dict[str, Any]:
    return {
        "authentication_type": "api_key",
        "api_key_header": "x-goog-api-key",
        "api_key_value": "goog-test-0123456789",
        "endpoint": f"{provider.url}/v1beta",
        "format": "gemini",
        "num_retries": 0,
        "model_properties": [
            {
                "name": "gemini-2.5-flash",
                "alias": "Flash",
                "supported_parameters": ["max_tokens", "tools"],
            }
        ],
        **overrides,
    }


def test_gemini_gets_generate_content_and_answers_in_openai_shape(
    runner: Runner, gemini: GeminiProvider
):
    assert runner.put("flash", flash(gemini)).status_code == 201
    reply = client(runner).chat.completions.create(model="Flash", messages=HELLO, max_tokens=30)
    assert (reply.model, reply.choices[0].message.content) == ("Flash", "Gemini says: Hello there")
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (5, 3)
    sent = gemini.last
    assert sent.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent.headers["x-goog-api-key"] == "goog-test-0123456789"
    assert sent.body["contents"] == [{"role": "user", "parts": [{"text": "Hello there"}]}]
    assert sent.body["generationConfig"]["max_output_tokens"] == 30


def test_a_gemini_stream_and_a_keyless_gemini_endpoint(runner: Runner, gemini: GeminiProvider):
    keyless = flash(gemini, authentication_type="none")
    for field in ("api_key_header", "api_key_value"):
        keyless.pop(field)
    runner.put("flash", keyless)
    answer = client(runner).chat.completions.create(model="Flash", messages=HELLO, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in answer if c.choices)
    assert text == "Gemini says: Hello there"
    assert gemini.last.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert "x-goog-api-key" not in gemini.last.headers  # not even LiteLLM's placeholder


def test_a_gemini_function_call_comes_back_as_tool_calls(runner: Runner, gemini: GeminiProvider):
    runner.put("flash", flash(gemini))
    reply = client(runner).chat.completions.create(
        model="Flash", messages=[{"role": "user", "content": "Weather?"}], tools=TOOLS
    )
    [call] = reply.choices[0].message.tool_calls
    assert call.function.name == "weather"
    assert json.loads(call.function.arguments) == {"city": "Oslo"}
    declared = gemini.last.body["tools"][0]["function_declarations"][0]
    assert declared["name"] == "weather"


@pytest.mark.parametrize(
    ("upstream_status", "status", "code"),
    [(400, 400, "upstream_bad_request"), (429, 429, "upstream_rate_limited")],
)
def test_gemini_errors_fall_in_the_runners_categories(
    runner: Runner, gemini: GeminiProvider, upstream_status: int, status: int, code: str
):
    runner.put("flash", flash(gemini))
    gemini.fail_status = upstream_status
    response = runner.chat("Flash")
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert "goog-test" not in response.text


def gpt_on_azure(provider: AzureProvider, **overrides: Any) -> dict[str, Any]:
    return {
        "authentication_type": "api_key",
        "api_key_header": "api-key",
        "api_key_value": "azure-test-0123456789",
        "endpoint": provider.url,
        "format": "azure",
        "num_retries": 0,
        "model_properties": [{"name": "gpt-4o-prod", "alias": "GPT on Azure"}],
        **overrides,
    }


def test_azure_gets_its_deployment_path_version_and_key(runner: Runner, azure: AzureProvider):
    assert runner.put("azure", gpt_on_azure(azure, api_version="2025-01-01-preview")).is_success
    reply = client(runner).chat.completions.create(model="GPT on Azure", messages=HELLO)
    assert (reply.model, reply.choices[0].message.content) == (
        "GPT on Azure",
        "Azure says: Hello there",
    )
    sent = azure.last
    assert sent.path == (
        "/openai/deployments/gpt-4o-prod/chat/completions?api-version=2025-01-01-preview"
    )
    assert sent.headers["api-key"] == "azure-test-0123456789"
    assert "authorization" not in sent.headers


def test_an_azure_stream_with_the_default_version_and_an_oauth2_token(
    runner: Runner, azure: AzureProvider, token_server
):
    spec = gpt_on_azure(azure, **oauth2_fields(token_server))
    for field in ("api_key_header", "api_key_value"):
        spec.pop(field)
    runner.put("azure", spec)
    answer = client(runner).chat.completions.create(
        model="GPT on Azure", messages=HELLO, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in answer if c.choices) == (
        "Azure says: Hello there"
    )
    assert azure.last.path.endswith("?api-version=2024-10-21")
    assert azure.last.headers["authorization"].startswith("Bearer ")
    assert "api-key" not in azure.last.headers  # LiteLLM's placeholder key is not sent


def test_azure_errors_fall_in_the_runners_categories(runner: Runner, azure: AzureProvider):
    runner.put("azure", gpt_on_azure(azure))
    azure.fail_status = 429
    response = runner.chat("GPT on Azure")
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "upstream_rate_limited"


def responses_only(provider: ResponsesProvider, **overrides: Any) -> dict[str, Any]:
    return {
        "authentication_type": "api_key",
        "api_key_header": "Authorization",
        "api_key_value": "Bearer sk-responses-5",
        "endpoint": f"{provider.url}/v1",
        "format": "openai-responses",
        "num_retries": 0,
        "model_properties": [
            {
                "name": "gpt-5-pro",
                "alias": "Pro",
                "supported_parameters": ["max_tokens", "temperature", "tools", "tool_choice"],
            }
        ],
        **overrides,
    }


def test_a_responses_only_upstream_gets_the_responses_api(
    runner: Runner, responses: ResponsesProvider
):
    spec = responses_only(responses, custom_header_mapping={"job_id": "X-Job"})
    assert runner.put("pro", spec).status_code == 201, runner.put("pro", spec).text
    reply = client(runner).chat.completions.create(
        model="Pro",
        messages=[{"role": "system", "content": "Be brief."}, *HELLO],
        max_tokens=50,
        extra_body={"metadata": {"job_id": "job-9"}},
    )
    assert reply.model == "Pro"
    assert reply.choices[0].message.content == "Responses says: Hello there"
    assert reply.choices[0].finish_reason == "stop"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (9, 4)
    sent = responses.last
    assert sent.path == "/v1/responses"
    assert sent.headers["authorization"] == "Bearer sk-responses-5"
    assert sent.headers["x-job"] == "job-9"
    assert sent.body["model"] == "gpt-5-pro"
    assert sent.body["instructions"] == "Be brief."
    assert sent.body["max_output_tokens"] == 50
    assert sent.body["input"] == [
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "Hello there"}],
        }
    ]


def test_a_responses_stream_comes_back_as_chat_chunks(runner: Runner, responses: ResponsesProvider):
    runner.put("pro", responses_only(responses))
    chunks = list(
        client(runner).chat.completions.create(
            model="Pro", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Responses says: Hello there"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens == 4
    assert responses.last.body["stream"] is True
    assert "stream_options" not in responses.last.body


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_tool_call_round_trip_through_the_responses_api(
    runner: Runner, responses: ResponsesProvider, stream: bool
):
    runner.put("pro", responses_only(responses))
    sdk = client(runner)
    if stream:
        chunks = list(
            sdk.chat.completions.create(model="Pro", messages=HELLO, tools=TOOLS, stream=True)
        )
        calls = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or []]
        call_id, name = calls[0].id, calls[0].function.name
        arguments = "".join(t.function.arguments or "" for t in calls)
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    else:
        reply = sdk.chat.completions.create(model="Pro", messages=HELLO, tools=TOOLS)
        call = reply.choices[0].message.tool_calls[0]
        call_id, name, arguments = call.id, call.function.name, call.function.arguments
        assert reply.choices[0].finish_reason == "tool_calls"
    # LiteLLM names the call by its item id or its call id; either way, the follow-up
    # below must send the same one back as the output's call_id.
    assert call_id in ("call_1", "fc_1")
    assert (name, json.loads(arguments)) == ("weather", {"city": "Oslo"})
    assert responses.last.body["tools"] == [
        {
            "type": "function",
            "name": "weather",
            "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    follow_up = [
        *HELLO,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "Sunny"},
    ]
    reply = sdk.chat.completions.create(model="Pro", messages=follow_up, tools=TOOLS)
    assert reply.choices[0].message.content == "Responses says: Sunny"
    assert responses.last.body["input"][-1]["type"] == "function_call_output"
    assert responses.last.body["input"][-1]["call_id"] == call_id
    assert responses.last.body["input"][-2]["call_id"] == call_id


@pytest.mark.parametrize(
    ("upstream_status", "status", "code"),
    [(429, 429, "upstream_rate_limited"), (503, 503, "upstream_unavailable"),
     (401, 502, "upstream_credentials_rejected")],
)  # fmt: skip
def test_responses_api_errors_fall_in_the_runners_categories(
    runner: Runner, responses: ResponsesProvider, upstream_status: int, status: int, code: str
):
    runner.put("pro", responses_only(responses))
    responses.fail_status = upstream_status
    response = runner.chat("Pro")
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert "sk-responses" not in response.text


def test_oauth2_credentials_reach_a_responses_api_endpoint(
    runner: Runner, responses: ResponsesProvider, token_server
):
    spec = responses_only(responses, **oauth2_fields(token_server))
    for field in ("api_key_header", "api_key_value"):
        spec.pop(field)
    assert runner.put("pro", spec).status_code == 201
    assert runner.chat("Pro").status_code == 200
    assert responses.last.headers["authorization"].startswith("Bearer ")
    assert responses.last.headers["authorization"] != "Bearer sk-responses-5"


@pytest.mark.parametrize("format", ["anthropic", "openai-responses"])
def test_translated_formats_skip_litellms_call_machinery_on_the_fast_path(
    runner: Runner,
    anthropic: AnthropicProvider,
    responses: ResponsesProvider,
    call_path: str,
    format: str,
    monkeypatch: pytest.MonkeyPatch,
):
    """The runner sends these itself with LiteLLM's translation; only
    RUNNER_FAST_PATH=false sends anthropic through litellm.acompletion (and
    openai-responses never: LiteLLM's route for it bypasses the runner's client)."""
    import litellm

    calls = []
    real = litellm.acompletion

    async def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("model"))
        return await real(*args, **kwargs)

    monkeypatch.setattr(litellm, "acompletion", counted)
    spec = claude(anthropic) if format == "anthropic" else responses_only(responses)
    runner.put("translated", spec)
    alias = "Claude" if format == "anthropic" else "Pro"
    assert runner.chat(alias).status_code == 200
    via_litellm = format == "anthropic" and call_path == "litellm"
    assert len(calls) == (1 if via_litellm else 0)


PIXEL = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5E"
    "rkJggg=="
)
CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def _image_and_schema(runner: Runner, alias: str, fake: FakeProvider) -> dict[str, Any]:
    """Call ``alias`` with an image part, a JSON schema and max_tokens; what ``fake`` got."""
    response = runner.http.post(
        "/v1/chat/completions",
        json={
            "model": alias,
            "max_tokens": 30,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "a", "schema": CITY},
            },
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Where?"},
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:image/png;base64,{PIXEL}"},
                        },
                    ],
                }
            ],
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["model"] == alias
    return fake.last.body


def _json_mode_model(spec: dict[str, Any]) -> dict[str, Any]:
    spec["model_properties"][0]["supported_parameters"] = ["max_tokens", "response_format"]
    return spec


def test_images_and_json_schemas_reach_each_format_in_its_own_shape(
    runner: Runner,
    anthropic: AnthropicProvider,
    gemini: GeminiProvider,
    ollama: OllamaProvider,
    responses: ResponsesProvider,
):
    runner.put("claude", _json_mode_model(claude(anthropic)))
    sent = _image_and_schema(runner, "Claude", anthropic)
    assert sent["messages"][0]["content"][1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PIXEL},
    }
    assert sent["output_format"]["schema"]["properties"] == CITY["properties"]
    assert sent["max_tokens"] == 30
    assert not {"response_format", "json_mode"} & set(sent)

    runner.put("flash", _json_mode_model(flash(gemini)))
    sent = _image_and_schema(runner, "Flash", gemini)
    assert sent["contents"][0]["parts"][1] == {
        "inline_data": {"data": PIXEL, "mime_type": "image/png"}
    }
    config = sent["generationConfig"]
    assert config["response_mime_type"] == "application/json"
    assert config["response_json_schema"] == CITY
    assert config["max_output_tokens"] == 30
    # Mapped parameters are not also sent as they came, which Gemini would refuse.
    assert not {"response_format", "max_tokens"} & set(config)

    runner.put("llama", _json_mode_model(llama(ollama)))
    sent = _image_and_schema(runner, "Llama", ollama)
    assert sent["messages"][0]["images"] == [PIXEL]
    assert sent["format"] == CITY
    assert not {"response_format", "max_tokens"} & (set(sent["options"]) | set(sent))
    assert sent["options"]["num_predict"] == 30

    runner.put("pro", _json_mode_model(responses_only(responses)))
    sent = _image_and_schema(runner, "Pro", responses)
    assert sent["input"][0]["content"][1]["type"] == "input_image"
    assert sent["input"][0]["content"][1]["image_url"] == f"data:image/png;base64,{PIXEL}"
    assert sent["text"]["format"]["type"] == "json_schema"
    assert sent["text"]["format"]["schema"] == CITY
