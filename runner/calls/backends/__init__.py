"""The ways a prepared call reaches its upstream, all behind :class:`runner.calls.types.Backend`.

- :mod:`~runner.calls.backends.plain_http`: OpenAI-compatible endpoints, straight over aiohttp.
- :mod:`~runner.calls.backends.via_litellm`: through ``litellm.acompletion``.
- :mod:`~runner.calls.backends.handler`: a custom handler (a ``litellm.CustomLLM``),
  called directly.

A deployment is given its backend once, at registration; the call path never
asks which kind it holds.
"""
