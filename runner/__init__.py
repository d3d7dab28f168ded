"""runner: host custom LLM integrations behind one OpenAI-compatible API.

LiteLLM downloads its model cost map at import time unless told otherwise; in an
offline container that costs ~10 s of retries on every start. Every entry point
imports this package first, so the switch is set here, before litellm loads.
"""

import os
import warnings

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

# Authlib warns on import that it would rather drive httpx2; the runner uses it
# with httpx on purpose (LiteLLM and the OpenAI SDK are built on httpx).
warnings.filterwarnings("ignore", message="The httpx module is deprecated")

__version__ = "0.1.0"
