"""The store at scale: starting with many stored integrations, and a POST as the store grows.

Also how long ``runner serve`` takes to answer with nothing stored and one plain
integration in a file: the floor under any start (interpreter and imports).

Stores are seeded in bulk (real sealed rows, one transaction) so that making
10,000 of them takes seconds; everything measured afterwards goes through the
runner itself.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import update

from runner.integrations.registry import Registry
from runner.integrations.schema import parse_integration
from runner.integrations.service import IntegrationService
from runner.security.secret_keys import SecretBox, generate_key
from runner.settings import Settings
from runner.store import IntegrationStore, seal
from runner.store.tables import integrations, store_head

from . import targets


def measure(workdir: Path, stored: int, small: int, large: int, rounds: int, starts: int) -> dict:
    """Startup figures with ``stored`` integrations, and with one plain one (medians of
    ``starts`` process starts); POST medians with ``small`` and ``large``."""
    key = generate_key()
    startup = {
        "stored": stored,
        "load_seconds": asyncio.run(_load_seconds(workdir / "startup", key, stored)),
        "process_to_healthy_seconds": _process_start_seconds(workdir / "startup", key, starts),
        "plain_process_to_healthy_seconds": _process_start_seconds(
            _one_plain_file(workdir / "plain-start"), key, starts
        ),
    }
    return {"startup": startup, "post_ms": _post_medians(workdir, key, small, large, rounds)}


def _url(folder: Path) -> str:
    return f"sqlite:///{folder / 'runner.db'}"


def _spec(index: int) -> dict:
    return {
        "authentication_type": "api_key",
        "api_key_header": "x-api-key",
        "api_key_value": f"sk-bench-{index}",
        "endpoint": "http://127.0.0.1:9/v1",
        "model_properties": [{"name": "m", "alias": f"stored-{index}"}],
    }


async def _seed(folder: Path, key: str, count: int) -> None:
    box = SecretBox([key.encode()])
    store = await IntegrationStore.open(_url(folder))
    now = datetime.now(UTC)
    rows = []
    for index in range(count):
        sealed = seal(parse_integration(_spec(index)), box)
        rows.append(
            {
                "name": f"stored-{index}",
                "document": sealed.document,
                "secrets": sealed.secrets,
                "key_id": sealed.key_id,
                "version": 1,
                "revision": index + 1,
                "deleted": False,
                "created_at": now,
                "updated_at": now,
            }
        )
    async with store.engine.begin() as connection:
        if rows:
            await connection.execute(integrations.insert(), rows)
        await connection.execute(update(store_head).values(revision=count))
    await store.aclose()


async def _load_seconds(folder: Path, key: str, count: int) -> float:
    """The runner's own startup work: open the store, unseal and register every row."""
    await _seed(folder, key, count)
    settings = Settings(data_dir=folder, secret_key=key, config_dir=folder / "none")
    started = time.perf_counter()
    store = await IntegrationStore.open(settings.effective_database_url)
    registry = Registry(settings)
    service = IntegrationService(settings, registry, store, SecretBox([key.encode()]))
    await service.load_stored()
    elapsed = time.perf_counter() - started
    assert len(registry) == count
    await registry.aclose()
    await store.aclose()
    return elapsed


def _process_start_seconds(folder: Path, key: str, starts: int) -> float:
    """``runner serve`` from spawn to healthy, imports included, on ``folder``'s store and
    config: the median of ``starts`` starts, as one start moves by a second on a busy machine."""
    seconds = []
    for _ in range(starts):
        started = time.perf_counter()
        runner = _start(folder, key)
        seconds.append(time.perf_counter() - started)
        runner.stop()
    return statistics.median(seconds)


def _one_plain_file(folder: Path) -> Path:
    """A runner's folder: one plain integration in its config folder, nothing stored."""
    folder.joinpath("config").mkdir(parents=True, exist_ok=True)
    folder.joinpath("config", "plain.json").write_text(json.dumps(_spec(0)))
    return folder


def _post_medians(workdir: Path, key: str, small: int, large: int, rounds: int) -> dict:
    """Median POST of a new integration, the two stores' runners taking turns."""
    runners = {}
    for count in (small, large):
        folder = workdir / f"post-{count}"
        asyncio.run(_seed(folder, key, count))
        runners[count] = _start(folder, key)
    timings: dict[int, list[float]] = {small: [], large: []}
    try:
        clients = {n: httpx.Client(base_url=r.url, timeout=30) for n, r in runners.items()}
        for index in range(rounds + 3):
            for count, client in clients.items():
                started = time.perf_counter()
                client.post(f"/integrations/new-{index}", json=_spec(1_000_000 + index))
                if index >= 3:  # the first few warm connections and caches
                    timings[count].append((time.perf_counter() - started) * 1000)
    finally:
        for runner in runners.values():
            runner.stop()
    return {str(count): statistics.median(values) for count, values in timings.items()}


def _start(folder: Path, key: str) -> targets.Target:
    folder.joinpath("config").mkdir(parents=True, exist_ok=True)
    extra = {"RUNNER_DATABASE_URL": _url(folder), "RUNNER_SECRET_KEY": key}
    return targets.start_runner(f"runner on {folder.name}", folder / "config", extra)
