"""What an operator relies on around the server: private files, honest logs, who counts as local."""

from __future__ import annotations

import json
import stat
import textwrap
import threading
from pathlib import Path

import httpx

from .fakes import Upstream
from .helpers import (
    Runner,
    handler_integration,
    integration,
    poll,
    runner_process,
    start_runner,
)

ECHO_HANDLER = """
from litellm import CustomLLM, ModelResponse


class Echo(CustomLLM):
    async def acompletion(self, model, messages, **kwargs):
        return ModelResponse(model=model, choices=[{"message": {"role": "assistant",
                             "content": "VERSION"}, "finish_reason": "stop"}])
"""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_data_folder_store_and_key_are_private(tmp_path: Path, config_dir: Path, upstream):
    data = tmp_path / "fresh" / "data"
    with start_runner(config_dir, data_dir=data) as runner:
        assert runner.put("private", integration(upstream)).status_code == 201
        files = {p.name: mode(p) for p in data.iterdir()}
    assert mode(data) == 0o700
    assert files.pop("secret.key") == 0o600
    assert files.pop("runner.db") == 0o600
    # SQLite's write-ahead log and shared memory, if they outlive the run, are private too.
    assert all(m == 0o600 for m in files.values()), files


def test_an_existing_readable_store_is_made_private(tmp_path: Path, config_dir: Path, upstream):
    data = tmp_path / "data"
    with start_runner(config_dir, data_dir=data) as runner:
        runner.put("private", integration(upstream))
    (data / "runner.db").chmod(0o644)
    with start_runner(config_dir, data_dir=data) as runner:
        assert runner.chat("Model A").status_code == 200
    assert mode(data / "runner.db") == 0o600


def test_forwarded_localhost_is_not_a_local_client(runner: Runner):
    assert runner.http.get("/integrations").status_code == 200
    for forwarded in ("8.8.8.8, localhost", "localhost", "8.8.8.8"):
        response = runner.http.get("/integrations", headers={"X-Forwarded-For": forwarded})
        assert response.status_code == 403, forwarded
        assert response.json()["error"]["code"] == "admin_key_required"
    local = runner.http.get("/integrations", headers={"X-Forwarded-For": "::1"})
    assert local.status_code == 200


def _runner_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " runner." in line]


def test_info_logs_one_line_per_change_of_state(
    tmp_path: Path, config_dir: Path, handler_dir: Path, upstream: Upstream
):
    handler = handler_dir / "echo.py"
    handler.write_text(textwrap.dedent(ECHO_HANDLER).replace("VERSION", "v1"))
    (config_dir / "broken.json").write_text('{"authentication_type": "none"}')
    env = {
        "RUNNER_LOG_LEVEL": "INFO",
        "RUNNER_DATA_DIR": str(tmp_path / "data"),
        "CUSTOM_LLMS_ENABLED": "true",
        "CUSTOM_LLMS_DIRECTORY": str(handler_dir),
        "RUNNER_HANDLER_POLL_SECONDS": "0.1",
        "RUNNER_SYNC_SECONDS": "0.1",
    }
    with runner_process(env, config_dir) as (process, url), httpx.Client(base_url=url) as http:
        handled = handler_integration("echo.py", "Echo")
        assert http.post("/integrations/handled", json=handled).status_code == 201
        assert http.post("/integrations/plain", json=integration(upstream)).status_code == 201
        replacement = integration(upstream, model_properties=[{"name": "b", "alias": "B"}])
        assert http.put("/integrations/plain", json=replacement).status_code == 200
        assert http.delete("/integrations/plain").status_code == 204
        handler.write_text(textwrap.dedent(ECHO_HANDLER).replace("VERSION", "v2"))

        def reloaded() -> bool:
            body = {"model": "Handled", "messages": [{"role": "user", "content": "x"}]}
            answer = http.post("/v1/chat/completions", json=body).json()
            return answer["choices"][0]["message"]["content"] == "v2"

        poll(reloaded, 20, "the edited handler answering")
        process.terminate()
        _, stderr = process.communicate(timeout=20)
    lines = _runner_lines(stderr)
    assert "\n".join(lines).count("broken.json not loaded") == 1
    assert sum("registered integration 'handled'" in line for line in lines) == 1
    assert sum("registered integration 'plain'" in line for line in lines) == 1
    assert sum("replaced integration 'plain'" in line for line in lines) == 1
    assert sum("removed integration 'plain'" in line for line in lines) == 1
    assert sum("reloaded handler echo.py for 'handled'" in line for line in lines) == 1
    assert not any("DEBUG" in line for line in lines)


def test_debug_shows_more_and_warning_shows_no_info(tmp_path: Path, config_dir: Path, upstream):
    (config_dir / "plain.json").write_text(json.dumps(integration(upstream)))
    env = {"RUNNER_DATA_DIR": str(tmp_path / "data"), "RUNNER_SYNC_SECONDS": "0.1"}
    with runner_process({**env, "RUNNER_LOG_LEVEL": "debug"}, config_dir) as (process, url):
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)
        reader.start()
        posted = integration(upstream, model_properties=[{"name": "m", "alias": "Stored"}])
        assert httpx.post(f"{url}/integrations/stored", json=posted).status_code == 201
        poll(
            lambda: any("DEBUG" in line and "store at revision" in line for line in lines),
            20,
            "a DEBUG line about the store's revision",
        )
        process.terminate()
        reader.join(timeout=20)
    assert any("registered integration 'plain'" in line for line in _runner_lines("".join(lines)))
    with runner_process({**env, "RUNNER_LOG_LEVEL": "warning"}, config_dir) as (process, _):
        process.terminate()
        quiet = _runner_lines(process.communicate(timeout=20)[1])
    assert not any("INFO" in line or "DEBUG" in line for line in quiet), quiet
