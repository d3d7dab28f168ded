"""The OpenAI-compatible surface: routing by alias, parameters, headers, streaming, errors."""

from __future__ import annotations

import json

import openai
import pytest

from .fakes import Upstream
from .helpers import (
    Runner,
    both_call_paths,  # noqa: F401  (every test here runs on both paths)
    free_port,
    integration,
    start_runner,
)


def test_alias_with_spaces_routes_to_upstream_name(runner: Runner, upstream: Upstream):
    runner.put(
        "acme",
        integration(
            upstream,
            model_properties=[
                {"name": "gpt-5.2", "alias": "GPT 5.2"},
                {"name": "meta-llama/Llama-4-Scout-17B-16E-Instruct", "alias": "Llama 4 Scout"},
            ],
        ),
    )
    response = runner.chat("Llama 4 Scout")
    assert response.status_code == 200, response.text
    assert upstream.last.body["model"] == "meta-llama/Llama-4-Scout-17B-16E-Instruct"
    assert upstream.last.path == "/v1/chat/completions"
    assert response.json()["model"] == "Llama 4 Scout"
    assert response.json()["choices"][0]["message"]["content"] == (
        "reply from meta-llama/Llama-4-Scout-17B-16E-Instruct"
    )


def test_alias_defaults_to_name(runner: Runner, upstream: Upstream):
    runner.put("acme", integration(upstream, model_properties=[{"name": "plain-model"}]))
    assert runner.chat("plain-model").status_code == 200
    assert [m["id"] for m in runner.http.get("/v1/models").json()["data"]] == ["plain-model"]


@pytest.mark.parametrize("endpoint_suffix", ["", "/", "/chat/completions"])
def test_endpoint_gets_chat_completions_appended_once(
    runner: Runner, upstream: Upstream, endpoint_suffix: str
):
    runner.put("acme", integration(upstream, endpoint=upstream.url + endpoint_suffix))
    assert runner.chat("Model A").status_code == 200
    assert upstream.last.path == "/v1/chat/completions"


def test_integration_name_selects_default_model(runner: Runner, upstream: Upstream):
    models = [{"name": "first", "alias": "First"}, {"name": "second", "alias": "Second"}]
    runner.put(
        "with-default", integration(upstream, model_properties=models, default_model="second")
    )
    runner.put(
        "no-default",
        integration(
            upstream,
            model_properties=[
                {"name": "third", "alias": "Third"},
                {"name": "fourth", "alias": "Fourth"},
            ],
        ),
    )
    runner.chat("with-default")
    assert upstream.last.body["model"] == "second"
    runner.chat("no-default")
    assert upstream.last.body["model"] == "third"


def test_unsupported_parameters_are_dropped_and_reported(runner: Runner, upstream: Upstream):
    runner.put(
        "acme",
        integration(
            upstream,
            model_properties=[
                {"name": "m", "alias": "M", "supported_parameters": ["max_tokens", "temperature"]}
            ],
        ),
    )
    response = runner.chat("M", temperature=0.2, max_tokens=7, top_p=0.5, seed=3)
    assert response.status_code == 200
    sent = upstream.last.body
    assert sent["temperature"] == 0.2 and sent["max_tokens"] == 7
    assert "top_p" not in sent and "seed" not in sent
    assert response.headers["x-runner-dropped-params"] == "top_p,seed"


def test_default_parameter_list_applies_without_based_on(runner: Runner, upstream: Upstream):
    runner.put("acme", integration(upstream))
    response = runner.chat(
        "Model A",
        frequency_penalty=0.1,
        presence_penalty=0.2,
        stop=["x"],
        temperature=0.3,
        top_p=0.9,
        max_tokens=4,
        tools=[],
        n=2,
    )
    sent = upstream.last.body
    for name in (
        "frequency_penalty",
        "presence_penalty",
        "stop",
        "temperature",
        "top_p",
        "max_tokens",
    ):
        assert name in sent
    assert "tools" not in sent and "n" not in sent
    assert response.headers["x-runner-dropped-params"] == "tools,n"


def test_based_on_copies_builtin_parameters(runner: Runner, upstream: Upstream):
    runner.put(
        "acme",
        integration(
            upstream,
            model_properties=[{"name": "gpt-5.4", "alias": "GPT 5.4", "based_on": "gpt-5.4"}],
        ),
    )
    response = runner.chat("GPT 5.4", reasoning_effort="low", logit_bias={"1": 1})
    assert upstream.last.body["reasoning_effort"] == "low"
    assert "logit_bias" not in upstream.last.body
    assert response.headers["x-runner-dropped-params"] == "logit_bias"


def test_tools_reach_a_model_that_supports_them(runner: Runner, upstream: Upstream):
    runner.put(
        "acme",
        integration(
            upstream,
            model_properties=[{"name": "gpt-5.4", "alias": "GPT 5.4", "based_on": "gpt-5.4"}],
        ),
    )
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
            },
        }
    ]
    response = runner.chat("GPT 5.4", tools=tools, tool_choice="auto")
    assert response.status_code == 200, response.text
    assert upstream.last.body["tools"] == tools
    assert upstream.last.body["tool_choice"] == "auto"


def test_stop_sequences_in_the_list_lets_stop_through(runner: Runner, upstream: Upstream):
    runner.put(
        "acme",
        integration(
            upstream,
            model_properties=[
                {"name": "m", "alias": "M", "supported_parameters": ["stop_sequences"]}
            ],
        ),
    )
    runner.chat("M", stop=["END"])
    assert upstream.last.body["stop"] == ["END"]


def test_custom_header_mapping_from_metadata_and_user(runner: Runner, upstream: Upstream):
    mapping = {
        "job_id": "X-Job-Id",
        "user_id": "X-User-Id",
        "project_id": "X-Project",
        "run_id": "X-Run",
    }
    runner.put("acme", integration(upstream, custom_header_mapping=mapping))
    runner.chat(
        "Model A", metadata={"job_id": "j-1", "project_id": 42, "run_id": "r-9"}, user="alice"
    )
    headers = upstream.last.headers
    assert (headers["x-job-id"], headers["x-user-id"], headers["x-project"], headers["x-run"]) == (
        "j-1",
        "alice",
        "42",
        "r-9",
    )
    assert "metadata" not in upstream.last.body
    runner.chat("Model A", metadata={"user_id": "bob"}, user="alice")
    assert upstream.last.headers["x-user-id"] == "bob"
    assert "x-job-id" not in upstream.last.headers


def test_fixed_headers_override_everything(runner: Runner, upstream: Upstream):
    spec = integration(
        upstream,
        authentication_type="api_key",
        api_key_header="x-api-key",
        api_key_value="from-auth",
        custom_header_mapping={"job_id": "X-Job"},
        headers={"x-api-key": "from-headers", "X-Job": "fixed", "X-Team": "ml"},
    )
    runner.put("acme", spec)
    runner.chat("Model A", metadata={"job_id": "mapped"})
    headers = upstream.last.headers
    assert (headers["x-api-key"], headers["x-job"], headers["x-team"]) == (
        "from-headers",
        "fixed",
        "ml",
    )


def test_streaming_is_sse_ending_with_done(runner: Runner, upstream: Upstream):
    runner.put("acme", integration(upstream))
    body = {
        "model": "Model A",
        "stream": True,
        "messages": [{"role": "user", "content": "x"}],
        "logprobs": True,
    }
    with runner.http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-runner-dropped-params"] == "logprobs"
        events = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "reply from model-a"
    assert {c["model"] for c in chunks} == {"Model A"}
    assert upstream.last.body["stream"] is True


def test_stream_refused_at_start_is_a_plain_error_response(runner: Runner, upstream: Upstream):
    runner.put(
        "acme", integration(upstream, model_properties=[{"name": "status-500", "alias": "Failing"}])
    )
    body = {"model": "Failing", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    response = runner.http.post("/v1/chat/completions", json=body)
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "upstream_unavailable_error"


def test_stream_broken_midway_ends_with_an_error_event(runner: Runner, upstream: Upstream):
    runner.put(
        "acme",
        integration(upstream, model_properties=[{"name": "broken-stream", "alias": "Flaky"}]),
    )
    body = {"model": "Flaky", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    with runner.http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        events = [
            line.removeprefix("data: ")
            for line in response.iter_lines()
            if line.startswith("data: ")
        ]
    assert json.loads(events[0])["choices"][0]["delta"]["content"] == "reply"
    assert json.loads(events[-1])["error"]["type"] == "upstream_connection_error"
    assert "[DONE]" not in events
    assert runner.chat("Flaky").status_code == 200  # the runner keeps serving


def test_official_openai_client_non_streaming_and_streaming(runner: Runner, upstream: Upstream):
    runner.put(
        "acme", integration(upstream, model_properties=[{"name": "gpt-5.2", "alias": "GPT 5.2"}])
    )
    client = openai.OpenAI(base_url=f"{runner.url}/v1", api_key="unused")
    assert [m.id for m in client.models.list()] == ["GPT 5.2"]
    completion = client.chat.completions.create(
        model="GPT 5.2", messages=[{"role": "user", "content": "hi"}], temperature=0.1
    )
    assert completion.choices[0].message.content == "reply from gpt-5.2"
    assert completion.usage.total_tokens == 6
    stream = client.chat.completions.create(
        model="GPT 5.2", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == (
        "reply from gpt-5.2"
    )
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(
            model="GPT 5.3", messages=[{"role": "user", "content": "hi"}]
        )
    assert "GPT 5.2" in caught.value.message


def test_unknown_alias_is_404_with_close_aliases(runner: Runner, upstream: Upstream):
    runner.put(
        "acme",
        integration(
            upstream,
            model_properties=[
                {"name": "a", "alias": "Claude Opus 4.6"},
                {"name": "b", "alias": "GPT 5.2"},
            ],
        ),
    )
    response = runner.chat("Claude Opus 4.5")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert "'Claude Opus 4.6'" in error["message"]
    assert "GPT 5.2" not in error["message"]


@pytest.mark.parametrize(
    ("upstream_status", "runner_status", "error_type"),
    [
        (400, 400, "invalid_request_error"),
        (429, 429, "rate_limit_error"),
        (500, 503, "upstream_unavailable_error"),
        (403, 502, "upstream_authorization_error"),
    ],
)
def test_upstream_errors_map_to_openai_envelope(
    runner: Runner, upstream: Upstream, upstream_status: int, runner_status: int, error_type: str
):
    runner.put(
        "acme",
        integration(
            upstream, model_properties=[{"name": f"status-{upstream_status}", "alias": "Failing"}]
        ),
    )
    response = runner.chat("Failing")
    assert response.status_code == runner_status
    error = response.json()["error"]
    assert error["type"] == error_type
    assert "Failing" in error["message"] and "acme" in error["message"]
    assert runner.http.get("/health").status_code == 200


def test_unreachable_upstream_is_502(runner: Runner, upstream: Upstream):
    port = free_port()  # a port that nothing listens on
    runner.put("gone", integration(upstream, endpoint=f"http://127.0.0.1:{port}/v1"))
    response = runner.chat("Model A")
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_unreachable"


def test_slow_upstream_is_cut_off_with_504(config_dir, upstream: Upstream, call_path: str):
    upstream.slow_seconds = 3
    with start_runner(config_dir, upstream_timeout=0.5, fast_path=call_path == "direct") as runner:
        runner.put(
            "slow", integration(upstream, model_properties=[{"name": "slow", "alias": "Slow"}])
        )
        response = runner.chat("Slow")
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "timeout_error"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "Model A"}, "messages"),
        ({"model": "Model A", "messages": []}, "messages"),
    ],
)
def test_chat_requests_missing_a_field_are_422(runner: Runner, upstream: Upstream, body, param):
    runner.put("acme", integration(upstream))
    response = runner.http.post("/v1/chat/completions", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["param"] == param


def test_chat_body_that_is_not_json_is_400(runner: Runner):
    response = runner.http.post("/v1/chat/completions", content=b"{nope")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_each_call_path_is_really_taken(runner: Runner, upstream: Upstream, call_path: str):
    runner.put("acme", integration(upstream))
    runner.chat("Model A")
    # The OpenAI SDK, which LiteLLM drives, announces itself; the fast path does not.
    assert ("x-stainless-lang" in upstream.last.headers) == (call_path == "litellm")
