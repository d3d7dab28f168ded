"""The integration JSON: its shape, its rules, and the messages that explain a refusal.

An integration is one of three pydantic models chosen by ``authentication_type``,
so a field that belongs to another authentication type is refused by name.
:func:`parse_integration` is the single entry point: it returns a validated
:data:`Integration` or raises :class:`~runner.errors.IntegrationInvalid` listing
every problem with the field it concerns and how to fix it.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
)
from pydantic_core import PydanticCustomError

from .catalog import DEFAULT_PARAMETERS, closest_builtin_names, lookup_builtin
from .errors import IntegrationInvalid, Problem

AUTHENTICATION_TYPES = ("api_key", "oauth2", "none")
MAPPABLE_FIELDS = ("job_id", "user_id", "project_id", "run_id")
INTEGRATION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HEADER_NAME = r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$"

NonEmptyStr = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
HeaderName = Annotated[str, StringConstraints(pattern=_HEADER_NAME)]
MappableField = Literal["job_id", "user_id", "project_id", "run_id"]


def _http_url(value: str, example: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise PydanticCustomError(
            "http_url",
            "must be an http:// or https:// URL with a host, such as {example}",
            {"example": example},
        )
    return value.strip().rstrip("/")


class Limits(BaseModel):
    """Guardrails an integration, or one of its models, may set (see runner.guardrails)."""

    timeout: float | None = Field(default=None, gt=0, le=3600)
    rate_limit: int | None = Field(default=None, ge=1, description="requests per minute")
    max_concurrency: int | None = Field(default=None, ge=1)
    num_retries: int | None = Field(default=None, ge=0, le=10)


class ModelProperties(Limits):
    """One model the integration serves, and what callers may send to it."""

    model_config = ConfigDict(extra="forbid")

    name: NonEmptyStr
    alias: NonEmptyStr | None = None
    based_on: NonEmptyStr | None = None
    supported_parameters: list[NonEmptyStr] | None = None

    @field_validator("based_on")
    @classmethod
    def _known_builtin(cls, value: str | None) -> str | None:
        if value is not None and lookup_builtin(value) is None:
            close = closest_builtin_names(value)
            hint = (
                f"did you mean {', '.join(repr(n) for n in close)}"
                if close
                else ("the README lists the built-in model aliases")
            )
            raise PydanticCustomError(
                "unknown_based_on",
                "{message}",
                {
                    "message": f"{value!r} is not a built-in model alias; {hint}. "
                    "Or list the parameters yourself in supported_parameters."
                },
            )
        return value

    @property
    def caller_alias(self) -> str:
        """The id callers use; the upstream ``name`` when no alias is given."""
        return self.alias or self.name

    @property
    def parameters(self) -> tuple[str, ...]:
        """Explicit ``supported_parameters`` win over ``based_on``; else the defaults."""
        if self.supported_parameters is not None:
            return tuple(self.supported_parameters)
        if self.based_on is not None:
            return lookup_builtin(self.based_on) or ()
        return DEFAULT_PARAMETERS


class CustomLLMConfig(BaseModel):
    """Names a ``litellm.CustomLLM`` subclass in a handler file (loaded by a later stage)."""

    model_config = ConfigDict(extra="forbid")

    file_name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\.py$")]
    class_name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
    init_kwargs: dict[str, Any] = Field(default_factory=dict)
    secret_init_kwargs: list[str] = Field(
        default_factory=list,
        description="init_kwargs names whose values are secrets: encrypted at rest, redacted.",
    )


class ClientCredentials(BaseModel):
    """The OAuth2 client id and secret, given in the integration as an escaped JSON string."""

    model_config = ConfigDict(extra="forbid")

    client_id: NonEmptyStr
    client_secret: SecretStr


class _IntegrationBase(Limits):
    model_config = ConfigDict(extra="forbid")

    model_properties: list[ModelProperties] = Field(min_length=1)
    endpoint: str | None = None
    default_model: NonEmptyStr | None = None
    custom_header_mapping: dict[MappableField, HeaderName] = Field(default_factory=dict)
    headers: dict[HeaderName, str] = Field(default_factory=dict)
    secret_headers: list[HeaderName] = Field(
        default_factory=list,
        description="headers names whose values are secrets: encrypted at rest, redacted.",
    )
    custom_llm_config: CustomLLMConfig | None = None

    @field_validator("endpoint")
    @classmethod
    def _endpoint_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = _http_url(value, "https://api.example.com/v1")
        # The runner appends /chat/completions itself; tolerate a pasted full path.
        return url.removesuffix("/chat/completions")

    @property
    def default_model_properties(self) -> ModelProperties:
        """The model used when a request names the integration rather than an alias."""
        wanted = self.default_model
        for model in self.model_properties:
            if wanted in (None, model.name, model.alias):
                return model
        return self.model_properties[0]


class ApiKeyIntegration(_IntegrationBase):
    authentication_type: Literal["api_key"]
    api_key_header: HeaderName
    api_key_value: SecretStr = Field(min_length=1)


class OAuth2Integration(_IntegrationBase):
    authentication_type: Literal["oauth2"]
    oauth2_token_url: str
    token: ClientCredentials
    authentication_scope: NonEmptyStr | None = None

    @field_validator("oauth2_token_url")
    @classmethod
    def _token_url(cls, value: str) -> str:
        return _http_url(value, "https://auth.example.com/oauth2/token")

    @field_validator("token", mode="before")
    @classmethod
    def _decode_token(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise PydanticCustomError(
                "token_json",
                "must be an escaped JSON string such as "
                '"{{\\"client_id\\": \\"ID\\", \\"client_secret\\": \\"SECRET\\"}}" '
                "({reason} at character {pos})",
                {"reason": exc.msg, "pos": exc.pos},
            ) from None


class NoAuthIntegration(_IntegrationBase):
    authentication_type: Literal["none"]


Integration = Annotated[
    ApiKeyIntegration | OAuth2Integration | NoAuthIntegration,
    Field(discriminator="authentication_type"),
]
_ADAPTER: TypeAdapter[Integration] = TypeAdapter(Integration)

_FIELDS_BY_AUTH = {
    "api_key": set(ApiKeyIntegration.model_fields),
    "oauth2": set(OAuth2Integration.model_fields),
    "none": set(NoAuthIntegration.model_fields),
}
_ALL_FIELDS = set().union(*_FIELDS_BY_AUTH.values())
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


def parse_integration(data: object) -> Integration:
    """Validate decoded integration JSON; raise IntegrationInvalid listing every problem."""
    try:
        integration = _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise IntegrationInvalid(_problems_from(exc, data)) from None
    problems = _cross_field_problems(integration)
    if problems:
        raise IntegrationInvalid(problems)
    return integration


def parse_integration_json(text: str | bytes) -> Integration:
    """Like :func:`parse_integration`, from JSON text."""
    return parse_integration(decode_json(text))


def decode_json(text: str | bytes) -> Any:
    """Decode integration JSON; a syntax error is refused with its line and column."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        reason = (
            f"{exc.msg} at line {exc.lineno}, column {exc.colno}"
            if isinstance(exc, json.JSONDecodeError)
            else str(exc)
        )
        raise IntegrationInvalid(
            [Problem("", f"not valid JSON: {reason}; send one JSON object")], status_code=400
        ) from None


def _cross_field_problems(integration: Integration) -> list[Problem]:
    problems: list[Problem] = []
    if integration.endpoint is None and integration.custom_llm_config is None:
        problems.append(
            Problem(
                "endpoint",
                "required: the provider's OpenAI-compatible base URL, e.g. "
                "https://api.example.com/v1 (the runner appends /chat/completions)",
            )
        )
    seen: dict[str, int] = {}
    for index, model in enumerate(integration.model_properties):
        alias = model.caller_alias
        if alias in seen:
            problems.append(
                Problem(
                    f"model_properties[{index}].alias",
                    f"{alias!r} is already the alias of model_properties[{seen[alias]}]; "
                    "give each model a distinct alias",
                )
            )
        seen.setdefault(alias, index)
    problems.extend(_unknown_secret_marks(integration))
    wanted = integration.default_model
    if wanted is not None and not any(
        wanted in (m.name, m.alias) for m in integration.model_properties
    ):
        names = ", ".join(repr(m.name) for m in integration.model_properties)
        problems.append(
            Problem("default_model", f"{wanted!r} is not in model_properties; use one of {names}")
        )
    return problems


def _unknown_secret_marks(integration: Integration) -> list[Problem]:
    """A secret mark naming nothing would silently protect nothing: refuse it."""
    problems = []
    lowered = {h.lower() for h in integration.headers}
    for index, header in enumerate(integration.secret_headers):
        if header.lower() not in lowered:
            problems.append(
                Problem(
                    f"secret_headers[{index}]",
                    f"{header!r} is not in headers; list only header names the integration sets",
                )
            )
    config = integration.custom_llm_config
    for index, key in enumerate(config.secret_init_kwargs if config else []):
        if key not in config.init_kwargs:  # type: ignore[union-attr]
            problems.append(
                Problem(
                    f"custom_llm_config.secret_init_kwargs[{index}]",
                    f"{key!r} is not in init_kwargs; list only keys init_kwargs has",
                )
            )
    return problems


def _problems_from(exc: ValidationError, data: object) -> list[Problem]:
    auth = data.get("authentication_type") if isinstance(data, Mapping) else None
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = [part for part in error["loc"] if part != "[key]"]
        if loc and loc[0] == auth:
            loc = loc[1:]  # drop the discriminator tag pydantic puts first
        if error["type"] in ("union_tag_not_found", "union_tag_invalid"):
            loc = ["authentication_type"]
        field = _format_loc(loc)
        problems.append(Problem(field, _explain(error["type"], field, error["msg"], auth)))
    return problems


def _format_loc(loc: list[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _explain(kind: str, field: str, default: str, auth: object) -> str:
    if kind == "model_type" and not field:
        return "the integration must be a JSON object"
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        return _auth_type_message(auth)
    last = field.rsplit(".", 1)[-1]
    if kind == "missing":
        hint = _MISSING_HINTS.get(last)
        when = f" when authentication_type is {auth!r}" if last in _auth_only_fields() else ""
        return f"required{when}" + (f": {hint}" if hint else "")
    if kind == "extra_forbidden":
        return _unknown_field_message(last, auth, top_level="." not in field and "[" not in field)
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
        return f"keys must be among {', '.join(MAPPABLE_FIELDS)}"
    return default.removeprefix("Value error, ")


def _auth_only_fields() -> set[str]:
    shared = set(_IntegrationBase.model_fields)
    return _ALL_FIELDS - shared - {"authentication_type"}


def _auth_type_message(auth: object) -> str:
    options = ", ".join(repr(a) for a in AUTHENTICATION_TYPES)
    if auth is None:
        return f"required: one of {options}"
    return f"must be one of {options}, not {auth!r}"


def _unknown_field_message(name: str, auth: object, top_level: bool) -> str:
    if top_level and name in _ALL_FIELDS:
        owners = [a for a, fields in _FIELDS_BY_AUTH.items() if name in fields]
        return (
            f"only used with authentication_type {' or '.join(repr(o) for o in owners)}, "
            f"not {auth!r}; remove it or change authentication_type"
        )
    candidates = (
        _ALL_FIELDS
        if top_level
        else set(ModelProperties.model_fields) | set(CustomLLMConfig.model_fields)
    )
    close = difflib.get_close_matches(name, candidates, n=1)
    return "unknown property" + (f"; did you mean {close[0]!r}?" if close else "; remove it")
