"""What a runner process imports: LiteLLM (and the OpenAI SDK) only when a call needs it.

Importing LiteLLM took about 4 s of every start, yet plain integrations on the
fast path never call it. Each test runs the real ``runner`` command in a fresh
interpreter, which reports the slow modules it imported when the command returns.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from runner import heap, lazy_litellm
from runner.integrations.registry import Registry
from runner.integrations.schema import parse_integration
from runner.settings import Settings

from .helpers import REPO, free_port, start_runner, wait_healthy

SLOW = ("litellm", "openai")
# `runner ARGS`, then the slow modules it imported as the last line of its output.
# uvicorn hands SIGTERM back to the handler it found once it has shut down.
REPORTING_CLI = (
    "import json, signal, sys\n"
    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
    "from runner.cli import main\n"
    "try:\n"
    "    sys.exit(main(sys.argv[1:]))\n"
    "finally:\n"
    f"    print(json.dumps(sorted(set({SLOW!r}) & set(sys.modules))))\n"
)
HELLO = {"messages": [{"role": "user", "content": "Hello runner"}]}


def _environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    return {**env, "RUNNER_DATA_DIR": str(tmp_path / "data"), **extra}


def _serve_and_call(
    tmp_path: Path, config_files: list[str], model: str, *options: str, **env: str
) -> list[str]:
    """Serve the repository's ``config_files``, call ``model`` (whole and streamed) once
    healthy, stop; the slow modules the process had imported by the end."""
    config = tmp_path / "config"
    config.mkdir()
    for name in config_files:
        shutil.copy(REPO / "config" / name, config)
    port = free_port()
    command = [sys.executable, "-c", REPORTING_CLI, "serve", "--demo", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--config-dir", str(config), *options],
        cwd=REPO,
        env=_environment(tmp_path, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(process, url, timeout=90)
        with httpx.Client(base_url=url, timeout=30) as client:
            whole = client.post("/v1/chat/completions", json={"model": model, **HELLO})
            assert whole.status_code == 200, whole.text
            assert "Hello runner" in whole.json()["choices"][0]["message"]["content"]
            streamed = client.post(
                "/v1/chat/completions", json={"model": model, "stream": True, **HELLO}
            )
            assert streamed.status_code == 200, streamed.text
            assert streamed.text.endswith("data: [DONE]\n\n")
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    return json.loads(stdout.splitlines()[-1])


def test_plain_integrations_are_served_without_importing_litellm(tmp_path: Path):
    assert _serve_and_call(tmp_path, ["demo.json"], "Demo Echo") == []


def test_without_the_fast_path_litellm_serves_plain_integrations(tmp_path: Path):
    imported = _serve_and_call(tmp_path, ["demo.json"], "Demo Echo", RUNNER_FAST_PATH="false")
    assert imported == sorted(SLOW)


def test_a_handler_integration_imports_litellm(tmp_path: Path):
    options = ("--custom-llms", str(REPO / "custom_llms"))
    imported = _serve_and_call(tmp_path, ["offline-echo.json"], "Offline Echo", *options)
    assert "litellm" in imported


def test_validate_never_imports_litellm(tmp_path: Path):
    files = sorted(str(path) for path in (REPO / "config").glob("*.json"))  # handlers too
    result = subprocess.run(
        [sys.executable, "-c", REPORTING_CLI, "validate", *files],
        cwd=REPO,
        env=_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert sum(": ok (" in line for line in lines) == len(files)
    assert json.loads(lines[-1]) == []


@pytest.mark.parametrize("fast_path", [True, False])
async def test_litellm_is_loaded_at_registration_when_calls_will_need_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast_path: bool
):
    """Not at the first call, which would wait seconds for the import (on the event
    loop, and perhaps past the call's timeout)."""
    monkeypatch.setattr(lazy_litellm, "_litellm", None)
    spec = parse_integration(
        {
            "authentication_type": "none",
            "endpoint": "https://api.example.com/v1",
            "model_properties": [{"name": "m"}],
        }
    )
    registry = Registry(Settings(config_dir=tmp_path, fast_path=fast_path))
    alive: list[object] = []  # a container: the collector tracks it
    try:
        await registry.put("acme", spec)
        assert (lazy_litellm.loaded() is None) == fast_path
        # What the import brought is kept out of full collections (runner.heap), and so
        # is everything alive before it.
        assert _frozen(alive) != fast_path
    finally:
        await registry.aclose()


def _frozen(thing: object) -> bool:
    """Whether ``thing`` is out of the collector's generations (``gc.freeze``)."""
    assert gc.is_tracked(thing)
    return not any(found is thing for found in gc.get_objects())


def test_a_started_runner_keeps_what_it_holds_out_of_full_collections(tmp_path: Path):
    """Full collections walking the modules and routes of a started runner cost some
    60 µs per request under load and a pause of up to 200 ms, and young ones walking
    the requests in flight every few requests 8% of its throughput (runner.heap)."""
    config = tmp_path / "config"
    config.mkdir()
    alive: list[object] = []  # a container: the collector tracks it
    assert not _frozen(alive)
    gc.set_threshold(700, *gc.get_threshold()[1:])  # Python's default; a runner started
    # by an earlier fixture of this process may have raised it (the fixture restores it)
    with start_runner(config) as runner:
        assert runner.http.get("/health").status_code == 200
        assert _frozen(alive)
        assert gc.get_threshold()[0] == heap.YOUNG_THRESHOLD
