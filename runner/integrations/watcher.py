"""Noticing handler files that change on disk, so a mounted volume needs no restart.

A short poll (``RUNNER_HANDLER_POLL_SECONDS``) rather than inotify: it works the
same on bind mounts, network volumes and Kubernetes ConfigMaps, whose updates
arrive as symlink swaps that file-event APIs often miss.
"""

from __future__ import annotations

import asyncio
import logging

from runner.handlers.files import directory_listing
from runner.integrations.service import IntegrationService

log = logging.getLogger(__name__)


async def watch_handlers(service: IntegrationService) -> None:
    """Reload edited handlers; when files are added, retry config files that failed."""
    settings = service.settings
    directory = settings.custom_llms_directory
    listing = await asyncio.to_thread(directory_listing, directory)
    while True:
        await asyncio.sleep(settings.handler_poll_seconds)
        try:
            await service.reload_changed_handlers()
            current = await asyncio.to_thread(directory_listing, directory)
            if current != listing:
                log.debug("handler folder %s changed", directory)
                await service.retry_failed_files()
            listing = current
        except Exception:
            log.exception(
                "handler watch failed; trying again in %s s", settings.handler_poll_seconds
            )
