"""The live set of integrations and the alias table callers are routed by.

Writes are all-or-nothing and in two steps: :meth:`Registry.stage` validates a
new version, checks it against every other integration's aliases and connects
it; :meth:`Registry.commit` then swaps it in, updating the routing table in one
synchronous step. Between the two the integrations service stores it, so a
refusal or a failed commit to the store leaves the previous version serving.
Reads (the hot path) are a single dict lookup with no lock.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Literal

import aiohttp
from aiohttp.abc import AbstractResolver

from runner import lazy_litellm
from runner.calls.backends.plain_http import open_session
from runner.calls.types import Deployment
from runner.errors import RunnerError
from runner.handlers.loading import load as load_handler
from runner.handlers.providers import (
    provider_name,
    register_provider,
    unregister_provider,
)
from runner.integrations.checks import check_addresses, check_conflicts, check_name
from runner.integrations.clients import UpstreamClient, open_client, open_handler
from runner.integrations.deployments import deployments_for
from runner.integrations.schema import Integration
from runner.security.addresses import AddressPolicy
from runner.settings import Settings
from runner.store import Stamp
from runner.suggestions import closest_names

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Origin:
    """Where a serving integration came from: a config file, or the store (and which write)."""

    source: Literal["file", "api"]
    file: str | None = None
    stamp: Stamp | None = None

    @property
    def revision(self) -> int:
        return self.stamp.revision if self.stamp is not None else 0


@dataclass(frozen=True)
class Staged:
    """A new version of an integration, connected and ready, not yet serving."""

    name: str
    spec: Integration
    client: UpstreamClient
    deployments: tuple[Deployment, ...]


@dataclass(frozen=True)
class Registered(Staged):
    """One integration as it is serving now: a staged version, committed."""

    default: Deployment
    origin: Origin

    @property
    def model_ids(self) -> dict[str, Deployment]:
        """What callers may send as ``model`` to reach it: its name, then its aliases."""
        return {self.name: self.default, **{d.alias: d for d in self.deployments}}


class Registry:
    """Integrations by name, and deployments by the model id a caller sends."""

    def __init__(self, settings: Settings, resolver: AbstractResolver | None = None) -> None:
        self._settings = settings
        self.addresses = AddressPolicy(settings.block_private_networks, resolver)
        self._timeout = settings.upstream_timeout
        self._integrations: dict[str, Registered] = {}
        self._session: aiohttp.ClientSession | None = None
        self._routes: dict[str, Deployment] = {}
        # Model ids of stored integrations that cannot be served: (integration, why).
        self._held: dict[str, list[str]] = {}
        self._held_routes: dict[str, tuple[str, str]] = {}
        self._retiring: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._integrations)

    def get(self, name: str) -> Registered | None:
        return self._integrations.get(name)

    def require(self, name: str) -> Registered:
        """The integration ``name``, or the 404 that says there is none."""
        registered = self._integrations.get(name)
        if registered is None:
            raise not_found(name)
        return registered

    def integrations(self) -> list[Registered]:
        return sorted(self._integrations.values(), key=lambda r: r.name)

    def deployments(self) -> list[Deployment]:
        """Every callable model, in integration then declaration order."""
        return [d for r in self.integrations() for d in r.deployments]

    def resolve(self, model: str) -> Deployment:
        """The deployment for an alias, or an integration's default model."""
        deployment = self._routes.get(model)
        if deployment is not None:
            return deployment
        held = self._held_routes.get(model)
        if held is not None:
            raise not_served(model, *held)
        close = closest_names(model, self._routes)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise RunnerError(
            message=f"The model {model!r} does not exist.{hint} GET /v1/models lists every alias.",
            status_code=404,
            code="model_not_found",
            param="model",
        )

    def hold(self, name: str, spec: Integration | None, reason: str) -> None:
        """Answer calls to a stored integration that cannot be served with ``reason`` (a 503)
        rather than "does not exist"; its name and aliases stay free for others."""
        self.release(name)
        model_ids = [name]
        if spec is not None:
            model_ids += [m.caller_alias for m in spec.model_properties]
        self._held[name] = model_ids
        for model_id in model_ids:
            self._held_routes.setdefault(model_id, (name, reason))

    def release(self, name: str) -> None:
        for model_id in self._held.pop(name, ()):
            if self._held_routes.get(model_id, (None,))[0] == name:
                del self._held_routes[model_id]

    async def stage(self, name: str, spec: Integration) -> Staged:
        """Everything a new version needs to serve, ready but not yet routed; refusals
        (IntegrationInvalid) leave nothing behind. Nothing else may write in between
        this and :meth:`commit` or :meth:`discard`: the integrations service
        serializes every write."""
        check_name(name)
        check_addresses(spec, self.addresses)
        check_conflicts(name, spec, self._routes, self._integrations)
        loaded = await load_handler(self._settings, spec) if spec.custom_llm_config else None
        if not self._settings.fast_path or spec.format != "openai":
            await lazy_litellm.load()  # its calls go through LiteLLM: import it now
        if loaded is not None:
            client = open_handler(name, spec, loaded, self._timeout, self.addresses)
        else:
            client = open_client(
                spec,
                self._timeout,
                self.addresses,
                via_litellm=not self._settings.fast_path,
                max_response_bytes=self._settings.max_response_bytes,
            )
        deployments = tuple(
            deployments_for(
                name,
                spec,
                client,
                self._timeout,
                self._plain_session(),
                fast_path=self._settings.fast_path,
                ask_stream_usage=self._settings.stream_usage,
            )
        )
        return Staged(name, spec, client, deployments)

    def commit(self, staged: Staged, origin: Origin) -> bool:
        """Route callers to a staged version, in one step; True when the name is new."""
        name, deployments = staged.name, staged.deployments
        previous = self._integrations.get(name)
        wanted = staged.spec.default_model_properties.caller_alias
        default = next(d for d in deployments if d.alias == wanted)
        registered = Registered(name, staged.spec, staged.client, deployments, default, origin)
        self._integrations[name] = registered
        adapter = staged.client.handler
        if adapter is not None:
            register_provider(adapter.provider, adapter)
        else:
            unregister_provider(provider_name(name))
        self._reroute(previous, registered)
        self.release(name)
        if previous is not None:
            self._retire(previous)
        log.info(
            "%s integration %r (%d models, from %s)",
            "registered" if previous is None else "replaced",
            name,
            len(deployments),
            origin.file or ("the store" if origin.source == "api" else origin.source),
        )
        return previous is None

    @staticmethod
    async def discard(staged: Staged) -> None:
        """Close what a staged version opened, when it will not be committed after all."""
        await staged.client.aclose()

    async def put(self, name: str, spec: Integration, origin: Origin = Origin("api")) -> bool:
        """Stage and commit at once; True when the name is new. Refusals change nothing."""
        return self.commit(await self.stage(name, spec), origin)

    def remove(self, name: str) -> None:
        previous = self._integrations.pop(name, None)
        if previous is None:
            raise not_found(name)
        unregister_provider(provider_name(name))
        self._reroute(previous, None)
        self.release(name)
        self._retire(previous)
        log.info("removed integration %r", name)

    async def aclose(self) -> None:
        for task in list(self._retiring):
            task.cancel()
        for registered in self._integrations.values():
            await registered.client.aclose()
            unregister_provider(provider_name(registered.name))
        self._integrations.clear()
        self._routes = {}
        if self._session is not None:
            await self._session.close()

    def _plain_session(self) -> aiohttp.ClientSession:
        """The plain-HTTP backends' shared connection pool, opened on first use (inside the
        loop)."""
        if self._session is None:
            self._session = open_session(
                self._timeout, self.addresses, self._settings.max_response_bytes
            )
        return self._session

    def _reroute(self, old: Registered | None, new: Registered | None) -> None:
        """Swap one integration's model ids in the routing table, in place.

        Readers never see a half-made table: every reader runs on this event loop,
        and nothing here awaits. Updating in place rather than copying keeps a write
        independent of how many integrations there are (a copy of 20,000 routes
        cost 2 ms per write).
        """
        if old is not None:
            for model_id in old.model_ids:
                self._routes.pop(model_id, None)
        if new is not None:
            self._routes.update(new.model_ids)

    def _retire(self, old: Registered) -> None:
        """Close a replaced client once requests already using it have had time to finish."""

        async def close_later() -> None:
            await asyncio.sleep(self._timeout + 1)
            await old.client.aclose()

        task = asyncio.get_running_loop().create_task(close_later())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)


def not_found(name: str) -> RunnerError:
    return RunnerError(f"No integration named {name!r}.", 404, code="integration_not_found")


def not_served(model: str, integration: str, reason: str) -> RunnerError:
    return RunnerError(
        f"The model {model!r} belongs to the integration {integration!r}, which this runner "
        f"cannot serve: {reason}",
        503,
        "server_error",
        "integration_not_served",
        param="model",
    )
