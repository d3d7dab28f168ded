"""Where integrations come from — config files, the API, other replicas, handler edits —
which wins, and what went wrong: the one owner of every write to the registry.

- **Files win.** An integration defined by a ``*.json`` file in
  ``RUNNER_CONFIG_DIR`` is managed by that file: the API refuses to change or
  delete it (409), and a stored integration of the same name is not served.
- **API writes go to the store first.** A write is registered (validated, connected,
  handler loaded) before it is committed, and swapped in only after the commit; a
  refusal or a failed commit leaves the previous version both stored and serving.
- **Replicas follow the store** by polling its revision every
  ``RUNNER_SYNC_SECONDS``: one indexed read per second, the same on SQLite and
  PostgreSQL, and nothing is lost while a connection is down — the next poll
  picks up every change since the last one applied.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from runner.errors import IntegrationInvalid, RunnerError
from runner.integrations.files import config_files, file_variables, read_integration
from runner.integrations.places import announce, key_mismatch, places
from runner.integrations.problems import FileProblem, NotServed, Problems
from runner.integrations.redaction import parse_submitted
from runner.integrations.registry import Origin, Registry, not_found
from runner.integrations.schema import Integration
from runner.security.secret_keys import SecretBox
from runner.settings import Settings
from runner.store import IntegrationStore, StoredRow, UnreadableRow, seal, unseal

log = logging.getLogger(__name__)
T = TypeVar("T")


class StartupRefused(Exception):
    """The runner must not start: serving would silently drop stored integrations."""


class IntegrationService:
    """The registry kept in step with files, the store, the other replicas and handler edits.

    Every write goes through here, one at a time, and every problem is kept in
    :attr:`problems`.
    """

    def __init__(
        self, settings: Settings, registry: Registry, store: IntegrationStore, box: SecretBox
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.store = store
        self.problems = Problems()
        self.synced_at: float | None = None  # the last store sync that succeeded (monotonic)
        self._box = box
        self.file_managed: dict[str, Path] = {}
        self.applied_revision = 0
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Serve the config folder's files, then the store's integrations."""
        paths = config_files(self.settings.config_dir)
        self.file_managed = {path.stem: path for path in paths}
        await self.load_files(paths)
        await self.load_stored()
        self.synced_at = time.monotonic()
        announce(self.settings, new_store=self.store.created)

    async def load_files(self, paths: list[Path]) -> None:
        """Serve each file under its stem; failures are kept in :attr:`problems`."""
        variables = file_variables(self.settings)
        failures = []
        async with self._lock:
            for path in paths:
                try:
                    spec = read_integration(path, variables)
                    await self.registry.put(path.stem, spec, Origin("file", file=str(path)))
                except IntegrationInvalid as exc:
                    failure = FileProblem(path, exc.problems)
                    failures.append(failure)
                    self.problems.config_file(failure)
                else:
                    self.problems.handler_current(path.stem)
        self.problems.config_files_retried(
            [*failures, *(f for f in self.problems.config_files if f.path not in paths)]
        )

    async def retry_failed_files(self) -> None:
        """Try the config files that failed again (a handler they need may have arrived)."""
        if self.problems.config_files:
            await self.load_files([failure.path for failure in self.problems.config_files])

    def status(self) -> dict[str, Any]:
        """What ``GET /health`` reports of the integrations, the store and their problems."""
        problems = self.problems.as_json()
        return {
            "status": "degraded" if self.problems else "ok",
            "integrations": len(self.registry),
            "places": places(self.settings),
            "models": len(self.registry.deployments()),
            "config_errors": problems["config_errors"],
            "handler_errors": problems["handler_errors"],
            "store": {
                "backend": self.store.backend,
                "revision": self.applied_revision,
                "problems": problems["store_problems"],
            },
        }

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
            wrong_key: dict[str, str] = {}  # name -> the id of the key it was sealed with
            for row in rows:
                try:
                    specs.append((row, self._unseal(row)))
                except UnreadableRow as exc:
                    if exc.wrong_key and row.sealed is not None:
                        wrong_key[row.name] = row.sealed.key_id
                    else:
                        self._not_served(row.name, NotServed(exc.reason))
            if wrong_key:
                raise StartupRefused(key_mismatch(self.settings, self._box.key_ids, wrong_key))
            for row, spec in specs:
                await self._serve(row.name, spec, Origin("api", stamp=row.stamp))
            self.applied_revision = head
        log.info("serving %d stored integrations (store revision %d)", len(specs), head)

    async def submit(self, name: str, submitted: Any) -> bool:
        """Create or replace through the API from the caller's JSON; True when it is new.

        The integration is staged (validated, connected, handler loaded) before it
        is committed to the store, and served only after that commit: a refusal
        or a failed commit leaves the previous version both stored and serving.
        """
        self.check_writable(name)
        async with self._lock:
            previous = self._previous_spec(name)
            spec = parse_submitted(submitted, previous)
            staged = await self.registry.stage(name, spec)
            try:
                stamp = await self._write(self.store.save(name, seal(spec, self._box)))
            except BaseException:
                await self.registry.discard(staged)
                raise
            self.registry.commit(staged, Origin("api", stamp=stamp))
            self.problems.clear(name)
        return previous is None

    async def delete(self, name: str) -> None:
        """Delete through the API: from the store, then from serving."""
        self.check_writable(name)
        async with self._lock:
            stamp = await self._write(self.store.delete(name))
            serving = self.registry.get(name)
            if stamp is None and serving is None:
                raise not_found(name)
            if serving is not None:
                self.registry.remove(name)
            self.registry.release(name)
            self.problems.clear(name)

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
                self.synced_at = time.monotonic()
            except Exception as exc:
                log.warning(
                    "store sync failed (%s); retrying in %s s", type(exc).__name__, interval
                )

    async def _apply(self, row: StoredRow) -> int:
        serving = self.registry.get(row.name)
        if serving is not None and serving.origin.revision >= row.stamp.revision:
            return 0  # this runner wrote it, or already has something newer
        if row.deleted:
            self.problems.stored.pop(row.name, None)
            self.registry.release(row.name)
            if serving is None or serving.origin.source != "api":
                return 0
            self.problems.clear(row.name)
            self.registry.remove(row.name)
            return 1
        try:
            spec = self._unseal(row)
        except UnreadableRow as exc:
            self._not_served(row.name, NotServed(exc.reason))
            return 0
        return int(await self._serve(row.name, spec, Origin("api", stamp=row.stamp)))

    async def retry_not_served(self) -> None:
        """Try stored integrations that could not be served again (a handler file they
        need may have arrived, or been fixed)."""
        async with self._lock:
            for name, not_served in list(self.problems.stored.items()):
                spec, origin = not_served.spec, not_served.origin
                if spec is None or origin is None or name in self.file_managed:
                    continue  # unreadable, or a file serves the name: nothing to retry
                await self._serve(name, spec, origin)

    async def _serve(self, name: str, spec: Integration, origin: Origin) -> bool:
        if name in self.file_managed:
            reason = (
                f"{self.file_managed[name]} defines an integration of the same name, and files "
                "win; delete the stored one or rename the file"
            )
            self.problems.stored_integration(name, NotServed(reason, spec, origin))
            return False
        try:
            await self.registry.put(name, spec, origin)
        except IntegrationInvalid as exc:
            reason = "; ".join(str(p) for p in exc.problems)
            self._not_served(name, NotServed(reason, spec, origin))
            return False
        self.problems.clear(name)
        return True

    def _not_served(self, name: str, not_served: NotServed) -> None:
        """Report a stored integration that cannot be served; calls to it say why."""
        self.problems.stored_integration(name, not_served)
        self.registry.hold(name, not_served.spec, not_served.reason)

    def _previous_spec(self, name: str) -> Integration | None:
        """What a mask in a new version stands for: the serving version's secrets, or the
        stored-but-not-served one's."""
        serving = self.registry.get(name)
        if serving is not None:
            return serving.spec
        not_served = self.problems.stored.get(name)
        return not_served.spec if not_served is not None else None

    def not_served(self) -> dict[str, NotServed]:
        """Stored integrations that are not served and whose name nothing else serves."""
        return {n: ns for n, ns in self.problems.stored.items() if self.registry.get(n) is None}

    def _unseal(self, row: StoredRow) -> Integration:
        assert row.sealed is not None
        return unseal(row.name, row.sealed, self._box)

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
