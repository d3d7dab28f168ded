"""The ``CustomLLM`` LiteLLM actually calls for a handler integration.

User handlers are written against LiteLLM's documented interface, and often
against the seed's example, which LiteLLM 1.106 does not quite honour: it never
passes ``custom_llm_provider`` and hands request parameters over only inside
``optional_params``. The adapter bridges both, gives the handler the
integration's credentials and headers, runs synchronous handlers in a thread,
streams for handlers that cannot, enforces the request timeout, and turns
whatever a handler raises into a caller-facing error. Hot reload swaps the
wrapped instance in place, so LiteLLM's registration never changes.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from litellm import CustomLLM, ModelResponse
from litellm.llms.custom_llm import CustomLLMError
from litellm.types.utils import GenericStreamingChunk

from .auth import Credentials
from .errors import RunnerError
from .handlers import LoadedHandler

_END = object()

# Synchronous handlers get threads of their own. asyncio's default executor is
# small (cores + 4) and LiteLLM hops through it on every call, so a few slow
# sync handlers sharing it would stall requests to every other model.
_SYNC_HANDLER_THREADS = ThreadPoolExecutor(max_workers=64, thread_name_prefix="custom-llm")


async def _off_loop(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_SYNC_HANDLER_THREADS, partial(function, *args, **kwargs))


def _overrides(instance: CustomLLM, method: str) -> bool:
    return getattr(type(instance), method) is not getattr(CustomLLM, method)


def _keyword_filter(function: Callable[..., Any]) -> frozenset[str] | None:
    """Names a method accepts, or None if it takes ``**kwargs`` (and so accepts anything)."""
    parameters = inspect.signature(function).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    return frozenset(p.name for p in parameters)


class HandlerAdapter(CustomLLM):
    """Registered in ``litellm.custom_provider_map`` once per handler integration."""

    def __init__(
        self,
        provider: str,
        integration: str,
        loaded: LoadedHandler,
        credentials: Credentials,
        fixed_headers: Mapping[str, str],
        timeout: float,
    ) -> None:
        super().__init__()
        self.provider = provider
        self.integration = integration
        self._credentials = credentials
        self._fixed_headers = dict(fixed_headers)
        self._timeout = timeout
        self.swap(loaded)

    def swap(self, loaded: LoadedHandler) -> None:
        """Serve a new version of the handler from the next request on."""
        instance = loaded.instance
        self.loaded = loaded
        self._filters = {
            name: _keyword_filter(getattr(instance, name))
            for name in ("acompletion", "completion", "astreaming", "streaming")
            if _overrides(instance, name)
        }

    @property
    def _name(self) -> str:
        return f"handler {type(self.loaded.instance).__name__} ({self.loaded.path.name})"

    async def _arguments(self, method: str, litellm_kwargs: dict[str, Any]) -> dict[str, Any]:
        api_key, auth_headers = await self._credentials.resolve()
        params = dict(litellm_kwargs.get("optional_params") or {})
        params.pop("stream", None)
        arguments = {**params, **litellm_kwargs}
        arguments["custom_llm_provider"] = self.provider
        arguments["api_key"] = api_key
        arguments["headers"] = {
            **auth_headers,
            **(litellm_kwargs.get("headers") or {}),
            **self._fixed_headers,
        }
        accepted = self._filters[method]
        if accepted is not None:
            arguments = {k: v for k, v in arguments.items() if k in accepted}
        return arguments

    async def acompletion(self, *args: Any, **kwargs: Any) -> ModelResponse:  # type: ignore[override]
        instance = self.loaded.instance
        if "acompletion" in self._filters:
            call = instance.acompletion(**await self._arguments("acompletion", kwargs))
        elif "completion" in self._filters:
            arguments = await self._arguments("completion", kwargs)
            call = _off_loop(instance.completion, **arguments)
        else:
            raise RunnerError(
                f"{self._name} implements neither acompletion nor completion",
                501,
                "handler_error",
                "handler_incomplete",
            )
        try:
            return await asyncio.wait_for(call, self._timeout)
        except Exception as exc:
            raise self._error(exc) from exc

    async def astreaming(  # type: ignore[override]
        self, *args: Any, **kwargs: Any
    ) -> AsyncIterator[GenericStreamingChunk]:
        chunks = await self._open_stream(kwargs)
        while True:
            try:
                chunk = await asyncio.wait_for(anext(chunks, _END), self._timeout)
            except Exception as exc:
                raise self._error(exc) from exc
            if chunk is _END:
                return
            yield chunk

    async def _open_stream(self, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        instance = self.loaded.instance
        if "astreaming" in self._filters:
            return instance.astreaming(**await self._arguments("astreaming", kwargs))
        if "streaming" in self._filters:
            arguments = await self._arguments("streaming", kwargs)
            return _in_thread(lambda: iter(instance.streaming(**arguments)))
        # No streaming method: answer in full, delivered as a one-chunk stream.
        return _as_stream(await self.acompletion(**kwargs))

    def _error(self, exc: Exception) -> RunnerError:
        if isinstance(exc, RunnerError):
            return exc
        if isinstance(exc, TimeoutError):
            return RunnerError(
                f"{self._name} did not answer within {self._timeout:g} s",
                504,
                "timeout_error",
                "upstream_timeout",
            )
        if isinstance(exc, CustomLLMError):
            # The handler chose the status; it keeps it, in the matching category.
            status = exc.status_code
            return RunnerError(
                f"{self._name} failed: {exc.message}",
                status,
                _HANDLER_STATUS_TYPES.get(
                    status,
                    "upstream_unavailable_error" if status >= 500 else "invalid_request_error",
                ),
                "handler_error",
                retryable=status == 429 or status >= 500,
            )
        return RunnerError(
            f"{self._name} raised {type(exc).__name__}: {exc}",
            503,
            "upstream_unavailable_error",
            "handler_error",
        )


_HANDLER_STATUS_TYPES = {
    401: "upstream_authorization_error",
    403: "upstream_authorization_error",
    429: "rate_limit_error",
    502: "upstream_connection_error",
    504: "timeout_error",
}


async def _in_thread(open_iterator: Callable[[], Iterator[Any]]) -> AsyncIterator[Any]:
    """Drive a synchronous iterator from a worker thread, one item at a time."""
    iterator = await _off_loop(open_iterator)
    while (item := await _off_loop(next, iterator, _END)) is not _END:
        yield item


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
