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
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import aiohttp
from aiohttp.http_exceptions import LineTooLong

from . import upstream_answers
from .auth import Credentials
from .settings import DEFAULT_MAX_RESPONSE_BYTES
from .ssrf import AddressPolicy
from .tls import tls_context
from .upstream_answers import AnswerTooLarge
from .upstream_errors import error_event, retry_after, status_error, upstream_error

if TYPE_CHECKING:
    from .completions import PreparedCall

_JSON = {"Content-Type": "application/json"}


class LimitedResponse(aiohttp.ClientResponse):
    """An answer that knows the most bytes its session's runner passes on."""

    max_bytes: ClassVar[int] = DEFAULT_MAX_RESPONSE_BYTES


def open_session(
    timeout: float,
    addresses: AddressPolicy,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
) -> aiohttp.ClientSession:
    """The one connection pool all fast-path calls of a runner share.

    No cookie jar (upstreams must not see each other's cookies), and
    ``timeout`` as the longest wait for a connection or for the next bytes of an
    answer. Proxies are not looked up here: aiohttp's ``trust_env`` would read
    the environment (and ``.netrc``) in a thread on every request, so each
    route resolves its proxy once instead (:func:`env_proxy`). The answer
    limit travels with the session's responses (aiohttp's ``response_class``),
    so every route of this runner holds to it without carrying it.
    """
    limited = type("LimitedResponse", (LimitedResponse,), {"max_bytes": max_response_bytes})
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ssl=tls_context(), resolver=addresses.resolver()),
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=timeout),
        response_class=limited,
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
            detail = _upstream_message(await _read(response), response.reason)
            wait = retry_after(response.headers.get("retry-after"))
            raise status_error(deployment, response.status, detail, wait)
        if not call.stream:
            raw = await _read(response)
            return _with_alias(raw, upstream_answers.completion(raw), deployment.alias)
        events = _Events(response)
        first = await events.next()
        if first is None:
            raise upstream_answers.no_events()
    except BaseException as exc:
        if response is not None:
            response.release()  # mid-body this closes the connection: cancelled, or refused
        if not isinstance(exc, Exception):
            raise
        raise upstream_error(exc, deployment) from exc
    return _sse(first, events, call)


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


def _max_bytes(response: aiohttp.ClientResponse) -> int:
    if isinstance(response, LimitedResponse):
        return response.max_bytes
    return DEFAULT_MAX_RESPONSE_BYTES


async def _read(response: aiohttp.ClientResponse) -> bytes:
    """The whole (decompressed) body, refused once longer than the runner's limit."""
    limit = _max_bytes(response)
    chunks = []
    size = 0
    async for data in response.content.iter_any():
        size += len(data)
        if size > limit:
            raise AnswerTooLarge(limit)
        chunks.append(data)
    return b"".join(chunks)


class _Events:
    """A stream's ``data:`` payloads, its bytes counted against the runner's limit."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self._limit = self._left = _max_bytes(response)

    async def next(self) -> tuple[bytes, dict[str, Any]] | None:
        """The next payload and its JSON object, or None at the end of the stream."""
        while line := await self._line():
            if line.startswith(b"data:"):
                payload = line[5:].strip()
                if payload != b"[DONE]":
                    return payload, upstream_answers.chunk(payload)
                while await self._line():  # to the end, so the connection is reused
                    pass
                return None
        return None

    async def _line(self) -> bytes:
        try:
            line = await self.response.content.readline(max_line_length=max(self._left, 1))
        except LineTooLong:
            raise AnswerTooLarge(self._limit) from None
        self._left -= len(line)
        if self._left < 0:
            raise AnswerTooLarge(self._limit)
        return line


async def _sse(
    first: tuple[bytes, dict[str, Any]], events: _Events, call: PreparedCall
) -> AsyncIterator[bytes]:
    alias = call.deployment.alias
    event: tuple[bytes, dict[str, Any]] | None = first
    try:
        while event is not None:
            yield b"data: " + _with_alias(*event, alias) + b"\n\n"
            event = await events.next()
    except Exception as exc:
        yield error_event(upstream_error(exc, call.deployment))
        return
    finally:
        events.response.release()
    yield b"data: [DONE]\n\n"


def _with_alias(raw: bytes, answer: dict[str, Any], alias: str) -> bytes:
    """The upstream's JSON with ``model`` set to the alias the caller used."""
    if "model" not in answer:
        return raw
    answer["model"] = alias
    return json.dumps(answer, separators=(",", ":")).encode()


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
