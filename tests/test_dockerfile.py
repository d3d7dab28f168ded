"""Keep the Dockerfile honest where no Docker engine runs: what it names must exist and work.

Every ``COPY`` source must be in the repository, and the image's start command,
run directly with the image's environment (its paths mapped back onto the
repository through the ``COPY`` lines), must serve and pass its own health check.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath

import httpx

from .test_cli import REPO, _free_port

DOCKERFILE = REPO / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            rows.append((keyword.upper(), rest.strip()))
    return rows


def _exec_form(argument: str) -> list[str]:
    """The command of a CMD or HEALTHCHECK line, exec form (JSON) or shell form."""
    argument = argument[argument.index("CMD") + 3 :].strip() if "CMD" in argument else argument
    return json.loads(argument) if argument.startswith("[") else shlex.split(argument)


def _image_layout() -> tuple[dict[str, str], dict[PurePosixPath, Path]]:
    env: dict[str, str] = {}
    copied: dict[PurePosixPath, Path] = {}
    workdir = PurePosixPath("/")
    for keyword, rest in _instructions():
        if keyword == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(rest))
        elif keyword == "WORKDIR":
            workdir = workdir / rest
        elif keyword == "COPY":
            *sources, dest = shlex.split(rest)
            for source in sources:
                target = workdir / dest
                if dest.endswith("/"):
                    target = target / Path(source).name
                copied[target] = REPO / source
    return env, copied


def test_every_copied_path_exists():
    _, copied = _image_layout()
    assert copied, "the Dockerfile copies nothing"
    for target, source in copied.items():
        assert source.exists(), f"COPY source {source} (for {target}) is missing"


def test_commands_are_the_projects_console_script():
    commands = [
        _exec_form(rest) for keyword, rest in _instructions() if keyword in ("CMD", "HEALTHCHECK")
    ]
    assert ["runner", "serve"] in commands
    assert ["runner", "health"] in commands
    assert 'runner = "runner.cli:main"' in (REPO / "pyproject.toml").read_text()


def test_image_start_command_serves_when_run_directly(tmp_path: Path):
    env, copied = _image_layout()
    assert env["RUNNER_DATA_DIR"] == "/var/lib/runner"
    env["RUNNER_DATA_DIR"] = str(tmp_path / "data")  # the image's volume, here a fresh folder
    for name, value in env.items():  # image paths → the repository files copied there
        for target, source in copied.items():
            if PurePosixPath(value) == target:
                env[name] = str(source)
    port = str(_free_port())
    env.update(RUNNER_PORT=port, CUSTOM_LLMS_ENABLED="true")
    run_env = {**{k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}, **env}
    assert Path(run_env["RUNNER_CONFIG_DIR"]).is_dir()
    assert Path(run_env["CUSTOM_LLMS_DIRECTORY"]).is_dir()
    server = subprocess.Popen(
        [sys.executable, "-m", "runner.cli", "serve"],
        cwd="/",
        env=run_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        health = [sys.executable, "-m", "runner.cli", "health"]
        while subprocess.run(health, env=run_env, capture_output=True).returncode != 0:
            assert server.poll() is None, server.stderr.read()
            assert time.monotonic() < deadline, "the image's command never became healthy"
            time.sleep(0.5)
        body = httpx.get(f"http://127.0.0.1:{port}/health").json()
        assert body["config_errors"] == []
        assert body["integrations"] == len(list((REPO / "config").glob("*.json")))
    finally:
        server.terminate()
        server.wait(timeout=20)
