"""Built-in model aliases that ``based_on`` may name, and the parameters each supports.

The table lives in ``builtin_models.json`` (aliases exactly as the integration
documentation lists them, grouped into parameter families) and is read once.
"""

from __future__ import annotations

import difflib
import json
from functools import cache
from importlib import resources

DEFAULT_PARAMETERS: tuple[str, ...] = (
    "frequency_penalty",
    "max_tokens",
    "presence_penalty",
    "stop",
    "temperature",
    "top_p",
)
"""Used when a chat (or completion) model gives neither ``based_on`` nor
``supported_parameters``."""

TYPE_DEFAULT_PARAMETERS: dict[str, tuple[str, ...]] = {
    "chat": DEFAULT_PARAMETERS,
    "completion": DEFAULT_PARAMETERS,
    "embedding": ("dimensions", "encoding_format", "user"),
    "rerank": ("top_n", "return_documents", "max_chunks_per_doc", "rank_fields"),
}
"""Each model type's default parameters."""


@cache
def builtin_models() -> dict[str, tuple[str, ...]]:
    """Map each built-in alias to its supported parameter names."""
    table = resources.files("runner.integrations").joinpath("builtin_models.json")
    raw = json.loads(table.read_text())
    families = {name: tuple(spec["parameters"]) for name, spec in raw["families"].items()}
    return {alias: families[spec["family"]] for alias, spec in raw["models"].items()}


@cache
def _by_folded_name() -> dict[str, str]:
    return {alias.casefold(): alias for alias in builtin_models()}


def lookup_builtin(name: str) -> tuple[str, ...] | None:
    """Parameters of the built-in model ``name`` (case-insensitive), or None."""
    alias = _by_folded_name().get(name.strip().casefold())
    return None if alias is None else builtin_models()[alias]


def closest_builtin_names(name: str, limit: int = 5) -> list[str]:
    """Built-in aliases that look like ``name``, best first, for 'did you mean' hints."""
    folded = _by_folded_name()
    matches = difflib.get_close_matches(name.casefold(), folded, n=limit, cutoff=0.5)
    return [folded[m] for m in matches]
