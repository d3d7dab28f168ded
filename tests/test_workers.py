"""``runner serve --workers N``: worker processes on one port that follow each other.

Every runner here is a real ``runner serve`` on loopback. Calls go over a new
connection each time, so the kernel spreads them across the workers; replies
from a handler that names its process id show which worker answered, and
``/health`` (which names its worker too) shows the store revision each applied.
The tests sharing ``cluster`` each check what they need afresh (worker pids
change when one is killed or on SIGHUP), so they pass in any order.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runner.integrations.schema import parse_integration
from runner.security.secret_keys import SecretBox, generate_key
from runner.settings import Settings, parse_workers
from runner.store import IntegrationStore, seal
from runner.workers import REUSE_PORT

from .fakes import Upstream
from .helpers import integration, poll
from .stores import sql
from .worker_processes import DEADLINE, Served, every_answer, pid_echo, serve, write_handler


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Two workers on a fresh data folder (no key, no database yet), set up by flags only."""
    root = tmp_path_factory.mktemp("workers")
    config, handlers = root / "config", root / "handlers"
    config.mkdir()
    handlers.mkdir()
    write_handler(handlers, "v1")
    (config / "file-pid.json").write_text(json.dumps(pid_echo("file", "File Pid")))
    self_echo = {
        "authentication_type": "none",
        "endpoint": "http://${RUNNER_HOST}:${RUNNER_PORT}/demo/v1",
        "model_properties": [{"name": "echo", "alias": "Self Echo"}],
    }
    (config / "self-echo.json").write_text(json.dumps(self_echo))
    env = {
        "RUNNER_DATA_DIR": str(root / "data"),
        "RUNNER_SYNC_SECONDS": "0.2",
        "RUNNER_HANDLER_POLL_SECONDS": "0.2",
    }
    flags = ["--workers", "2", "--host", "127.0.0.1", "--config-dir", str(config)]
    with serve([*flags, "--custom-llms", str(handlers)], env, root, workers=2) as served:
        served.handlers = handlers
        served.database_url = f"sqlite:///{root / 'data' / 'runner.db'}"
        yield served


def test_workers_is_a_count_of_at_least_one_or_auto():
    assert parse_workers("auto") == parse_workers(" AUTO ") == (os.cpu_count() or 1)
    assert parse_workers("3") == parse_workers(3) == 3
    assert Settings(workers="auto").workers == (os.cpu_count() or 1)
    assert Settings().workers == 1
    for bad in ("0", "-1", "1.5", "many", "", 0, True):
        with pytest.raises(ValueError, match="whole number of processes"):
            parse_workers(bad)


@pytest.mark.parametrize(
    ("flags", "env"),
    [(["--workers", "0"], {}), (["--workers", "two"], {}), ([], {"RUNNER_WORKERS": "-2"})],
)
def test_bad_worker_counts_are_refused_with_a_clear_message(flags: list[str], env: dict[str, str]):
    base = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    done = subprocess.run(
        [sys.executable, "-m", "runner.cli", "serve", *flags],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "whole number of processes, 1 or more, or 'auto'" in done.stderr
    assert "Traceback" not in done.stderr


def test_one_worker_is_the_single_process_it_always_was(tmp_path: Path, config_dir: Path):
    env = {"RUNNER_DATA_DIR": str(tmp_path / "data"), "RUNNER_CONFIG_DIR": str(config_dir)}
    with serve(["--workers", "1"], env, tmp_path) as served:
        assert httpx.get(f"{served.url}/health").json()["worker"] == {"pid": served.process.pid}
        assert served.children() == set()


def test_a_fresh_data_folder_gets_one_key_and_one_schema_for_every_worker(cluster: Served):
    data = Path(cluster.database_url.removeprefix("sqlite:///")).parent
    assert len((data / "secret.key").read_text().split()) == 1
    assert sorted(p.name for p in data.iterdir() if not p.name.startswith("runner.db")) == [
        "secret.key"
    ]
    log = cluster.log_text()
    assert log.count("generated a new secret key") == 1
    assert sql(cluster.database_url, "SELECT version_num FROM alembic_version") == [("0001",)]
    # The runner's own log lines come from each worker: logging is set up in each
    # (more than two once a test has replaced workers).
    assert log.count("runner.api.app: serving") >= 2


def test_every_worker_answers_with_flags_and_config_files_applied(cluster: Served):
    workers = cluster.workers()
    assert len(workers) == 2
    assert labels(every_answer(cluster.url, "File Pid", workers)) == {"file"}
    port = cluster.url.rsplit(":", 1)[1]
    for _ in range(10):  # ${RUNNER_PORT} expanded to --port's value in every worker
        described = httpx.get(f"{cluster.url}/integrations/self-echo").json()
        endpoint = described["integration"]["endpoint"]
        assert endpoint == f"http://127.0.0.1:{port}/demo/v1"
        assert cluster.chat("Self Echo").json()["choices"][0]["message"]["content"] == "echo: hi"


def test_a_write_through_one_worker_is_served_by_all(cluster: Served, upstream: Upstream):
    spec = integration(
        upstream,
        authentication_type="api_key",
        api_key_header="x-api-key",
        api_key_value="sk-shared-by-workers",
        model_properties=[{"name": "m", "alias": "Posted"}],
    )
    assert httpx.post(f"{cluster.url}/integrations/posted", json=spec).status_code == 201
    cluster.wait_every_worker_at_head()
    for _ in range(10):
        assert cluster.chat("Posted").status_code == 200
        assert upstream.last.headers["x-api-key"] == "sk-shared-by-workers"

    spec["model_properties"] = [{"name": "m", "alias": "Posted Again"}]
    assert httpx.put(f"{cluster.url}/integrations/posted", json=spec).status_code == 200
    cluster.wait_every_worker_at_head()
    for _ in range(10):
        assert cluster.chat("Posted").status_code == 404
        assert cluster.chat("Posted Again").status_code == 200

    assert httpx.delete(f"{cluster.url}/integrations/posted").status_code == 204
    cluster.wait_every_worker_at_head()
    for _ in range(10):
        assert cluster.chat("Posted Again").status_code == 404


def test_handler_integrations_and_their_replacement_reach_every_worker(cluster: Served):
    workers = cluster.workers()
    url = f"{cluster.url}/integrations/api-pid"
    assert httpx.post(url, json=pid_echo("posted", "Api Pid")).status_code == 201
    assert labels(every_answer(cluster.url, "Api Pid", workers)) == {"posted"}
    assert httpx.put(url, json=pid_echo("replaced", "Api Pid")).status_code == 200
    assert labels(every_answer(cluster.url, "Api Pid", workers, "replaced")) == {"replaced"}
    assert httpx.delete(url).status_code == 204
    cluster.wait_every_worker_at_head()
    assert all(cluster.chat("Api Pid").status_code == 404 for _ in range(10))


def test_an_edited_handler_file_is_reloaded_by_every_worker(cluster: Served):
    write_handler(cluster.handlers, "v2")
    workers = cluster.workers()
    assert every_answer(cluster.url, "File Pid", workers, "v2") == {"v2 file"}


@pytest.mark.skipif(not REUSE_PORT, reason="SO_REUSEPORT balancing is Linux's")
def test_a_burst_of_connections_is_spread_across_the_workers(cluster: Served):
    """32 connections opened at once (a load generator, a proxy's pool) reach both workers.

    With one shared listening socket, one worker could accept nearly all of them.
    With a socket per worker the kernel hashes each connection to one: fewer than
    4 of 32 on either worker would happen about once in 400,000 runs.
    """
    port = int(cluster.url.rsplit(":", 1)[1])
    connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(32)]
    for connection in connections:
        connection.connect()
    counts: dict[int, int] = {}
    for connection in connections:
        connection.request("GET", "/health")
        pid = json.loads(connection.getresponse().read())["worker"]["pid"]
        counts[pid] = counts.get(pid, 0) + 1
        connection.close()
    assert set(counts) == cluster.workers()
    assert min(counts.values()) >= 4, counts


def test_a_second_runner_cannot_take_a_share_of_the_port(cluster: Served, tmp_path: Path):
    """Sockets sharing a port by SO_REUSEPORT must not let another runner slip in."""
    port = cluster.url.rsplit(":", 1)[1]
    env = {"RUNNER_DATA_DIR": str(tmp_path / "data"), "RUNNER_CONFIG_DIR": str(tmp_path)}
    with serve(["--workers", "2", "--port", port], env, tmp_path, wait=False) as second:
        assert second.process.wait(timeout=60) == 3
        assert "Address already in use" in second.log_text()


def test_a_worker_that_dies_is_replaced_by_one_serving_the_same(cluster: Served):
    """A handler calling os._exit() or a kill -9 takes one worker, never the port."""
    assert httpx.post(f"{cluster.url}/integrations/kept", json=pid_echo("kept", "Kept")).is_success
    cluster.wait_every_worker_at_head()
    victim = min(cluster.workers())
    os.kill(victim, signal.SIGKILL)
    poll(lambda: victim not in cluster.workers(), DEADLINE, "the dead worker reaped")
    poll(lambda: len(cluster.workers()) == 2, DEADLINE, "a replacement worker started")
    replacement = cluster.workers()
    poll(lambda: cluster.health_pids(4) >= replacement, DEADLINE, "the replacement serving")
    assert labels(every_answer(cluster.url, "Kept", replacement)) == {"kept"}


def test_sighup_replaces_the_workers_which_read_the_config_files_again(cluster: Served):
    (cluster.handlers.parent / "config" / "hup-pid.json").write_text(
        json.dumps(pid_echo("hup", "Hup Pid"))
    )
    before = cluster.workers()
    cluster.process.send_signal(signal.SIGHUP)
    poll(lambda: not cluster.workers() & before, DEADLINE, "every worker replaced")
    poll(lambda: len(cluster.workers()) == 2, DEADLINE, "two workers again")
    assert labels(every_answer(cluster.url, "Hup Pid", cluster.workers())) == {"hup"}


def test_on_either_store_workers_follow_writes_and_sigterm_stops_them_all(
    database_url: str, tmp_path: Path, config_dir: Path
):
    env = {
        "RUNNER_DATABASE_URL": database_url,
        "RUNNER_SECRET_KEY": generate_key(),
        "RUNNER_SYNC_SECONDS": "0.2",
        "RUNNER_CONFIG_DIR": str(config_dir),
        "RUNNER_WORKERS": "2",
    }
    with serve([], env, tmp_path, workers=2) as served:
        workers = served.workers()
        assert len(workers) == 2
        served.database_url = database_url
        spec = {
            "authentication_type": "none",
            "endpoint": f"{served.url}/demo/v1",
            "model_properties": [{"name": "echo", "alias": "Echo"}],
        }
        assert httpx.post(f"{served.url}/integrations/echo", json=spec).status_code == 201
        served.wait_every_worker_at_head()
        assert all(served.chat("Echo").status_code == 200 for _ in range(10))
        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(timeout=30) == 0
        poll(lambda: not any(map(_running, workers)), DEADLINE, "every worker gone")


def test_a_worker_that_cannot_start_stops_the_parent(
    tmp_path: Path, config_dir: Path, upstream: Upstream
):
    """Rows sealed under another key: each worker refuses to start, and so does the whole."""
    database_url = f"sqlite:///{tmp_path / 'store.db'}"
    asyncio.run(_store_one(database_url, generate_key(), integration(upstream)))
    env = {
        "RUNNER_DATABASE_URL": database_url,
        "RUNNER_SECRET_KEY": generate_key(),
        "RUNNER_CONFIG_DIR": str(config_dir),
    }
    with serve(["--workers", "2"], env, tmp_path, wait=False) as served:
        assert served.process.wait(timeout=120) == 3
        assert "cannot decrypt 1 stored integration(s)" in served.log_text()


def test_an_unusable_key_is_refused_before_any_worker_starts(tmp_path: Path, config_dir: Path):
    env = {"RUNNER_SECRET_KEY": "not-a-key", "RUNNER_DATA_DIR": str(tmp_path / "data")}
    with serve(["--workers", "2", "--config-dir", str(config_dir)], env, tmp_path, wait=False) as s:
        assert s.process.wait(timeout=60) == 3
        log = s.log_text()
    assert "refusing to start: key 1 in RUNNER_SECRET_KEY is not a Fernet key" in log
    assert "Started server process" not in log


def labels(answers: set[str]) -> set[str]:
    """The labels in PidEcho answers, whichever version of its file gave them."""
    return {answer.split()[1] for answer in answers}


def _running(pid: int) -> bool:
    """Still a process (a zombie left unreaped counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def _store_one(database_url: str, key: str, spec: dict[str, object]) -> None:
    store = await IntegrationStore.open(database_url)
    try:
        await store.save("sealed", seal(parse_integration(spec), SecretBox([key.encode()])))
    finally:
        await store.aclose()
