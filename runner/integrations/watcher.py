"""Noticing handler files that change on disk, so a mounted volume needs no restart.

A short poll (``RUNNER_HANDLER_POLL_SECONDS``) rather than inotify: it works the
same on bind mounts, network volumes and Kubernetes ConfigMaps, whose updates
arrive as symlink swaps that file-event APIs often miss. Each replica and each
worker polls its own folder, so each one picks up what appears there.
"""

from __future__ import annotations

import asyncio
import logging

from runner.errors import IntegrationInvalid
from runner.handlers.files import directory_listing, file_version
from runner.handlers.loading import events as handler_events
from runner.handlers.loading import load as load_handler
from runner.integrations.service import IntegrationService

log = logging.getLogger(__name__)


async def watch_handlers(service: IntegrationService) -> None:
    """Reload edited handlers; when files are added, retry what failed for want of one."""
    settings = service.settings
    directory = settings.custom_llms_directory
    listing = await asyncio.to_thread(directory_listing, directory)
    while True:
        await asyncio.sleep(settings.handler_poll_seconds)
        try:
            await reload_changed_handlers(service)
            current = await asyncio.to_thread(directory_listing, directory)
            if current != listing:
                log.debug("handler folder %s changed", directory)
                await service.retry_failed_files()
                await service.retry_not_served()
            listing = current
        except Exception:
            log.exception(
                "handler watch failed; trying again in %s s", settings.handler_poll_seconds
            )


async def reload_changed_handlers(service: IntegrationService) -> None:
    """Pick up edited handler files; a broken edit or a removed file leaves the last good
    version serving, and is reported at once."""
    handled = [r for r in service.registry.integrations() if r.client.handler is not None]
    versions = await asyncio.to_thread(
        lambda: [file_version(r.client.handler.loaded.path) for r in handled]  # type: ignore[union-attr]
    )
    for registered, version in zip(handled, versions, strict=True):
        adapter = registered.client.handler
        if adapter is None or version == adapter.loaded.version:
            continue
        path = adapter.loaded.path
        if version is None:
            service.problems.handler(
                registered.name,
                f"file removed: {path.name} is no longer in {path.parent}; the loaded version "
                "keeps serving until restart",
            )
            continue
        try:
            loaded = await load_handler(service.settings, registered.spec)
        except IntegrationInvalid as exc:
            service.problems.handler(registered.name, "; ".join(map(str, exc.problems)))
            continue
        adapter.swap(loaded)  # one synchronous step: calls in flight keep the old one
        handler_events["reloaded"] += 1
        service.problems.handler_current(registered.name)
        log.info("reloaded handler %s for %r", path.name, registered.name)
