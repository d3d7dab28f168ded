"""One line per request, at info on the ``runner.access`` logger.

Readable text by default; with ``RUNNER_LOG_FORMAT=json`` every field is its
own JSON key (:class:`runner.logs.JsonLines`). Never message contents, never a
key: the caller's API key appears only as its id, the start of its SHA-256.
"""

from __future__ import annotations

import logging
from typing import Any

from runner.logs import ACCESS_LOGGER, LineHandler
from runner.observe.records import CallRecord

log = logging.getLogger(ACCESS_LOGGER)
_runner_log = logging.getLogger("runner")


def fields(record: CallRecord) -> dict[str, Any]:
    """The access line's fields; those a request did not reach are left out."""
    ended = record.ended if record.ended is not None else record.started
    found: dict[str, Any] = {
        "request_id": record.request_id,
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
        "latency_ms": round((ended - record.started) * 1000, 2),
        "ttfb_ms": (
            round((record.first_byte - record.started) * 1000, 2)
            if record.first_byte is not None
            else None
        ),
        "attempts": len(record.attempts) or None,
        "retries": len(record.attempts) - 1 if len(record.attempts) > 1 else None,
        "tokens_in": record.tokens_in,
        "tokens_out": record.tokens_out,
        "key_id": record.key_id,
    }
    return {k: v for k, v in found.items() if v is not None}


def write(record: CallRecord) -> None:
    """Log the finished ``record``'s line: straight to the runner's handler when that is
    all there is to go through (:meth:`LineHandler.emit_access`), else as a log record,
    made here rather than by ``log.info`` (which walks the stack for a source line no
    format shows), whose readable message only a formatter that shows it builds."""
    if not log.isEnabledFor(logging.INFO):
        return
    access = fields(record)
    handlers = _runner_log.handlers
    if (
        not log.handlers
        and log.propagate
        and len(handlers) == 1
        and isinstance(handlers[0], LineHandler)
        and handlers[0].emit_access(access)
    ):
        return
    line = log.makeRecord(
        log.name, logging.INFO, __file__, 0, _Readable(access), None, None, extra={"access": access}
    )
    log.handle(line)


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
