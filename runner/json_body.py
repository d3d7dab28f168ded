"""The one strict JSON reader for what callers send: chat requests and integrations.

Python's ``json`` accepts more than JSON: ``NaN``, ``Infinity`` and numbers too
large for a float (read as ``inf``), which the runner would then forward
upstream as non-standard JSON; and it recurses once per level of nesting, so a
body nested a hundred thousand levels deep ends in ``RecursionError`` (a 500).
:func:`loads` refuses all of these with :class:`JsonRefused`, whose text says
why in words a caller can act on.

Nesting is limited to :data:`MAX_DEPTH` without walking every request: a body
cannot be nested deeper than it has brackets, and counting them is a fast
scan in C, so only bodies with more than :data:`MAX_DEPTH` of them are walked.
"""

from __future__ import annotations

import json
import math
from typing import Any, NoReturn

from runner.errors import IntegrationInvalid, Problem, RunnerError

MAX_DEPTH = 100


class JsonRefused(ValueError):
    """Why a body is not the JSON the runner accepts (the message is for the caller)."""


def _refuse_constant(name: str) -> NoReturn:
    raise JsonRefused(f"{name} is not a JSON value; send a number or null")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise JsonRefused(f"the number {text[:40]} is too large")
    return value


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def loads(raw: bytes | str) -> Any:
    """Decode ``raw`` as strict JSON, nested at most :data:`MAX_DEPTH` levels deep."""
    try:
        value = _DECODER.decode(_text(raw))
    except JsonRefused:
        raise
    except json.JSONDecodeError as exc:
        raise JsonRefused(f"{exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except RecursionError:
        raise JsonRefused(_too_deep()) from None
    except ValueError as exc:  # undecodable bytes; an integer with over 4,300 digits
        raise JsonRefused(str(exc)) from None
    if _brackets(raw) > MAX_DEPTH and _deeper_than(value, MAX_DEPTH):
        raise JsonRefused(_too_deep())
    return value


def object_body(raw: bytes) -> dict[str, Any]:
    """A request body that must be one JSON object; else a 400 ``invalid_json``."""
    try:
        body = loads(raw)
    except JsonRefused as exc:
        raise RunnerError(
            f"The request body is not valid JSON: {exc}", code="invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise RunnerError("The request body must be a JSON object.", code="invalid_json")
    return body


def decode_json(text: str | bytes) -> Any:
    """Decode integration JSON (a POSTed body or a config file) strictly: a syntax
    error is refused with its line and column, as are NaN, Infinity and absurd
    nesting, each as a problem of the integration."""
    try:
        return loads(text)
    except JsonRefused as exc:
        raise IntegrationInvalid(
            [Problem("", f"not valid JSON: {exc}; send one JSON object")],
            status_code=400,
            code="invalid_json",
        ) from None


def _text(raw: bytes | str) -> str:
    """``raw`` as text, in the encoding JSON's first bytes show (as ``json.loads`` does)."""
    if isinstance(raw, str):
        return raw
    return raw.decode(json.detect_encoding(raw), "surrogatepass")


def _too_deep() -> str:
    return f"nested deeper than {MAX_DEPTH} levels"


def _brackets(raw: bytes | str) -> int:
    if isinstance(raw, bytes):
        return raw.count(b"[") + raw.count(b"{")
    return raw.count("[") + raw.count("{")


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects in ``value`` nest more than ``limit`` deep (no recursion)."""
    stack = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False
