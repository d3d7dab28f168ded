"""The image, built and run for real with Docker.

The image is built once for the module (``docker build --network host``), and
every container runs with ``--network host``, ``RUNNER_HOST=127.0.0.1`` and a free
port, so all traffic stays on loopback. Covered: a fresh container starts clean;
the examples are opt-in; handlers mounted read-only at ``/opt/custom_llms`` serve
through the ``openai`` client, plain and streamed, before and after a restart,
with no secret in plain text in the data volume; an image built ``FROM`` the
runner's with handlers copied in; handlers in another folder named by
``GALILEO_CUSTOM_LLMS_DIRECTORY``; and what the build context holds.

Needs a Docker engine and a ``python:3.11-slim`` image (``.ci/container-base``
provides both where no image registry is reachable). Without them the module is
skipped, unless ``RUNNER_TEST_CONTAINER=required`` (as ``.ci/run`` sets it): then
it fails. Containers, volumes and images get a random suffix and are removed at
the end. The image's size and its start-to-healthy times are printed (``-s``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from .helpers import REPO, free_port

BASE_IMAGE = "python:3.11-slim"
REQUIRED = os.environ.get("RUNNER_TEST_CONTAINER", "").lower() == "required"
RUNNER_UID = 10001
SUFFIX = uuid.uuid4().hex[:8]
FIGURES: dict[str, float] = {}

HANDLER = '''\
"""A tiny handler for the container tests: echoes the last user message, and shows
(as digests) that it received its API key and its secret constructor argument."""

import hashlib
import time
import uuid

from litellm import CustomLLM, ModelResponse
from litellm.types.utils import GenericStreamingChunk


def digest(value):
    return hashlib.sha256((value or "").encode()).hexdigest()[:12]


class ContainerEcho(CustomLLM):
    def __init__(self, prefix="echo: ", client_secret=""):
        super().__init__()
        self.prefix = prefix
        self.client_secret = client_secret

    def reply(self, messages, kwargs):
        last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        return (
            f"{self.prefix}{last} key={digest(kwargs.get('api_key'))}"
            f" secret={digest(self.client_secret)}"
        )

    async def acompletion(self, model, messages, **kwargs):
        usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        return ModelResponse(
            id=f"echo-{uuid.uuid4().hex}",
            created=int(time.time()),
            model=model,
            choices=[
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.reply(messages, kwargs)},
                    "finish_reason": "stop",
                }
            ],
            usage=usage,
        )

    async def astreaming(self, model, messages, **kwargs):
        words = self.reply(messages, kwargs).split(" ")
        for i, word in enumerate(words):
            last = i == len(words) - 1
            yield GenericStreamingChunk(
                text=word if i == 0 else f" {word}",
                is_finished=last,
                finish_reason="stop" if last else None,
                usage=None,
                index=0,
                tool_use=None,
            )
'''


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:12]


def _integration(alias: str, prefix: str, **extra: Any) -> dict[str, Any]:
    """A handler integration for ``container_echo.py``; ``extra`` adds or replaces fields."""
    spec: dict[str, Any] = {
        "authentication_type": "none",
        "model_properties": [
            {"name": "container-echo", "alias": alias, "supported_parameters": ["max_tokens"]}
        ],
        "custom_llm_config": {
            "file_name": "container_echo.py",
            "class_name": "ContainerEcho",
            "init_kwargs": {"prefix": prefix},
        },
    }
    return {**spec, **extra}


def _docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["docker", *args], capture_output=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args[:3])} … failed ({done.returncode}):\n"
            + done.stdout.decode(errors="replace")[-3000:]
            + done.stderr.decode(errors="replace")[-3000:]
        )
    return done


def _docker_problem() -> str | None:
    """Why no container can be built and run here, or None when they can."""
    if shutil.which("docker") is None:
        return "the docker command is not installed"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        return f"no Docker engine answers (`docker info`: {info.stderr.strip()[-300:]})"
    if _docker("image", "inspect", BASE_IMAGE, check=False).returncode != 0:
        return f"the base image {BASE_IMAGE} is not present and no image registry may be reachable"
    return None


@dataclass
class Container:
    name: str
    url: str
    started_in: float  # seconds from `docker run`/`docker restart` to a 200 from /health

    def health(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/health", timeout=10).json()

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="unused", max_retries=0)

    def exec(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        return _docker("exec", self.name, *command, check=check)

    def logs(self) -> str:
        done = _docker("logs", self.name, check=False)
        return (done.stdout + done.stderr).decode(errors="replace")

    def restart(self) -> None:
        started = time.monotonic()
        _docker("restart", self.name)
        _wait_healthy(self.name, self.url)
        self.started_in = time.monotonic() - started


@dataclass
class Docker:
    """Starts containers and builds images, and removes all of them (and volumes) at the end."""

    image: str
    containers: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)

    def volume(self, label: str) -> str:
        name = f"runner-test-{label}-{SUFFIX}"
        _docker("volume", "create", name)
        self.volumes.append(name)
        return name

    def build(self, context: Path, label: str) -> str:
        tag = f"runner-test-{label}:{SUFFIX}"
        self.images.append(tag)
        _docker("build", "--network", "host", "-t", tag, str(context), timeout=1200)
        return tag

    def run(
        self,
        label: str,
        *,
        image: str | None = None,
        env: dict[str, str] | None = None,
        mounts: tuple[str, ...] = (),
    ) -> Container:
        name = f"runner-test-{label}-{SUFFIX}"
        port = free_port()
        args = ["run", "-d", "--name", name, "--network", "host"]
        for key, value in {
            "RUNNER_HOST": "127.0.0.1",
            "RUNNER_PORT": str(port),
            **(env or {}),
        }.items():
            args += ["-e", f"{key}={value}"]
        for mount in mounts:
            args += ["-v", mount]
        self.containers.append(name)
        started = time.monotonic()
        _docker(*args, image or self.image)
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(name, url)
        return Container(name, url, time.monotonic() - started)

    def clean(self) -> None:
        if self.containers:
            _docker("rm", "-f", "-v", *self.containers, check=False)
        if self.volumes:
            _docker("volume", "rm", "-f", *self.volumes, check=False)
        if self.images:
            _docker("rmi", "-f", *self.images, check=False)


def _wait_healthy(name: str, url: str, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    last_state_check = 0.0
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        now = time.monotonic()
        if now - last_state_check > 1:
            last_state_check = now
            state = _docker("inspect", "-f", "{{.State.Status}}", name, check=False)
            if state.stdout.strip() == b"exited":
                logs = _docker("logs", name, check=False)
                raise AssertionError(
                    f"container {name} exited before it was healthy:\n"
                    + (logs.stdout + logs.stderr).decode(errors="replace")[-4000:]
                )
        assert now < deadline, f"container {name} was not healthy within {limit:.0f} s"
        time.sleep(0.1)


def _say(text: str) -> None:
    print(f"\n[container] {text}", flush=True)


@pytest.fixture(scope="module")
def docker() -> Iterator[Docker]:
    problem = _docker_problem()
    if problem is not None:
        if REQUIRED:
            pytest.fail(
                f"RUNNER_TEST_CONTAINER=required, but {problem}. Run .ci/container-base "
                "(it starts a Docker engine and builds a local python:3.11-slim), "
                "or unset RUNNER_TEST_CONTAINER to skip the container tests.",
                pytrace=False,
            )
        pytest.skip(f"{problem} (set RUNNER_TEST_CONTAINER=required to fail instead)")
    tag = f"runner-test:{SUFFIX}"
    started = time.monotonic()
    _docker("build", "--network", "host", "-t", tag, str(REPO), timeout=1800)
    FIGURES["build seconds"] = time.monotonic() - started
    FIGURES["image MB"] = int(_docker("image", "inspect", "-f", "{{.Size}}", tag).stdout) / 1e6
    FIGURES["base image MB"] = (
        int(_docker("image", "inspect", "-f", "{{.Size}}", BASE_IMAGE).stdout) / 1e6
    )
    _say(
        f"built {tag} in {FIGURES['build seconds']:.0f} s: {FIGURES['image MB']:.0f} MB "
        f"({FIGURES['base image MB']:.0f} MB of it the {BASE_IMAGE} base)"
    )
    state = Docker(tag)
    try:
        yield state
    finally:
        state.clean()
        # The build stages' images stay (untagged): the next build reuses the installed
        # dependencies and only redoes the final stage.
        _docker("rmi", tag, check=False)
        _say("figures: " + ", ".join(f"{k} {v:.1f}" for k, v in FIGURES.items()))


@pytest.fixture
def handler_dir() -> Iterator[Path]:
    """A folder holding the test handler, readable by the container's runner user."""
    folder = Path(tempfile.mkdtemp(prefix="runner-handlers-"))
    try:
        (folder / "container_echo.py").write_text(HANDLER)
        folder.chmod(0o755)
        (folder / "container_echo.py").chmod(0o644)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _ask(container: Container, alias: str, text: str) -> tuple[str, str]:
    """The model's answer to ``text``, once plain and once streamed."""
    client = container.client()
    messages = [{"role": "user", "content": text}]
    plain = client.chat.completions.create(model=alias, messages=messages)
    stream = client.chat.completions.create(model=alias, messages=messages, stream=True)
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    return plain.choices[0].message.content or "", streamed


def _volume_files(container: Container, path: str) -> list[tuple[tarfile.TarInfo, bytes]]:
    """Every entry under ``path`` in the container (volumes included), with its bytes."""
    archive = _docker("cp", f"{container.name}:{path}", "-").stdout
    entries = []
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar.getmembers():
            data = tar.extractfile(member).read() if member.isfile() else b""  # type: ignore[union-attr]
            entries.append((member, data))
    return entries


def test_fresh_container_starts_clean(docker: Docker):
    """The published image, nothing mounted: no integration, no config error, healthy."""
    container = docker.run("fresh")
    FIGURES["fresh start to healthy s"] = container.started_in
    _say(f"fresh container healthy {container.started_in:.1f} s after docker run")
    health = container.health()
    assert health["status"] == "ok"
    assert health["config_errors"] == []
    assert health["integrations"] == 0
    assert health["store"]["problems"] == []
    # The image's own HEALTHCHECK command, run as Docker runs it, passes.
    check = json.loads(
        _docker("image", "inspect", "-f", "{{json .Config.Healthcheck}}", docker.image).stdout
    )
    assert check["Test"][0] == "CMD"
    assert container.exec(*check["Test"][1:], check=False).returncode == 0
    assert container.exec("id", "-u").stdout.strip() == str(RUNNER_UID).encode()
    # No compiler in the image; pip installed the dependencies from wheels.
    assert container.exec("sh", "-c", "command -v gcc cc c++ make", check=False).stdout == b""


def test_examples_are_opt_in(docker: Docker):
    """Pointing the runner at the bundled examples serves all of them, without error."""
    container = docker.run(
        "examples",
        env={
            "RUNNER_CONFIG_DIR": "/app/examples/config",
            "RUNNER_DEMO": "true",
            "CUSTOM_LLMS_ENABLED": "true",
            "CUSTOM_LLMS_DIRECTORY": "/app/examples/custom_llms",
        },
    )
    health = container.health()
    assert health["config_errors"] == []
    assert health["integrations"] == len(list((REPO / "config").glob("*.json")))
    client = container.client()
    demo = client.chat.completions.create(
        model="Demo Echo", messages=[{"role": "user", "content": "Hello runner"}]
    )
    assert demo.choices[0].message.content == "echo: Hello runner"
    offline, streamed = _ask(container, "Offline Echo", "Hello handler")
    assert offline == streamed == "You said: Hello handler"


def test_mounted_handlers_survive_restart_with_no_plaintext_secret(
    docker: Docker, handler_dir: Path
):
    """Option 1: handlers mounted read-only; a POSTed integration with secrets is
    stored in the volume, sealed, and serves again after a restart."""
    api_key, client_secret, header_token, admin_key = (
        f"sk-{label}-{uuid.uuid4().hex}" for label in ("apikey", "initkw", "header", "admin")
    )
    volume = docker.volume("data")
    container = docker.run(
        "mounted",
        env={"GALILEO_CUSTOM_LLMS_ENABLED": "true", "RUNNER_ADMIN_KEY": admin_key},
        mounts=(f"{handler_dir}:/opt/custom_llms:ro", f"{volume}:/var/lib/runner"),
    )
    health = container.health()
    assert health["config_errors"] == [], "the image must not load example configs"
    assert health["integrations"] == 0
    mounts = json.loads(_docker("inspect", "-f", "{{json .Mounts}}", container.name).stdout)
    assert {m["Destination"]: m["RW"] for m in mounts} == {
        "/opt/custom_llms": False,
        "/var/lib/runner": True,
    }

    integration = _integration(
        "Container Echo",
        "echo: ",
        authentication_type="api_key",
        api_key_header="x-api-key",
        api_key_value=api_key,
        headers={"X-Upstream-Token": header_token},
    )
    integration["custom_llm_config"]["init_kwargs"]["client_secret"] = client_secret
    created = httpx.post(
        f"{container.url}/integrations/container-echo",
        json=integration,
        headers={"Authorization": f"Bearer {admin_key}"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    for secret in (api_key, client_secret, header_token):
        assert secret not in created.text

    expected = f"echo: ping key={_digest(api_key)} secret={_digest(client_secret)}"
    assert _ask(container, "Container Echo", "ping") == (expected, expected)
    secrets = [s.encode() for s in (api_key, client_secret, header_token, admin_key)]

    def assert_volume_sealed() -> None:
        entries = _volume_files(container, "/var/lib/runner")
        names = {Path(member.name).name: member for member, _ in entries}
        assert {"runner.db", "secret.key"} <= names.keys(), sorted(names)
        assert names["secret.key"].mode & 0o077 == 0
        # The scan reads real content: the integration's name is stored in plain text.
        assert any(b"container-echo" in data for _, data in entries)
        for member, data in entries:
            assert member.uid == RUNNER_UID, f"{member.name} is owned by uid {member.uid}"
            for secret in secrets:
                assert secret not in data, f"a secret is in plain text in {member.name}"

    assert_volume_sealed()  # while running: the SQLite write-ahead log included
    container.restart()
    FIGURES["restart to healthy s"] = container.started_in
    _say(f"restarted container healthy {container.started_in:.1f} s after docker restart")
    health = container.health()
    assert health["integrations"] == 1
    assert health["config_errors"] == [] and health["store"]["problems"] == []
    assert _ask(container, "Container Echo", "pong") == (expected.replace("ping", "pong"),) * 2
    assert_volume_sealed()
    logs = container.logs()
    for secret in secrets:
        assert secret.decode() not in logs


def test_custom_image_with_handlers_copied_in(docker: Docker, tmp_path: Path):
    """Option 2: an image built FROM the runner's, with a handler and its config copied in."""
    (tmp_path / "container_echo.py").write_text(HANDLER)
    (tmp_path / "baked-echo.json").write_text(json.dumps(_integration("Baked Echo", "baked: ")))
    (tmp_path / "Dockerfile").write_text(
        f"FROM {docker.image}\n"
        "COPY container_echo.py /opt/custom_llms/\n"
        "COPY baked-echo.json /app/config/\n"
        "ENV CUSTOM_LLMS_ENABLED=true\n"
    )
    image = docker.build(tmp_path, "baked")
    container = docker.run("baked", image=image)
    health = container.health()
    assert health["config_errors"] == []
    assert health["integrations"] == 1
    expected = f"baked: hi key={_digest('')} secret={_digest('')}"
    assert _ask(container, "Baked Echo", "hi") == (expected, expected)


def test_handlers_in_another_directory(docker: Docker, handler_dir: Path):
    """Option 3: handlers mounted elsewhere, named by GALILEO_CUSTOM_LLMS_DIRECTORY."""
    container = docker.run(
        "elsewhere",
        env={
            "GALILEO_CUSTOM_LLMS_ENABLED": "true",
            "GALILEO_CUSTOM_LLMS_DIRECTORY": "/srv/handlers",
        },
        mounts=(f"{handler_dir}:/srv/handlers:ro",),
    )
    assert container.health()["config_errors"] == []
    created = httpx.post(
        f"{container.url}/integrations/elsewhere-echo",
        json=_integration("Elsewhere Echo", "elsewhere: "),
        timeout=30,
    )
    assert created.status_code == 201, created.text
    expected = f"elsewhere: hi key={_digest('')} secret={_digest('')}"
    assert _ask(container, "Elsewhere Echo", "hi") == (expected, expected)


def test_build_context_holds_only_what_the_image_needs(docker: Docker):
    """.dockerignore keeps the virtualenv, Git data, stores and caches out of `docker build`."""
    probe = f"runner-test-context:{SUFFIX}"
    docker.images.append(probe)
    done = subprocess.run(
        ["docker", "build", "-t", probe, "-f", "-", str(REPO)],
        input=f"FROM {BASE_IMAGE}\nCOPY . /context\n".encode(),
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    listing = _docker(
        "run", "--rm", "--network", "none", probe, "find", "/context", "-mindepth", "1"
    ).stdout.decode()
    paths = {line.removeprefix("/context/") for line in listing.splitlines()}
    tops = {path.split("/")[0] for path in paths}
    assert tops == {"pyproject.toml", "README.md", "runner", "config", "custom_llms"}, tops
    assert not [p for p in paths if "__pycache__" in p or p.endswith((".pyc", ".pyo"))]
