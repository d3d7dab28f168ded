"""Registering handler integrations as LiteLLM custom providers.

LiteLLM keeps its providers in module-level lists that it reads on every call,
partly from a worker thread. The lists are therefore replaced, never mutated in
place, so a call in flight always sees a consistent set.

Registering a handler uses LiteLLM, loaded by then (:mod:`runner.lazy_litellm`);
removing one never imports it: if it was never loaded, nothing was registered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner import lazy_litellm

if TYPE_CHECKING:
    from litellm import CustomLLM

_PREFIX = "runner-handler-"


def provider_name(integration: str) -> str:
    """The provider a handler integration's models are called under (``<provider>/<name>``)."""
    return f"{_PREFIX}{integration}"


def register_provider(name: str, handler: CustomLLM) -> None:
    litellm = lazy_litellm.litellm()
    others = [item for item in litellm.custom_provider_map if item["provider"] != name]
    litellm.custom_provider_map = [*others, {"provider": name, "custom_handler": handler}]
    if name not in litellm.provider_list:
        litellm.provider_list = [*litellm.provider_list, name]
    if name not in litellm._custom_providers:
        litellm._custom_providers = [*litellm._custom_providers, name]


def unregister_provider(name: str) -> None:
    litellm = lazy_litellm.loaded()
    if litellm is None:
        return
    litellm.custom_provider_map = [
        item for item in litellm.custom_provider_map if item["provider"] != name
    ]
    litellm.provider_list = [p for p in litellm.provider_list if p != name]
    litellm._custom_providers = [p for p in litellm._custom_providers if p != name]
