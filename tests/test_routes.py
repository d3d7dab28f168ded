"""The routes beyond chat: text completions, embeddings and rerank, each serving its model
``type``, on OpenAI-compatible endpoints, other formats and handlers; wrong routes and
wrong inputs refused with the fix."""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from .fake_formats import AzureProvider, GeminiProvider
from .fake_routes import OpenAIRoutesProvider, vector
from .helpers import Runner, both_call_paths, handler_integration, serve, start_runner, write

call_path = both_call_paths

MODELS = [
    {"name": "chat-1", "alias": "Chat"},
    {"name": "davinci-local", "alias": "Complete", "type": "completion"},
    {"name": "embed-local", "alias": "Embed", "type": "embedding"},
    {"name": "rerank-local", "alias": "Rank", "type": "rerank"},
]


@pytest.fixture(scope="module")
def _provider() -> Iterator[OpenAIRoutesProvider]:
    provider = OpenAIRoutesProvider()
    with serve(provider.app()) as url:
        provider.url = url
        yield provider


@pytest.fixture
def provider(_provider: OpenAIRoutesProvider) -> OpenAIRoutesProvider:
    _provider.reset()
    return _provider


@pytest.fixture
def served(runner: Runner, provider: OpenAIRoutesProvider) -> Runner:
    """A runner serving the provider's four models, one of each type."""
    spec = {
        "authentication_type": "api_key",
        "api_key_header": "Authorization",
        "api_key_value": "Bearer sk-upstream-123",
        "endpoint": f"{provider.url}/v1",
        "num_retries": 0,
        "model_properties": MODELS,
    }
    response = runner.put("local", spec)
    assert response.status_code == 201, response.text
    return runner


def client(runner: Runner) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{runner.url}/v1", api_key="unused", max_retries=0)


def floats(encoded: str) -> list[float]:
    raw = base64.b64decode(encoded)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def test_text_completions_whole_and_streamed(served: Runner, provider: OpenAIRoutesProvider):
    answer = client(served).completions.create(
        model="Complete", prompt="Say hi", max_tokens=5, temperature=0.1
    )
    assert answer.model == "Complete"
    assert answer.choices[0].text == "completed: Say hi"
    sent = provider.last
    assert sent.path == "/v1/completions"
    assert sent.headers["authorization"] == "Bearer sk-upstream-123"
    assert sent.body == {
        "model": "davinci-local",
        "prompt": "Say hi",
        "max_tokens": 5,
        "temperature": 0.1,
    }
    pieces = [
        c.choices[0].text
        for c in client(served).completions.create(model="Complete", prompt="Go", stream=True)
    ]
    assert "".join(pieces) == "completed: Go"
    assert provider.last.body["stream"] is True


def test_embeddings_as_floats_and_base64(served: Runner, provider: OpenAIRoutesProvider):
    sdk = client(served)
    # The SDK asks for base64 unless told otherwise, and decodes it itself.
    answer = sdk.embeddings.create(model="Embed", input=["one", "three"])
    assert answer.model == "Embed"
    assert [d.embedding for d in answer.data] == [vector("one", 0), vector("three", 1)]
    assert provider.last.path == "/v1/embeddings"
    assert provider.last.body == {
        "model": "embed-local",
        "input": ["one", "three"],
        "encoding_format": "base64",
    }
    answer = sdk.embeddings.create(
        model="Embed", input="single", dimensions=5, encoding_format="float"
    )
    assert answer.data[0].embedding == vector("single", 0, 5)
    assert provider.last.body["dimensions"] == 5
    raw = served.http.post(
        "/v1/embeddings", json={"model": "Embed", "input": "abc", "encoding_format": "base64"}
    ).json()
    assert floats(raw["data"][0]["embedding"]) == vector("abc", 0)


def test_rerank_in_the_cohere_shape(served: Runner, provider: OpenAIRoutesProvider):
    response = served.http.post(
        "/v1/rerank",
        json={
            "model": "Rank",
            "query": "capital of France",
            "documents": ["Berlin is in Germany", "Paris is the capital of France", "cats"],
            "top_n": 2,
        },
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["index"] for r in results] == [1, 0]
    assert provider.last.path == "/v1/rerank"
    assert provider.last.body["model"] == "rerank-local"
    assert provider.last.body["top_n"] == 2


def test_a_model_called_on_another_route_is_told_where_to_go(served: Runner):
    wrong = served.http.post("/v1/embeddings", json={"model": "Chat", "input": "x"})
    assert wrong.status_code == 400
    error = wrong.json()["error"]
    assert error["code"] == "wrong_route_for_model_type"
    assert "chat model" in error["message"] and "/v1/chat/completions" in error["message"]
    wrong = served.chat("Embed")
    assert wrong.status_code == 400
    assert "/v1/embeddings" in wrong.json()["error"]["message"]
    wrong = served.http.post("/v1/completions", json={"model": "Rank", "prompt": "x"})
    assert "/v1/rerank" in wrong.json()["error"]["message"]


@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        ("/v1/embeddings", {"model": "Embed", "input": 42}, "input"),
        ("/v1/embeddings", {"model": "Embed", "input": []}, "input"),
        ("/v1/embeddings", {"model": "Embed", "input": [1.5, 2.5]}, "input"),
        ("/v1/embeddings", {"model": "Embed", "input": {"text": "x"}}, "input"),
        ("/v1/embeddings", {"model": "Embed"}, "input"),
        ("/v1/embeddings", {"model": "Embed", "input": "x", "stream": True}, "stream"),
        ("/v1/completions", {"model": "Complete", "prompt": None}, "prompt"),
        ("/v1/rerank", {"model": "Rank", "query": "q"}, "documents"),
        ("/v1/rerank", {"model": "Rank", "query": "", "documents": ["d"]}, "query"),
        ("/v1/rerank", {"model": "Rank", "query": "q", "documents": [1]}, "documents"),
    ],
)
def test_inputs_of_the_wrong_type_are_refused_with_the_field(
    served: Runner, provider: OpenAIRoutesProvider, route: str, body: dict[str, Any], field: str
):
    response = served.http.post(route, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["param"] == field
    assert provider.received == []


def test_token_ids_are_valid_embedding_input(served: Runner, provider: OpenAIRoutesProvider):
    response = served.http.post("/v1/embeddings", json={"model": "Embed", "input": [[1, 2], [3]]})
    assert response.status_code == 200, response.text
    assert provider.last.body["input"] == [[1, 2], [3]]


def test_upstream_errors_on_other_routes_fall_in_the_runners_categories(
    runner: Runner, provider: OpenAIRoutesProvider
):
    spec = {
        "authentication_type": "none",
        "endpoint": f"{provider.url}/v1",
        "num_retries": 0,
        "model_properties": [{"name": "status-503", "alias": "Down", "type": "embedding"}],
    }
    runner.put("down", spec)
    response = runner.http.post("/v1/embeddings", json={"model": "Down", "input": "x"})
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "upstream_unavailable_error"


def test_models_list_each_models_type(served: Runner):
    listed = {m["id"]: m for m in served.http.get("/v1/models").json()["data"]}
    assert {alias: listed[alias]["type"] for alias in ("Chat", "Complete", "Embed", "Rank")} == {
        "Chat": "chat",
        "Complete": "completion",
        "Embed": "embedding",
        "Rank": "rerank",
    }


def test_types_a_format_cannot_serve_are_refused_with_the_field(runner: Runner):
    spec = {
        "authentication_type": "none",
        "endpoint": "http://127.0.0.1:9/v1",
        "format": "anthropic",
        "model_properties": [{"name": "claude", "type": "embedding"}],
    }
    response = runner.put("claude", spec)
    assert response.status_code == 422
    problem = response.json()["error"]["problems"][0]
    assert problem["field"] == "model_properties[0].type"
    assert "format openai" in problem["message"]
    spec["model_properties"] = [{"name": "m", "type": "image"}]
    spec["format"] = "openai"
    response = runner.put("claude", spec)
    assert response.status_code == 422
    assert "'chat', 'completion', 'embedding' or 'rerank'" in response.text


@pytest.fixture(scope="module")
def _others() -> Iterator[tuple[AzureProvider, GeminiProvider]]:
    azure, gemini = AzureProvider(), GeminiProvider()
    with serve(azure.app()) as azure_url, serve(gemini.app()) as gemini_url:
        azure.url, gemini.url = azure_url, gemini_url
        yield azure, gemini


def test_azure_embeddings_and_gemini_embeddings_refused(
    runner: Runner, _others: tuple[AzureProvider, GeminiProvider]
):
    azure, gemini = _others
    azure.reset()
    embedding = [{"name": "text-embedding-3-small", "alias": "AzureEmbed", "type": "embedding"}]
    runner.put(
        "azure",
        {
            "authentication_type": "api_key",
            "api_key_header": "api-key",
            "api_key_value": "az-key-42",
            "endpoint": azure.url,
            "format": "azure",
            "model_properties": embedding,
        },
    )
    answer = client(runner).embeddings.create(
        model="AzureEmbed", input=["hello"], encoding_format="float"
    )
    assert answer.data[0].embedding == [5.0, 0.0, 0.5]
    assert answer.model == "AzureEmbed"
    assert azure.last.path.startswith("/openai/deployments/text-embedding-3-small/embeddings?")
    assert azure.last.headers["api-key"] == "az-key-42"
    # LiteLLM 1.106 sends Gemini's embeddings with a client of its own, past the runner's
    # credentials and address checks: refused, with the way that works.
    refused = runner.put(
        "gemini",
        {
            "authentication_type": "none",
            "endpoint": f"{gemini.url}/v1beta",
            "format": "gemini",
            "model_properties": [{"name": "gemini-embedding-001", "type": "embedding"}],
        },
    )
    assert refused.status_code == 422
    assert "format openai" in refused.json()["error"]["problems"][0]["message"]
    assert gemini.received == []


EMBEDDING_HANDLER = """
from litellm import CustomLLM, EmbeddingResponse


class Embedder(CustomLLM):
    async def aembedding(self, model, input, model_response, optional_params, api_key=None,
                         **kwargs):
        size = optional_params.get("dimensions") or 2
        model_response.data = [
            {"object": "embedding", "index": i, "embedding": [float(len(text))] * size}
            for i, text in enumerate(input)
        ]
        model_response.model = model
        return model_response


class SyncEmbedder(CustomLLM):
    def embedding(self, model, input, model_response, optional_params, **kwargs):
        model_response.data = [{"object": "embedding", "index": 0, "embedding": [1.0, 2.0]}]
        return model_response


class ChatOnly(CustomLLM):
    async def acompletion(self, *args, **kwargs):
        raise NotImplementedError
"""


@pytest.mark.parametrize("class_name", ["Embedder", "SyncEmbedder"])
def test_a_handler_serves_an_embedding_model(
    config_dir: Path, handler_dir: Path, call_path: str, class_name: str
):
    write(handler_dir, "embedder.py", EMBEDDING_HANDLER)
    models = [{"name": "emb", "alias": "HandlerEmbed", "type": "embedding"}]
    with start_runner(
        config_dir,
        custom_llms_enabled=True,
        custom_llms_directory=handler_dir,
        fast_path=call_path == "direct",
    ) as runner:
        response = runner.put(
            "emb", handler_integration("embedder.py", class_name, model_properties=models)
        )
        assert response.status_code == 201, response.text
        answer = client(runner).embeddings.create(model="HandlerEmbed", input=["abc"], dimensions=3)
        assert answer.model == "HandlerEmbed"
        expected = [3.0, 3.0, 3.0] if class_name == "Embedder" else [1.0, 2.0]
        assert answer.data[0].embedding == expected
        # The handler answered floats; the caller asked for base64 and gets it.
        raw = runner.http.post(
            "/v1/embeddings",
            json={
                "model": "HandlerEmbed",
                "input": "abc",
                "dimensions": 3,
                "encoding_format": "base64",
            },
        ).json()
        assert isinstance(raw["data"][0]["embedding"], str)
        assert floats(raw["data"][0]["embedding"]) == expected


def test_a_handler_without_embeddings_says_so(config_dir: Path, handler_dir: Path):
    write(handler_dir, "embedder.py", EMBEDDING_HANDLER)
    models = [{"name": "emb", "alias": "NoEmbed", "type": "embedding"}]
    with start_runner(
        config_dir, custom_llms_enabled=True, custom_llms_directory=handler_dir
    ) as runner:
        runner.put("emb", handler_integration("embedder.py", "ChatOnly", model_properties=models))
        response = runner.http.post("/v1/embeddings", json={"model": "NoEmbed", "input": "x"})
        assert response.status_code == 501
        assert "neither aembedding nor embedding" in response.json()["error"]["message"]
        rerank = [{"name": "r", "type": "rerank"}]
        response = runner.put(
            "rerank", handler_integration("embedder.py", "ChatOnly", model_properties=rerank)
        )
        assert response.status_code == 422
        assert response.json()["error"]["problems"][0]["field"] == "model_properties[0].type"


def test_an_answer_anthropics_shape_cannot_hold_is_a_502_on_messages(
    runner: Runner, provider: OpenAIRoutesProvider, call_path: str
):
    spec = {
        "authentication_type": "none",
        "endpoint": f"{provider.url}/v1",
        "model_properties": [{"name": "odd-choices", "alias": "Empty"}],
    }
    runner.put("empty", spec)
    response = runner.http.post(
        "/v1/messages",
        json={"model": "Empty", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
    )
    # Through LiteLLM, its own check of the answer refuses it first (a 503, as for an
    # upstream that answers junk); on the direct path the translation does.
    assert response.status_code == (502 if call_path == "direct" else 503), response.text
    assert response.json()["error"]["type"] == "api_error"
    assert "'Empty'" in response.json()["error"]["message"]
