"""Upstream credentials, applied at send time by whichever client makes the call.

An integration's :class:`Credentials` say which headers authenticate a request
and, for OAuth2, how to recover from a 401. The same object serves the three
ways a call leaves the runner: the fast path's aiohttp requests, the ``httpx``
client LiteLLM drives (through :class:`HttpxAuth`), and custom handlers (which
get the secret and headers as arguments). Neither LiteLLM nor its logging ever
holds a secret.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Generator, Mapping
from urllib.parse import urlsplit

import httpx
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client

from runner.errors import RunnerError
from runner.integrations.schema import ApiKeyIntegration, Integration, OAuth2Integration
from runner.observe import tracing
from runner.security.addresses import AddressPolicy, AddressRefused
from runner.security.outbound import tls_context

Resolved = tuple[str | None, dict[str, str]]
"""A credential: the secret itself (API key or access token, if any) and its headers."""

# The OpenAI SDK always sends "Authorization: Bearer <placeholder>"; HttpxAuth
# replaces or removes it so the placeholder never leaves the process.
_AUTHORIZATION = "Authorization"


class Credentials:
    """No credentials at all; the base for those that have some."""

    async def resolve(self) -> Resolved:
        return None, {}

    async def renew(self, rejected: str | None) -> Resolved | None:
        """After a 401 for ``rejected``: fresh credentials to retry with once, or None."""
        return None


class ApiKeyCredentials(Credentials):
    """A static key in a header of the provider's choosing (bearer tokens included)."""

    def __init__(self, header: str, value: str) -> None:
        self._value = value
        self._headers = {header: value}

    async def resolve(self) -> Resolved:
        return self._value, self._headers


class ClientCredentialsTokens:
    """OAuth2 client-credentials access tokens, fetched with authlib and cached.

    One fetch at a time: callers that find the cache cold or stale wait on a lock
    and reuse the token the first of them fetched, so N concurrent requests cost
    one token request. A token is renewed shortly before ``expires_in`` runs out.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str | None,
        timeout: float,
        addresses: AddressPolicy,
    ) -> None:
        self._token_url = token_url
        self._addresses = addresses
        self._oauth = AsyncOAuth2Client(
            client_id=client_id,
            client_secret=client_secret,
            scope=scope,
            token_endpoint_auth_method="client_secret_post",
            timeout=timeout,
            verify=tls_context(),
        )
        self._lock = asyncio.Lock()
        self.fetches = {"ok": 0, "failed": 0}  # token requests, for /metrics
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
        # Checked here rather than in the HTTP client: authlib drives httpx or httpx2,
        # whichever is installed, and a transport only fits one of them.
        url = urlsplit(self._token_url)
        try:
            await self._addresses.check_host(url.hostname or "", url.port or 0)
        except AddressRefused as exc:
            raise _token_error(str(exc)) from None
        self.fetches["failed"] += 1  # until it proves otherwise
        try:
            with tracing.child("oauth2 token", client=True, **{"server.address": url.hostname}):
                token = await self._oauth.fetch_token(
                    self._token_url, grant_type="client_credentials"
                )
        except OAuthError as exc:
            raise _token_error(f"the token endpoint refused the client: {exc.error}") from None
        except Exception as exc:  # network failures, whichever HTTP library authlib uses
            raise _token_error(f"{type(exc).__name__}: {exc}", retryable=True) from None
        access_token = token.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise _token_error("the token endpoint's response has no access_token")
        expires_in = token.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else float("inf")
        # Renew early (a minute, or half the lifetime of a short-lived token) so a
        # token never expires on its way upstream.
        self._renew_at = time.monotonic() + lifetime - min(60.0, lifetime / 2)
        self._access_token = access_token
        self.fetches["failed"] -= 1
        self.fetches["ok"] += 1
        return access_token

    async def aclose(self) -> None:
        await self._oauth.aclose()


def _token_error(detail: str, retryable: bool = False) -> RunnerError:
    return RunnerError(
        message=f"could not get an OAuth2 access token: {detail}. This is a gateway "
        "misconfiguration or an outage of the token endpoint, not a problem with your request.",
        status_code=502,
        type="upstream_authorization_error",
        code="oauth2_token_failed",
        retryable=retryable,
    )


class OAuth2Credentials(Credentials):
    """Bearer access tokens from :class:`ClientCredentialsTokens`; a 401 renews once."""

    def __init__(self, tokens: ClientCredentialsTokens) -> None:
        self.tokens = tokens

    async def resolve(self) -> Resolved:
        token = await self.tokens.get()
        return token, {_AUTHORIZATION: f"Bearer {token}"}

    async def renew(self, rejected: str | None) -> Resolved | None:
        token = await self.tokens.renew(rejected=rejected or "")
        return token, {_AUTHORIZATION: f"Bearer {token}"}


def outbound_headers(
    auth: Mapping[str, str], mapped: Mapping[str, str], fixed: Mapping[str, str]
) -> dict[str, str]:
    """The headers an upstream request carries, in the order every backend keeps.

    Credentials first, then the caller's mapped ``metadata``, then the
    integration's fixed ``headers`` last, so an operator's header always wins.
    """
    return {**auth, **mapped, **fixed}


class HttpxAuth(httpx.Auth):
    """:class:`Credentials` as an httpx auth flow, for the client LiteLLM drives."""

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("upstream auth is only available on async clients")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        secret, headers = await self._credentials.resolve()
        request.headers.pop(_AUTHORIZATION, None)
        request.headers.update(headers)
        response = yield request
        if response.status_code == 401:
            renewed = await self._credentials.renew(secret)
            if renewed is not None:
                request.headers.update(renewed[1])
                yield request


def credentials_for(
    integration: Integration, timeout: float, addresses: AddressPolicy
) -> Credentials:
    """The credentials an integration's authentication_type calls for."""
    if isinstance(integration, ApiKeyIntegration):
        return ApiKeyCredentials(
            integration.api_key_header, integration.api_key_value.get_secret_value()
        )
    if isinstance(integration, OAuth2Integration):
        return OAuth2Credentials(
            ClientCredentialsTokens(
                token_url=integration.oauth2_token_url,
                client_id=integration.token.client_id,
                client_secret=integration.token.client_secret.get_secret_value(),
                scope=integration.authentication_scope,
                timeout=timeout,
                addresses=addresses,
            )
        )
    return Credentials()
