"""Starting the servers under test: the runner and LiteLLM's proxy, one worker unless asked.

Each runs as its own process so its memory can be read from ``/proc`` and
nothing it does shares an interpreter with the load.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
MODEL, STREAM_MODEL = "bench-model", "bench-stream"
HANDLER_MODEL = "bench-handler"  # the offline handler scenario (bench/handler.py)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Target:
    """A server under test: where it listens and the process that serves it."""

    name: str
    url: str
    process: subprocess.Popen

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def peak_rss_mb(self) -> float:
        """Peak resident memory (VmHWM) of the process and its children, in MB."""
        return sum(_peak_rss_kb(pid) for pid in process_tree(self.process.pid)) / 1024


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 180) -> None:
    """Poll ``url`` until it answers 200. Start times are measured through this loop, so it
    polls often, with one client: ``httpx.get`` builds a TLS context each time (~45 ms of
    CPU), which would take a core from the server starting beside it."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                said = process.stderr.read().decode()[-2000:] if process.stderr else "(see its log)"
                raise RuntimeError(f"{url} exited: {said}")
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not become ready in {timeout} s")


def plain_integration(upstream: str, name: str, alias: str, path: str = "/v1") -> dict:
    return {
        "authentication_type": "none",
        "endpoint": f"{upstream}{path}",
        "model_properties": [
            {"name": name, "alias": alias, "supported_parameters": ["max_tokens", "temperature"]}
        ],
    }


def handler_integration(alias: str) -> dict:
    return {
        "authentication_type": "none",
        "model_properties": [{"name": alias, "alias": alias}],
        "custom_llm_config": {"file_name": "offline_echo.py", "class_name": "OfflineEchoHandler"},
    }


def write_runner_config(directory: Path, upstream: str, integrations: int) -> None:
    """The two benchmark models, plus filler up to ``integrations`` (half of them handlers)."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "bench": plain_integration(upstream, MODEL, MODEL),
        "bench-stream": plain_integration(upstream, MODEL, STREAM_MODEL, "/stream/v1"),
        "bench-handler": handler_integration(HANDLER_MODEL),
    }
    for index in range(integrations - len(files)):
        name = f"filler-{index:04d}"
        files[name] = (
            handler_integration(f"{name}-model")
            if index % 2
            else plain_integration(upstream, f"{name}-model", f"{name}-model")
        )
    for name, spec in files.items():
        (directory / f"{name}.json").write_text(json.dumps(spec))


def _start(
    name: str,
    command: list[str],
    env: dict[str, str],
    cwd: Path,
    ready: str,
    log: Path | None = None,
) -> Target:
    """Start a server on a free port (``{port}`` in ``command``) and wait for ``ready``;
    its stderr goes to ``log`` when given (a server that logs every request would fill
    an unread pipe and stall)."""
    port = free_port()
    process = subprocess.Popen(
        [part.replace("{port}", str(port)) for part in command],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb") if log is not None else subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}{ready}", process)
    return Target(name, url, process)


def start_runner(
    name: str, config_dir: Path, extra_env: dict[str, str] | None = None, log: Path | None = None
) -> Target:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    env.update(RUNNER_LOG_LEVEL="warning", RUNNER_DATA_DIR=f"{config_dir}-data")
    env.update(extra_env or {})
    command = [
        sys.executable,
        "-m",
        "runner.cli",
        "serve",
        "--port",
        "{port}",
        "--config-dir",
        str(config_dir),
        "--custom-llms",
        str(REPO / "custom_llms"),
    ]
    return _start(name, command, env, REPO, "/health", log)


def litellm_proxy_command() -> list[str] | None:
    """How to start LiteLLM's proxy, or None when ``litellm[proxy]`` is not installed."""
    # Looked up, not imported: importing LiteLLM here would cost this process seconds.
    if (
        importlib.util.find_spec("litellm.proxy") is None
        or importlib.util.find_spec("apscheduler") is None
    ):
        return None
    cli = shutil.which("litellm", path=str(Path(sys.executable).parent)) or shutil.which("litellm")
    return [cli] if cli else None


def start_litellm_proxy(
    command: list[str],
    upstream: str,
    workdir: Path,
    extra_models: Sequence[str] = (),
    extra_settings: Sequence[str] = (),
) -> Target:
    """LiteLLM's proxy serving the plain models, plus ``extra_models`` (YAML lines under
    ``model_list``) with ``extra_settings`` (YAML lines under ``litellm_settings``)."""
    config = workdir / "litellm.yaml"
    models = [(MODEL, "/v1"), (STREAM_MODEL, "/stream/v1")]
    lines = ["model_list:"]
    for alias, path in models:
        lines += [
            f"  - model_name: {alias}",
            "    litellm_params:",
            f"      model: openai/{MODEL}",
            f"      api_base: {upstream}{path}",
            "      api_key: unused",
        ]
    lines += [
        *extra_models,
        "litellm_settings:",
        *extra_settings,
        "  callbacks: []",
        "  success_callback: []",
        "  failure_callback: []",
        "  telemetry: false",
        "general_settings:",
        "  disable_spend_logs: true",
    ]
    config.write_text("\n".join(lines) + "\n")
    env = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
        "LITELLM_LOG": "ERROR",
    }
    options = [
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--num_workers",
        "1",
    ]
    return _start("LiteLLM proxy", [*command, *options], env, workdir, "/health/liveliness")


def process_tree(root: int) -> list[int]:
    """``root`` and every process descended from it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    pids, stack = [], [root]
    while stack:
        pid = stack.pop()
        pids.append(pid)
        stack.extend(children.get(pid, []))
    return pids


def _peak_rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
