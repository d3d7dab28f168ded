"""The store under the failures operators meet: kill -9, the wrong key, rotation, replicas.

Runners here are separate processes (``runner serve``), so they can be killed
and restarted like the real thing, and several can share one database.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from runner.security.secret_keys import generate_key, key_id

from .fakes import Upstream
from .helpers import integration, poll, runner_process
from .stores import sql


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "RUNNER_DATABASE_URL": database_url,
        "RUNNER_SECRET_KEY": generate_key(),
        "RUNNER_DATA_DIR": str(tmp_path / "data"),
        "RUNNER_SYNC_SECONDS": "0.2",
    }


def keyed(upstream: Upstream, n: int) -> dict[str, object]:
    return integration(
        upstream,
        authentication_type="api_key",
        api_key_header="x-api-key",
        api_key_value=f"sk-write-{n}",
        model_properties=[{"name": "m", "alias": f"W{n}"}],
    )


def test_kill_9_mid_writes_loses_no_acknowledged_write(
    env: dict[str, str], config_dir: Path, upstream: Upstream
):
    acknowledged: list[int] = []
    with runner_process(env, config_dir) as (process, url):

        def write_until_killed() -> None:
            with httpx.Client(base_url=url, timeout=10) as http:
                for n in range(10_000):
                    try:
                        response = http.post(f"/integrations/w{n}", json=keyed(upstream, n))
                    except httpx.HTTPError:
                        return
                    if response.status_code == 201:
                        acknowledged.append(n)

        writer = threading.Thread(target=write_until_killed)
        writer.start()

        def forty_acknowledged() -> bool:
            done = len(acknowledged) >= 40
            assert done or writer.is_alive(), f"the writer stopped after {len(acknowledged)}"
            return done

        poll(forty_acknowledged, 60, "40 acknowledged writes", 0.01)
        process.kill()
        process.wait()
        writer.join()
    with runner_process(env, config_dir) as (_, url), httpx.Client(base_url=url) as http:
        health = http.get("/health").json()
        assert health["store"]["problems"] == []
        served = {d["name"] for d in http.get("/integrations").json()["data"]}
        assert {f"w{n}" for n in acknowledged} <= served
        for n in acknowledged[:: max(1, len(acknowledged) // 10)]:
            chat = {"model": f"W{n}", "messages": [{"role": "user", "content": "hi"}]}
            assert http.post("/v1/chat/completions", json=chat).status_code == 200
            assert upstream.last.headers["x-api-key"] == f"sk-write-{n}"


def test_the_wrong_key_refuses_to_start_and_names_what_it_cannot_decrypt(
    env: dict[str, str], config_dir: Path, upstream: Upstream
):
    with runner_process(env, config_dir) as (_, url):
        for name in ("alpha", "beta"):
            assert (
                httpx.post(
                    f"{url}/integrations/{name}", json=keyed(upstream, 0 if name == "alpha" else 1)
                ).status_code
                == 201
            )
    wrong = {**env, "RUNNER_SECRET_KEY": generate_key()}
    started = _cli(["serve", "--port", "0"], wrong, config_dir)
    assert started.returncode != 0
    assert "cannot decrypt 2 stored integration(s)" in started.stderr
    assert "alpha, beta" in started.stderr
    assert wrong["RUNNER_SECRET_KEY"] not in started.stderr
    sealed_with = key_id(env["RUNNER_SECRET_KEY"].encode())
    have = key_id(wrong["RUNNER_SECRET_KEY"].encode())
    assert f"sealed with key id(s) {sealed_with}" in started.stderr
    assert f"from RUNNER_SECRET_KEY, have id(s) {have}" in started.stderr
    assert "set RUNNER_SECRET_KEY to the new key and the old one" in started.stderr
    assert "Traceback" not in started.stderr  # one line says why; tracebacks only at debug
    with runner_process(env, config_dir) as (_, url):  # the right key: nothing was dropped
        served = {d["name"] for d in httpx.get(f"{url}/integrations").json()["data"]}
        assert served == {"alpha", "beta"}


def test_rotate_key_reseals_everything_under_the_newest_key(
    env: dict[str, str], config_dir: Path, upstream: Upstream, database_url: str
):
    old = env["RUNNER_SECRET_KEY"]
    with runner_process(env, config_dir) as (_, url):
        for n in range(3):
            httpx.post(f"{url}/integrations/w{n}", json=keyed(upstream, n))
    new = generate_key()
    rotated = _cli(["rotate-key"], {**env, "RUNNER_SECRET_KEY": f"{new},{old}"}, config_dir)
    assert rotated.returncode == 0, rotated.stderr
    assert "re-encrypted 3 integration(s)" in rotated.stdout
    key_ids = sql(database_url, "SELECT DISTINCT key_id FROM integrations")
    assert key_ids == [(key_id(new.encode()),)]
    with runner_process({**env, "RUNNER_SECRET_KEY": new}, config_dir) as (_, url):
        chat = {"model": "W2", "messages": [{"role": "user", "content": "hi"}]}
        assert httpx.post(f"{url}/v1/chat/completions", json=chat).status_code == 200
        assert upstream.last.headers["x-api-key"] == "sk-write-2"


def test_without_a_key_one_is_generated_privately_and_rotation_extends_it(
    env: dict[str, str], config_dir: Path, upstream: Upstream, tmp_path: Path
):
    env = {k: v for k, v in env.items() if k != "RUNNER_SECRET_KEY"}
    key_file = tmp_path / "data" / "secret.key"
    with runner_process(env, config_dir) as (process, url):
        httpx.post(f"{url}/integrations/w0", json=keyed(upstream, 0))
        process.terminate()
        process.wait(timeout=20)
        assert "generated a new secret key in" in process.stderr.read()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(key_file.read_text().split()) == 1
    rotated = _cli(["rotate-key"], env, config_dir)
    assert rotated.returncode == 0, rotated.stderr
    assert len(key_file.read_text().split()) == 2
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    with runner_process(env, config_dir) as (process, url):
        assert httpx.get(f"{url}/integrations/w0").status_code == 200


def test_replicas_on_one_database_follow_each_other_within_two_seconds(
    env: dict[str, str], config_dir: Path, upstream: Upstream
):
    with runner_process(env, config_dir) as (_, a), runner_process(env, config_dir) as (_, b):
        assert httpx.post(f"{a}/integrations/shared", json=keyed(upstream, 1)).status_code == 201
        acknowledged = time.monotonic()
        poll(lambda: _chat_status(b, "W1") == 200, 5, "replica b serving W1")
        assert time.monotonic() - acknowledged < 2
        assert upstream.last.headers["x-api-key"] == "sk-write-1"

        assert httpx.delete(f"{a}/integrations/shared").status_code == 204
        acknowledged = time.monotonic()
        poll(lambda: _chat_status(b, "W1") == 404, 5, "replica b dropping W1")
        assert time.monotonic() - acknowledged < 2

        versions = [keyed(upstream, n) for n in range(2, 14)]
        with ThreadPoolExecutor(len(versions)) as pool:
            targets = [a if n % 2 else b for n in range(len(versions))]
            list(
                pool.map(
                    lambda t, v: httpx.post(f"{t}/integrations/race", json=v), targets, versions
                )
            )
        seen: list[dict[str, object]] = []

        def race_settled() -> bool:
            seen[:] = [httpx.get(f"{url}/integrations/race").json() for url in (a, b)]
            return seen[0] == seen[1] and seen[0]["version"] == len(versions)

        poll(race_settled, 2, "both replicas serving the race's last version")
        assert seen[0] == seen[1]
        assert seen[0]["version"] == len(versions)


def _cli(
    args: list[str], env: dict[str, str], config_dir: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner.cli", *args],
        env={**os.environ, "RUNNER_CONFIG_DIR": str(config_dir), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _chat_status(url: str, model: str) -> int:
    chat = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(f"{url}/v1/chat/completions", json=chat).status_code
