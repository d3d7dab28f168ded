"""Where integrations come from — config files, the API, other replicas — and which wins.

- **Files win.** An integration defined by a ``*.json`` file in
  ``RUNNER_CONFIG_DIR`` is managed by that file: the API refuses to change or
  delete it (409), and a stored integration of the same name is not served.
- **API writes go to the store first.** A write is registered (validated,
  connected, handler loaded) before it is committed, and swapped in only after
  the commit; a refusal or a failed commit leaves the previous version both
  stored and serving.
- **Replicas follow the store** by polling its revision every
  ``RUNNER_SYNC_SECONDS``: one indexed read per second, the same on SQLite and
  PostgreSQL, and nothing is lost while a connection is down — the next poll
  picks up every change since the last one applied.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

from sqlalchemy.exc import SQLAlchemyError

from runner.errors import IntegrationInvalid, RunnerError
from runner.integrations.registry import Origin, Registry
from runner.integrations.schema import Integration
from runner.security.secret_keys import SecretBox
from runner.store import IntegrationStore, Stamp, StoredRow, UnreadableRow, seal, unseal

log = logging.getLogger(__name__)
T = TypeVar("T")


class StartupRefused(Exception):
    """The runner must not start: serving would silently drop stored integrations."""


class IntegrationService:
    """The registry kept in step with files, the store and the other replicas."""

    def __init__(self, registry: Registry, store: IntegrationStore, box: SecretBox) -> None:
        self.registry = registry
        self.store = store
        self._box = box
        self.file_managed: dict[str, Path] = {}
        self.store_problems: dict[str, str] = {}
        self.applied_revision = 0
        self._lock = asyncio.Lock()

    def manage_files(self, paths: list[Path]) -> None:
        """Claim these names for their files, whether or not the files load."""
        self.file_managed = {path.stem: path for path in paths}

    async def load_stored(self) -> None:
        """Serve every stored integration; refuse to start if the keys cannot open them.

        A row sealed under a key the runner lacks means the wrong RUNNER_SECRET_KEY:
        starting would drop those integrations, so the runner stops and names them.
        A row that fails for any other reason is damaged: it is reported (``/health``,
        the log) and every other integration still loads.
        """
        async with self._lock:
            head = await self.store.head()
            rows = await self.store.rows()
            specs: list[tuple[StoredRow, Integration]] = []
            wrong_key: list[str] = []
            for row in rows:
                try:
                    specs.append((row, self._unseal(row)))
                except UnreadableRow as exc:
                    if exc.wrong_key:
                        wrong_key.append(row.name)
                    else:
                        self._report(row.name, exc.reason)
            if wrong_key:
                raise StartupRefused(
                    f"cannot decrypt {len(wrong_key)} stored integration(s) with the configured "
                    f"secret key: {', '.join(sorted(wrong_key))}. Start with the key they were "
                    "written with; to move to a new key, set RUNNER_SECRET_KEY=new,old and run "
                    "`runner rotate-key`"
                )
            for row, spec in specs:
                await self._serve(row, spec)
            self.applied_revision = head
        log.info("serving %d stored integrations (store revision %d)", len(specs), head)

    async def put(self, name: str, spec: Integration) -> bool:
        """Create or replace through the API; True when the integration is new."""
        self.check_writable(name)
        sealed = seal(spec, self._box)

        async def persist() -> Stamp:
            return await self._write(self.store.save(name, sealed))

        async with self._lock:
            created = await self.registry.put(name, spec, Origin("api"), persist)
            self.store_problems.pop(name, None)
        return created

    async def delete(self, name: str) -> None:
        self.check_writable(name)
        async with self._lock:
            stamp = await self._write(self.store.delete(name))
            serving = self.registry.get(name)
            if stamp is None and serving is None:
                raise RunnerError(
                    f"No integration named {name!r}.", 404, code="integration_not_found"
                )
            if serving is not None:
                await self.registry.remove(name)
            self.store_problems.pop(name, None)

    async def sync(self) -> int:
        """Apply other replicas' writes since the last sync; return how many were applied."""
        head = await self.store.head()
        if head <= self.applied_revision:
            return 0
        applied = 0
        async with self._lock:
            for row in await self.store.changes_since(self.applied_revision):
                applied += await self._apply(row)
                self.applied_revision = max(self.applied_revision, row.stamp.revision)
        log.debug(
            "store at revision %d: applied %d change(s) from other runners",
            self.applied_revision,
            applied,
        )
        return applied

    async def follow(self, interval: float) -> None:
        """Keep syncing until cancelled; a database outage only delays the next sync."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sync()
            except Exception as exc:
                log.warning(
                    "store sync failed (%s); retrying in %s s", type(exc).__name__, interval
                )

    async def _apply(self, row: StoredRow) -> int:
        serving = self.registry.get(row.name)
        if serving is not None and serving.origin.revision >= row.stamp.revision:
            return 0  # this runner wrote it, or already has something newer
        if row.deleted:
            self.store_problems.pop(row.name, None)
            if serving is None or serving.origin.source != "api":
                return 0
            await self.registry.remove(row.name)
            return 1
        try:
            spec = self._unseal(row)
        except UnreadableRow as exc:
            self._report(row.name, exc.reason)
            return 0
        return int(await self._serve(row, spec))

    async def _serve(self, row: StoredRow, spec: Integration) -> bool:
        if row.name in self.file_managed:
            self._report(
                row.name,
                f"not served: {self.file_managed[row.name]} defines an integration of the same "
                "name, and files win; delete the stored one or rename the file",
            )
            return False
        try:
            await self.registry.put(row.name, spec, Origin("api", stamp=row.stamp))
        except IntegrationInvalid as exc:
            self._report(row.name, "not served: " + "; ".join(str(p) for p in exc.problems))
            return False
        self.store_problems.pop(row.name, None)
        return True

    def _unseal(self, row: StoredRow) -> Integration:
        assert row.sealed is not None
        return unseal(row.name, row.sealed, self._box)

    def _report(self, name: str, problem: str) -> None:
        if self.store_problems.get(name) != problem:
            log.error("stored integration %r: %s", name, problem)
        self.store_problems[name] = problem

    def check_writable(self, name: str) -> None:
        """Refuse API writes to a name a config file manages (409, naming the file)."""
        path = self.file_managed.get(name)
        if path is not None:
            raise RunnerError(
                f"Integration {name!r} is managed by the file {path}; the API cannot change or "
                "delete it. Edit or remove that file, or use another name.",
                409,
                code="integration_file_managed",
            )

    @staticmethod
    async def _write(operation: Awaitable[T]) -> T:
        """Run a store write; an unreachable or failing database is a 503, nothing changed."""
        try:
            return await operation
        except (SQLAlchemyError, OSError) as exc:
            # The driver's message may quote the statement's parameters: log the type only.
            log.error("store write failed: %s", type(exc).__name__)
            raise RunnerError(
                "The integration store is unavailable, so nothing was changed; try again "
                "when the database is back (GET /health shows the store's state).",
                503,
                "server_error",
                "store_unavailable",
            ) from None
