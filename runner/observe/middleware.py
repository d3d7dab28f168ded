"""The outermost middleware: a request id for every request, and its record closed when
the answer is done (the access line, the metrics)."""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runner.observe import tracing
from runner.observe.records import CallRecord, current
from runner.security.admission import presented_key

REQUEST_ID_HEADER = b"x-request-id"
# What a caller's id may be to be kept: short, and visible ASCII only (it is echoed in a
# header and a log line); anything else is replaced by a generated one.
_ACCEPTED_ID = re.compile(rb"[!-~]{1,128}")


class Observe:
    """Opens each HTTP request's :class:`CallRecord`, adds ``x-request-id`` to its answer,
    and hands the record, once the answer's last byte is sent, to ``finished`` (the
    app's :class:`~runner.observe.recorder.Recorder`); ``access_log_enabled`` says
    whether the caller's key id is needed."""

    def __init__(
        self,
        app: ASGIApp,
        finished: Callable[[CallRecord], None] | None = None,
        access_log_enabled: bool = True,
    ) -> None:
        self.app = app
        self.finished = finished
        self.access_log_enabled = access_log_enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope["headers"])
        record = CallRecord(request_id, scope["method"], scope["path"])
        if self.access_log_enabled:  # the only reader of key_id
            key = presented_key(scope["headers"])
            if key:
                record.key_id = hashlib.sha256(key.encode()).hexdigest()[:12]
        id_header = (REQUEST_ID_HEADER, request_id.encode())

        async def observed(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), id_header]}
            elif record.first_byte is None and message.get("body"):
                record.first_byte = time.perf_counter()
            await send(message)

        if tracing.exporter is not None:
            record.trace = tracing.open_request(scope["headers"])
        token = current.set(record)
        try:
            await self.app(scope, receive, observed)
        finally:
            record.ended = time.perf_counter()
            record.done()
            current.reset(token)
            if self.finished is not None:
                self.finished(record)


def _request_id(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == REQUEST_ID_HEADER and _ACCEPTED_ID.fullmatch(value):
            return value.decode()
    return uuid.uuid4().hex
