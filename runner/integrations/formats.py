"""The wire formats an integration's endpoint may speak, and how each reaches LiteLLM.

``openai`` (the default) is served by the runner's own fast path; every other
format is translated by LiteLLM: the caller's OpenAI request to the provider's
format, and its answer (and stream) back. For ``anthropic`` and
``openai-responses`` the runner uses only LiteLLM's translation and sends
itself (:func:`sent_by_runner`); the others go through ``litellm.acompletion``. Each format's entry
says what LiteLLM calls the provider and how the integration's ``endpoint``
becomes LiteLLM's ``api_base``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal, get_args

from pydantic_core import PydanticCustomError

from runner.errors import Problem

Format = Literal["openai", "azure", "anthropic", "gemini", "ollama", "openai-responses"]
FORMATS: tuple[str, ...] = get_args(Format)
OPENAI_SHAPED = frozenset({"openai", "azure"})
"""Formats whose answers are OpenAI chat completions, checked as such."""

ANTHROPIC_VERSION = "2023-06-01"
"""The ``anthropic-version`` LiteLLM sends unless the integration pins its own."""
AZURE_API_VERSION = "2024-10-21"
"""The Azure OpenAI ``api-version`` sent unless the integration sets ``api_version``."""

# LiteLLM's name for each format's provider.
_PROVIDERS = {
    "azure": "azure",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "ollama": "ollama_chat",
}
# What a user may paste after the base URL, which LiteLLM appends itself.
_SUFFIXES = {
    "azure": ("/openai",),
    "anthropic": ("/v1/messages", "/messages", "/v1"),
    "gemini": ("/models",),
    "ollama": ("/api/chat", "/api"),
    "openai-responses": ("/responses",),
}


def sent_by_runner(format: str, *, fast_path: bool) -> bool:
    """Whether the runner sends this format's chat calls itself, over its shared session:
    ``openai`` as it is and ``anthropic`` translated by LiteLLM on the fast path,
    ``openai-responses`` always (LiteLLM's own route for it bypasses the runner's
    client). Other formats go through ``litellm.acompletion``."""
    return format == "openai-responses" or (fast_path and format in ("openai", "anthropic"))


def litellm_model(format: str, name: str) -> str:
    """The model string LiteLLM routes by: its provider prefix, then the upstream name."""
    return f"{_PROVIDERS[format]}/{name}"


def api_base(format: str, endpoint: str) -> str:
    """The base URL LiteLLM appends the format's path to (``/openai/deployments/...`` for
    azure, ``/v1/messages`` for anthropic, ``/models/{model}:generateContent`` for
    gemini, ``/api/chat`` for ollama)."""
    for suffix in _SUFFIXES.get(format, ()):
        if endpoint.endswith(suffix):
            return endpoint.removesuffix(suffix)
    return endpoint


def format_headers(format: str, anthropic_version: str | None) -> dict[str, str]:
    """Headers a format's own settings call for (the Anthropic API version), sent with the
    integration's fixed headers: after LiteLLM's, before the integration's own."""
    if format == "anthropic" and anthropic_version is not None:
        return {"anthropic-version": anthropic_version}
    return {}


def _version_check(field: str, pattern: str, example: str, describe: str) -> Callable[[str], str]:
    """A validator for a format's version setting: ``value`` must match ``pattern``; a
    refusal names the field and says ``describe``, with ``example`` as ``{example}``."""
    shape = re.compile(pattern)

    def check(value: str) -> str:
        if not shape.fullmatch(value):
            raise PydanticCustomError(field, describe, {"example": example})
        return value

    return check


azure_api_version = _version_check(
    "api_version",
    r"\d{4}-\d{2}-\d{2}(-preview)?",
    AZURE_API_VERSION,
    "must be an Azure OpenAI API version such as {example} (or one ending in -preview), "
    "as Azure's docs list them",
)
anthropic_version = _version_check(
    "anthropic_version",
    r"\d{4}-\d{2}-\d{2}",
    ANTHROPIC_VERSION,
    "must be an Anthropic API version, a date such as {example} (sent as the "
    "anthropic-version header)",
)
# Each format's own settings, and the format they belong to.
_SETTING_FORMATS = {"api_version": "azure", "anthropic_version": "anthropic"}


# The model types each format's endpoint serves, through the runner. An OpenAI-compatible
# endpoint is only forwarded to; the others are translated by LiteLLM, which sends only
# some types over the client it is given: Gemini's and Ollama's embeddings (1.106) open
# their own, which would bypass the runner's credentials and address checks. Both
# providers also serve OpenAI-compatible embeddings, reachable with format openai.
_TYPES = {
    "openai": ("chat", "completion", "embedding", "rerank"),
    "azure": ("chat", "embedding"),
    "anthropic": ("chat",),
    "gemini": ("chat",),
    "ollama": ("chat",),
    "openai-responses": ("chat",),
}
HANDLER_TYPES = ("chat", "embedding")
"""What a custom handler may serve: ``acompletion``/``aembedding`` and their kin."""


def format_problems(
    format: str,
    *,
    handler: bool,
    anthropic_version: str | None,
    api_version: str | None,
    model_types: tuple[str, ...] = (),
) -> list[Problem]:
    """Format-specific settings belong to their format; a handler speaks for itself; each
    model's type must be one the format (or a handler) serves."""
    problems = []
    served = HANDLER_TYPES if handler else _TYPES[format]
    for index, model_type in enumerate(model_types):
        if model_type not in served:
            who = "a custom handler" if handler else f'the "{format}" format'
            problems.append(
                Problem(
                    f"model_properties[{index}].type",
                    f"{model_type!r} models are not served through {who}; it serves "
                    f"{', '.join(served)}"
                    + (
                        ". An OpenAI-compatible endpoint (format openai) serves every type"
                        if not handler
                        else ""
                    ),
                )
            )
    if format != "openai" and handler:
        problems.append(
            Problem(
                "format",
                f"{format!r} is the wire format of an endpoint; a custom handler speaks to "
                "its provider itself, so leave format out",
            )
        )
    settings = {"anthropic_version": anthropic_version, "api_version": api_version}
    for field, value in settings.items():
        owner = _SETTING_FORMATS[field]
        if value is not None and format != owner:
            problems.append(
                Problem(
                    field, f'applies only with "format": "{owner}"; remove it or set that format'
                )
            )
    return problems
