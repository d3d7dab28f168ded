"""The console script as a user runs it: `runner serve` from a fresh clone, `runner models`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from .helpers import REPO, runner_process


@pytest.fixture(scope="module")
def served_from_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`runner serve` run exactly as the README says, from the repository root
    (with its store in a fresh folder rather than the repository's data/)."""
    env = {"RUNNER_DATA_DIR": str(tmp_path_factory.mktemp("data"))}
    readme = ("--demo", "--custom-llms", "custom_llms")  # no --config-dir: the default, config/
    with runner_process(env, None, *readme, cwd=REPO, timeout=90) as (_, url):
        yield url


def test_fresh_clone_serves_the_demo_model_offline(served_from_repo: str):
    client = openai.OpenAI(base_url=f"{served_from_repo}/v1", api_key="unused")
    assert "Demo Echo" in [m.id for m in client.models.list()]
    completion = client.chat.completions.create(
        model="Demo Echo", messages=[{"role": "user", "content": "Hello runner"}]
    )
    assert completion.choices[0].message.content == "echo: Hello runner"
    stream = client.chat.completions.create(
        model="Demo Echo", messages=[{"role": "user", "content": "Hello runner"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream) == "echo: Hello runner"


def test_every_shipped_config_file_loads(served_from_repo: str):
    health = httpx.get(f"{served_from_repo}/health").json()
    assert health["config_errors"] == []
    assert health["integrations"] == len(list((REPO / "config").glob("*.json")))


def test_models_command_lists_aliases_from_the_config_folder(tmp_path: Path):
    (tmp_path / "acme.json").write_text(
        '{"authentication_type": "none", "endpoint": "https://x.example/v1",'
        ' "model_properties": [{"name": "m-1", "alias": "M One"}, {"name": "m-2"}]}'
    )
    result = subprocess.run(
        [sys.executable, "-m", "runner.cli", "models", "--config-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"# config folder {tmp_path.resolve()}, offline")
    rows = [line.split("\t") for line in lines if not line.startswith("#")]
    assert [r[:3] for r in rows] == [["M One", "acme", "m-1"], ["m-2", "acme", "m-2"]]
    assert rows[0][3] == "frequency_penalty,max_tokens,presence_penalty,stop,temperature,top_p"
