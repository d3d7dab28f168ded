"""The integration JSON: its shape and its rules.

An integration is one of three pydantic models chosen by ``authentication_type``,
so a field that belongs to another authentication type is refused by name.
:func:`parse_integration` is the single entry point: it returns a validated
:data:`Integration` or raises :class:`~runner.errors.IntegrationInvalid` listing
every problem with the field it concerns and how to fix it (the messages are
written by :mod:`runner.integrations.schema_refusals`; which characters and URLs strings may
hold is :mod:`runner.text_rules`).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, get_args

from pydantic import (
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
)
from pydantic_core import PydanticCustomError

from runner import json_body
from runner.errors import IntegrationInvalid, Problem
from runner.integrations.formats import Format, format_problems
from runner.integrations.schema_refusals import KnownFields, problems_from
from runner.integrations.spec_parts import (
    AnthropicVersion,
    AzureApiVersion,
    ClientCredentials,
    CustomLLMConfig,
    HeaderName,
    HeaderValue,
    Label,
    Limits,
    MappableField,
    ModelProperties,
    NonEmptyStr,
    Secret,
)
from runner.text_rules import http_url

# \Z, not $: "$" would also match before a trailing newline ("acme\n").
INTEGRATION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


class _IntegrationBase(Limits):
    model_config = ConfigDict(extra="forbid")

    model_properties: list[ModelProperties] = Field(min_length=1)
    endpoint: str | None = None
    default_model: Label | None = None
    custom_header_mapping: dict[MappableField, HeaderName] = Field(default_factory=dict)
    headers: dict[HeaderName, HeaderValue] = Field(default_factory=dict)
    secret_headers: list[HeaderName] = Field(
        default_factory=list,
        description="headers names whose values are secrets: encrypted at rest, redacted.",
    )
    custom_llm_config: CustomLLMConfig | None = None
    format: Format = Field(
        default="openai",
        description="The wire format the endpoint speaks (see runner.integrations.formats).",
    )
    anthropic_version: AnthropicVersion | None = None
    api_version: AzureApiVersion | None = None

    @field_validator("endpoint")
    @classmethod
    def _endpoint_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = http_url(
            value,
            "https://api.example.com/v1",
            credentials_go="api_key_header and api_key_value, or headers",
        )
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
    api_key_value: Secret = Field(min_length=1)


class OAuth2Integration(_IntegrationBase):
    authentication_type: Literal["oauth2"]
    oauth2_token_url: str
    token: ClientCredentials
    authentication_scope: NonEmptyStr | None = None

    @field_validator("oauth2_token_url")
    @classmethod
    def _token_url(cls, value: str) -> str:
        return http_url(
            value,
            "https://auth.example.com/oauth2/token",
            credentials_go="token (the client id and secret)",
        )

    @field_validator("token", mode="before")
    @classmethod
    def _decode_token(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        try:
            return json_body.loads(value)
        except json_body.JsonRefused as exc:
            raise PydanticCustomError(
                "token_json",
                "must be an escaped JSON string such as "
                '"{{\\"client_id\\": \\"ID\\", \\"client_secret\\": \\"SECRET\\"}}" '
                "({reason})",
                {"reason": str(exc)},
            ) from None


class NoAuthIntegration(_IntegrationBase):
    authentication_type: Literal["none"]


Integration = Annotated[
    ApiKeyIntegration | OAuth2Integration | NoAuthIntegration,
    Field(discriminator="authentication_type"),
]
_ADAPTER: TypeAdapter[Integration] = TypeAdapter(Integration)

_KNOWN_FIELDS = KnownFields(
    by_auth={
        "api_key": frozenset(ApiKeyIntegration.model_fields),
        "oauth2": frozenset(OAuth2Integration.model_fields),
        "none": frozenset(NoAuthIntegration.model_fields),
    },
    nested=frozenset(ModelProperties.model_fields) | frozenset(CustomLLMConfig.model_fields),
    mappable=get_args(MappableField),
)


def parse_integration(data: object) -> Integration:
    """Validate decoded integration JSON; raise IntegrationInvalid listing every problem."""
    try:
        integration = _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise IntegrationInvalid(problems_from(exc, data, _KNOWN_FIELDS)) from None
    problems = _cross_field_problems(integration)
    if problems:
        raise IntegrationInvalid(problems)
    return integration


def _cross_field_problems(integration: Integration) -> list[Problem]:
    """What a valid shape can still get wrong: fields that must agree with each other."""
    problems: list[Problem] = []
    if integration.endpoint is None and integration.custom_llm_config is None:
        problems.append(
            Problem(
                "endpoint",
                "required: the provider's OpenAI-compatible base URL, e.g. "
                "https://api.example.com/v1 (the runner appends /chat/completions)",
            )
        )
    problems.extend(
        format_problems(
            integration.format,
            handler=integration.custom_llm_config is not None,
            anthropic_version=integration.anthropic_version,
            api_version=integration.api_version,
            model_types=tuple(m.type for m in integration.model_properties),
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
