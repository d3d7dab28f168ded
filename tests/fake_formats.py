"""Loopback fakes of providers that speak other wire formats, written from their public
API references, recording what they receive.

- :class:`AnthropicProvider`: the Messages API (``POST /v1/messages``, ``x-api-key``,
  ``anthropic-version``), whole answers and server-sent events, ``tool_use`` blocks,
  and its error envelope.
- :class:`AzureProvider`: Azure OpenAI (``POST /openai/deployments/{deployment}/chat/
  completions?api-version=…`` and ``…/embeddings``, ``api-key``), OpenAI's answers and
  events.
- :class:`GeminiProvider`: the Gemini API (``POST /v1beta/models/{model}:generateContent``
  and ``:streamGenerateContent?alt=sse``, ``x-goog-api-key``), ``functionCall`` parts,
  and Google's error envelope.
- :class:`ResponsesProvider`: OpenAI's Responses API (``POST /v1/responses``), whole and
  streamed as typed events, ``function_call`` items.
- :class:`OllamaProvider`: Ollama's chat API (``POST /api/chat``), whole answers and
  streamed JSON lines, ``tool_calls``, and its ``{"error": …}`` answers.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .fakes import Received

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass
class FakeProvider:
    """What every fake here shares: it records each request (path with its query,
    headers, JSON body), and answers ``fail_status`` in its provider's error envelope
    when a test sets one, else with :meth:`answer`."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    fail_status: int | None = None

    def reset(self) -> None:
        self.received.clear()
        self.fail_status = None

    @property
    def last(self) -> Received:
        return self.received[-1]

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self._record, methods=["POST"])])

    async def _record(self, request: Request) -> Response:
        body = await request.json()
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        self.received.append(Received(path, dict(request.headers), body))
        if self.fail_status is not None:
            return self.error(self.fail_status)
        return self.answer(request.url.path, body)

    def error(self, status: int) -> Response:
        raise NotImplementedError

    def answer(self, path: str, body: dict[str, Any]) -> Response:
        raise NotImplementedError


class AnthropicProvider(FakeProvider):
    """Answers ``"Claude says: <last user text>"``, or with a ``tool_use`` block when the
    request offers tools and the conversation does not end in a tool result yet.

    """

    def error(self, status: int) -> Response:
        kind = _ERROR_TYPES.get(status, "api_error")
        error = {"type": kind, "message": f"anthropic refused with {status}"}
        return JSONResponse({"type": "error", "error": error}, status_code=status)

    def answer(self, path: str, body: dict[str, Any]) -> Response:
        blocks = _answer(body)
        usage = {"input_tokens": 11, "output_tokens": 7}
        stop = "tool_use" if blocks[-1]["type"] == "tool_use" else "end_turn"
        if body.get("stream"):
            return StreamingResponse(
                _events(body["model"], blocks, stop, usage), media_type="text/event-stream"
            )
        return JSONResponse(
            {
                "id": "msg_01",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": blocks,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": usage,
            }
        )


def _answer(body: dict[str, Any]) -> list[dict[str, Any]]:
    last = body["messages"][-1]
    content = last["content"]
    parts = content if isinstance(content, list) else [{"type": "text", "text": content}]
    if body.get("tools") and not any(p.get("type") == "tool_result" for p in parts):
        tool = body["tools"][0]["name"]
        return [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_01", "name": tool, "input": {"city": "Oslo"}},
        ]
    texts = [p.get("text") or str(p.get("content", "")) for p in parts]
    return [{"type": "text", "text": f"Claude says: {' '.join(texts)}"}]


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


async def _events(
    model: str, blocks: list[dict[str, Any]], stop: str, usage: dict[str, int]
) -> AsyncIterator[str]:
    """The Messages API's stream: message_start, each block as start/deltas/stop,
    message_delta with the stop reason and usage, message_stop."""
    message = {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": usage["input_tokens"], "output_tokens": 1},
    }
    yield _sse("message_start", {"type": "message_start", "message": message})
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            start = {"type": "text", "text": ""}
            words = block["text"].split(" ")
            deltas = [
                {"type": "text_delta", "text": w if i == 0 else f" {w}"}
                for i, w in enumerate(words)
            ]
        else:
            start = {**block, "input": {}}
            arguments = json.dumps(block["input"])
            deltas = [
                {"type": "input_json_delta", "partial_json": arguments[:5]},
                {"type": "input_json_delta", "partial_json": arguments[5:]},
            ]
        yield _sse(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": start},
        )
        for delta in deltas:
            yield _sse(
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
    yield _sse(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": usage["output_tokens"]},
        },
    )
    yield _sse("message_stop", {"type": "message_stop"})


class OllamaProvider(FakeProvider):
    """Answers ``"Ollama says: <last user text>"``, or with a tool call when the request
    offers tools and the conversation does not end in a tool result yet."""

    def error(self, status: int) -> Response:
        return JSONResponse({"error": f"ollama refused with {status}"}, status_code=status)

    def answer(self, path: str, body: dict[str, Any]) -> Response:
        last = body["messages"][-1]
        message: dict[str, Any] = {"role": "assistant", "content": ""}
        if body.get("tools") and last["role"] != "tool":
            call = {
                "function": {
                    "name": body["tools"][0]["function"]["name"],
                    "arguments": {"city": "Oslo"},
                }
            }
            message["tool_calls"] = [call]
        else:
            message["content"] = f"Ollama says: {last['content']}"
        done = {
            "model": body["model"],
            "created_at": "2026-11-26T12:00:00Z",
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 9,
            "eval_count": 4,
        }
        if not body.get("stream"):
            return JSONResponse({**done, "message": message})

        async def lines() -> AsyncIterator[str]:
            for word in message["content"].split(" ") if message["content"] else []:
                piece = {"role": "assistant", "content": word + " "}
                yield json.dumps({**done, "done": False, "message": piece}) + "\n"
            last_piece = (
                {**message, "content": ""}
                if "tool_calls" in message
                else {
                    "role": "assistant",
                    "content": "",
                }
            )
            yield json.dumps({**done, "message": last_piece}) + "\n"

        return StreamingResponse(lines(), media_type="application/x-ndjson")


_GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 429: "RESOURCE_EXHAUSTED"}


class GeminiProvider(FakeProvider):
    """Answers ``"Gemini says: <last user text>"``, or with a ``functionCall`` when the
    request declares functions and the conversation does not end in a function response."""

    def error(self, status: int) -> Response:
        google = _GOOGLE_STATUS.get(status, "INTERNAL")
        error = {"code": status, "message": "gemini refused", "status": google}
        return JSONResponse({"error": error}, status_code=status)

    def answer(self, path: str, body: dict[str, Any]) -> Response:
        last = body["contents"][-1]["parts"]
        if body.get("tools") and not any("functionResponse" in p for p in last):
            name = body["tools"][0]["function_declarations"][0]["name"]
            parts: list[dict[str, Any]] = [
                {"functionCall": {"name": name, "args": {"city": "Oslo"}}}
            ]
        else:
            text = " ".join(p.get("text", "") for p in last if "text" in p)
            parts = [{"text": f"Gemini says: {text}"}]
        answer = {
            "candidates": [
                {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": {
                "promptTokenCount": 5,
                "candidatesTokenCount": 3,
                "totalTokenCount": 8,
            },
            "modelVersion": "gemini-2.5-flash",
        }
        if ":streamGenerateContent" not in path:
            return JSONResponse(answer)

        async def events() -> AsyncIterator[str]:
            yield f"data: {json.dumps(answer)}\r\n\r\n"

        return StreamingResponse(events(), media_type="text/event-stream")


class AzureProvider(FakeProvider):
    """Answers ``"Azure says: <last user text>"`` as an OpenAI chat completion."""

    def error(self, status: int) -> Response:
        return JSONResponse(
            {"error": {"code": str(status), "message": "azure refused"}}, status_code=status
        )

    def answer(self, path: str, body: dict[str, Any]) -> Response:
        if path.endswith("/embeddings"):
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
            data = [
                {"object": "embedding", "index": i, "embedding": [float(len(t)), float(i), 0.5]}
                for i, t in enumerate(texts)
            ]
            usage = {"prompt_tokens": len(texts), "total_tokens": len(texts)}
            return JSONResponse(
                {"object": "list", "data": data, "model": "text-embedding-3-small", "usage": usage}
            )
        text = f"Azure says: {body['messages'][-1]['content']}"
        base = {"id": "chatcmpl-az", "created": 1, "model": "gpt-4o-2024-08-06"}
        if not body.get("stream"):
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
            usage = {"prompt_tokens": 6, "completion_tokens": 4, "total_tokens": 10}
            return JSONResponse(
                {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
            )

        async def events() -> AsyncIterator[str]:
            for i, word in enumerate(text.split(" ")):
                delta = {"content": word if i == 0 else f" {word}"}
                chunk = {
                    **base,
                    "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
                }
                yield f"data: {json.dumps(chunk)}\n\n"
            end = {
                **base,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            }
            yield f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")


class ResponsesProvider(FakeProvider):
    """OpenAI's Responses API (``POST /v1/responses``): answers ``"Responses says: <last
    user text>"``, or with a ``function_call`` item when the request offers tools and its
    input does not end in a function call's output; streams as the API's typed events."""

    def error(self, status: int) -> Response:
        error = {"message": f"responses refused with {status}", "type": "server_error"}
        return JSONResponse({"error": error}, status_code=status)

    def answer(self, path: str, body: dict[str, Any]) -> Response:
        last = body["input"][-1]
        if body.get("tools") and last.get("type") != "function_call_output":
            item: dict[str, Any] = {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_1",
                "name": body["tools"][0]["name"],
                "arguments": json.dumps({"city": "Oslo"}),
                "status": "completed",
            }
        else:
            if last.get("type") == "function_call_output":
                output = last["output"]
                text = output if isinstance(output, str) else output[0]["text"]
            else:
                text = " ".join(p["text"] for p in last["content"] if p["type"] == "input_text")
            content = [
                {"type": "output_text", "text": f"Responses says: {text}", "annotations": []}
            ]
            item = {
                "type": "message",
                "id": "msg_1",
                "role": "assistant",
                "status": "completed",
                "content": content,
            }
        response = {
            "id": "resp_1",
            "object": "response",
            "created_at": 1,
            "status": "completed",
            "model": body["model"],
            "output": [item],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": {"input_tokens": 9, "output_tokens": 4, "total_tokens": 13},
        }
        if not body.get("stream"):
            return JSONResponse(response)
        return StreamingResponse(_response_events(response, item), media_type="text/event-stream")


async def _response_events(response: dict[str, Any], item: dict[str, Any]) -> AsyncIterator[str]:
    """The Responses API's stream for one output item: created, the item's added, deltas
    and done events, completed (with usage)."""
    started = {**response, "status": "in_progress", "output": [], "usage": None}
    yield _sse("response.created", {"type": "response.created", "response": started})
    added = (
        {**item, "arguments": ""} if item["type"] == "function_call" else {**item, "content": []}
    )
    yield _sse(
        "response.output_item.added",
        {"type": "response.output_item.added", "output_index": 0, "item": added},
    )
    if item["type"] == "function_call":
        arguments = item["arguments"]
        for piece in (arguments[:5], arguments[5:]):
            yield _sse(
                "response.function_call_arguments.delta",
                {
                    "type": "response.function_call_arguments.delta",
                    "output_index": 0,
                    "item_id": item["id"],
                    "delta": piece,
                },
            )
    else:
        for i, word in enumerate(item["content"][0]["text"].split(" ")):
            yield _sse(
                "response.output_text.delta",
                {
                    "type": "response.output_text.delta",
                    "output_index": 0,
                    "content_index": 0,
                    "item_id": item["id"],
                    "delta": word if i == 0 else f" {word}",
                },
            )
    yield _sse(
        "response.output_item.done",
        {"type": "response.output_item.done", "output_index": 0, "item": item},
    )
    yield _sse("response.completed", {"type": "response.completed", "response": response})
