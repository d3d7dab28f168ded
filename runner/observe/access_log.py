"""One line per request, at info on the ``runner.access`` logger.

Readable text by default; with ``RUNNER_LOG_FORMAT=json`` every field is its
own JSON key (:class:`runner.logs.JsonLines`). Never message contents, never a
key: the caller's API key appears only as its id, the start of its SHA-256.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from runner.logs import ACCESS_LOGGER, JsonLines, LineHandler, access_message
from runner.observe.records import CallRecord

log = logging.getLogger(ACCESS_LOGGER)
_runner_log = logging.getLogger("runner")


def fields(record: CallRecord) -> dict[str, Any]:
    """The access line's fields; those a request did not reach are left out."""
    return {**_call_fields(record), **_request_fields(record)}


def _call_fields(record: CallRecord) -> dict[str, Any]:
    """The fields that describe the kind of call: their values repeat."""
    attempts = len(record.attempts)
    found = {
        "method": record.method,
        "path": record.path,
        "route": record.route,
        "alias": record.alias,
        "integration": record.integration,
        "backend": record.backend,
        "stream": record.stream if record.route else None,
        "status": record.status,
        "error_type": record.error_type,
        "error_code": record.error_code,
        "attempts": attempts or None,
        "retries": attempts - 1 if attempts > 1 else None,
    }
    return {k: v for k, v in found.items() if v is not None}


def _request_fields(record: CallRecord) -> dict[str, Any]:
    """The fields of this one request."""
    ended = record.ended if record.ended is not None else record.started
    found: dict[str, Any] = {"request_id": record.request_id,
                             "latency_ms": round((ended - record.started) * 1000, 2)}  # fmt: skip
    if record.first_byte is not None:
        found["ttfb_ms"] = round((record.first_byte - record.started) * 1000, 2)
    if record.tokens_in is not None:
        found["tokens_in"] = record.tokens_in
    if record.tokens_out is not None:
        found["tokens_out"] = record.tokens_out
    if record.key_id is not None:
        found["key_id"] = record.key_id
    return found


def write(record: CallRecord) -> None:
    """Log the finished ``record``'s line: straight to the runner's handler when that is
    all there is to go through and it writes JSON (:meth:`LineHandler.json_access`),
    else as a log record, made here rather than by ``log.info`` (which walks the stack
    for a source line no format shows), whose readable message only a formatter that
    shows it builds."""
    if not log.isEnabledFor(logging.INFO):
        return
    handlers = _runner_log.handlers
    if not log.handlers and log.propagate and len(handlers) == 1:
        handler = handlers[0]
        formatter = handler.json_access() if isinstance(handler, LineHandler) else None
        if formatter is not None:
            handler.write_line(_json_line(record, formatter))
            return
    access = fields(record)
    line = log.makeRecord(
        log.name, logging.INFO, __file__, 0, _Readable(access), None, None, extra={"access": access}
    )
    log.handle(line)


def _json_line(record: CallRecord, formatter: JsonLines) -> str:
    """The JSON access line, its call fields encoded once per kind of call (when the path
    is one the runner serves, and so not the caller's to vary)."""
    shape = None
    if record.route is not None:
        shape = (record.method, record.path, record.route, record.alias, record.integration,
                 record.backend, record.stream, record.status, record.error_type,
                 record.error_code, len(record.attempts))  # fmt: skip
    members = _call_members.get(shape) if shape is not None else None
    if members is None:
        call = _call_fields(record)
        members = formatter.members({"message": access_message(call), **call})
        if shape is not None and len(_call_members) < _KEPT:
            _call_members[shape] = members
    return formatter.access_line(time.time(), members, _request_members(record))


def _request_members(record: CallRecord) -> str:
    """:func:`_request_fields` as JSON members, written directly: their values are numbers,
    hex digits and a request id of printable ASCII (``runner.observe.middleware``), and a
    JSON encoder took half of a line's cost."""
    ended = record.ended if record.ended is not None else record.started
    request_id = record.request_id
    if '"' in request_id or "\\" in request_id:
        request_id = json.dumps(request_id)[1:-1]
    text = (f'"request_id": "{request_id}", '
            f'"latency_ms": {round((ended - record.started) * 1000, 2)!r}')  # fmt: skip
    if record.first_byte is not None:
        text += f', "ttfb_ms": {round((record.first_byte - record.started) * 1000, 2)!r}'
    if record.tokens_in is not None:
        text += f', "tokens_in": {record.tokens_in:d}'
    if record.tokens_out is not None:
        text += f', "tokens_out": {record.tokens_out:d}'
    if record.key_id is not None:
        text += f', "key_id": "{record.key_id}"'
    return text


_call_members: dict[tuple[Any, ...], str] = {}
_KEPT = 4096


class _Readable:
    """The text access line: method, path, status, latency, then the call's fields."""

    __slots__ = ("access",)

    def __init__(self, access: dict[str, Any]) -> None:
        self.access = access

    def __str__(self) -> str:
        access = self.access
        shown = " ".join(f"{k}={access[k]}" for k in _SHOWN if k in access)
        return (
            f"{access['method']} {access['path']} {access['status']} "
            f"{access['latency_ms']:.1f} ms {shown}"
        )


_SHOWN = ("alias", "integration", "backend", "error_code", "retries", "tokens_in",
          "tokens_out", "key_id", "request_id")  # fmt: skip
