"""The store: POSTed integrations survive restarts, secrets are sealed, files win.

Each test runs against SQLite and against a real PostgreSQL server.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from runner.security.secret_keys import KeyConfigError, generate_key, load_secret_box
from runner.settings import Settings
from runner.store import StoreConfigError
from runner.store.engine import async_url

from .fakes import TokenServer, Upstream
from .helpers import Runner, integration, start_runner
from .stores import sql


@pytest.fixture
def store_settings(database_url: str) -> dict[str, Any]:
    return {"database_url": database_url, "secret_key": generate_key(), "sync_seconds": 0.2}


def store_problems(runner: Runner) -> dict[str, str]:
    """The stored integrations the runner does not serve, and why (from /health)."""
    reported = runner.http.get("/health").json()["store"]["problems"]
    return {p["name"]: p["problem"] for p in reported}


def test_posted_integration_survives_a_restart_with_its_history(
    config_dir: Path, upstream: Upstream, store_settings: dict[str, Any]
):
    with start_runner(config_dir, **store_settings) as runner:
        first = runner.put("acme", integration(upstream)).json()
        second = runner.put("acme", integration(upstream, headers={"X-Team": "ml"})).json()
    assert (first["source"], first["version"], second["version"]) == ("api", 1, 2)
    assert second["created_at"] == first["created_at"] < second["updated_at"]
    with start_runner(config_dir, **store_settings) as runner:
        assert runner.chat("Model A").status_code == 200
        after = runner.http.get("/integrations/acme").json()
        assert after == second
        assert after["integration"]["headers"] == {"X-Team": "ml"}


def test_delete_survives_a_restart(
    config_dir: Path, upstream: Upstream, store_settings: dict[str, Any]
):
    with start_runner(config_dir, **store_settings) as runner:
        runner.put("acme", integration(upstream))
        assert runner.http.delete("/integrations/acme").status_code == 204
    with start_runner(config_dir, **store_settings) as runner:
        assert runner.http.get("/integrations/acme").status_code == 404
        assert runner.chat("Model A").status_code == 404
        recreated = runner.put("acme", integration(upstream)).json()
        assert recreated["version"] == 3  # versions keep counting across a delete


def test_no_secret_is_stored_in_plain_text_or_logged(
    config_dir: Path,
    upstream: Upstream,
    token_server: TokenServer,
    store_settings: dict[str, Any],
    database_url: str,
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.DEBUG)
    secrets = ["sk-plain-never", "oauth-plain-never", "hdr-plain-never", "init-plain-never"]
    with start_runner(config_dir, **store_settings) as runner:
        keyed = integration(
            upstream,
            authentication_type="api_key",
            api_key_header="x-api-key",
            api_key_value=secrets[0],
            headers={"X-Signature": secrets[2], "X-Team": "visible-team"},
            secret_headers=["X-Signature"],
        )
        assert runner.put("keyed", keyed).status_code == 201
        oauth = integration(
            upstream,
            authentication_type="oauth2",
            oauth2_token_url=token_server.url,
            token=json.dumps({"client_id": "cid", "client_secret": secrets[1]}),
            model_properties=[{"name": "o", "alias": "O"}],
        )
        assert runner.put("oauth", oauth).status_code == 201
        listing = runner.http.get("/integrations").text
    stored = json.dumps(sql(database_url, "SELECT * FROM integrations"))
    assert "visible-team" in stored, "the dump is not what the check below assumes"
    for secret in secrets:
        assert secret not in stored
        assert secret not in listing
    if database_url.startswith("sqlite"):
        files = Path(database_url.removeprefix("sqlite:///")).parent.glob("runner.db*")
        raw = b"".join(path.read_bytes() for path in files)
        assert b"visible-team" in raw
        assert not any(secret.encode() in raw for secret in secrets)
    with start_runner(config_dir, **store_settings) as runner:
        assert runner.chat("Model A").status_code == 200
        assert upstream.last.headers["x-api-key"] == secrets[0]
        assert upstream.last.headers["x-signature"] == secrets[2]
    assert "registered integration 'keyed'" in caplog.text
    assert not any(secret in caplog.text for secret in secrets)


def test_secret_marks_must_name_a_header_or_init_kwarg(runner: Runner, upstream: Upstream):
    response = runner.put("acme", integration(upstream, secret_headers=["X-Missing"]))
    assert response.status_code == 422
    assert "secret_headers[0]" in response.text
    assert "not in headers" in response.text


def test_file_managed_integrations_are_read_only_through_the_api(
    config_dir: Path, upstream: Upstream, store_settings: dict[str, Any]
):
    (config_dir / "acme.json").write_text(json.dumps(integration(upstream)))
    with start_runner(config_dir, **store_settings) as runner:
        described = runner.http.get("/integrations/acme").json()
        assert described["source"] == "file"
        assert described["file"].endswith("acme.json")
        for response in (
            runner.put("acme", integration(upstream, headers={"X": "y"})),
            runner.http.delete("/integrations/acme"),
        ):
            assert response.status_code == 409
            error = response.json()["error"]
            assert error["code"] == "integration_file_managed"
            assert "acme.json" in error["message"]
        assert runner.http.get("/integrations/acme").json() == described


def test_a_file_wins_over_a_stored_integration_of_the_same_name(
    config_dir: Path, upstream: Upstream, store_settings: dict[str, Any]
):
    with start_runner(config_dir, **store_settings) as runner:
        runner.put("acme", integration(upstream, model_properties=[{"name": "s", "alias": "S"}]))
    (config_dir / "acme.json").write_text(json.dumps(integration(upstream)))
    with start_runner(config_dir, **store_settings) as runner:
        assert runner.http.get("/integrations/acme").json()["source"] == "file"
        assert runner.chat("Model A").status_code == 200
        assert runner.chat("S").status_code == 404
        problems = store_problems(runner)
        assert list(problems) == ["acme"]
        assert "files win" in problems["acme"]


def test_refused_write_leaves_the_previous_version_stored_and_serving(
    config_dir: Path, upstream: Upstream, store_settings: dict[str, Any], database_url: str
):
    with start_runner(config_dir, **store_settings) as runner:
        runner.put("other", integration(upstream, model_properties=[{"name": "b", "alias": "B"}]))
        runner.put("acme", integration(upstream))
        taken = integration(upstream, model_properties=[{"name": "x", "alias": "B"}])
        assert runner.put("acme", taken).status_code == 409
        handler = integration(
            upstream,
            endpoint=None,
            custom_llm_config={"file_name": "absent.py", "class_name": "Nope"},
        )
        assert runner.put("acme", handler).status_code == 422
        assert runner.chat("Model A").status_code == 200
    assert sql(database_url, "SELECT version FROM integrations WHERE name = 'acme'") == [("1",)]
    with start_runner(config_dir, **store_settings) as runner:
        assert runner.http.get("/integrations/acme").json()["models"] == ["Model A"]


def test_concurrent_writers_leave_exactly_one_whole_version(
    config_dir: Path, upstream: Upstream, store_settings: dict[str, Any]
):
    versions = [
        integration(
            upstream,
            headers={"X-Writer": str(n)},
            model_properties=[{"name": f"m{n}", "alias": f"Writer {n}"}],
        )
        for n in range(16)
    ]
    with start_runner(config_dir, **store_settings) as runner:
        with ThreadPoolExecutor(len(versions)) as pool:
            statuses = list(pool.map(lambda v: runner.put("acme", v).status_code, versions))
        assert sorted(statuses) == [200] * 15 + [201]
        serving = runner.http.get("/integrations/acme").json()
    winner = int(serving["integration"]["headers"]["X-Writer"])
    assert serving["models"] == [f"Writer {winner}"]
    assert serving["version"] == len(versions)
    with start_runner(config_dir, **store_settings) as runner:
        assert runner.http.get("/integrations/acme").json() == serving
        assert runner.chat(f"Writer {winner}").status_code == 200
        served = [r["id"] for r in runner.http.get("/v1/models").json()["data"]]
        assert [m for m in served if m.startswith("Writer")] == [f"Writer {winner}"]


def test_a_damaged_row_is_reported_and_the_others_still_load(
    config_dir: Path, upstream: Upstream, store_settings: dict[str, Any], database_url: str
):
    with start_runner(config_dir, **store_settings) as runner:
        for name in ("one", "two", "three"):
            body = integration(upstream, model_properties=[{"name": "m", "alias": name.title()}])
            runner.put(name, body)
    sql(database_url, "UPDATE integrations SET secrets = 'gAAAAAdamaged' WHERE name = 'two'")
    with start_runner(config_dir, **store_settings) as runner:
        assert runner.chat("One").status_code == 200
        assert runner.chat("Three").status_code == 200
        assert runner.chat("Two").status_code == 404
        problems = store_problems(runner)
        assert list(problems) == ["two"]
        assert "damaged" in problems["two"]


def test_the_store_schema_is_made_by_migrations(
    config_dir: Path, store_settings: dict[str, Any], database_url: str
):
    with start_runner(config_dir, **store_settings):
        pass
    with start_runner(config_dir, **store_settings):  # a second start migrates nothing
        pass
    assert sql(database_url, "SELECT version_num FROM alembic_version") == [("0001",)]


def test_a_commit_the_database_refuses_is_a_503_that_changes_nothing(
    config_dir: Path, upstream: Upstream, store_settings: dict[str, Any], database_url: str
):
    with start_runner(config_dir, **store_settings) as runner:
        runner.put("acme", integration(upstream))
        _refuse_updates(database_url)
        response = runner.put(
            "acme", integration(upstream, model_properties=[{"name": "b", "alias": "B"}])
        )
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "store_unavailable"
        assert runner.chat("Model A").status_code == 200
        assert runner.chat("B").status_code == 404
        described = runner.http.get("/integrations/acme").json()
        assert (described["version"], described["models"]) == (1, ["Model A"])
    assert sql(database_url, "SELECT revision FROM store_head") == [("1",)]


def _refuse_updates(database_url: str) -> None:
    """Make the database itself reject any change to a stored integration."""
    if database_url.startswith("sqlite"):
        sql(
            database_url,
            "CREATE TRIGGER refuse BEFORE UPDATE ON integrations "
            "BEGIN SELECT RAISE(ABORT, 'refused by test'); END",
        )
        return
    sql(
        database_url,
        "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
        "RAISE EXCEPTION 'refused by test'; END $$ LANGUAGE plpgsql",
    )
    sql(
        database_url,
        "CREATE TRIGGER refuse BEFORE UPDATE ON integrations "
        "FOR EACH ROW EXECUTE FUNCTION refuse()",
    )


def test_store_and_key_settings_are_checked_with_a_clear_message(tmp_path: Path):
    with pytest.raises(StoreConfigError, match="supports sqlite:// and postgresql://"):
        async_url("mysql://user@host/db")
    assert async_url("postgres://u:p@h/db") == "postgresql+asyncpg://u:p@h/db"
    assert async_url("sqlite:///data/runner.db") == "sqlite+aiosqlite:///data/runner.db"
    not_a_key = "not-a-fernet-key-but-a-secret"
    with pytest.raises(KeyConfigError) as refused:
        load_secret_box(Settings(data_dir=tmp_path, secret_key=f"{generate_key()},{not_a_key}"))
    assert "key 2 in RUNNER_SECRET_KEY is not a Fernet key" in str(refused.value)
    assert not_a_key not in str(refused.value)
