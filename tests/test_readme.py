"""The README's examples, run as written against a runner started as the README says.

Every ``bash`` and ``python`` block of the README is run, except the few that
cannot run here (listed in ``NOT_RUN`` with why). Addresses are pointed at the
test's server; a ``print(...)  # expected`` in Python must print what the
comment says.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import REPO, runner_process

README = (REPO / "README.md").read_text()
BLOCK = re.compile(r"^```(bash|python|json)\n(.*?)^```", re.MULTILINE | re.DOTALL)
# Commands that cannot run inside a test, by how they start, and why.
NOT_RUN = {
    "python3 -m venv": "the install CI itself performs",
    "python -m pytest": "this very test suite",
    "docker ": "the container test builds and runs the image (tests/test_container.py)",
    "runner serve": "the server under test is started from this command (see served)",
}
DEFAULT = "http://127.0.0.1:8000"


def blocks(kind: str) -> list[str]:
    return [text for found, text in BLOCK.findall(README) if found == kind]


def commands() -> list[str]:
    """Each shell command of the README's bash blocks, continuation lines joined."""
    found = []
    for block in blocks("bash"):
        found += [c.strip() for c in block.replace("\\\n", " ").splitlines() if c.strip()]
    return found


def quickstart_serve() -> list[str]:
    [command] = [c for c in commands() if c.startswith("runner serve") and "--port" not in c]
    return shlex.split(command)[2:]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """The quickstart's `runner serve`, from the repository root, with its store elsewhere."""
    data = tmp_path_factory.mktemp("readme-data")
    env = {"RUNNER_DATA_DIR": str(data)}
    with runner_process(env, None, *quickstart_serve(), cwd=REPO, timeout=90) as (_, url):
        yield url, env


def run_shell(command: str, url: str, env: dict[str, str], cwd: Path) -> str:
    port = url.rsplit(":", 1)[1]
    command = command.replace(DEFAULT, url).replace("--port 8000", f"--port {port}")
    command = re.sub(r"^runner ", f"{shlex.quote(sys.executable)} -m runner.cli ", command)
    base = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    result = subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env={**base, **env, "RUNNER_PORT": port, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_every_shell_example_runs(served: tuple[str, dict[str, str]], tmp_path: Path):
    url, env = served
    for name in ("config", "custom_llms"):
        (tmp_path / name).symlink_to(REPO / name)
    # The JSON block after "Adding an integration" is the together.json its curl sends.
    [together] = [b for b in blocks("json") if '"alias": "Llama 4 Scout"' in b]
    (tmp_path / "together.json").write_text(together)
    ran = 0
    for command in commands():
        if any(command.startswith(prefix) for prefix in NOT_RUN):
            continue
        output = run_shell(command, url, env, tmp_path)
        assert '"error"' not in output, f"{command}\n{output}"
        ran += 1
    assert ran >= 9, "the README lost its examples"


def test_every_python_example_prints_what_it_says(served: tuple[str, dict[str, str]]):
    url, _ = served
    for block in blocks("python"):
        expected = re.findall(r"^\s*print\(.*\)\s*#\s*(.+)$", block, re.MULTILINE)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(block.replace(DEFAULT, url), "README.md", "exec"), {})
        assert printed.getvalue().splitlines() == [e.strip() for e in expected], block
