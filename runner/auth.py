"""Upstream authentication as ``httpx.Auth`` flows, one per integration.

The credentials are applied at send time, inside the integration's pooled HTTP
client, so neither LiteLLM nor its logging ever holds a secret, and the OAuth2
flow can see an upstream 401 and retry the very same request once with a fresh
token.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator

import httpx
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client

from .errors import RunnerError
from .schema import ApiKeyIntegration, Integration, OAuth2Integration
from .tls import tls_context

# The OpenAI SDK always sends "Authorization: Bearer <placeholder>"; every flow
# below replaces or removes it so the placeholder never leaves the process.
_SDK_PLACEHOLDER_HEADER = "Authorization"


class NoAuth(httpx.Auth):
    """For endpoints that take no credentials: send none at all."""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.pop(_SDK_PLACEHOLDER_HEADER, None)
        yield request


class ApiKeyAuth(httpx.Auth):
    """A static key in a header of the provider's choosing (bearer tokens included)."""

    def __init__(self, header: str, value: str) -> None:
        self._header = header
        self._value = value

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.pop(_SDK_PLACEHOLDER_HEADER, None)
        request.headers[self._header] = self._value
        yield request


class ClientCredentialsTokens:
    """OAuth2 client-credentials access tokens, fetched with authlib and cached.

    One fetch at a time: callers that find the cache cold or stale wait on a lock
    and reuse the token the first of them fetched, so N concurrent requests cost
    one token request. A token is renewed shortly before ``expires_in`` runs out.
    """

    def __init__(
        self, token_url: str, client_id: str, client_secret: str, scope: str | None, timeout: float
    ) -> None:
        self._token_url = token_url
        self._oauth = AsyncOAuth2Client(
            client_id=client_id,
            client_secret=client_secret,
            scope=scope,
            token_endpoint_auth_method="client_secret_post",
            timeout=timeout,
            verify=tls_context(),
        )
        self._lock = asyncio.Lock()
        self._access_token: str | None = None
        self._renew_at = 0.0

    def _fresh(self) -> str | None:
        if self._access_token is not None and time.monotonic() < self._renew_at:
            return self._access_token
        return None

    async def get(self) -> str:
        """A valid access token, fetching one only if none is cached."""
        token = self._fresh()
        if token is not None:
            return token
        async with self._lock:
            return self._fresh() or await self._fetch()

    async def renew(self, rejected: str) -> str:
        """A token other than ``rejected``, which the upstream just refused with a 401."""
        async with self._lock:
            current = self._fresh()
            if current is not None and current != rejected:
                return current
            return await self._fetch()

    async def _fetch(self) -> str:
        try:
            token = await self._oauth.fetch_token(self._token_url, grant_type="client_credentials")
        except OAuthError as exc:
            raise _token_error(f"the token endpoint refused the client: {exc.error}") from None
        except Exception as exc:  # network failures, whichever HTTP library authlib uses
            raise _token_error(f"{type(exc).__name__}: {exc}") from None
        access_token = token.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise _token_error("the token endpoint's response has no access_token")
        expires_in = token.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else float("inf")
        # Renew early (a minute, or half the lifetime of a short-lived token) so a
        # token never expires on its way upstream.
        self._renew_at = time.monotonic() + lifetime - min(60.0, lifetime / 2)
        self._access_token = access_token
        return access_token

    async def aclose(self) -> None:
        await self._oauth.aclose()


def _token_error(detail: str) -> RunnerError:
    return RunnerError(
        message=f"could not get an OAuth2 access token: {detail}",
        status_code=502,
        type="upstream_auth_error",
        code="oauth2_token_failed",
    )


class OAuth2Auth(httpx.Auth):
    """Bearer tokens from :class:`ClientCredentialsTokens`, retried once on a 401."""

    def __init__(self, tokens: ClientCredentialsTokens) -> None:
        self._tokens = tokens

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("OAuth2 upstream auth is only available on async clients")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._tokens.get()
        request.headers[_SDK_PLACEHOLDER_HEADER] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            token = await self._tokens.renew(rejected=token)
            request.headers[_SDK_PLACEHOLDER_HEADER] = f"Bearer {token}"
            yield request


def auth_for(
    integration: Integration, timeout: float
) -> tuple[httpx.Auth, ClientCredentialsTokens | None]:
    """The auth flow an integration needs, and its token cache if it has one."""
    if isinstance(integration, ApiKeyIntegration):
        return ApiKeyAuth(
            integration.api_key_header, integration.api_key_value.get_secret_value()
        ), None
    if isinstance(integration, OAuth2Integration):
        tokens = ClientCredentialsTokens(
            token_url=integration.oauth2_token_url,
            client_id=integration.token.client_id,
            client_secret=integration.token.client_secret.get_secret_value(),
            scope=integration.authentication_scope,
            timeout=timeout,
        )
        return OAuth2Auth(tokens), tokens
    return NoAuth(), None


def handler_credentials(
    integration: Integration, tokens: ClientCredentialsTokens | None
) -> Callable[[], Awaitable[tuple[str | None, dict[str, str]]]]:
    """The integration's auth as a custom handler receives it: ``api_key`` and headers.

    A handler does its own HTTP, so it gets the credential itself: the API key
    (bearer value included) or a current OAuth2 access token.
    """
    if isinstance(integration, ApiKeyIntegration):
        value = integration.api_key_value.get_secret_value()
        static = (value, {integration.api_key_header: value})

        async def api_key() -> tuple[str | None, dict[str, str]]:
            return static[0], dict(static[1])

        return api_key
    if tokens is not None:

        async def oauth2() -> tuple[str | None, dict[str, str]]:
            token = await tokens.get()
            return token, {_SDK_PLACEHOLDER_HEADER: f"Bearer {token}"}

        return oauth2

    async def none() -> tuple[str | None, dict[str, str]]:
        return None, {}

    return none
