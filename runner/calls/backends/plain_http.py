"""The fast path: plain OpenAI-compatible calls sent straight to the upstream.

LiteLLM spends milliseconds of CPU per call (logging objects, cost lookups,
response re-validation) translating between formats that, for an
OpenAI-compatible upstream, are already the same; and httpx's connection pool
collapses under concurrency (~150 req/s at 32 connections here, against ~4,000
for aiohttp). This path sends the filtered request with aiohttp, with the same
credentials, 401 renewal and fixed headers as the LiteLLM path, and returns the
upstream's JSON with only ``model`` set to the alias. Errors map exactly as on
the LiteLLM path (:mod:`runner.calls.failures`). ``RUNNER_FAST_PATH=false``
turns it off; the test suite runs on both paths.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, ClassVar

import aiohttp
from aiohttp.http_exceptions import LineTooLong

from runner.calls import answers
from runner.calls.answers import AnswerTooLarge
from runner.calls.failures import retry_after, status_error
from runner.calls.types import Answer, PreparedCall
from runner.observe.records import note_usage
from runner.security.addresses import AddressPolicy
from runner.security.credentials import Credentials, outbound_headers
from runner.security.outbound import env_proxy, tls_context
from runner.settings import DEFAULT_MAX_RESPONSE_BYTES

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
    backend resolves its proxy once instead
    (:func:`~runner.security.outbound.env_proxy`). The answer limit travels
    with the session's responses (aiohttp's ``response_class``), so every
    backend of this runner holds to it without carrying it.
    """
    limited = type("LimitedResponse", (LimitedResponse,), {"max_bytes": max_response_bytes})
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ssl=tls_context(), resolver=addresses.resolver()),
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=timeout),
        response_class=limited,
    )


class PlainHttpBackend:
    """Sends a plain deployment's calls over the runner's shared aiohttp session.

    Holds where the requests go and what they carry besides the body: the
    integration's credentials, its fixed headers and the proxy the environment
    chooses for the endpoint (looked up once, here). One serves each model type
    an integration has: ``url`` is the type's path under the endpoint and
    ``check_answer`` what its answers must be (:mod:`runner.calls.operations`).
    """

    name = "plain_http"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        credentials: Credentials,
        fixed_headers: Mapping[str, str],
        check_answer: Callable[[bytes], dict[str, Any]] = answers.completion,
    ) -> None:
        self.session = session
        self.check_answer = check_answer
        self.url = url
        self.credentials = credentials
        self.fixed_headers = fixed_headers
        self.proxy = env_proxy(url)

    async def send(self, call: PreparedCall) -> Answer:
        deployment = call.deployment
        body = {"model": deployment.upstream_model, **call.inputs, **call.params}
        response = await self.exchange(call, body)
        try:
            if not call.stream:
                raw = await read(response)
                answer = self.check_answer(raw)
                note_usage(answer.get("usage"))
                return _with_alias(raw, answer, deployment.alias)
        except BaseException:
            response.release()  # mid-body this closes the connection: cancelled, or refused
            raise
        return _payloads(Events(response), deployment.alias, call.usage_chunk)

    async def exchange(
        self, call: PreparedCall, body: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> aiohttp.ClientResponse:
        """POST ``body`` for ``call`` (with ``headers`` a wire format asks for): the
        upstream's successful answer, its body unread, or the upstream's refusal raised in
        the runner's categories."""
        mapped = {**headers, **call.headers} if headers else call.headers
        response = await self._post(json.dumps(body).encode(), mapped)
        if 200 <= response.status < 300:
            return response
        try:  # redirects are not followed, nor passed on
            detail = _upstream_message(await read(response), response.reason)
            wait = retry_after(response.headers.get("retry-after"))
            raise status_error(call.deployment, response.status, detail, wait)
        finally:
            response.release()

    async def _post(self, body: bytes, mapped: dict[str, str]) -> aiohttp.ClientResponse:
        """POST with the integration's credentials; renew them once on a 401."""
        secret, auth_headers = await self.credentials.resolve()
        response = await self.session.post(
            self.url,
            data=body,
            headers={**_JSON, **outbound_headers(auth_headers, mapped, self.fixed_headers)},
            proxy=self.proxy,
            allow_redirects=False,
        )
        if response.status == 401:
            renewed = await self.credentials.renew(secret)
            if renewed is not None:
                response.release()
                response = await self.session.post(
                    self.url,
                    data=body,
                    headers={**_JSON, **outbound_headers(renewed[1], mapped, self.fixed_headers)},
                    proxy=self.proxy,
                    allow_redirects=False,
                )
        return response


def _max_bytes(response: aiohttp.ClientResponse) -> int:
    if isinstance(response, LimitedResponse):
        return response.max_bytes
    return DEFAULT_MAX_RESPONSE_BYTES


async def read(response: aiohttp.ClientResponse) -> bytes:
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


class Events:
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
                    return payload, answers.chunk(payload)
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


async def _payloads(events: Events, alias: str, usage_chunk: bool) -> AsyncIterator[bytes]:
    """The stream's chunk payloads with the alias as ``model``; an empty stream is refused.
    The usage chunk (no choices) is counted, and passed on only if the caller asked."""
    try:
        event = await events.next()
        if event is None:
            raise answers.no_events()
        while event is not None:
            chunk = event[1]
            if chunk.get("usage"):
                note_usage(chunk["usage"])
                if not usage_chunk and not chunk.get("choices"):
                    event = await events.next()
                    continue
            yield _with_alias(*event, alias)
            event = await events.next()
    finally:
        events.response.release()


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
