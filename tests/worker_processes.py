"""Running ``runner serve`` (with one worker or several) and asking every worker what it serves.

Each request goes over a new connection (``httpx.get``/``httpx.post`` open one
per call), and the kernel picks a worker for each new connection; asking often
enough reaches them all. A handler that puts its process id in its answer, and
``/health``'s ``worker.pid``, say which worker answered. Everything waits on a
deadline, never a guess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from .helpers import free_port, poll
from .stores import sql

DEADLINE = 60.0
FRESH = httpx.Client(timeout=30, headers={"Connection": "close"})
"""For calls that must each open a new connection, so the kernel picks a worker for each:
one client rather than ``httpx.get``, which builds a TLS context (~45 ms of CPU) per call."""

HANDLER = '''import os
from litellm import CustomLLM, ModelResponse

VERSION = "{version}"


class PidEcho(CustomLLM):
    """Answers its file's VERSION, its label and the id of the process that ran it."""

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label

    async def acompletion(self, model, messages, **kwargs):
        content = f"{{VERSION}} {{self.label}} {{os.getpid()}}"
        choice = {{"index": 0, "message": {{"role": "assistant", "content": content}}}}
        return ModelResponse(model=model, choices=[choice])
'''


def pid_echo(label: str, alias: str) -> dict[str, object]:
    """An integration served by ``PidEcho(label)``, called as ``alias``."""
    return {
        "authentication_type": "none",
        "model_properties": [{"name": "pid", "alias": alias}],
        "custom_llm_config": {
            "file_name": "pid_echo.py",
            "class_name": "PidEcho",
            "init_kwargs": {"label": label},
        },
    }


def write_handler(directory: Path, version: str) -> None:
    """Replace the handler file in one rename, so no worker imports half of it."""
    temporary = directory / "pid_echo.tmp"
    temporary.write_text(HANDLER.format(version=version))
    os.replace(temporary, directory / "pid_echo.py")


def chat(url: str, model: str) -> httpx.Response:
    """One chat call, over a connection of its own."""
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    return FRESH.post(f"{url}/v1/chat/completions", json=body)


def health(url: str) -> dict[str, Any] | None:
    """``/health`` over a connection of its own; None when the connection fails.

    While workers are being replaced, a connection the kernel queued for a worker
    that is closing its socket is reset: polling must take that as "not yet".
    """
    try:
        return FRESH.get(f"{url}/health").json()
    except httpx.TransportError:
        return None


@dataclass
class Served:
    """A ``runner serve`` process tree: the process started, its URL and its log file."""

    process: subprocess.Popen[str]
    url: str
    log: Path
    database_url: str = ""
    handlers: Path = Path()

    def log_text(self) -> str:
        return self.log.read_text()

    def children(self) -> set[int]:
        """Every process whose parent is the one started."""
        found = set()
        for entry in Path("/proc").iterdir():
            try:
                stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
            except OSError:  # gone meanwhile
                continue
            if stat and int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid:
                found.add(int(entry.name))
        return found

    def workers(self) -> set[int]:
        """The worker processes (spawned interpreters), not multiprocessing's helpers."""
        return {pid for pid in self.children() if b"spawn_main" in _cmdline(pid)}

    def health_pids(self, asks: int = 20) -> set[int]:
        """The workers that answered ``asks`` requests for ``/health``."""
        answers = (health(self.url) for _ in range(asks))
        return {answer["worker"]["pid"] for answer in answers if answer is not None}

    def chat(self, model: str) -> httpx.Response:
        return chat(self.url, model)

    def wait_every_worker_at_head(self) -> None:
        """Until each worker's ``/health`` reports the store's newest revision as applied."""
        head = int(sql(self.database_url, "SELECT revision FROM store_head")[0][0])
        applied: dict[int, int] = {}
        workers = self.workers()

        def caught_up() -> bool:
            answer = health(self.url)
            if answer is not None:
                applied[answer["worker"]["pid"]] = answer["store"]["revision"]
            return all(applied.get(pid, -1) >= head for pid in workers)

        poll(caught_up, DEADLINE, f"every worker at store revision {head}")


def every_answer(url: str, model: str, workers: set[int], expect: str = "") -> set[str]:
    """What each worker answers once every one has answered (with ``expect`` in it).

    For models whose reply is ``"<version> <label> <pid>"``. After every worker
    has been seen answering as expected, ten more calls must all do so: the
    state no worker goes back from is reached everywhere.
    """
    latest: dict[int, str] = {}

    def answered() -> bool:
        try:
            response = chat(url, model)
        except httpx.TransportError:  # see health()
            return False
        if response.status_code == 200:
            text, pid = response.json()["choices"][0]["message"]["content"].rsplit(" ", 1)
            latest[int(pid)] = text
        return all(pid in latest and expect in latest[pid] for pid in workers)

    poll(answered, DEADLINE, f"every worker answers {model!r} with {expect!r}")
    for _ in range(10):
        response = chat(url, model)
        assert response.status_code == 200, response.text
        assert expect in response.json()["choices"][0]["message"]["content"]
    return {latest[pid] for pid in workers}


@contextmanager
def serve(
    args: list[str], env: dict[str, str], workdir: Path, wait: bool = True, workers: int = 1
) -> Iterator[Served]:
    """``runner serve --port <free> ARGS``, logging to a file; stopped (SIGTERM) on exit.

    With ``wait``, yields once ``workers`` worker processes all answer ``/health``.

    ``env`` is the whole of the runner's configuration: none of the test
    process's ``RUNNER_`` or handler variables leak in.
    """
    port = free_port()
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RUNNER_", "CUSTOM_LLMS_", "GALILEO_"))
    }
    log = workdir / f"runner-{port}.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "runner.cli", "serve", "--demo", "--port", str(port), *args],
            env={**base, **env},
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )
    served = Served(process, f"http://127.0.0.1:{port}", log)
    try:
        if wait:
            poll(lambda: _healthy(served), DEADLINE, f"runner on port {port} healthy")
        if wait and workers > 1:
            poll(lambda: _all_serving(served, workers), DEADLINE, f"{workers} workers serving")
        yield served
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


def _all_serving(served: Served, workers: int) -> bool:
    running = served.workers()
    return len(running) == workers and served.health_pids(4) >= running


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # gone meanwhile
        return b""


def _healthy(served: Served) -> bool:
    if served.process.poll() is not None:
        status = served.process.returncode
        raise AssertionError(f"runner exited with {status}:\n{served.log_text()}")
    try:
        return httpx.get(f"{served.url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
