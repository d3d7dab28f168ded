"""The kinds of call the runner serves, one per model type, and what each one's request holds.

A model's ``type`` (``chat``, ``completion``, ``embedding``, ``rerank``) fixes
the one route that serves it, the fields that route's requests must carry (its
*inputs*, checked here and sent as they came), whether it may stream, and what
a successful upstream answer must look like. Everything else in a request is a
parameter, kept or dropped by the model's parameter list
(:mod:`runner.calls.prepare`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from runner.calls import answers
from runner.calls.types import ModelType
from runner.errors import RunnerError


@dataclass(frozen=True)
class Operation:
    """One route of the OpenAI-compatible API and the model type it serves."""

    type: ModelType
    route: str
    """The caller's path, e.g. ``/v1/embeddings``."""
    upstream_path: str
    """Appended to an OpenAI-compatible endpoint, e.g. ``embeddings``."""
    inputs: Callable[[Mapping[str, Any]], dict[str, Any]]
    """The request's own fields, checked; raises a 422 naming the field that is wrong."""
    check_answer: Callable[[bytes], dict[str, Any]]
    """A successful upstream answer's JSON object; raises BadAnswer for anything else."""
    streams: bool


def _invalid(field: str, message: str, code: str) -> RunnerError:
    return RunnerError(message, 422, "invalid_request_error", code, param=field)


def _chat_inputs(body: Mapping[str, Any]) -> dict[str, Any]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _invalid(
            "messages", "'messages' must be a non-empty list of chat messages.", "invalid_messages"
        )
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise _invalid(
                f"messages[{index}]",
                f"'messages[{index}]' must be an object with a 'role', such as "
                '{"role": "user", "content": "Hello"}.',
                "invalid_messages",
            )
    return {"messages": messages}


def _is_text_or_tokens(value: Any) -> bool:
    """A string, a list of strings, token ids, or lists of token ids: what OpenAI takes."""
    if isinstance(value, str):
        return bool(value)
    if not isinstance(value, list) or not value:
        return False
    if all(isinstance(item, str) for item in value):
        return True
    if all(isinstance(item, int) and not isinstance(item, bool) for item in value):
        return True
    return all(
        isinstance(item, list)
        and item
        and all(isinstance(t, int) and not isinstance(t, bool) for t in item)
        for item in value
    )


def _text_inputs(field: str, code: str) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    def inputs(body: Mapping[str, Any]) -> dict[str, Any]:
        value = body.get(field)
        if not _is_text_or_tokens(value):
            raise _invalid(
                field,
                f"'{field}' must be a non-empty string or a non-empty list of strings (or of "
                f'token ids), such as "{field}": "Hello" or "{field}": ["Hello", "World"].',
                code,
            )
        return {field: value}

    return inputs


def _rerank_inputs(body: Mapping[str, Any]) -> dict[str, Any]:
    query, documents = body.get("query"), body.get("documents")
    if not isinstance(query, str) or not query:
        raise _invalid("query", "'query' must be a non-empty string.", "invalid_query")
    if (
        not isinstance(documents, list)
        or not documents
        or not all(isinstance(d, str | dict) for d in documents)
    ):
        raise _invalid(
            "documents",
            "'documents' must be a non-empty list of strings (or of objects with a 'text'), "
            'such as "documents": ["first passage", "second passage"].',
            "invalid_documents",
        )
    return {"query": query, "documents": documents}


CHAT = Operation("chat", "/v1/chat/completions", "chat/completions", _chat_inputs,
                 answers.completion, streams=True)  # fmt: skip
COMPLETION = Operation("completion", "/v1/completions", "completions",
                       _text_inputs("prompt", "invalid_prompt"), answers.completion,
                       streams=True)  # fmt: skip
EMBEDDING = Operation("embedding", "/v1/embeddings", "embeddings",
                      _text_inputs("input", "invalid_input"), answers.embeddings,
                      streams=False)  # fmt: skip
RERANK = Operation("rerank", "/v1/rerank", "rerank", _rerank_inputs, answers.rerank,
                   streams=False)  # fmt: skip

BY_TYPE: Mapping[str, Operation] = {op.type: op for op in (CHAT, COMPLETION, EMBEDDING, RERANK)}
BY_ROUTE: Mapping[str, Operation] = {op.route: op for op in BY_TYPE.values()}


def wrong_route(alias: str, model_type: str, route: str) -> RunnerError:
    """The refusal for a model called on a route that does not serve its type."""
    right = BY_TYPE[model_type].route
    return RunnerError(
        f"{alias!r} is a {model_type} model, served on POST {right}, not on POST {route}; "
        f"call it there (GET /v1/models lists each model's type).",
        400,
        "invalid_request_error",
        "wrong_route_for_model_type",
        param="model",
    )
