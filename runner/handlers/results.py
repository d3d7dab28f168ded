"""Checking what a handler hands back, and saying in a few words what it was instead.

LiteLLM takes a handler's answer on trust: ``None`` or a string where a
``ModelResponse`` belongs, or a chunk of the wrong shape, fails deep inside it
with a message (sometimes a whole traceback) that names neither the handler nor
the mistake. The adapter checks first, so the caller learns which handler
produced what. A description never includes the value itself beyond scalars:
it may be large, or hold what the caller must not see.
"""

from __future__ import annotations

from litellm.types.utils import ModelResponseStream

# The keys LiteLLM reads from every GenericStreamingChunk of a custom provider.
_CHUNK_KEYS = ("text", "is_finished", "finish_reason", "usage")
_KEYS_SHOWN = 6


def describe(value: object) -> str:
    """What ``value`` is: its type, with its value only for None, booleans and numbers."""
    kind = type(value).__name__
    if value is None:
        return "None"
    if isinstance(value, bool | int | float):
        return f"{_article(kind)} {kind} ({value!r})"
    if isinstance(value, str | bytes):
        return f"{_article(kind)} {kind} of length {len(value)}"
    if isinstance(value, dict):
        keys = [repr(k)[:40] for k in list(value)[:_KEYS_SHOWN]]
        more = ", …" if len(value) > _KEYS_SHOWN else ""
        return f"a dict with keys {', '.join(keys)}{more}" if keys else "an empty dict"
    if isinstance(value, list | tuple | set):
        return f"{_article(kind)} {kind} of {len(value)} items"
    return f"{_article(kind)} {kind}"


def chunk_problem(chunk: object) -> str | None:
    """What is wrong with one streamed chunk, or None if LiteLLM can use it.

    A chunk is a ``ModelResponseStream``, or a ``GenericStreamingChunk`` dict:
    ``text`` a string, ``usage`` None or a dict, and ``is_finished`` and
    ``finish_reason`` present.
    """
    if isinstance(chunk, ModelResponseStream):
        return None
    if not isinstance(chunk, dict):
        return describe(chunk)
    missing = [repr(key) for key in _CHUNK_KEYS if key not in chunk]
    if missing:
        return f"a dict without {', '.join(missing)}"
    if not isinstance(chunk["text"], str):
        return f"a chunk whose 'text' is {describe(chunk['text'])}"
    if chunk["usage"] is not None and not isinstance(chunk["usage"], dict):
        return f"a chunk whose 'usage' is {describe(chunk['usage'])}"
    return None


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"
