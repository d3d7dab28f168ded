"""Every problem the runner knows of with its integrations, kept in one place.

Three kinds, by where they come from: a config file that does not load, a
stored integration that is not served (unreadable, refused, or shadowed by a
file), and a handler whose edited file did not reload (the last good version
keeps serving). Each is logged once when it appears or changes, not on every
retry, and cleared when its cause goes away. ``GET /health`` shows them all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.errors import Problem
from runner.integrations.registry import Origin
from runner.integrations.schema import Integration

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileProblem:
    """A config file that could not be loaded, with the problems that stopped it."""

    path: Path
    problems: list[Problem]


@dataclass(frozen=True)
class NotServed:
    """A stored integration this runner does not serve, and why.

    ``spec`` is None when the stored row could not be read at all; ``origin``
    says which write it is, so a retry serves it as that write.
    """

    reason: str
    spec: Integration | None = None
    origin: Origin | None = None


class Problems:
    """The current problems; written only by the integrations service."""

    def __init__(self) -> None:
        self.config_files: list[FileProblem] = []
        self.stored: dict[str, NotServed] = {}
        self.handlers: dict[str, str] = {}

    def config_file(self, failure: FileProblem) -> None:
        """Record a config file that failed; logged unless it failed the same way before."""
        if failure not in self.config_files:
            log.error("%s not loaded: %s", failure.path, "; ".join(map(str, failure.problems)))
            self.config_files.append(failure)

    def config_files_retried(self, still_failing: list[FileProblem]) -> None:
        self.config_files = [f for f in self.config_files if f in still_failing]

    def stored_integration(self, name: str, not_served: NotServed) -> None:
        previous = self.stored.get(name)
        if previous is None or previous.reason != not_served.reason:
            log.error("stored integration %r not served: %s", name, not_served.reason)
        self.stored[name] = not_served

    def handler(self, name: str, problem: str) -> None:
        if self.handlers.get(name) != problem:
            log.error(
                "handler of %r not reloaded, last good version keeps serving: %s", name, problem
            )
        self.handlers[name] = problem

    def handler_current(self, name: str) -> None:
        """The handler of ``name`` serves its file as it is on disk now."""
        self.handlers.pop(name, None)

    def clear(self, name: str) -> None:
        """The integration ``name`` is served as stored and its handler is current."""
        self.stored.pop(name, None)
        self.handlers.pop(name, None)

    def __bool__(self) -> bool:
        return bool(self.config_files or self.stored or self.handlers)

    def as_json(self) -> dict[str, Any]:
        return {
            "config_errors": [
                {"file": str(f.path), "problems": [str(p) for p in f.problems]}
                for f in self.config_files
            ],
            "store_problems": [
                {"name": name, "problem": f"not served: {not_served.reason}"}
                for name, not_served in sorted(self.stored.items())
            ],
            "handler_errors": [
                {"name": name, "problem": problem}
                for name, problem in sorted(self.handlers.items())
            ],
        }
