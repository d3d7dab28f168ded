"""The ``CustomLLM`` LiteLLM actually calls for a handler integration.

User handlers are written against LiteLLM's documented interface, and often
against the seed's example, which LiteLLM 1.106 does not quite honour: it never
passes ``custom_llm_provider`` and hands request parameters over only inside
``optional_params``. The adapter bridges both, gives the handler the
integration's credentials and headers, runs synchronous handlers in a thread,
streams for handlers that cannot, enforces the request timeout, and turns
whatever a handler raises or returns into a caller-facing error. Hot reload
swaps the wrapped instance in place, so LiteLLM's registration never changes.

One handler must never take the server down. A ``SystemExit`` or
``KeyboardInterrupt`` that leaves a coroutine on the event loop stops the loop
(``Task.__step`` re-raises them), so handler code only ever runs in the
caller's own task, under :meth:`HandlerAdapter._call`, which turns any
``BaseException`` into that call's error; ``asyncio.wait_for`` is not used, as
in Python 3.11 it runs the coroutine in a task of its own.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from functools import partial
from typing import Any, TypeVar

from litellm import CustomLLM, EmbeddingResponse, ModelResponse
from litellm.types.utils import GenericStreamingChunk, ModelResponseStream

from runner.errors import RunnerError
from runner.handlers.failures import classify
from runner.handlers.files import LoadedHandler, raised_at
from runner.handlers.results import chunk_problem, describe
from runner.handlers.threads import in_thread, off_loop
from runner.scrub import caller_safe, secret_strings
from runner.security.credentials import Credentials, outbound_headers

log = logging.getLogger(__name__)
T = TypeVar("T")
_END = object()


def _ours(exc: BaseException) -> bool:
    """Whether ``exc`` is a cancellation of the caller's task (hang-up, deadline), not the
    handler's doing: that one must go on up, or the task could not be stopped."""
    task = asyncio.current_task()
    return isinstance(exc, asyncio.CancelledError) and task is not None and task.cancelling() > 0


def _overrides(instance: CustomLLM, method: str) -> bool:
    return getattr(type(instance), method) is not getattr(CustomLLM, method)


def _keyword_filter(function: Callable[..., Any]) -> frozenset[str] | None:
    """Names a method accepts, or None if it takes ``**kwargs`` (and so accepts anything)."""
    parameters = inspect.signature(function).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    return frozenset(p.name for p in parameters)


class HandlerAdapter(CustomLLM):
    """Registered in ``litellm.custom_provider_map`` once per handler integration.

    ``secrets`` are the integration's secret values (see
    :func:`runner.scrub.secret_strings`), masked in every error message.
    """

    def __init__(
        self,
        provider: str,
        integration: str,
        loaded: LoadedHandler,
        credentials: Credentials,
        fixed_headers: Mapping[str, str],
        timeout: float,
        secrets: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        self.provider = provider
        self.integration = integration
        self._credentials = credentials
        self._fixed_headers = dict(fixed_headers)
        self._timeout = timeout
        self._secrets = secrets
        self.swap(loaded)

    def swap(self, loaded: LoadedHandler) -> None:
        """Serve a new version of the handler from the next request on."""
        instance = loaded.instance
        self.loaded = loaded
        self._filters = {
            name: _keyword_filter(getattr(instance, name))
            for name in (
                "acompletion",
                "completion",
                "astreaming",
                "streaming",
                "aembedding",
                "embedding",
            )
            if _overrides(instance, name)
        }

    @property
    def _name(self) -> str:
        return f"handler {type(self.loaded.instance).__name__} ({self.loaded.path.name})"

    async def _arguments(
        self, method: str, litellm_kwargs: dict[str, Any]
    ) -> tuple[dict[str, Any], str | None]:
        """The keyword arguments for the handler's ``method``, and the secret among them."""
        api_key, auth_headers = await self._credentials.resolve()
        params = dict(litellm_kwargs.get("optional_params") or {})
        params.pop("stream", None)
        arguments = {**params, **litellm_kwargs}
        arguments["custom_llm_provider"] = self.provider
        arguments["api_key"] = api_key
        arguments["headers"] = outbound_headers(
            auth_headers, litellm_kwargs.get("headers") or {}, self._fixed_headers
        )
        accepted = self._filters[method]
        if accepted is not None:
            arguments = {k: v for k, v in arguments.items() if k in accepted}
        return arguments, api_key

    async def acompletion(self, *args: Any, **kwargs: Any) -> ModelResponse:  # type: ignore[override]
        return await self._whole(kwargs, "acompletion", "completion", ModelResponse, "")

    async def aembedding(self, *args: Any, **kwargs: Any) -> EmbeddingResponse:  # type: ignore[override]
        return await self._whole(
            kwargs,
            "aembedding",
            "embedding",
            EmbeddingResponse,
            ", so it cannot serve an embedding model",
        )

    async def _whole(
        self, kwargs: dict[str, Any], method: str, sync_method: str, answer: type[T], why: str
    ) -> T:
        """The handler's ``method`` (or ``sync_method``, in a thread), whose result must be
        an ``answer``."""
        instance = self.loaded.instance
        if method in self._filters:
            arguments, api_key = await self._arguments(method, kwargs)
            step: Callable[[], Awaitable[Any]] = partial(getattr(instance, method), **arguments)
        elif sync_method in self._filters:
            arguments, api_key = await self._arguments(sync_method, kwargs)
            step = partial(off_loop, getattr(instance, sync_method), **arguments)
        else:
            raise RunnerError(
                f"{self._name} implements neither {method} nor {sync_method}{why}",
                501,
                "handler_error",
                "handler_incomplete",
            )
        response = await self._call(step, api_key)
        if not isinstance(response, answer):
            raise self._wrong("returned", describe(response), f"a litellm.{answer.__name__}")
        return response

    async def astreaming(  # type: ignore[override]
        self, *args: Any, **kwargs: Any
    ) -> AsyncIterator[GenericStreamingChunk | ModelResponseStream]:
        chunks, api_key = await self._open_stream(kwargs)
        try:
            while (chunk := await self._call(partial(anext, chunks, _END), api_key)) is not _END:
                problem = chunk_problem(chunk)
                if problem is not None:
                    raise self._wrong(
                        "streamed",
                        problem,
                        "GenericStreamingChunk dicts (text, is_finished, finish_reason, usage) "
                        "or ModelResponseStream objects",
                    )
                yield chunk
        finally:
            # Closed here, in the caller's task: left to the event loop's finalizer, a
            # handler's `finally` would run in a task of its own, unguarded.
            await self._close(chunks, api_key)

    async def _open_stream(self, kwargs: dict[str, Any]) -> tuple[AsyncIterator[Any], str | None]:
        instance = self.loaded.instance
        if "astreaming" in self._filters:
            arguments, api_key = await self._arguments("astreaming", kwargs)

            async def start() -> Any:
                return instance.astreaming(**arguments)

            chunks = await self._call(start, api_key)
            if not isinstance(chunks, AsyncIterator):
                raise self._wrong(
                    "returned", describe(chunks), "astreaming to return an async iterator"
                )
            return chunks, api_key
        if "streaming" in self._filters:
            arguments, api_key = await self._arguments("streaming", kwargs)
            return in_thread(lambda: iter(instance.streaming(**arguments))), api_key
        # No streaming method: answer in full, delivered as a one-chunk stream.
        return _as_stream(await self.acompletion(**kwargs)), None

    async def _call(self, step: Callable[[], Awaitable[T]], api_key: str | None) -> T:
        """Await ``step`` (handler code) within the timeout; whatever it raises is this call's
        error, except a cancellation of the caller's task itself."""
        deadline = asyncio.timeout(self._timeout)
        try:
            async with deadline:
                return await step()
        except BaseException as exc:
            if _ours(exc):
                raise
            raise self._error(exc, api_key, timed_out=deadline.expired()) from exc

    async def _close(self, chunks: AsyncIterator[Any], api_key: str | None) -> None:
        """Close the handler's stream. A failure to close is only logged: the caller already
        has its answer, or the error that ended it."""
        close = getattr(type(chunks), "aclose", None)
        if close is None:
            return
        try:
            await self._call(partial(close, chunks), api_key)
        except RunnerError as exc:
            log.warning("closing the stream of %s failed: %s", self._name, exc.message)

    def _error(self, exc: BaseException, api_key: str | None, *, timed_out: bool) -> RunnerError:
        error = classify(
            exc,
            self._name,
            self._timeout,
            lambda text: self._safe(text, api_key),
            timed_out=timed_out,
        )
        error.origin = raised_at(exc, self.loaded.path)
        return error

    def _wrong(self, verb: str, got: str, expected: str) -> RunnerError:
        """The error for a handler that produced something LiteLLM cannot use."""
        return RunnerError(
            f"{self._name} {verb} {self._safe(got, None)}; expected {expected}",
            503,
            "upstream_unavailable_error",
            "handler_error",
        )

    def _safe(self, text: str, api_key: str | None) -> str:
        """``text`` fit for the caller; ``api_key`` is this call's, an OAuth2 token's too."""
        secrets = self._secrets if api_key is None else secret_strings((*self._secrets, api_key))
        return caller_safe(text, secrets)


async def _as_stream(response: ModelResponse) -> AsyncIterator[GenericStreamingChunk]:
    choice = response.choices[0]
    usage = getattr(response, "usage", None)
    yield GenericStreamingChunk(
        text=choice.message.content or "",  # type: ignore[union-attr]
        is_finished=True,
        finish_reason=choice.finish_reason or "stop",
        usage=usage.model_dump() if usage is not None else None,  # type: ignore[typeddict-item]
        index=0,
        tool_use=None,
    )
