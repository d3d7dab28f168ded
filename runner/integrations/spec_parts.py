"""The pieces an integration is made of: its field types, its limits, its models, the
handler block and the OAuth2 client credentials (assembled by
:mod:`runner.integrations.schema`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
)
from pydantic_core import PydanticCustomError

from runner.calls.types import ModelType
from runner.integrations.catalog import (
    TYPE_DEFAULT_PARAMETERS,
    closest_builtin_names,
    lookup_builtin,
)
from runner.integrations.formats import anthropic_version, azure_api_version
from runner.text_rules import PLAIN, VISIBLE

_HEADER_NAME = r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$"

NonEmptyStr = Annotated[str, PLAIN, StringConstraints(strip_whitespace=True, min_length=1)]
Label = Annotated[str, VISIBLE, StringConstraints(strip_whitespace=True, min_length=1)]
"""A name callers pick a model by: nothing invisible that could make it pass for another."""
HeaderName = Annotated[str, PLAIN, StringConstraints(pattern=_HEADER_NAME)]
HeaderValue = Annotated[str, PLAIN]
Secret = Annotated[SecretStr, PLAIN]
MappableField = Literal["job_id", "user_id", "project_id", "run_id"]
AnthropicVersion = Annotated[str, AfterValidator(anthropic_version)]
AzureApiVersion = Annotated[str, AfterValidator(azure_api_version)]


class Limits(BaseModel):
    """Limits an integration, or one of its models, may set (see runner.calls.limits)."""

    timeout: float | None = Field(default=None, gt=0, le=3600)
    rate_limit: int | None = Field(default=None, ge=1, description="requests per minute")
    max_concurrency: int | None = Field(default=None, ge=1)
    num_retries: int | None = Field(default=None, ge=0, le=10)


class ModelProperties(Limits):
    """One model the integration serves, and what callers may send to it."""

    model_config = ConfigDict(extra="forbid")

    name: Label
    alias: Label | None = None
    type: ModelType = Field(
        default="chat",
        description="What the model does, and so the route that serves it: chat "
        "(/v1/chat/completions and /v1/messages), completion (/v1/completions), "
        "embedding (/v1/embeddings) or rerank (/v1/rerank).",
    )
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
        """Explicit ``supported_parameters`` win over ``based_on``; else the type's defaults."""
        if self.supported_parameters is not None:
            return tuple(self.supported_parameters)
        if self.based_on is not None:
            return lookup_builtin(self.based_on) or ()
        return TYPE_DEFAULT_PARAMETERS[self.type]


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
    client_secret: Secret
