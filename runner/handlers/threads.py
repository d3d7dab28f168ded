"""Running synchronous handler code in worker threads, so that only an ``Exception`` comes back.

Synchronous handlers get threads of their own: asyncio's default executor is
small (cores + 4) and LiteLLM hops through it on every call, so a few slow sync
handlers sharing it would stall requests to every other model.

What a thread raises is handed to the event loop on an asyncio future. A
``SystemExit`` or ``KeyboardInterrupt`` arriving there would stop the loop if
anything let it out of a task, and a ``StopIteration`` cannot be set on a future
at all (the call would hang until its timeout); each is wrapped in
:class:`Escaped`, an ordinary exception, before it leaves the thread.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

T = TypeVar("T")
_END = object()
_SYNC_HANDLER_THREADS = ThreadPoolExecutor(max_workers=64, thread_name_prefix="custom-llm")


class Escaped(Exception):
    """A ``BaseException`` (or ``StopIteration``) a handler raised in a worker thread."""

    def __init__(self, original: BaseException) -> None:
        super().__init__()
        self.original = original


def _contained(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return function(*args, **kwargs)
    except BaseException as exc:
        if isinstance(exc, Exception) and not isinstance(exc, StopIteration):
            raise
        raise Escaped(exc) from None


async def off_loop(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``function(*args, **kwargs)`` in a handler thread; it raises only ``Exception``.
    It runs in a copy of the caller's context, as ``asyncio.to_thread`` would, so the
    request's trace span is the handler's current span there too."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    return await loop.run_in_executor(
        _SYNC_HANDLER_THREADS, partial(context.run, _contained, function, *args, **kwargs)
    )


async def in_thread(open_iterator: Callable[[], Iterator[Any]]) -> AsyncIterator[Any]:
    """Drive a synchronous iterator from a worker thread, one item at a time."""
    iterator = await off_loop(open_iterator)
    while (item := await off_loop(next, iterator, _END)) is not _END:
        yield item
