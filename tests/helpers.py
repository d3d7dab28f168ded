"""What the tests share, each defined once: polling, ports, servers on loopback, runners (in
this process or in their own), integrations and handler files.

Test modules import these from here, never from one another; the fixtures built on them
live in ``conftest.py``, the fake upstreams in ``fakes.py`` and ``fake_providers.py``, and
the store's database helpers in ``stores.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
import uvicorn
from aiohttp.abc import AbstractResolver, ResolveResult

from runner.api import create_app
from runner.settings import Settings

REPO = Path(__file__).resolve().parents[1]


# --- waiting --------------------------------------------------------------------------------


def poll(
    condition: Callable[[], object], timeout: float, what: str, interval: float = 0.05
) -> None:
    """Return as soon as ``condition()`` is true; fail, saying ``what`` did not happen,
    once ``timeout`` seconds have passed without it. The one way tests wait for something."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g} s"
        time.sleep(interval)


async def until(
    condition: Callable[[], object], timeout: float, what: str, interval: float = 0.01
) -> None:
    """:func:`poll` for a test running on the event loop: waits without blocking it."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g} s"
        await asyncio.sleep(interval)


# --- ports and servers ------------------------------------------------------------------------


def free_port() -> int:
    """A loopback port that was free a moment ago, so nothing listens on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve(app: object) -> Iterator[str]:
    """Run ``app`` on 127.0.0.1 (a free port) and yield its base URL until the block ends.

    Each server gets its own thread and event loop, so tests may call it with blocking
    clients (the official ``openai`` SDK, ``httpx.Client``) as well as async ones.
    """
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="auto")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()

    def started() -> bool:
        if not thread.is_alive():
            raise RuntimeError("test server failed to start")
        return server.started

    poll(started, 30, "the test server starting", interval=0.005)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# --- a runner in this process ----------------------------------------------------------------


@dataclass
class Runner:
    """A runner served on loopback, with helpers for the calls tests make most."""

    url: str
    http: httpx.Client

    def put(self, name: str, integration: dict[str, Any]) -> httpx.Response:
        return self.http.post(f"/integrations/{name}", json=integration)

    def chat(self, model: str, content: str = "hi", **params: Any) -> httpx.Response:
        body = {"model": model, "messages": [{"role": "user", "content": content}], **params}
        return self.http.post("/v1/chat/completions", json=body)


@contextmanager
def start_runner(
    config_dir: Path, resolver: AbstractResolver | None = None, **settings: Any
) -> Iterator[Runner]:
    """The runner app served in a thread of this process; ``resolver``, if given, replaces
    the system's name resolution for upstream requests."""
    defaults = {"config_dir": config_dir, "data_dir": config_dir.parent / "data"}
    app = create_app(Settings(**{**defaults, "upstream_timeout": 5, **settings}), resolver=resolver)
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield Runner(url, http)


class StaticResolver(AbstractResolver):
    """Names to addresses, as a test decides; records every lookup."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        address = self.names[host]
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        pass


# --- a runner in its own process ----------------------------------------------------------------


def spawn_runner(
    env: dict[str, str],
    config_dir: Path | None,
    port: int,
    *args: str,
    cwd: Path | None = None,
) -> subprocess.Popen[str]:
    """``runner serve [args] --port port`` with none of this process's RUNNER_ variables but
    ``env``; with ``config_dir`` None, the runner reads its default config folder."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    if config_dir is not None:
        base["RUNNER_CONFIG_DIR"] = str(config_dir)
    return subprocess.Popen(
        [sys.executable, "-m", "runner.cli", "serve", *args, "--port", str(port)],
        cwd=cwd,
        env={**base, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_healthy(process: subprocess.Popen[str], url: str, timeout: float = 60) -> None:
    """Until ``url``'s /health answers 200; fails at once, with its stderr, if it exits."""

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(
                f"runner exited with {process.returncode}: {process.stderr.read()}"
            )
        try:
            return httpx.get(f"{url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    poll(healthy, timeout, "the runner becoming healthy", interval=0.1)


@contextmanager
def runner_process(
    env: dict[str, str],
    config_dir: Path | None,
    *args: str,
    cwd: Path | None = None,
    timeout: float = 60,
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``runner serve`` in its own process, so a test can kill -9 it; yields it and its URL
    once healthy, and stops it when the block ends."""
    port = free_port()
    process = spawn_runner(env, config_dir, port, *args, cwd=cwd)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(process, url, timeout)
        yield process, url
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=20)


@pytest.fixture(params=["direct", "litellm"], name="call_path")
def both_call_paths(request: pytest.FixtureRequest) -> str:
    """``call_path`` for a test module that imports this: each of its tests runs twice, on
    the direct backends (plain HTTP, handlers called directly) and through
    ``litellm.acompletion`` (``RUNNER_FAST_PATH=false``), so one suite proves both alike."""
    return request.param


# --- integrations and handler files ------------------------------------------------------------


class HasUrl(Protocol):
    """An upstream: the fakes' ``Upstream`` or any other server with a base URL."""

    url: str


def integration(upstream: HasUrl | None = None, **overrides: Any) -> dict[str, Any]:
    """A minimal valid integration pointing at ``upstream`` (without one: no endpoint, as
    for a handler), with ``overrides`` replacing or adding fields."""
    base: dict[str, Any] = {"authentication_type": "none"}
    if upstream is not None:
        base["endpoint"] = upstream.url
    base["model_properties"] = [{"name": "model-a", "alias": "Model A"}]
    base.update(overrides)
    return base


class ClientCredentialsServer(Protocol):
    """A token endpoint and the one client it knows: the fakes' ``TokenServer``."""

    url: str
    client_id: str
    client_secret: str


def oauth2_fields(tokens: ClientCredentialsServer) -> dict[str, str]:
    """The properties that make an integration get its tokens from ``tokens``."""
    credentials = {"client_id": tokens.client_id, "client_secret": tokens.client_secret}
    return {
        "authentication_type": "oauth2",
        "oauth2_token_url": tokens.url,
        "token": json.dumps(credentials),
    }


def one_model(upstream: HasUrl, name: str, **overrides: Any) -> dict[str, Any]:
    """An integration serving the upstream's model ``name`` as the alias ``M``."""
    return integration(upstream, model_properties=[{"name": name, "alias": "M"}], **overrides)


# A handler answering "<prefix>:<model>:<last message>", prefix "v1" unless init_kwargs say.
ECHO_HANDLER = """
from litellm import CustomLLM, ModelResponse


class Echo(CustomLLM):
    def __init__(self, prefix="v1"):
        super().__init__()
        self.prefix = prefix

    async def acompletion(self, model, messages, **kwargs):
        text = f"{self.prefix}:{model}:{messages[-1]['content']}"
        return ModelResponse(model=model, choices=[{"message": {"role": "assistant",
                             "content": text}, "finish_reason": "stop"}])
"""


def handler_integration(
    file_name: str, class_name: str = "H", alias: str = "Handled", **overrides: Any
) -> dict[str, Any]:
    """An integration served by the handler class ``class_name`` in ``file_name``."""
    handled = {
        "model_properties": [{"name": "m", "alias": alias}],
        "custom_llm_config": {"file_name": file_name, "class_name": class_name},
    }
    return integration(**{**handled, **overrides})


def write(directory: Path, name: str, code: str) -> Path:
    """A (handler) file ``name`` in ``directory`` holding ``code``, dedented."""
    path = directory / name
    path.write_text(textwrap.dedent(code))
    return path
