"""What an operator sees when something is wrong: integrations stored but not served,
handler files removed under a running server, honest health, and where things are."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from .fakes import Upstream
from .helpers import (
    ECHO_HANDLER,
    Runner,
    handler_integration,
    integration,
    poll,
    runner_process,
    start_runner,
    write,
)


@contextmanager
def handler_runner(config_dir: Path, handler_dir: Path, **settings: Any) -> Iterator[Runner]:
    options = {
        "custom_llms_enabled": True,
        "custom_llms_directory": handler_dir,
        "handler_poll_seconds": 0.1,
    }
    with start_runner(config_dir, **{**options, **settings}) as runner:
        yield runner


def state_of(runner: Runner, name: str) -> dict[str, Any]:
    response = runner.http.get(f"/integrations/{name}")
    assert response.status_code == 200, response.text
    return response.json()


def test_a_stored_integration_whose_handler_file_is_missing_is_not_served_until_it_appears(
    config_dir: Path, handler_dir: Path
):
    path = write(handler_dir, "echo.py", ECHO_HANDLER)
    with handler_runner(config_dir, handler_dir) as runner:
        assert runner.put("acme", handler_integration("echo.py", "Echo")).status_code == 201
    path.unlink()
    with handler_runner(config_dir, handler_dir) as runner:
        described = state_of(runner, "acme")
        assert described["state"] == "not_served"
        assert "echo.py" in described["reason"] and str(handler_dir) in described["reason"]
        assert described["models"] == ["Handled"]
        assert described["integration"]["custom_llm_config"]["file_name"] == "echo.py"
        listed = runner.http.get("/integrations").json()["data"]
        assert [(d["name"], d["state"]) for d in listed] == [("acme", "not_served")]
        for model in ("Handled", "acme"):
            refused = runner.chat(model)
            assert refused.status_code == 503, refused.text
            error = refused.json()["error"]
            assert error["code"] == "integration_not_served"
            assert "'acme'" in error["message"] and "echo.py" in error["message"]
        health = runner.http.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "degraded"
        assert [p["name"] for p in health.json()["store"]["problems"]] == ["acme"]

        write(handler_dir, "echo.py", ECHO_HANDLER)  # the cause goes away: no restart
        poll(lambda: runner.chat("Handled").status_code == 200, 10, "the handler served")
        assert state_of(runner, "acme")["state"] == "serving"
        assert runner.http.get("/health").json()["status"] == "ok"


def test_stored_handler_integrations_with_handlers_disabled_say_how_to_enable_them(
    config_dir: Path, handler_dir: Path
):
    write(handler_dir, "echo.py", ECHO_HANDLER)
    with handler_runner(config_dir, handler_dir) as runner:
        runner.put("acme", handler_integration("echo.py", "Echo"))
    with start_runner(config_dir) as runner:
        reason = state_of(runner, "acme")["reason"]
        for way in ("CUSTOM_LLMS_ENABLED", "CUSTOM_LLMS_DIRECTORY", "--custom-llms"):
            assert way in reason
        assert "CUSTOM_LLMS_ENABLED" in runner.chat("Handled").json()["error"]["message"]
        assert runner.http.delete("/integrations/acme").status_code == 204
        assert runner.http.get("/integrations/acme").status_code == 404
        assert runner.chat("Handled").status_code == 404
        assert runner.http.get("/health").json()["status"] == "ok"


def test_a_not_served_integration_can_be_replaced_keeping_its_masked_secrets(
    config_dir: Path, handler_dir: Path
):
    path = write(handler_dir, "echo.py", ECHO_HANDLER)
    secret = handler_integration(
        "echo.py",
        "Echo",
        authentication_type="api_key",
        api_key_header="X-Key",
        api_key_value="sk-kept-0123456789",
    )
    with handler_runner(config_dir, handler_dir) as runner:
        runner.put("acme", secret)
    path.unlink()
    # A slow poll: the file comes back, but only the PUT below may serve it again.
    with handler_runner(config_dir, handler_dir, handler_poll_seconds=600) as runner:
        shown = state_of(runner, "acme")["integration"]
        assert "sk-kept" not in str(shown)
        write(handler_dir, "echo.py", ECHO_HANDLER)
        shown["model_properties"][0]["alias"] = "Renamed"
        replaced = runner.put("acme", shown)
        assert replaced.status_code == 200, replaced.text
        assert replaced.json()["state"] == "serving"
        assert runner.chat("Renamed").status_code == 200
        assert runner.chat("Handled").status_code == 404


def test_removing_a_handler_file_under_a_running_server_is_reported_at_once(
    config_dir: Path, handler_dir: Path
):
    path = write(handler_dir, "echo.py", ECHO_HANDLER)
    with handler_runner(config_dir, handler_dir) as runner:
        runner.put("acme", handler_integration("echo.py", "Echo"))
        path.unlink()
        poll(lambda: state_of(runner, "acme")["handler_error"], 10, "the removal reported")
        error = state_of(runner, "acme")["handler_error"]
        assert "file removed" in error and "keeps serving until restart" in error
        assert runner.chat("Handled").status_code == 200  # the loaded version
        health = runner.http.get("/health").json()
        assert health["status"] == "degraded"
        assert health["handler_errors"] == [{"name": "acme", "problem": error}]
        write(handler_dir, "echo.py", ECHO_HANDLER)
        poll(lambda: state_of(runner, "acme")["handler_error"] is None, 10, "the file back")
        assert runner.http.get("/health").json()["status"] == "ok"


def test_health_says_where_things_are_and_a_new_store_is_announced(
    config_dir: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO)
    with start_runner(config_dir) as runner:
        places = runner.http.get("/health").json()["places"]
    data = config_dir.parent / "data"
    assert places == {
        "config_dir": str(config_dir.resolve()),
        "custom_llms_directory": None,
        "database": f"sqlite:///{(data / 'runner.db').resolve()}",
        "secret_key": str((data / "secret.key").resolve()),
    }
    warnings = [r.getMessage() for r in caplog.records if "is new and empty" in r.getMessage()]
    assert len(warnings) == 1 and str(data.resolve()) in warnings[0]
    caplog.clear()
    with start_runner(config_dir):
        pass
    assert not [r for r in caplog.records if "is new and empty" in r.getMessage()]
    assert any(str(config_dir.resolve()) in r.getMessage() for r in caplog.records)


def test_a_database_password_is_never_shown(config_dir: Path, postgres_admin_url: str):
    url = postgres_admin_url.replace("postgres@", "postgres:hunter2-secret@", 1)
    with start_runner(config_dir, database_url=url) as runner:
        health = runner.http.get("/health")
    assert "hunter2-secret" not in health.text
    assert "***" in health.json()["places"]["database"]


def test_health_strict_exits_nonzero_only_when_degraded(tmp_path: Path):
    config = tmp_path / "config"
    config.mkdir()
    env = {"RUNNER_DATA_DIR": str(tmp_path / "data")}
    with runner_process(env, config) as (_, url):
        port = url.rsplit(":", 1)[1]

        def health(*flags: str) -> int:
            command = [sys.executable, "-m", "runner.cli", "health", "--port", port, *flags]
            return subprocess.run(command, capture_output=True, timeout=30).returncode

        assert (health(), health("--strict")) == (0, 0)
        (config / "broken.json").write_text('{"endpoint": 1}')
    with runner_process(env, config) as (_, url):
        port = url.rsplit(":", 1)[1]
        assert (health(), health("--strict")) == (0, 1)


def test_validate_checks_handlers_and_clashes_as_the_server_does(tmp_path: Path, handler_dir: Path):
    write(handler_dir, "echo.py", ECHO_HANDLER)
    write(handler_dir, "broken.py", "import no_such_module_here\n")
    write(
        handler_dir,
        "grumpy.py",
        """
        from litellm import CustomLLM

        class Grumpy(CustomLLM):
            def __init__(self):
                raise RuntimeError("no thanks")
    """,
    )
    cases = {
        "typo": (handler_integration("echo.py", "Ecko", alias="A"), "no class 'Ecko'"),
        "missing": (handler_integration("gone.py", "Echo", alias="B"), "no file 'gone.py'"),
        "imports": (
            handler_integration("broken.py", "H", alias="C"),
            "ModuleNotFoundError: No module named 'no_such_module_here' at line 1",
        ),
        "raises": (handler_integration("grumpy.py", "Grumpy", alias="D"), "RuntimeError"),
        "first": (handler_integration("echo.py", "Echo", alias="Shared"), None),
        "second": (handler_integration("echo.py", "Echo", alias="Shared"), "first.json"),
    }
    files = []
    for name, (spec, _) in cases.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(spec))
        files.append(str(tmp_path / f"{name}.json"))
    command = [sys.executable, "-m", "runner.cli", "validate", *files]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNNER_", "CUSTOM_LLMS"))}

    def validate(*options: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *options], capture_output=True, text=True, timeout=120, env=env
        )

    checked = validate("--custom-llms", str(handler_dir))
    assert checked.returncode == 1, checked.stdout + checked.stderr
    report = checked.stdout
    for name, (_, expected) in cases.items():
        path = tmp_path / f"{name}.json"
        if expected is None:
            assert f"{path}: ok (Shared)" in report
        else:
            section = report.split(f"{path}: invalid\n", 1)[1].split(f"{tmp_path}/", 1)[0]
            assert expected in section, (name, report)
    unchecked = validate()  # handlers off: only the clash is found, and each says why
    assert unchecked.returncode == 1
    assert unchecked.stdout.count("handler not imported") == 5
    assert f"{tmp_path / 'second.json'}: invalid" in unchecked.stdout


def test_models_lists_what_a_running_server_serves_and_flags_clashes(
    config_dir: Path, handler_dir: Path, upstream: Upstream
):
    write(handler_dir, "echo.py", ECHO_HANDLER)
    with handler_runner(config_dir, handler_dir, admin_key="adm-key") as runner:
        runner.http.headers["Authorization"] = "Bearer adm-key"
        runner.put("acme", handler_integration("echo.py", "Echo", alias="Shared"))
    with start_runner(config_dir, admin_key="adm-key") as runner:
        runner.http.headers["Authorization"] = "Bearer adm-key"
        spec = integration(upstream, model_properties=[{"name": "m", "alias": "Shared"}])
        assert runner.put("plain", spec).status_code == 201
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
        command = [sys.executable, "-m", "runner.cli", "models", "--url", runner.url]

        def models(**extra: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                command, capture_output=True, text=True, timeout=60, env={**env, **extra}
            )

        refused = models()
        assert refused.returncode == 1 and "RUNNER_ADMIN_KEY" in refused.stderr
        listed = models(RUNNER_ADMIN_KEY="adm-key")
    assert listed.returncode == 1  # the clash
    lines = listed.stdout.splitlines()
    assert (
        lines[0] == f"# served by {runner.url} (config files, API writes and stored integrations)"
    )
    rows = [line.split("\t") for line in lines[1:]]
    assert rows[0][:2] == ["Shared", "acme"] and rows[0][2].startswith("NOT SERVED: ")
    assert rows[0][3] == "CLASH: also plain"
    assert rows[1] == ["Shared", "plain", "serving", "CLASH: also acme"]


def test_a_runner_started_from_another_folder_says_which_store_it_uses(tmp_path: Path):
    """The default data folder follows the working directory: each start says where."""
    config = tmp_path / "config"
    config.mkdir()
    stores = []
    for folder in ("first", "second", "first"):
        cwd = tmp_path / folder
        cwd.mkdir(exist_ok=True)
        with runner_process({}, config, cwd=cwd) as (process, url):
            database = httpx.get(f"{url}/health").json()["places"]["database"]
        stores.append((database, "is new and empty" in process.stderr.read()))
    first = f"sqlite:///{tmp_path / 'first' / 'data' / 'runner.db'}"
    second = f"sqlite:///{tmp_path / 'second' / 'data' / 'runner.db'}"
    assert stores == [(first, True), (second, True), (first, False)]
