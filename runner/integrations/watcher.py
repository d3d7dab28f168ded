"""Noticing handler files that change on disk, so a mounted volume needs no restart.

A short poll (``RUNNER_HANDLER_POLL_SECONDS``) rather than inotify: it works the
same on bind mounts, network volumes and Kubernetes ConfigMaps, whose updates
arrive as symlink swaps that file-event APIs often miss.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from runner.handlers.files import directory_listing
from runner.integrations.files import load_files
from runner.integrations.registry import Registry
from runner.settings import Settings

log = logging.getLogger(__name__)


async def watch_handlers(state: Any, registry: Registry, settings: Settings) -> None:
    """Reload edited handlers; when files are added, retry config files that failed.

    ``state.config_errors`` (the app's list of unloadable config files) is
    replaced with what still fails after the retry.
    """
    directory = settings.custom_llms_directory
    listing = await asyncio.to_thread(directory_listing, directory)
    while True:
        await asyncio.sleep(settings.handler_poll_seconds)
        try:
            await registry.reload_changed_handlers()
            current = await asyncio.to_thread(directory_listing, directory)
            if current != listing:
                log.debug("handler folder %s changed", directory)
            if current != listing and state.config_errors:
                paths = [failure.path for failure in state.config_errors]
                state.config_errors = await load_files(
                    paths, registry, settings, known=state.config_errors
                )
            listing = current
        except Exception:
            log.exception(
                "handler watch failed; trying again in %s s", settings.handler_poll_seconds
            )
