"""Preparing a caller's chat request for one deployment.

Only what depends on the request happens here: its inputs are checked
(:mod:`runner.calls.operations`), the
parameters the model accepts are kept under the names its upstream takes (the
rest are dropped and reported), and ``metadata`` becomes the integration's
mapped headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner.calls.operations import CHAT, Operation
from runner.calls.types import Deployment, PreparedCall
from runner.errors import RunnerError

# Request fields the runner consumes itself rather than forwarding as parameters.
_HANDLED_FIELDS = frozenset({"model", "stream", "stream_options", "metadata"})


def prepare(
    deployment: Deployment, body: Mapping[str, Any], operation: Operation = CHAT
) -> PreparedCall:
    """Check a request's inputs for ``operation`` and filter the rest down to what the
    deployment's model accepts."""
    inputs = operation.inputs(body)
    if not isinstance(body.get("stream", False), bool):
        raise RunnerError(
            message="'stream' must be true or false.",
            status_code=422,
            param="stream",
            code="invalid_stream",
        )
    stream = body.get("stream") is True
    if stream and not operation.streams:
        raise RunnerError(
            message=f"POST {operation.route} does not stream; leave 'stream' out.",
            status_code=422,
            param="stream",
            code="invalid_stream",
        )
    params: dict[str, Any] = {}
    dropped = []
    accepted = deployment.accepted_params
    for key, value in body.items():
        if key in _HANDLED_FIELDS or key in inputs:
            continue
        target = accepted.get(key)
        if target is None:
            dropped.append(key)
        else:
            params[target] = value
    usage_chunk = False
    if stream:
        params["stream"] = True
        options = body.get("stream_options")
        if isinstance(options, dict):
            params["stream_options"] = options
            usage_chunk = options.get("include_usage") is True
        if deployment.ask_stream_usage and not usage_chunk:
            params["stream_options"] = {**params.get("stream_options", {}), "include_usage": True}
    headers = mapped_headers(deployment.header_mapping, body)
    return PreparedCall(deployment, inputs, params, headers, tuple(dropped), stream, usage_chunk)


def mapped_headers(mapping: Mapping[str, str], body: Mapping[str, Any]) -> dict[str, str]:
    """Headers from ``custom_header_mapping``, valued from ``metadata`` (and ``user``)."""
    if not mapping:
        return {}
    metadata = body.get("metadata")
    values = dict(metadata) if isinstance(metadata, dict) else {}
    if "user_id" not in values and isinstance(body.get("user"), str):
        values["user_id"] = body["user"]
    headers = {}
    for field, header in mapping.items():
        if values.get(field) is None:
            continue
        value = str(values[field])
        if not value.isprintable():  # CR, LF and the like would split or break the header
            raise RunnerError(
                message=f"'metadata.{field}' is sent upstream as the header {header!r}, so it "
                "must be printable text on one line (no control or invisible characters).",
                status_code=422,
                param=f"metadata.{field}",
                code="invalid_metadata",
            )
        headers[header] = value
    return headers
