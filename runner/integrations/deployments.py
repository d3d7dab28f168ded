"""Turning a validated integration into deployments, one per model, each with its backend.

Everything a call needs that does not depend on the request is computed here,
once, at registration: which backend reaches the model (plain HTTP, LiteLLM or
the handler; see :mod:`runner.calls.backends`) over the integration's client
(:mod:`runner.integrations.clients`), the limits it is held to, and the map from caller parameter
names to the names sent upstream. The hot path then only filters the request
and sends it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import aiohttp

from runner import lazy_litellm
from runner.calls.backends.plain_http import PlainHttpBackend
from runner.calls.backends.via_litellm import LiteLLMBackend
from runner.calls.limits import DEFAULT_NUM_RETRIES
from runner.calls.types import Backend, Deployment, Gate, Policy
from runner.integrations.clients import PLACEHOLDER_KEY, UpstreamClient
from runner.integrations.formats import AZURE_API_VERSION, litellm_model
from runner.integrations.formats import api_base as litellm_api_base
from runner.integrations.schema import Integration, Limits, ModelProperties

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
) -> list[Deployment]:
    """One deployment per model of the integration, each with its backend.

    ``session`` is the fast path's shared connection pool: given one, plain
    OpenAI-compatible models are sent over it and handlers are called directly;
    without one (``RUNNER_FAST_PATH=false``) every call goes through LiteLLM.
    """
    shared = _gate(f"integration {name!r}", integration)
    direct = _direct_backend(integration, client, timeout, session)
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
                backend=direct or _litellm_backend(integration, client, model, accepted, timeout),
            )
        )
    return deployments


def _direct_backend(
    integration: Integration,
    client: UpstreamClient,
    timeout: float,
    session: aiohttp.ClientSession | None,
) -> Backend | None:
    """The backend all of the integration's models share when the fast path is on."""
    if session is None:
        return None
    if client.handler is not None:
        from runner.calls.backends.handler import (
            HandlerBackend,  # LiteLLM's types: loaded by now
        )

        return HandlerBackend(client.handler, integration.endpoint, timeout)
    if not integration.endpoint or integration.format != "openai":
        return None
    return PlainHttpBackend(
        session,
        f"{integration.endpoint}/chat/completions",
        client.credentials,
        MappingProxyType(dict(integration.headers)),
    )


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
    return LiteLLMBackend(
        MappingProxyType(
            {
                **target,
                "api_base": api_base,
                # Our own filter already decided what may pass; tell LiteLLM
                # not to second-guess parameters it does not know for this name.
                "allowed_openai_params": sorted(set(accepted.values())),
                "timeout": timeout,
                "num_retries": 0,
                # With tools present LiteLLM would detour through its MCP
                # gateway, which needs the optional `mcp` package and is a
                # proxy feature; tools go to the model as sent.
                "_skip_mcp_handler": True,
            }
        )
    )


def _gate(owner: str, limits: Limits) -> Gate | None:
    if limits.rate_limit is None and limits.max_concurrency is None:
        return None
    return Gate(owner, limits.rate_limit, limits.max_concurrency)
