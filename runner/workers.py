"""``runner serve --workers N``: several processes serving one port, as replicas of each other.

uvicorn's supervisor spawns N fresh interpreters and keeps them running
(replacing any that dies) until it is told to stop. Workers share no memory:
each loads the config files, builds its own registry and polls the store every
``RUNNER_SYNC_SECONDS``, exactly as separate replicas do, so a write answered
by one worker is served by all of them within about that interval.

On Linux each worker listens on a socket of its own, bound to the same port
with ``SO_REUSEPORT``, and the kernel spreads new connections across them by
address hash. With one shared listening socket, whichever worker wakes first
accepts a whole burst of connections (a load generator's 32, a proxy's
keep-alive pool) and keeps them, while the others idle.

What must happen once happens here, in the supervising parent, before any
worker starts: the key file is generated (workers each generating their own
would seal rows the others cannot open) and the store's migrations run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from typing import TYPE_CHECKING

from uvicorn.supervisors import multiprocess

from runner.settings import Settings

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger(__name__)

APP_FACTORY = "runner.api:create_app"
"""Each worker calls ``create_app()``, whose ``Settings()`` reads the environment."""

WORKER_READY_SECONDS = 60
"""How long a replacement worker (SIGHUP) may take to start, and a worker to answer the
supervisor's ping. uvicorn's 5 s is less than a busy machine takes to import LiteLLM
and load the integrations: the restart would be given up, keeping the old workers."""


def serve_workers(settings: Settings) -> int:
    """Run ``settings.workers`` worker processes until SIGTERM or SIGINT; the exit status.

    3 (uvicorn's "startup failed") when the parent's preparation or a worker's
    start failed, as a single-process runner exits when its start fails.
    """
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE

    from runner.logs import logging_config

    config = uvicorn.Config(  # configures logging here, and again in each worker
        APP_FACTORY,
        factory=True,
        workers=settings.workers,
        host=settings.host,
        port=settings.port,
        log_config=logging_config(settings.log_level, settings.log_format),
        log_level=settings.log_level,
        access_log=False,
        timeout_worker_healthcheck=WORKER_READY_SECONDS,
    )
    if not prepare_shared_state(settings):
        return STARTUP_FAILURE
    listener = listening_socket(config)
    if listener is None:
        return STARTUP_FAILURE
    export_settings(settings, port=listener.getsockname()[1])
    multiprocess.Process = _Worker  # type: ignore[misc]
    supervisor = multiprocess.Multiprocess(config, sockets=[listener])
    supervisor.run()
    failed = any(worker.exitcode == STARTUP_FAILURE for worker in supervisor.processes)
    return STARTUP_FAILURE if failed else 0


class _Worker(multiprocess.Process):
    """uvicorn's worker process, minus the supervisor's copy of the worker's end of the
    health-check pipe.

    With that copy open, a worker killed while the supervisor waits for its answer
    to a ping never closes the pipe: the supervisor waits out the whole
    ``WORKER_READY_SECONDS`` before it notices and starts a replacement. Closed
    once the worker has its own end (``start`` has spawned it), a dead worker's
    pipe reads as closed at once. (Module-level: the spawned worker unpickles it.)
    """

    def start(self) -> None:
        super().start()
        self.child_conn.close()


def prepare_shared_state(settings: Settings) -> bool:
    """Generate the key file if needed and migrate the store, once for every worker.

    False (after logging why, as a single process would) when either cannot be
    done; no worker is started then.
    """
    from runner.integrations.places import announce
    from runner.security.secret_keys import KeyConfigError, load_secret_box
    from runner.store import StoreConfigError

    try:
        load_secret_box(settings)
        created = asyncio.run(_migrate(settings.effective_database_url))
    except (KeyConfigError, StoreConfigError) as exc:
        log.error("refusing to start: %s", exc)
        return False
    except Exception as exc:  # the database unreachable, or refusing the migration
        log.error("refusing to start: cannot open the store (%s: %s)", type(exc).__name__, exc)
        return False
    announce(settings, new_store=created)
    return True


async def _migrate(url: str) -> bool:
    """Apply the store's migrations; True when that created the store."""
    from runner.store import IntegrationStore

    store = await IntegrationStore.open(url)  # opening applies the migrations
    await store.aclose()
    return store.created


def export_settings(settings: Settings, port: int) -> None:
    """Put what came from command-line flags into the environment the workers inherit.

    Workers build their settings from the environment alone (``Settings()``), so
    ``--host``, ``--port``, ``--config-dir``, ``--custom-llms``, ``--demo`` and ``--workers``
    must be there; the file variables ``${RUNNER_HOST}`` and ``${RUNNER_PORT}``
    then expand the same in every worker. ``port`` is the one bound (port 0
    asks the system for a free one, which every worker must then share).
    """
    os.environ.update(
        RUNNER_HOST=settings.host,
        RUNNER_PORT=str(port),
        RUNNER_CONFIG_DIR=str(settings.config_dir),
        RUNNER_WORKERS=str(settings.workers),
        RUNNER_DEMO=str(settings.demo).lower(),
        CUSTOM_LLMS_ENABLED=str(settings.custom_llms_enabled).lower(),
        CUSTOM_LLMS_DIRECTORY=str(settings.custom_llms_directory),
    )


REUSE_PORT = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")
"""Linux balances connections across SO_REUSEPORT sockets; other systems may not."""


class PerWorkerSocket(socket.socket):
    """The supervisor's socket, which each worker re-creates as its own when it starts.

    uvicorn passes its supervisor's sockets to every worker it spawns by
    pickling them; this one unpickles as a new socket bound to the same
    address with SO_REUSEPORT. The supervisor's own copy is bound but never
    listens, so the kernel sends it no connections: it only holds the port.
    """

    def __reduce__(self) -> tuple[object, tuple[int, str, int]]:
        host, port = self.getsockname()[:2]
        return (bind_reusing_port, (int(self.family), host, port))


def bind_reusing_port(family: int, host: str, port: int) -> socket.socket:
    """A socket bound to ``(host, port)`` that other sockets of this user may share."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def listening_socket(config: uvicorn.Config) -> socket.socket | None:
    """The port for the workers: a socket each on Linux, else one they share.

    None (after logging why, as uvicorn does) when the address cannot be bound.
    """
    if not REUSE_PORT:
        return config.bind_socket()  # exits with uvicorn's status itself on failure
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    template = PerWorkerSocket(family, socket.SOCK_STREAM)
    try:
        port = _unused_port(family, config.host, config.port)
        template.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        template.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        template.bind((config.host, port))
    except OSError as exc:
        template.close()
        logging.getLogger("uvicorn.error").error(exc)
        return None
    host, port = template.getsockname()[:2]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    logging.getLogger("uvicorn.error").info(
        "Uvicorn running on http://%s:%d (Press CTRL+C to quit)", shown, port
    )
    return template


def _unused_port(family: int, host: str, port: int) -> int:
    """``port`` (or a free one for 0) if no other socket holds it; OSError if one does.

    SO_REUSEPORT would let a second runner of the same user join this one's
    port and take half its connections; a plain bind fails instead, as a
    single-process runner's does.
    """
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        return probe.getsockname()[1]
