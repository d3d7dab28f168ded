"""Registering handler integrations as LiteLLM custom providers.

LiteLLM keeps its providers in module-level lists that it reads on every call,
partly from a worker thread. The lists are therefore replaced, never mutated in
place, so a call in flight always sees a consistent set.
"""

from __future__ import annotations

import litellm
from litellm import CustomLLM

_PREFIX = "runner-handler-"


def provider_name(integration: str) -> str:
    """The provider a handler integration's models are called under (``<provider>/<name>``)."""
    return f"{_PREFIX}{integration}"


def register_provider(name: str, handler: CustomLLM) -> None:
    others = [item for item in litellm.custom_provider_map if item["provider"] != name]
    litellm.custom_provider_map = [*others, {"provider": name, "custom_handler": handler}]
    if name not in litellm.provider_list:
        litellm.provider_list = [*litellm.provider_list, name]
    if name not in litellm._custom_providers:
        litellm._custom_providers = [*litellm._custom_providers, name]


def unregister_provider(name: str) -> None:
    litellm.custom_provider_map = [
        item for item in litellm.custom_provider_map if item["provider"] != name
    ]
    litellm.provider_list = [p for p in litellm.provider_list if p != name]
    litellm._custom_providers = [p for p in litellm._custom_providers if p != name]
