"""Why an integration is refused: pydantic's errors explained field by field.

:mod:`runner.integrations.schema` describes the shape; this module turns pydantic's
validation errors into :class:`~runner.errors.Problem` entries that name the
field at fault and say how to fix it. It knows the shape only through
:class:`KnownFields`, so it does not import the models it explains.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import ValidationError

from runner.errors import Problem

_MISSING_HINTS = {
    "api_key_header": "the header your provider reads the key from, e.g. 'x-api-key', "
    "or 'Authorization' for a bearer token",
    "api_key_value": "the key itself; for a bearer token write 'Bearer YOUR_TOKEN'",
    "oauth2_token_url": "the client-credentials token endpoint, e.g. "
    "https://auth.example.com/oauth2/token",
    "token": 'an escaped JSON string: "{\\"client_id\\": \\"ID\\", \\"client_secret\\": \\"S\\"}"',
    "model_properties": 'a list of models, e.g. [{"name": "my-model", "alias": "My Model"}]',
    "name": "the model's name on the provider, sent verbatim upstream",
}


@dataclass(frozen=True)
class KnownFields:
    """The property names of the integration JSON, which refusals explain and suggest."""

    by_auth: Mapping[str, frozenset[str]]
    """Top-level properties of each ``authentication_type``."""
    nested: frozenset[str]
    """Properties of the nested objects (a model, ``custom_llm_config``)."""
    mappable: tuple[str, ...]
    """The keys ``custom_header_mapping`` takes."""

    @property
    def top_level(self) -> frozenset[str]:
        return frozenset().union(*self.by_auth.values())

    @property
    def auth_only(self) -> frozenset[str]:
        """Properties that belong to one authentication type only."""
        shared = frozenset.intersection(*self.by_auth.values())
        return self.top_level - shared


def problems_from(exc: ValidationError, data: object, known: KnownFields) -> list[Problem]:
    """One problem per pydantic error, with the field as the user wrote it."""
    auth = data.get("authentication_type") if isinstance(data, Mapping) else None
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = [part for part in error["loc"] if part != "[key]"]
        if loc and loc[0] == auth:
            loc = loc[1:]  # drop the discriminator tag pydantic puts first
        if error["type"] in ("union_tag_not_found", "union_tag_invalid"):
            loc = ["authentication_type"]
        field = format_loc(loc)
        problems.append(Problem(field, _explain(error["type"], field, error["msg"], auth, known)))
    return problems


def format_loc(loc: list[int | str] | tuple[int | str, ...]) -> str:
    """``["model_properties", 0, "name"]`` as ``model_properties[0].name``.

    A key may be the refused text itself (a header name with a CR in it): it is
    escaped, so no field name carries a control character into a log line.
    """
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        name = part if part.isprintable() else part.encode("unicode_escape").decode("ascii")
        out += f".{name}" if out else name
    return out


def _explain(kind: str, field: str, default: str, auth: object, known: KnownFields) -> str:
    if kind == "model_type" and not field:
        return "the integration must be a JSON object"
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        return _auth_type_message(auth, tuple(known.by_auth))
    last = field.rsplit(".", 1)[-1]
    if kind == "missing":
        hint = _MISSING_HINTS.get(last)
        when = f" when authentication_type is {auth!r}" if last in known.auth_only else ""
        return f"required{when}" + (f": {hint}" if hint else "")
    if kind == "extra_forbidden":
        top_level = "." not in field and "[" not in field
        return _unknown_field_message(last, auth, top_level, known)
    if kind == "too_short" and last == "model_properties":
        return 'must list at least one model, e.g. [{"name": "my-model"}]'
    if kind == "string_pattern_mismatch" and field == "custom_llm_config.file_name":
        return (
            "must be the name of a .py file directly in the handler directory, such as "
            "'proprietary_handler.py'; paths and subfolders are not supported"
        )
    if kind == "string_pattern_mismatch" and field == "custom_llm_config.class_name":
        return "must be a Python class name, such as 'ProprietaryLLMHandler'"
    if kind == "string_pattern_mismatch" and "header" in field:
        return "must be a valid HTTP header name (letters, digits and -_.!#$%&'*+^`|~)"
    if kind == "literal_error" and field.startswith("custom_header_mapping"):
        return f"keys must be among {', '.join(known.mappable)}"
    return default.removeprefix("Value error, ")


def _auth_type_message(auth: object, types: tuple[str, ...]) -> str:
    options = ", ".join(repr(a) for a in types)
    if auth is None:
        return f"required: one of {options}"
    return f"must be one of {options}, not {auth!r}"


def _unknown_field_message(name: str, auth: object, top_level: bool, known: KnownFields) -> str:
    if top_level and name in known.top_level:
        owners = [a for a, fields in known.by_auth.items() if name in fields]
        return (
            f"only used with authentication_type {' or '.join(repr(o) for o in owners)}, "
            f"not {auth!r}; remove it or change authentication_type"
        )
    candidates = known.top_level if top_level else known.nested
    close = difflib.get_close_matches(name, candidates, n=1)
    return "unknown property" + (f"; did you mean {close[0]!r}?" if close else "; remove it")
