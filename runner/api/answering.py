"""Answering one call on an OpenAI-compatible route: the request checked and resolved to a
deployment, its call run, and the extras the answer carries.

Shared by every route of :mod:`runner.api.routes` and by the Anthropic-shaped
``/v1/messages`` (:mod:`runner.api.messages`), so an alias means the same model,
with the same limits, errors and logs, whichever way it is called.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import struct
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from runner import json_body
from runner.calls.operations import EMBEDDING, Operation, wrong_route
from runner.calls.prepare import prepare
from runner.calls.run import complete
from runner.calls.types import PreparedCall
from runner.errors import RunnerError
from runner.integrations.registry import Registry
from runner.observe import records, tracing

log = logging.getLogger(__name__)
DROPPED_PARAMS_HEADER = "x-runner-dropped-params"
REQUEST_ID = "x-request-id"
# Names the dropped-parameters header may repeat; anything else a caller sent as a
# key (CR/LF, non-ASCII, kilobytes) is only counted.
_PARAMETER_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
# Bytes of names the header lists before it says ", and N more" instead.
_DROPPED_NAMES_BYTES = 224


def prepared(
    registry: Registry, operation: Operation, body: Mapping[str, Any], route: str | None = None
) -> PreparedCall:
    """The call ``body`` asks for on ``operation``'s route (or ``route``, which serves it in
    another shape), or the refusal saying why not. The request's record learns what is
    called, and the upstream gets the request's id as ``x-request-id``."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RunnerError(
            "'model' is required, as a string: the alias of a model from GET /v1/models.",
            422,
            param="model",
            code="missing_model",
        )
    deployment = registry.resolve(model)
    if deployment.type != operation.type:
        raise wrong_route(deployment.alias, deployment.type, operation.route)
    call = prepare(deployment, body, operation)
    record = records.current.get()
    if record is not None:
        record.call(route or operation.route, deployment)
        record.stream = call.stream
        call.headers[REQUEST_ID] = record.request_id
        if record.trace is not None:
            tracing.inject(record.trace, call.headers)
    return call


async def answer(
    registry: Registry, operation: Operation, raw: bytes
) -> tuple[bytes | AsyncIterator[bytes], dict[str, str]]:
    """The answer to one request body (JSON, or SSE events) and extra response headers."""
    body = json_body.object_body(raw)
    call = prepared(registry, operation, body)
    result = await run(call)
    if operation is EMBEDDING and body.get("encoding_format") == "base64":
        result = as_base64(result)  # type: ignore[arg-type]
    return result, {DROPPED_PARAMS_HEADER: dropped_params(call.dropped)} if call.dropped else {}


async def run(call: PreparedCall, *, framed: bool = True) -> bytes | AsyncIterator[bytes]:
    """``complete(call)``, with one log line when it fails."""
    try:
        return await complete(call, framed=framed)
    except RunnerError as exc:
        log_failure(call.deployment.alias, call.deployment.integration, exc)
        raise


def as_base64(raw: bytes) -> bytes:
    """Embeddings as OpenAI sends them for ``encoding_format: base64``: little-endian
    float32s, base64-encoded. For backends that answer with floats whatever was asked
    (handlers, LiteLLM's translations, upstreams that ignore the parameter)."""
    answer = json.loads(raw)
    items = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(items, list) or not any(
        isinstance(item, dict) and isinstance(item.get("embedding"), list) for item in items
    ):
        return raw
    for item in items:
        vector = item.get("embedding") if isinstance(item, dict) else None
        if isinstance(vector, list):
            try:
                packed = struct.pack(f"<{len(vector)}f", *vector)
            except struct.error:  # not all numbers: passed on as it came
                continue
            item["embedding"] = base64.b64encode(packed).decode()
    return json.dumps(answer, separators=(",", ":")).encode()


def log_failure(alias: str, integration: str, error: RunnerError) -> None:
    """One line per failed call, at info: what failed, how, and where in a handler."""
    log.info(
        "call to %r (integration %r) failed: %d %s (%s)%s: %s",
        alias,
        integration,
        error.status_code,
        error.type,
        error.code,
        f" at {error.origin}" if error.origin else "",
        error.message.splitlines()[0][:300] if error.message else "",
    )


def dropped_params(names: Sequence[str]) -> str:
    """The dropped-parameters header: plain names, in order, within a few hundred bytes.

    A parameter name is any key of the caller's JSON, so it may hold CR/LF (which
    would break the response) or be kilobytes long (thousands of them make a
    header no client reads). Only plain names are repeated; the rest are counted.
    """
    shown: list[str] = []
    size = 0
    for name in names:
        if not _PARAMETER_NAME.fullmatch(name):
            continue
        if size + len(name) > _DROPPED_NAMES_BYTES:
            break
        shown.append(name)
        size += len(name) + 1
    listed = ",".join(shown)
    hidden = len(names) - len(shown)
    if not hidden:
        return listed
    return f"{listed}, and {hidden} more" if shown else f"and {hidden} more"
