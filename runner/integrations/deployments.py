"""Turning a validated integration into deployments, one per model, each with its backend.

Everything a call needs that does not depend on the request is computed here,
once, at registration: which backend reaches the model (plain HTTP, LiteLLM or
the handler; see :mod:`runner.calls.backends`), the credentials and fixed
headers it sends, the limits it is held to, and the map from caller parameter
names to the names sent upstream. The hot path then only filters the request
and sends it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import aiohttp
import httpx

from runner.calls.backends.checked_transport import CheckedTransport
from runner.calls.backends.plain_http import PlainHttpBackend
from runner.calls.backends.via_litellm import LiteLLMBackend
from runner.calls.limits import DEFAULT_NUM_RETRIES
from runner.calls.types import Backend, Deployment, Gate, Policy
from runner.handlers.files import LoadedHandler
from runner.handlers.providers import provider_name
from runner.integrations.formats import api_base as litellm_api_base
from runner.integrations.formats import format_headers, litellm_model
from runner.integrations.redaction import secrets_of
from runner.integrations.schema import Integration, Limits, ModelProperties
from runner.scrub import secret_strings
from runner.security.addresses import AddressPolicy
from runner.security.credentials import (
    Credentials,
    HttpxAuth,
    OAuth2Credentials,
    credentials_for,
)
from runner.security.outbound import env_proxy, tls_context
from runner.settings import DEFAULT_MAX_RESPONSE_BYTES

if TYPE_CHECKING:
    from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler
    from openai import AsyncOpenAI

    from runner.handlers.adapter import HandlerAdapter

# Newer OpenAI clients send "max_completion_tokens" where older endpoints take
# "max_tokens": a model that declares one accepts the other under its own name.
_TOKEN_LIMITS = ("max_tokens", "max_completion_tokens")
_SDK_PLACEHOLDER_KEY = "runner-sends-its-own-credentials"


@dataclass
class UpstreamClient:
    """What one integration holds open, shared by its models.

    Both kinds have the integration's credentials (and with them, for OAuth2, a
    token cache). An OpenAI-compatible integration has a pooled, authenticated
    HTTP client for LiteLLM; a handler integration has its :class:`HandlerAdapter`.
    """

    credentials: Credentials
    openai: AsyncOpenAI | None = None
    http: httpx.AsyncClient | None = None
    litellm_http: AsyncHTTPHandler | None = None
    handler: HandlerAdapter | None = None

    async def aclose(self) -> None:
        if self.http is not None:
            await self.http.aclose()
        if isinstance(self.credentials, OAuth2Credentials):
            await self.credentials.tokens.aclose()


def open_handler(
    name: str,
    integration: Integration,
    loaded: LoadedHandler,
    timeout: float,
    addresses: AddressPolicy,
) -> UpstreamClient:
    """Wrap a loaded handler so LiteLLM can call it with the integration's credentials.

    The integration's secrets are listed here, once, for the adapter to mask in
    the errors a handler causes.
    """
    from runner.handlers.adapter import (
        HandlerAdapter,  # a CustomLLM: needs LiteLLM, loaded by now
    )

    credentials = credentials_for(integration, timeout, addresses)
    adapter = HandlerAdapter(
        provider=provider_name(name),
        integration=name,
        loaded=loaded,
        credentials=credentials,
        fixed_headers=integration.headers,
        timeout=timeout,
        secrets=secret_strings(value for _, value in secrets_of(integration)),
    )
    return UpstreamClient(credentials=credentials, handler=adapter)


def open_client(
    integration: Integration,
    timeout: float,
    addresses: AddressPolicy,
    *,
    via_litellm: bool,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
) -> UpstreamClient:
    """A client for ``integration.endpoint`` that authenticates every request it sends.

    Only calls made through LiteLLM need a pooled client; the fast path sends
    over the registry's shared session, so without ``via_litellm`` (and for the
    ``openai`` format) the client holds just the credentials, and registering
    stays cheap at scale. Its answers are held to what the fast path accepts
    (:mod:`runner.calls.backends.checked_transport`). LiteLLM drives an
    ``openai``-format endpoint through the OpenAI SDK over this client, and
    every other format through its own HTTP handler wrapped around it; either
    way the credentials, fixed headers, address policy and answer checks apply.
    """
    credentials = credentials_for(integration, timeout, addresses)
    if not via_litellm and integration.format == "openai":
        return UpstreamClient(credentials=credentials)

    fixed_headers = {
        **format_headers(integration.format, integration.anthropic_version),
        **integration.headers,
    }

    async def apply_fixed_headers(request: httpx.Request) -> None:
        # Request hooks run after the auth flow, so fixed headers override everything.
        # LiteLLM puts its placeholder key in whatever header a format uses for keys;
        # the auth flow has overwritten it where the integration sends a key there.
        for name in [n for n, v in request.headers.items() if _SDK_PLACEHOLDER_KEY in v]:
            del request.headers[name]
        request.headers.update(fixed_headers)

    http = httpx.AsyncClient(
        auth=HttpxAuth(credentials),
        # The proxy the environment chooses for this endpoint, looked up once per
        # process rather than on every client (trust_env rescans os.environ each time).
        trust_env=False,
        transport=CheckedTransport(
            addresses.transport(
                verify=tls_context(),
                proxy=env_proxy(integration.endpoint) if integration.endpoint else None,
                limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
            ),
            max_response_bytes,
            openai=integration.format == "openai",
        ),
        timeout=timeout,
        event_hooks={"request": [apply_fixed_headers]},
    )
    if integration.format != "openai":
        # LiteLLM's own HTTP layer, sending over this client (imported by now: see
        # Registry.stage).
        from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler

        handler = AsyncHTTPHandler(timeout=timeout)
        handler.client = http
        return UpstreamClient(credentials=credentials, http=http, litellm_http=handler)
    from openai import AsyncOpenAI  # slow to import, and only the LiteLLM path needs it

    openai = AsyncOpenAI(
        api_key=_SDK_PLACEHOLDER_KEY,
        base_url=integration.endpoint,
        http_client=http,
        max_retries=0,
        timeout=timeout,
    )
    return UpstreamClient(credentials=credentials, openai=openai, http=http)


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
    else:
        target = {
            "model": litellm_model(integration.format, model.name),
            "client": client.litellm_http,
            # The credentials are the client's to send (see open_client); LiteLLM
            # insists on a key, so it gets a placeholder that is never a secret.
            "api_key": _SDK_PLACEHOLDER_KEY,
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
