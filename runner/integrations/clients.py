"""Opening what an integration holds while it serves: its credentials, and the client
its calls go through when they go through LiteLLM (or its handler's adapter).

Every client authenticates at send time with the integration's credentials,
applies its fixed headers last, sends only to addresses the policy allows, and
holds answers to what the runner passes on
(:mod:`runner.calls.backends.checked_transport`), so LiteLLM never holds a
secret: it gets :data:`PLACEHOLDER_KEY` wherever it insists on a key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from runner.calls.backends.checked_transport import CheckedTransport
from runner.handlers.files import LoadedHandler
from runner.handlers.providers import provider_name
from runner.integrations.formats import (
    AZURE_API_VERSION,
    OPENAI_SHAPED,
    format_headers,
    sent_by_runner,
)
from runner.integrations.formats import api_base as litellm_api_base
from runner.integrations.redaction import secrets_of
from runner.integrations.schema import Integration
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

PLACEHOLDER_KEY = "runner-sends-its-own-credentials"


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
    if sent_by_runner(integration.format, fast_path=not via_litellm):
        return UpstreamClient(credentials=credentials)  # sent over the shared session

    fixed_headers = {
        **format_headers(integration.format, integration.anthropic_version),
        **integration.headers,
    }

    async def apply_fixed_headers(request: httpx.Request) -> None:
        # Request hooks run after the auth flow, so fixed headers override everything.
        # LiteLLM puts its placeholder key in whatever header a format uses for keys;
        # the auth flow has overwritten it where the integration sends a key there.
        for name in [n for n, v in request.headers.items() if PLACEHOLDER_KEY in v]:
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
            openai=integration.format in OPENAI_SHAPED,
        ),
        timeout=timeout,
        event_hooks={"request": [apply_fixed_headers]},
    )
    if integration.format == "azure":
        from openai import AsyncAzureOpenAI  # as below: slow, and only needed here

        azure = AsyncAzureOpenAI(
            api_key=PLACEHOLDER_KEY,
            azure_endpoint=litellm_api_base("azure", integration.endpoint or ""),
            api_version=integration.api_version or AZURE_API_VERSION,
            http_client=http,
            max_retries=0,
            timeout=timeout,
        )
        return UpstreamClient(credentials=credentials, openai=azure, http=http)
    if integration.format != "openai":
        # LiteLLM's own HTTP layer, sending over this client (imported by now: see
        # Registry.stage).
        from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler

        handler = AsyncHTTPHandler(timeout=timeout)
        handler.client = http
        return UpstreamClient(credentials=credentials, http=http, litellm_http=handler)
    from openai import AsyncOpenAI  # slow to import, and only the LiteLLM path needs it

    openai = AsyncOpenAI(
        api_key=PLACEHOLDER_KEY,
        base_url=integration.endpoint,
        http_client=http,
        max_retries=0,
        timeout=timeout,
    )
    return UpstreamClient(credentials=credentials, openai=openai, http=http)
