"""Loading a handler off the event loop, within a time limit, whatever its file does.

Importing a handler file and constructing its class run the operator's code,
which may raise anything (``sys.exit()`` and ``KeyboardInterrupt`` included) or
never return. Either way the result is a 422 naming the file, and the server
goes on: a ``BaseException`` is turned into a refusal in the loading thread,
and a load that outlasts ``RUNNER_HANDLER_LOAD_TIMEOUT`` is given up on.

Loads run on a small pool of their own: asyncio's default executor is shared
with LiteLLM, which hops through it on every call, so a hung import there
would slow every model. A thread cannot be stopped, so a load that timed out
keeps its thread until the file's code returns; until then, loading the same
version of the same file again is refused at once rather than given another
thread (the handler watcher would otherwise retry it every poll and soon hold
every loader thread).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from runner import lazy_litellm
from runner.errors import IntegrationInvalid, Problem
from runner.handlers.files import FileVersion, LoadedHandler, file_version, load_handler
from runner.integrations.redaction import secrets_of
from runner.integrations.schema import CustomLLMConfig, Integration
from runner.scrub import mask, secret_strings
from runner.settings import Settings

_LOADER_THREADS = 4
_LOADERS = ThreadPoolExecutor(max_workers=_LOADER_THREADS, thread_name_prefix="handler-load")
_FIELD = "custom_llm_config.file_name"

events: Counter[str] = Counter()
"""Handler files ``loaded``, failed to load (``load_failed``) and ``reloaded`` after an
edit, in this process (for /metrics)."""
# Loads that timed out and whose thread is still running, by file and version.
_overdue: set[tuple[Path, FileVersion | None]] = set()


async def load(settings: Settings, spec: Integration) -> LoadedHandler:
    """Import ``spec``'s handler file and build its instance, or refuse with a 422."""
    config = spec.custom_llm_config
    assert config is not None
    if not settings.custom_llms_enabled:
        raise IntegrationInvalid(
            [
                Problem(
                    "custom_llm_config",
                    "custom handlers are disabled on this server: set "
                    "CUSTOM_LLMS_ENABLED=true and CUSTOM_LLMS_DIRECTORY (or "
                    "GALILEO_CUSTOM_LLMS_ENABLED and GALILEO_CUSTOM_LLMS_DIRECTORY), or start "
                    "it with `runner serve --custom-llms DIR`",
                )
            ]
        )
    # Before the time limit starts: handler files import LiteLLM (for CustomLLM), and
    # its first import's seconds would otherwise count against RUNNER_HANDLER_LOAD_TIMEOUT.
    await lazy_litellm.load()
    try:
        loaded = await _load_within(settings, config)
    except IntegrationInvalid as exc:
        events["load_failed"] += 1
        # A constructor's message may quote its init kwargs, secret ones too.
        secrets = secret_strings(value for _, value in secrets_of(spec))
        problems = [Problem(p.field, mask(p.message, secrets)) for p in exc.problems]
        raise IntegrationInvalid(problems, exc.status_code) from None
    events["loaded"] += 1
    return loaded


async def _load_within(settings: Settings, config: CustomLLMConfig) -> LoadedHandler:
    directory = settings.custom_llms_directory
    seconds = settings.handler_load_timeout
    path = directory / config.file_name
    if await _still_loading(path):
        raise _refusal(
            f"{config.file_name}: an earlier load of this version of the file has not "
            f"returned after more than {seconds:g} s (RUNNER_HANDLER_LOAD_TIMEOUT) and is still "
            "running; a thread cannot be stopped. Fix the file's import or constructor so it "
            "returns, or restart the runner"
        )
    future = _LOADERS.submit(_load_contained, directory, config)
    try:
        async with asyncio.timeout(seconds):
            return await asyncio.wrap_future(future)
    except TimeoutError:
        if future.cancel():
            raise _refusal(
                f"{config.file_name} was not loaded within {seconds:g} s "
                f"(RUNNER_HANDLER_LOAD_TIMEOUT): all {_LOADER_THREADS} handler loader threads "
                "are held by earlier loads that never returned; restart the runner"
            ) from None
        await _mark_overdue(path, future)
        raise _refusal(
            f"{config.file_name} did not finish importing and constructing "
            f"{config.class_name} within {seconds:g} s (RUNNER_HANDLER_LOAD_TIMEOUT); "
            "loading it was given up on (its thread runs on until the code returns)"
        ) from None


def _load_contained(directory: Path, config: CustomLLMConfig) -> LoadedHandler:
    """:func:`load_handler`, with anything the file's code raises made a refusal.

    ``load_handler`` reports what it expects (imports and constructors that
    raise); this catches the rest, such as a module ``__getattr__`` calling
    ``sys.exit()``, so that only an ``IntegrationInvalid`` reaches the event loop.
    """
    try:
        return load_handler(directory, config)
    except IntegrationInvalid:
        raise
    except BaseException as exc:
        raise _refusal(
            f"{config.file_name} could not be loaded: {type(exc).__name__}: {exc}"
        ) from None


async def _still_loading(path: Path) -> bool:
    overdue = frozenset(_overdue)  # one step: loader threads remove entries as they finish
    if not any(stuck == path for stuck, _ in overdue):
        return False
    return (path, await asyncio.to_thread(file_version, path)) in overdue


async def _mark_overdue(path: Path, future: Future[LoadedHandler]) -> None:
    key = (path, await asyncio.to_thread(file_version, path))
    _overdue.add(key)
    # Added after the key: if the load has finished meanwhile, this runs at once.
    future.add_done_callback(lambda _: _overdue.discard(key))


def _refusal(message: str) -> IntegrationInvalid:
    return IntegrationInvalid([Problem(_FIELD, message)])
