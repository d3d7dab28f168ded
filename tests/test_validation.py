"""Bad integration JSON: refused with the field at fault and a way to fix it, nothing kept."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .fakes import Upstream
from .helpers import Runner, integration

SEED_EXAMPLE = {
    "authentication_type": "api_key",
    "api_key_header": "YOUR_API_KEY_HEADER",
    "api_key_value": "YOUR_API_KEY_VALUE",
    "model_properties": [
        {
            "name": "gpt-5.2",
            "alias": "GPT 5.2",
            "supported_parameters": [
                "max_tokens",
                "n",
                "reasoning_effort",
                "stop_sequences",
                "temperature",
                "tool_choice",
                "tools",
                "verbosity",
            ],
        },
        {"name": "gpt-5.4", "alias": "GPT 5.4", "based_on": "gpt-5.4"},
        {"name": "claude-opus-4-6", "alias": "Opus 4.6", "based_on": "Claude Opus 4.6"},
    ],
    "endpoint": "https://YOUR_PROVIDER_BASE_URL",
}


def _refusal(runner: Runner, body: Any, status: int = 422) -> list[dict[str, str]]:
    response = runner.put("acme", body)
    assert response.status_code == status, response.text
    assert runner.http.get("/integrations/acme").status_code == 404
    error = response.json()["error"]
    assert error["problems"], error
    return error["problems"]


def _only_problem(runner: Runner, body: Any) -> tuple[str, str]:
    [problem] = _refusal(runner, body)
    return problem["field"], problem["message"]


def test_seed_example_is_accepted(runner: Runner):
    response = runner.put("seed", SEED_EXAMPLE)
    assert response.status_code == 201, response.text
    assert response.json()["models"] == ["GPT 5.2", "GPT 5.4", "Opus 4.6"]


def test_invalid_json_is_400_with_position(runner: Runner):
    response = runner.http.post("/integrations/acme", content=b'{"authentication_type": }')
    assert response.status_code == 400
    assert "line 1, column 25" in response.json()["error"]["message"]


def test_missing_authentication_type(runner: Runner, upstream: Upstream):
    body = integration(upstream)
    del body["authentication_type"]
    field, message = _only_problem(runner, body)
    assert field == "authentication_type"
    assert "'api_key', 'oauth2', 'none'" in message


def test_unknown_authentication_type(runner: Runner, upstream: Upstream):
    field, message = _only_problem(runner, integration(upstream, authentication_type="basic"))
    assert field == "authentication_type" and "not 'basic'" in message


@pytest.mark.parametrize("missing", ["api_key_header", "api_key_value"])
def test_api_key_fields_required(runner: Runner, upstream: Upstream, missing: str):
    body = integration(
        upstream, authentication_type="api_key", api_key_header="x-key", api_key_value="k"
    )
    del body[missing]
    field, message = _only_problem(runner, body)
    assert field == missing
    assert message.startswith("required when authentication_type is 'api_key'")


def test_field_of_another_auth_type_is_named(runner: Runner, upstream: Upstream):
    body = integration(upstream, api_key_header="x-key")
    field, message = _only_problem(runner, body)
    assert field == "api_key_header"
    assert "only used with authentication_type 'api_key'" in message


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("{not json", "escaped JSON string"),
        (json.dumps({"client_id": "a"}), "client_secret"),
        (json.dumps({"client_secret": "s"}), "client_id"),
    ],
)
def test_malformed_oauth2_token(runner: Runner, upstream: Upstream, token: str, expected: str):
    body = integration(
        upstream,
        authentication_type="oauth2",
        oauth2_token_url="https://auth.example.com/token",
        token=token,
    )
    problems = _refusal(runner, body)
    assert any(
        p["field"].startswith("token") and expected in (p["field"] + p["message"]) for p in problems
    ), problems
    assert all(p["message"] != "s" for p in problems)


def test_oauth2_requires_token_url(runner: Runner, upstream: Upstream):
    body = integration(
        upstream,
        authentication_type="oauth2",
        token=json.dumps({"client_id": "a", "client_secret": "b"}),
    )
    field, _ = _only_problem(runner, body)
    assert field == "oauth2_token_url"


def test_empty_model_properties(runner: Runner, upstream: Upstream):
    field, message = _only_problem(runner, integration(upstream, model_properties=[]))
    assert field == "model_properties" and "at least one model" in message


def test_duplicate_alias_within_one_integration(runner: Runner, upstream: Upstream):
    models = [{"name": "a", "alias": "Same"}, {"name": "b", "alias": "Same"}]
    field, message = _only_problem(runner, integration(upstream, model_properties=models))
    assert field == "model_properties[1].alias" and "model_properties[0]" in message


def test_name_and_alias_collision_within_one_integration(runner: Runner, upstream: Upstream):
    models = [{"name": "gpt"}, {"name": "other", "alias": "gpt"}]
    field, _ = _only_problem(runner, integration(upstream, model_properties=models))
    assert field == "model_properties[1].alias"


@pytest.mark.parametrize("endpoint", ["ftp://example.com/v1", "example.com/v1", "http://"])
def test_endpoint_must_be_http_url(runner: Runner, upstream: Upstream, endpoint: str):
    field, message = _only_problem(runner, integration(upstream, endpoint=endpoint))
    assert field == "endpoint" and "http:// or https://" in message


def test_endpoint_required_without_custom_handler(runner: Runner, upstream: Upstream):
    body = integration(upstream)
    del body["endpoint"]
    field, _ = _only_problem(runner, body)
    assert field == "endpoint"


def test_unknown_based_on_suggests_nearest_names(runner: Runner, upstream: Upstream):
    models = [{"name": "m", "based_on": "Claude Opus 4.8"}]
    field, message = _only_problem(runner, integration(upstream, model_properties=models))
    assert field == "model_properties[0].based_on"
    assert "'Claude Opus 4.6'" in message and "supported_parameters" in message


def test_based_on_is_case_insensitive(runner: Runner, upstream: Upstream):
    models = [{"name": "m", "based_on": "claude opus 4.6"}]
    assert runner.put("acme", integration(upstream, model_properties=models)).status_code == 201


def test_misspelt_property_gets_a_suggestion(runner: Runner, upstream: Upstream):
    body = integration(upstream)
    body["default_modle"] = "model-a"
    field, message = _only_problem(runner, body)
    assert field == "default_modle" and "did you mean 'default_model'" in message


def test_default_model_must_exist(runner: Runner, upstream: Upstream):
    field, message = _only_problem(runner, integration(upstream, default_model="nope"))
    assert field == "default_model" and "'model-a'" in message


def test_header_mapping_keys_are_the_four_fields(runner: Runner, upstream: Upstream):
    body = integration(upstream, custom_header_mapping={"session_id": "X-Session"})
    field, message = _only_problem(runner, body)
    assert field == "custom_header_mapping.session_id"
    assert "job_id, user_id, project_id, run_id" in message


def test_header_names_must_be_valid(runner: Runner, upstream: Upstream):
    body = integration(upstream, headers={"Bad Header": "v"})
    field, message = _only_problem(runner, body)
    assert field.startswith("headers") and "header name" in message


def test_custom_llm_config_is_validated(runner: Runner, upstream: Upstream):
    body = integration(
        upstream, custom_llm_config={"file_name": "../evil.py", "class_name": "Handler"}
    )
    field, message = _only_problem(runner, body)
    assert field == "custom_llm_config.file_name" and "subfolders" in message
    body["custom_llm_config"] = {"file_name": "handler.py", "class_name": "Handler"}
    field, message = _only_problem(runner, body)  # handlers are off unless enabled
    assert field == "custom_llm_config" and "CUSTOM_LLMS_ENABLED" in message


def test_several_problems_are_all_reported(runner: Runner, upstream: Upstream):
    body = {"authentication_type": "api_key", "endpoint": "nope", "model_properties": []}
    fields = {p["field"] for p in _refusal(runner, body)}
    assert fields == {"api_key_header", "api_key_value", "endpoint", "model_properties"}


def test_secret_values_never_appear_in_refusals(runner: Runner, upstream: Upstream):
    body = integration(
        upstream,
        authentication_type="api_key",
        api_key_header="bad header",
        api_key_value="sk-leak-me",
    )
    response = runner.put("acme", body)
    assert response.status_code == 422
    assert "sk-leak-me" not in response.text


def test_cli_validate_prints_each_problem_with_its_field(tmp_path: Path, upstream: Upstream):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(SEED_EXAMPLE))
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "authentication_type": "oauth2",
                "model_properties": [{"name": "m", "based_on": "gpt-5.9"}],
                "endpoint": "https://x.example/v1",
            }
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "runner.cli", "validate", str(good), str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert f"{good}: ok (GPT 5.2, GPT 5.4, Opus 4.6)" in result.stdout
    assert f"{bad}: invalid" in result.stdout
    for field in ("oauth2_token_url", "token", "model_properties[0].based_on"):
        assert f"  - {field}: " in result.stdout
