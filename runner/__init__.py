"""runner: host custom LLM integrations behind one OpenAI-compatible API.

The public API, for embedding the runner or checking integrations in code::

    from runner import Settings, create_app, parse_integration

Names are imported on first use (PEP 562), so ``import runner`` stays cheap for
the command line.

LiteLLM downloads its model cost map at import time unless told otherwise; in an
offline container that costs ~10 s of retries on every start. Every entry point
imports this package first, so the switch is set here, before litellm loads.
"""

import os
import warnings
from importlib import import_module
from typing import TYPE_CHECKING, Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

# Authlib warns on import that it would rather drive httpx2; the runner uses it
# with httpx on purpose (LiteLLM and the OpenAI SDK are built on httpx).
warnings.filterwarnings("ignore", message="The httpx module is deprecated")

__version__ = "0.1.0"

_EXPORTS = {
    "create_app": "runner.api.app",
    "Settings": "runner.settings",
    "Integration": "runner.integrations.schema",
    "parse_integration": "runner.integrations.schema",
    "RunnerError": "runner.errors",
    "IntegrationInvalid": "runner.errors",
    "Problem": "runner.errors",
}
__all__ = [
    "Integration",
    "IntegrationInvalid",
    "Problem",
    "RunnerError",
    "Settings",
    "__version__",
    "create_app",
    "parse_integration",
]

if TYPE_CHECKING:
    from runner.api.app import create_app
    from runner.errors import IntegrationInvalid, Problem, RunnerError
    from runner.integrations.schema import Integration, parse_integration
    from runner.settings import Settings


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'runner' has no attribute {name!r}")
    return getattr(import_module(module), name)
