"""The runner's own log lines, at the level ``RUNNER_LOG_LEVEL`` names.

uvicorn configures only its own loggers, so without this every ``runner.*``
line below WARNING went nowhere. The runner's loggers get the same handler and
format as uvicorn's, so one process writes one consistent stream to stderr:
at ``info`` one line per registration, replacement, removal, handler reload and
config file that failed; at ``debug`` also the store's syncs and handler polls.
"""

from __future__ import annotations

import copy
from typing import Any

from uvicorn.config import LOGGING_CONFIG


def logging_config(level: str) -> dict[str, Any]:
    """uvicorn's logging configuration, extended to the ``runner`` loggers at ``level``."""
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
    return config
