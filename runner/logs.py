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

import copy
import json
import logging
from datetime import UTC, datetime
from typing import Any

from uvicorn.config import LOGGING_CONFIG


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
        "class": "logging.StreamHandler",
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
    access line each of its fields (see :mod:`runner.observe.access_log`)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            line.update(access)
        if record.exc_info and record.exc_info[1] is not None:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


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
