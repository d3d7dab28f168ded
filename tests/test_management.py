"""The management API: create, read, update, delete, test; who may call it; config files."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from runner.api import create_app
from runner.settings import Settings

from .fakes import TokenServer, Upstream
from .helpers import Runner, integration, start_runner


def test_create_then_update_then_delete(runner: Runner, upstream: Upstream):
    created = runner.put("acme", integration(upstream))
    assert created.status_code == 201
    assert created.json()["models"] == ["Model A"]
    updated = runner.http.put(
        "/integrations/acme",
        json=integration(upstream, model_properties=[{"name": "model-b", "alias": "Model B"}]),
    )
    assert updated.status_code == 200
    assert runner.chat("Model B").status_code == 200
    assert runner.chat("Model A").status_code == 404
    assert runner.http.delete("/integrations/acme").status_code == 204
    assert runner.chat("Model B").status_code == 404
    assert runner.http.get("/integrations/acme").status_code == 404
    assert runner.http.delete("/integrations/acme").status_code == 404


def test_list_and_get_redact_every_secret(
    runner: Runner, upstream: Upstream, token_server: TokenServer
):
    runner.put(
        "keyed",
        integration(
            upstream,
            authentication_type="api_key",
            api_key_header="x-api-key",
            api_key_value="sk-very-secret",
            headers={"X-Internal-Token": "hdr-secret", "X-Team": "ml-platform"},
        ),
    )
    runner.put(
        "oauth",
        integration(
            upstream,
            authentication_type="oauth2",
            oauth2_token_url=token_server.url,
            token=json.dumps({"client_id": "cid", "client_secret": "oauth-secret"}),
            model_properties=[{"name": "o", "alias": "O"}],
        ),
    )
    listing = runner.http.get("/integrations")
    one = runner.http.get("/integrations/keyed")
    for text in (listing.text, one.text):
        for secret in ("sk-very-secret", "hdr-secret", "oauth-secret"):
            assert secret not in text
    body = one.json()["integration"]
    assert body["api_key_header"] == "x-api-key"
    assert body["headers"]["X-Team"] == "ml-platform"
    assert [i["name"] for i in listing.json()["data"]] == ["keyed", "oauth"]
    assert listing.json()["data"][1]["integration"]["token"] == "**********"


def test_redacted_integration_can_be_sent_back_unchanged(runner: Runner, upstream: Upstream):
    runner.put(
        "keyed",
        integration(
            upstream,
            authentication_type="api_key",
            api_key_header="x-api-key",
            api_key_value="sk-keep-me",
            headers={"X-Secret-Token": "hdr-keep", "X-Team": "a"},
        ),
    )
    edited = runner.http.get("/integrations/keyed").json()["integration"]
    edited["headers"]["X-Team"] = "b"
    assert runner.http.put("/integrations/keyed", json=edited).status_code == 200
    runner.chat("Model A")
    headers = upstream.last.headers
    assert (headers["x-api-key"], headers["x-secret-token"], headers["x-team"]) == (
        "sk-keep-me",
        "hdr-keep",
        "b",
    )
    response = runner.put("fresh", {**edited, "model_properties": [{"name": "n"}]})
    assert response.status_code == 422
    assert {p["field"] for p in response.json()["error"]["problems"]} == {
        "api_key_value",
        "headers.X-Secret-Token",
    }


def test_alias_taken_by_another_integration_is_409(runner: Runner, upstream: Upstream):
    runner.put("first", integration(upstream))
    response = runner.put("second", integration(upstream))
    assert response.status_code == 409
    [problem] = response.json()["error"]["problems"]
    assert problem["field"] == "model_properties[0].alias"
    assert "'first'" in problem["message"]
    assert runner.http.get("/integrations/second").status_code == 404
    # Updating the owner with the same alias is fine.
    assert runner.put("first", integration(upstream)).status_code == 200


def test_integration_name_may_not_shadow_another_alias(runner: Runner, upstream: Upstream):
    runner.put("first", integration(upstream, model_properties=[{"name": "x", "alias": "shared"}]))
    response = runner.put("shared", integration(upstream, model_properties=[{"name": "y"}]))
    assert response.status_code == 409
    assert response.json()["error"]["problems"][0]["field"] == "name"


def test_refused_update_keeps_previous_version_serving(runner: Runner, upstream: Upstream):
    runner.put("acme", integration(upstream))
    bad = integration(upstream, endpoint="ftp://example.com")
    assert runner.put("acme", bad).status_code == 422
    runner.put("other", integration(upstream, model_properties=[{"name": "o", "alias": "O"}]))
    clash = integration(upstream, model_properties=[{"name": "z", "alias": "O"}])
    assert runner.put("acme", clash).status_code == 409
    assert runner.chat("Model A").status_code == 200
    assert upstream.last.body["model"] == "model-a"
    assert runner.http.get("/integrations/acme").json()["models"] == ["Model A"]


def test_invalid_integration_name_in_path_is_422(runner: Runner, upstream: Upstream):
    response = runner.put("bad name!", integration(upstream))
    assert response.status_code == 422
    assert response.json()["error"]["problems"][0]["field"] == "name"


def test_test_endpoint_reports_each_model(runner: Runner, upstream: Upstream):
    runner.put(
        "acme",
        integration(
            upstream,
            model_properties=[
                {"name": "good", "alias": "Good"},
                {"name": "status-500", "alias": "Broken"},
            ],
        ),
    )
    report = runner.http.post("/integrations/acme/test")
    assert report.status_code == 200
    body = report.json()
    assert body["ok"] is False
    results = {r["alias"]: r for r in body["results"]}
    assert results["Good"]["ok"] is True and results["Good"]["error"] is None
    assert results["Broken"]["ok"] is False and results["Broken"]["error"]["status"] == 503
    # Both probes finished, so each reports a measured latency (None: not finished in time).
    assert all(isinstance(r["latency_ms"], float) and r["latency_ms"] > 0 for r in body["results"])
    assert {r.body["model"] for r in upstream.received} == {"good", "status-500"}


def test_admin_key_guards_management_routes(config_dir: Path, upstream: Upstream):
    with start_runner(config_dir, admin_key="adm-key") as runner:
        assert runner.put("acme", integration(upstream)).status_code == 401
        assert runner.http.get("/integrations").status_code == 401
        wrong = runner.http.get("/integrations", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert "adm-key" not in wrong.text
        ok = runner.http.post(
            "/integrations/acme",
            json=integration(upstream),
            headers={"Authorization": "Bearer adm-key"},
        )
        assert ok.status_code == 201
        assert runner.chat("Model A").status_code == 200  # callers need no admin key


async def test_without_admin_key_only_loopback_may_manage(config_dir: Path, upstream: Upstream):
    # Only loopback is routable here, so a remote client is simulated at the ASGI edge.
    app = create_app(Settings(config_dir=config_dir))
    async with app.router.lifespan_context(app):
        remote = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
        async with httpx.AsyncClient(transport=remote, base_url="http://runner") as client:
            response = await client.post("/integrations/acme", json=integration(upstream))
            assert response.status_code == 403
            assert "RUNNER_ADMIN_KEY" in response.json()["error"]["message"]
            assert (await client.get("/v1/models")).status_code == 200
        local = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=local, base_url="http://runner") as client:
            response = await client.post("/integrations/acme", json=integration(upstream))
            assert response.status_code == 201


def test_config_folder_is_loaded_at_start(
    config_dir: Path, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("TEST_UPSTREAM_KEY", "from-env")
    spec = integration(
        upstream,
        authentication_type="api_key",
        api_key_header="x-key",
        api_key_value="${TEST_UPSTREAM_KEY}",
    )
    (config_dir / "from-file.json").write_text(json.dumps(spec))
    (config_dir / "broken.json").write_text('{"authentication_type": "none"')
    (config_dir / "notes.txt").write_text("ignored")
    with start_runner(config_dir) as runner:
        assert runner.chat("from-file").status_code == 200
        assert upstream.last.headers["x-key"] == "from-env"
        health = runner.http.get("/health").json()
    assert health["integrations"] == 1
    [failure] = health["config_errors"]
    assert failure["file"].endswith("broken.json")
    assert "not valid JSON" in failure["problems"][0]


def test_posted_bodies_do_not_expand_environment_variables(
    runner: Runner, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("SERVER_SECRET", "do-not-leak")
    spec = integration(
        upstream,
        authentication_type="api_key",
        api_key_header="x-key",
        api_key_value="${SERVER_SECRET}",
    )
    runner.put("acme", spec)
    runner.chat("Model A")
    assert upstream.last.headers["x-key"] == "${SERVER_SECRET}"
