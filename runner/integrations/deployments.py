"""Turning a validated integration into deployments, one per model, each with its backend.

Everything a call needs that does not depend on the request is computed here,
once, at registration: which backend reaches the model (plain HTTP, LiteLLM or
the handler; see :mod:`runner.calls.backends`) over the integration's client
(:mod:`runner.integrations.clients`), the limits it is held to, and the map from caller parameter
names to the names sent upstream. The hot path then only filters the request
and sends it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import aiohttp

from runner import lazy_litellm
from runner.calls import answers
from runner.calls.backends.plain_http import PlainHttpBackend
from runner.calls.backends.via_litellm import LiteLLMBackend
from runner.calls.limits import DEFAULT_NUM_RETRIES
from runner.calls.operations import BY_TYPE
from runner.calls.types import Backend, Deployment, Gate, Policy
from runner.integrations.clients import PLACEHOLDER_KEY, UpstreamClient
from runner.integrations.formats import (
    AZURE_API_VERSION,
    format_headers,
    litellm_model,
    sent_by_runner,
)
from runner.integrations.formats import api_base as litellm_api_base
from runner.integrations.schema import Integration, Limits, ModelProperties

# The wire formats as OpenTelemetry's gen_ai.system names them.
_SYSTEMS = {
    "azure": "azure.ai.openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "ollama": "ollama",
}

# Newer OpenAI clients send "max_completion_tokens" where older endpoints take
# "max_tokens": a model that declares one accepts the other under its own name.
_TOKEN_LIMITS = ("max_tokens", "max_completion_tokens")


def accepted_parameters(model: ModelProperties) -> dict[str, str]:
    """Map each parameter a caller may send to the name it is forwarded under."""
    accepted = {name: name for name in model.parameters}
    for declared in _TOKEN_LIMITS:
        if declared in accepted:
            for other in _TOKEN_LIMITS:
                accepted.setdefault(other, declared)
    # Parameter lists written for many providers say "stop_sequences"; an
    # OpenAI-compatible endpoint calls the same thing "stop".
    if "stop" in accepted or "stop_sequences" in accepted:
        accepted["stop"] = accepted["stop_sequences"] = "stop"
    return accepted


def deployments_for(
    name: str,
    integration: Integration,
    client: UpstreamClient,
    timeout: float,
    session: aiohttp.ClientSession | None = None,
    *,
    fast_path: bool = True,
    ask_stream_usage: bool = True,
) -> list[Deployment]:
    """One deployment per model of the integration, each with its backend.

    ``session`` is the runner's shared connection pool for plain HTTP. With
    ``fast_path``, chat models of OpenAI-compatible endpoints are sent over it
    and handlers are called directly; without it (``RUNNER_FAST_PATH=false``)
    chat calls go through LiteLLM. Completion, embedding and rerank models of an
    OpenAI-compatible endpoint are forwarded over it either way: there is
    nothing to translate. Without a session (unit tests), every call goes
    through LiteLLM.
    """
    shared = _gate(f"integration {name!r}", integration)
    chooser = _BackendChooser(integration, client, timeout, session, fast_path)
    deployments = []
    for model in integration.model_properties:
        accepted = accepted_parameters(model)
        own = _gate(f"model {model.caller_alias!r}", model)
        policy = Policy(
            timeout=model.timeout or integration.timeout or timeout,
            num_retries=next(
                (n for n in (model.num_retries, integration.num_retries) if n is not None),
                DEFAULT_NUM_RETRIES,
            ),
            gates=tuple(g for g in (shared, own) if g is not None),
        )
        deployments.append(
            Deployment(
                alias=model.caller_alias,
                integration=name,
                upstream_model=model.name,
                accepted_params=MappingProxyType(accepted),
                header_mapping=MappingProxyType(dict(integration.custom_header_mapping)),
                policy=policy,
                backend=chooser.backend(model, accepted),
                type=model.type,
                system=_SYSTEMS.get(integration.format, "openai")
                if client.handler is None
                else "runner.handler",
                # Handlers report usage in their chunks without being asked.
                ask_stream_usage=ask_stream_usage and client.handler is None,
            )
        )
    return deployments


class _BackendChooser:
    """Picks each model's backend; models of one type share a direct one."""

    def __init__(
        self,
        integration: Integration,
        client: UpstreamClient,
        timeout: float,
        session: aiohttp.ClientSession | None,
        fast_path: bool,
    ) -> None:
        self.integration = integration
        self.client = client
        self.timeout = timeout
        self.session = session
        self.fast_path = fast_path
        self._shared: dict[str, Backend] = {}

    def backend(self, model: ModelProperties, accepted: Mapping[str, str]) -> Backend:
        integration, kind = self.integration, model.type
        direct = self._shared.get(kind)
        if direct is not None:
            return direct
        if self.session is None:
            return _litellm_backend(integration, self.client, model, accepted, self.timeout)
        if self.client.handler is not None:
            if kind == "chat" and not self.fast_path:
                return _litellm_backend(integration, self.client, model, accepted, self.timeout)
            direct = self._handler_backend(kind)
        elif integration.format == "openai" and (self.fast_path or kind != "chat"):
            operation = BY_TYPE[kind]
            direct = self._plain(operation.upstream_path, operation.check_answer)
        elif kind == "chat" and sent_by_runner(integration.format, fast_path=self.fast_path):
            direct = self._translated()
        else:
            return _litellm_backend(integration, self.client, model, accepted, self.timeout)
        self._shared[kind] = direct
        return direct

    def _plain(
        self,
        path: str,
        check_answer: Callable[[bytes], dict[str, Any]],
        endpoint: str | None = None,
        fixed_headers: Mapping[str, str] | None = None,
    ) -> PlainHttpBackend:
        assert self.session is not None
        return PlainHttpBackend(
            self.session,
            f"{endpoint or self.integration.endpoint}/{path}",
            self.client.credentials,
            MappingProxyType(dict(fixed_headers or self.integration.headers)),
            check_answer,
        )

    def _translated(self) -> Backend:
        """A chat backend for a format whose translation the runner takes from LiteLLM."""
        # LiteLLM's modules: loaded by now (Registry.stage).
        from runner.calls.backends.anthropic_messages import AnthropicExchange
        from runner.calls.backends.responses_api import ResponsesExchange
        from runner.calls.backends.translated import TranslatedBackend

        integration = self.integration
        path, translation, name = {
            "anthropic": ("v1/messages", AnthropicExchange, "anthropic"),
            "openai-responses": ("responses", ResponsesExchange, "openai_responses"),
        }[integration.format]
        transport = self._plain(
            path,
            answers.json_object,
            litellm_api_base(integration.format, integration.endpoint or ""),
            {
                **format_headers(integration.format, integration.anthropic_version),
                **integration.headers,
            },
        )
        return TranslatedBackend(name, transport, translation)

    def _handler_backend(self, kind: str) -> Backend:
        from runner.calls.backends.handler import (  # LiteLLM's types: loaded by now
            HandlerBackend,
            HandlerEmbeddingBackend,
        )

        adapter = self.client.handler
        assert adapter is not None
        backend = HandlerEmbeddingBackend if kind == "embedding" else HandlerBackend
        return backend(adapter, self.integration.endpoint, self.timeout)


def _litellm_backend(
    integration: Integration,
    client: UpstreamClient,
    model: ModelProperties,
    accepted: Mapping[str, str],
    timeout: float,
) -> LiteLLMBackend:
    api_base = integration.endpoint
    if client.handler is not None:
        target: dict[str, Any] = {"model": f"{client.handler.provider}/{model.name}"}
    elif integration.format == "openai":
        target = {"model": f"openai/{model.name}", "client": client.openai}
    elif integration.format == "azure":
        lazy_litellm.describe_model(litellm_model("azure", model.name), "azure")
        target = {
            "model": litellm_model("azure", model.name),
            "client": client.openai,
            "api_key": PLACEHOLDER_KEY,
            "api_version": integration.api_version or AZURE_API_VERSION,
        }
        api_base = litellm_api_base("azure", integration.endpoint or "")
    else:
        litellm_name = litellm_model(integration.format, model.name)
        lazy_litellm.describe_model(litellm_name, litellm_name.split("/", 1)[0])
        target = {
            "model": litellm_name,
            "client": client.litellm_http,
            # The credentials are the client's to send (see open_client); LiteLLM
            # insists on a key, so it gets a placeholder that is never a secret.
            "api_key": PLACEHOLDER_KEY,
        }
        api_base = litellm_api_base(integration.format, integration.endpoint or "")
    kwargs = {**target, "api_base": api_base, "timeout": timeout, "num_retries": 0}
    if model.type == "embedding":
        return LiteLLMBackend(MappingProxyType(kwargs), function="aembedding")
    return LiteLLMBackend(
        MappingProxyType(
            {
                **kwargs,
                # Our own filter already decided what may pass: LiteLLM maps what
                # it knows for this provider, and passes the rest on as they are
                # (only the rest: it would send a mapped one twice, raw as well).
                "allowed_openai_params": _unmapped(target["model"], accepted),
                # With tools present LiteLLM would detour through its MCP
                # gateway, which needs the optional `mcp` package and is a
                # proxy feature; tools go to the model as sent.
                "_skip_mcp_handler": True,
            }
        )
    )


def _unmapped(model: str, accepted: Mapping[str, str]) -> list[str]:
    """The accepted parameters LiteLLM does not translate for ``model`` (``provider/name``)."""
    provider, _, name = model.partition("/")
    try:
        known = lazy_litellm.litellm().get_supported_openai_params(
            model=name, custom_llm_provider=provider
        )
    except Exception:  # a handler's provider, unknown to LiteLLM's tables
        known = None
    return sorted(set(accepted.values()) - set(known or ()))


def _gate(owner: str, limits: Limits) -> Gate | None:
    if limits.rate_limit is None and limits.max_concurrency is None:
        return None
    return Gate(owner, limits.rate_limit, limits.max_concurrency)
