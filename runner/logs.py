"""The runner's own log lines, at the level ``RUNNER_LOG_LEVEL`` names.

uvicorn configures only its own loggers, so without this every ``runner.*``
line below WARNING went nowhere. The runner's loggers get the same handler and
format as uvicorn's, so one process writes one consistent stream to stderr:
at ``info`` one line per registration, replacement, removal, handler reload and
config file that failed, and one per failed call; at ``debug`` also the store's
syncs and handler polls. Tracebacks only at ``debug``: below it, an exception in a
log line is shortened to its type and message (:class:`BriefErrors`).
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from datetime import UTC, datetime
from typing import Any

from uvicorn.config import LOGGING_CONFIG

ACCESS_LOGGER = "runner.access"


def logging_config(level: str, format: str = "text") -> dict[str, Any]:
    """uvicorn's logging configuration, extended to the ``runner`` loggers at ``level``;
    with ``format`` ``json``, every line (uvicorn's too) is a JSON object."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["runner"] = {
        "()": "uvicorn.logging.DefaultFormatter",
        "fmt": "%(levelprefix)s %(name)s: %(message)s",
        "use_colors": None,
    }
    config["handlers"]["runner"] = {
        "formatter": "runner",
        "class": "runner.logs.LineHandler",
        "stream": "ext://sys.stderr",
    }
    # "trace" is uvicorn's level below debug; the runner has nothing finer than debug.
    runner_level = "DEBUG" if level == "trace" else level.upper()
    config["loggers"]["runner"] = {
        "handlers": ["runner"],
        "level": runner_level,
        "propagate": False,
    }
    if runner_level != "DEBUG":
        config["filters"] = {"brief": {"()": BriefErrors}}
        for handler in config["handlers"].values():
            handler["filters"] = ["brief"]
    if format == "json":
        config["formatters"] = {"json": {"()": JsonLines}}
        for handler in config["handlers"].values():
            handler["formatter"] = "json"
    return config


class JsonLines(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, and for an
    access line each of its fields (see :mod:`runner.observe.access_log`).

    On every request's path when access lines are on, so it keeps the formatted second
    and one encoder, and gives an access line its short message (the fields say the rest).
    """

    def __init__(self) -> None:
        super().__init__()
        self._second: tuple[int, str] = (-1, "")
        self._encode = json.JSONEncoder(default=str, check_circular=False).encode

    def format(self, record: logging.LogRecord) -> str:
        access = getattr(record, "access", None)
        is_access = isinstance(access, dict)
        line: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": access_message(access) if is_access else record.getMessage(),
        }
        if is_access:
            line.update(access)
        if record.exc_info and record.exc_info[1] is not None:
            line["error"] = self.formatException(record.exc_info)
        return self._encode(line)

    def members(self, fields: dict[str, Any]) -> str:
        """``fields`` as the members of a JSON object, without its braces."""
        return self._encode(fields)[1:-1]

    def access_line(self, created: float, *members: str) -> str:
        """What :meth:`format` makes of an access line's record, without the record, from
        its fields encoded as JSON members (:meth:`members`)."""
        head = f'{{"time": "{self._time(created)}", "level": "info", "logger": "{ACCESS_LOGGER}", '
        return f"{head}{', '.join(members)}}}"

    def _time(self, created: float) -> str:
        whole = int(created)
        second, text = self._second
        if second != whole:
            text = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = (whole, text)
        return f"{text}.{int((created - whole) * 1000):03d}+00:00"


class LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The runner's handler (stderr). One access line per request is on every call's
    path, so in JSON it is made straight from its fields (:meth:`json_access`), without
    the ``LogRecord``, filters and formatting a log call goes through, and the lines of
    one turn of the event loop are written together, in one system call."""

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._pending: list[str] = []

    def json_access(self) -> JsonLines | None:
        """The formatter to make access lines with, when this handler can take them as
        made (:meth:`write_line`): it writes JSON, and no filter could change a line."""
        formatter = self.formatter
        if not isinstance(formatter, JsonLines):
            return None
        for kept in self.filters:
            if type(kept) is not BriefErrors:  # which never changes an access line
                return None
        return formatter

    def write_line(self, line: str) -> None:
        """Write ``line`` with the others of this turn of the event loop, at its end."""
        line += self.terminator
        if not self._pending:
            try:
                asyncio.get_running_loop().call_soon(self._write_pending)
            except RuntimeError:  # not on an event loop: nothing to wait for
                self._pending.append(line)
                self._write_pending()
                return
        self._pending.append(line)

    def _write_pending(self) -> None:
        lines, self._pending = self._pending, []
        with self.lock:  # type: ignore[union-attr]
            self.stream.write("".join(lines))
            self.stream.flush()

    def flush(self) -> None:
        if self._pending:
            self._write_pending()
        super().flush()


def access_message(access: dict[str, Any]) -> str:
    """An access line's message in JSON, where its fields are keys of their own."""
    return f"{access['method']} {access['path']} {access['status']}"


class BriefErrors(logging.Filter):
    """A traceback in a log line becomes its last line: the exception's type and message.

    Covers the runner's own lines and uvicorn's (which prints a whole traceback
    when the app refuses to start, after the runner has said why in one line).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            record.msg = f"{record.getMessage()} ({type(exc).__name__}: {exc})"
            record.args = ()
            record.exc_info = record.exc_text = None
        elif isinstance(record.msg, str) and record.msg.startswith("Traceback (most recent"):
            lines = [line for line in record.getMessage().splitlines() if line.strip()]
            record.msg, record.args = lines[-1], ()
        return True
