"""The fast path: plain OpenAI-compatible calls sent straight to the upstream.

LiteLLM spends milliseconds of CPU per call (logging objects, cost lookups,
response re-validation) translating between formats that, for an
OpenAI-compatible upstream, are already the same; and httpx's connection pool
collapses under concurrency (~150 req/s at 32 connections here, against ~4,000
for aiohttp). This path sends the filtered request with aiohttp, with the same
credentials, 401 renewal and fixed headers as the LiteLLM path, and returns the
upstream's JSON with only ``model`` set to the alias. Errors map exactly as on
the LiteLLM path (:mod:`runner.upstream_errors`). ``RUNNER_FAST_PATH=false``
turns it off; the test suite runs on both paths.
"""

from __future__ import annotations

import functools
import json
import urllib.request
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp

from .auth import Credentials
from .ssrf import AddressPolicy
from .tls import tls_context
from .upstream_errors import as_runner_error, error_event, retry_after, status_error

if TYPE_CHECKING:
    from .completions import PreparedCall

_JSON = {"Content-Type": "application/json"}


def open_session(timeout: float, addresses: AddressPolicy) -> aiohttp.ClientSession:
    """The one connection pool all fast-path calls of a runner share.

    No cookie jar (upstreams must not see each other's cookies), and
    ``timeout`` as the longest wait for a connection or for the next bytes of an
    answer. Proxies are not looked up here: aiohttp's ``trust_env`` would read
    the environment (and ``.netrc``) in a thread on every request, so each
    route resolves its proxy once instead (:func:`env_proxy`).
    """
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ssl=tls_context(), resolver=addresses.resolver()),
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=timeout),
    )


def env_proxy(url: str) -> str | None:
    """The proxy ``HTTP(S)_PROXY``/``NO_PROXY`` choose for ``url``, as httpx would use."""
    parts = urlsplit(url)
    proxies = _environment_proxies()
    if parts.hostname is None or urllib.request.proxy_bypass_environment(parts.hostname, proxies):
        return None
    return proxies.get(parts.scheme)


@functools.cache
def _environment_proxies() -> dict[str, str]:
    """Read once per process: scanning the environment costs ~0.3 ms, and registering
    thousands of integrations at start would otherwise spend seconds on it."""
    return urllib.request.getproxies_environment()


@dataclass(frozen=True)
class DirectRoute:
    """Where a plain deployment's requests go, and what they carry besides the body."""

    session: aiohttp.ClientSession
    url: str
    credentials: Credentials
    fixed_headers: Mapping[str, str]
    proxy: str | None = None


async def complete(call: PreparedCall, route: DirectRoute) -> bytes | AsyncIterator[bytes]:
    deployment = call.deployment
    body = json.dumps(
        {"model": deployment.upstream_model, "messages": call.messages, **call.params}
    ).encode()
    response: aiohttp.ClientResponse | None = None
    try:
        response = await _send(route, body, call.headers)
        if not 200 <= response.status < 300:  # redirects are not followed, nor passed on
            detail = _upstream_message(await response.read(), response.reason)
            wait = retry_after(response.headers.get("retry-after"))
            raise status_error(deployment, response.status, detail, wait)
        if not call.stream:
            return _with_alias(await response.read(), deployment.alias)
        first = await _next_event(response)
    except BaseException as exc:
        if response is not None:
            response.release()  # also when cancelled: the integration's deadline passed
        if not isinstance(exc, Exception):
            raise
        raise as_runner_error(exc, deployment) from exc
    return _sse(first, response, call)


async def _send(route: DirectRoute, body: bytes, mapped: dict[str, str]) -> aiohttp.ClientResponse:
    """POST with credentials, mapped headers and (last) fixed headers; renew once on a 401."""
    secret, auth_headers = await route.credentials.resolve()
    headers = {**_JSON, **auth_headers, **mapped, **route.fixed_headers}
    response = await route.session.post(
        route.url, data=body, headers=headers, proxy=route.proxy, allow_redirects=False
    )
    if response.status == 401:
        renewed = await route.credentials.renew(secret)
        if renewed is not None:
            response.release()
            headers = {**_JSON, **renewed[1], **mapped, **route.fixed_headers}
            response = await route.session.post(
                route.url, data=body, headers=headers, proxy=route.proxy, allow_redirects=False
            )
    return response


async def _next_event(response: aiohttp.ClientResponse) -> bytes | None:
    """The next SSE ``data:`` payload, or None at the end of the stream."""
    async for line in response.content:
        if line.startswith(b"data:"):
            payload = line[5:].strip()
            if payload != b"[DONE]":
                return payload
            await response.read()  # to the end of the body, so the connection is reused
            return None
    return None


async def _sse(
    first: bytes | None, response: aiohttp.ClientResponse, call: PreparedCall
) -> AsyncIterator[bytes]:
    alias = call.deployment.alias
    payload = first
    try:
        while payload is not None:
            yield b"data: " + _with_alias(payload, alias) + b"\n\n"
            payload = await _next_event(response)
    except Exception as exc:
        yield error_event(as_runner_error(exc, call.deployment))
        return
    finally:
        response.release()
    yield b"data: [DONE]\n\n"


def _with_alias(raw: bytes, alias: str) -> bytes:
    """The upstream's JSON with ``model`` set to the alias the caller used."""
    try:
        data: Any = json.loads(raw)
    except ValueError:
        return raw
    if isinstance(data, dict) and "model" in data:
        data["model"] = alias
        return json.dumps(data, separators=(",", ":")).encode()
    return raw


def _upstream_message(raw: bytes, reason: str | None) -> str:
    try:
        error = json.loads(raw).get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str):
        return error
    return raw[:500].decode(errors="replace") or reason or "no detail"
