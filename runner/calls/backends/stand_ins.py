"""Stand-ins for the LiteLLM objects its translations and handlers expect but the runner's
backends have no use for (building LiteLLM's costs what the backends save)."""

from __future__ import annotations

from typing import Any


class QuietLogging:
    """In place of LiteLLM's logging object: every method it has, doing nothing, and
    attributes that may be set (translations note the call type on it)."""

    call_type: str = ""

    def __getattr__(self, name: str) -> Any:
        return ignore


def ignore(*args: Any, **kwargs: Any) -> None:
    return None
