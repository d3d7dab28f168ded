"""LiteLLM, imported only once something needs it, and set up before its first call.

Importing LiteLLM (and the OpenAI SDK under it) takes about 4 s on the
development VM, most of what ``runner serve`` used to spend before answering,
yet plain OpenAI-compatible integrations on the fast path never call it. So the
modules a start imports never import it themselves (those that must, the
handler adapter and its checks, are imported only for a handler). It is
imported when an integration is registered whose calls will go through it (one
with a custom handler, or any when ``RUNNER_FAST_PATH=false``), in a worker
thread so the event loop goes on serving meanwhile; not at the first call,
which would wait seconds for it and could outlast its timeout.
``runner/__init__.py`` has set ``LITELLM_LOCAL_MODEL_COST_MAP`` before any of
this runs.
"""

from __future__ import annotations

import asyncio
import logging
from types import ModuleType

from runner import heap

_litellm: ModuleType | None = None


def litellm() -> ModuleType:
    """The ``litellm`` module, configured for the runner; imported on the first call."""
    global _litellm
    if _litellm is None:
        import litellm as module

        module.suppress_debug_info = True
        module.drop_params = False
        module.telemetry = False
        # The runner logs one line per failed call itself; LiteLLM's own error lines
        # (tracebacks, "Error creating standard logging object") only at debug.
        runner_debug = logging.getLogger("runner").isEnabledFor(logging.DEBUG)
        for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
            logging.getLogger(name).setLevel(logging.WARNING if runner_debug else logging.CRITICAL)
        _litellm = module
    return _litellm


def loaded() -> ModuleType | None:
    """The module if :func:`litellm` has imported it, else None: nothing has used it yet."""
    return _litellm


async def load() -> None:
    """Import LiteLLM ahead of the calls that need it, without blocking the event loop."""
    if _litellm is None:
        await asyncio.to_thread(litellm)
        heap.freeze_long_lived()


def describe_model(model: str, provider: str) -> None:
    """Tell LiteLLM of a model it does not know (``provider/name``), once.

    For a name missing from its cost map LiteLLM searches for a similar model on
    every call, dozens of lookups and thousands of regular expressions, about
    4 ms of CPU; an entry, even one saying only the provider and mode, ends the
    search. It changes nothing LiteLLM sends (defaults such as ``max_tokens``
    come from the provider's rules, not from this entry).
    """
    module = litellm()
    if model not in module.model_cost:
        module.register_model({model: {"litellm_provider": provider, "mode": "chat"}})
