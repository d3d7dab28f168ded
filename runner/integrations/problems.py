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

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileProblem:
    """A config file that could not be loaded, with the problems that stopped it."""

    path: Path
    problems: list[Problem]


class Problems:
    """The current problems; written only by the integrations service."""

    def __init__(self) -> None:
        self.config_files: list[FileProblem] = []
        self.stored: dict[str, str] = {}
        self.handlers: dict[str, str] = {}

    def config_file(self, failure: FileProblem) -> None:
        """Record a config file that failed; logged unless it failed the same way before."""
        if failure not in self.config_files:
            log.error("%s not loaded: %s", failure.path, "; ".join(map(str, failure.problems)))
            self.config_files.append(failure)

    def config_files_retried(self, still_failing: list[FileProblem]) -> None:
        self.config_files = [f for f in self.config_files if f in still_failing]

    def stored_integration(self, name: str, problem: str) -> None:
        if self.stored.get(name) != problem:
            log.error("stored integration %r: %s", name, problem)
        self.stored[name] = problem

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

    def as_json(self) -> dict[str, Any]:
        return {
            "config_errors": [
                {"file": str(f.path), "problems": [str(p) for p in f.problems]}
                for f in self.config_files
            ],
            "store_problems": [
                {"name": name, "problem": problem} for name, problem in sorted(self.stored.items())
            ],
            "handler_errors": [
                {"name": name, "problem": problem}
                for name, problem in sorted(self.handlers.items())
            ],
        }
