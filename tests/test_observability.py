"""What the operator sees of every request: request ids, /metrics after a scripted mix of
calls (exact counts), the JSON access lines, and that no secret reaches any log line."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .fakes import TokenServer, Upstream
from .helpers import (
    Runner,
    handler_integration,
    integration,
    oauth2_fields,
    runner_process,
    start_runner,
    write,
)

CHAT = "/v1/chat/completions"
REQUEST_ID_HANDLER = """
from litellm import CustomLLM, ModelResponse
from litellm.llms.custom_llm import CustomLLMError


class Ids(CustomLLM):
    async def acompletion(self, model, messages, request_id=None, headers=None, **kwargs):
        if messages[-1]["content"] == "fail":
            raise CustomLLMError(status_code=503, message="the handler's provider is down")
        text = f"{request_id}|{(headers or {}).get('x-request-id')}"
        return ModelResponse(model=model, choices=[{"message": {"role": "assistant",
                             "content": text}, "finish_reason": "stop"}])
"""


def samples(runner: Runner) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of ``/metrics``, by name and labels."""
    response = runner.http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def observed(config_dir: Path, handler_dir: Path) -> Iterator[Runner]:
    write(handler_dir, "ids.py", REQUEST_ID_HANDLER)
    with start_runner(
        config_dir, custom_llms_enabled=True, custom_llms_directory=handler_dir
    ) as runner:
        yield runner


def test_request_ids_are_kept_or_made_and_travel_everywhere(observed: Runner, upstream: Upstream):
    observed.put("plain", integration(upstream))
    observed.put("ids", handler_integration("ids.py", "Ids"))
    made = observed.chat("Model A")
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    assert upstream.last.headers["x-request-id"] == made.headers["x-request-id"]
    kept = observed.http.post(
        CHAT,
        headers={"x-request-id": "job-7/step-2"},
        json={"model": "Handled", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert kept.headers["x-request-id"] == "job-7/step-2"
    # The handler got it as a keyword argument, and among its headers.
    assert kept.json()["choices"][0]["message"]["content"] == "job-7/step-2|job-7/step-2"
    for unfit in (b"x" * 129, b"tab\there", "é".encode()):
        response = observed.http.post(
            CHAT,
            headers={"x-request-id": unfit},
            json={"model": "Model A", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    refused = observed.http.post(CHAT, headers={"x-request-id": "r-1"}, json={"model": "nope"})
    assert refused.headers["x-request-id"] == "r-1"
    assert refused.json()["error"]["request_id"] == "r-1"
    assert observed.http.get("/health").headers["x-request-id"]


def test_metrics_count_a_scripted_mix_exactly(
    observed: Runner, upstream: Upstream, token_server: TokenServer
):
    spec = integration(
        upstream,
        **oauth2_fields(token_server),
        model_properties=[
            {"name": "model-a", "alias": "A"},
            {"name": "flaky", "alias": "Flaky"},
            {"name": "slow", "alias": "Slow", "timeout": 0.3, "num_retries": 0},
            {"name": "model-b", "alias": "Once", "rate_limit": 1},
        ],
    )
    assert observed.put("mix", spec).status_code == 201
    observed.put("ids", handler_integration("ids.py", "Ids", num_retries=0))
    upstream.accepted_tokens.clear()
    upstream.failures["flaky"] = [503, 503]
    assert observed.chat("A").status_code == 200
    streamed = observed.chat("A", stream=True)
    assert streamed.status_code == 200 and "[DONE]" in streamed.text
    # The runner asked the upstream for the stream's usage; the caller did not, so it
    # gets no usage chunk, but the tokens are counted.
    assert upstream.last.body["stream_options"] == {"include_usage": True}
    assert '"usage"' not in streamed.text
    assert observed.chat("Flaky").status_code == 200  # after two retries
    assert observed.chat("Once").status_code == 200
    assert observed.chat("Once").status_code == 429  # the rate limit
    assert observed.chat("Handled", "fail").status_code == 503
    assert observed.chat("Slow").status_code == 504
    assert observed.chat("no such alias").status_code == 404
    found = samples(observed)

    def requests(alias: str, integration: str, status: str, category: str = "") -> float:
        return value(
            found,
            "runner_requests_total",
            route=CHAT,
            alias=alias,
            integration=integration,
            status=status,
            category=category,
        )

    assert requests("A", "mix", "200") == 2
    assert requests("Flaky", "mix", "200") == 1
    assert requests("Once", "mix", "200") == 1
    assert requests("Once", "mix", "429", "rate_limit_error") == 1
    assert requests("Handled", "ids", "503", "upstream_unavailable_error") == 1
    assert requests("Slow", "mix", "504", "timeout_error") == 1
    # A caller's unknown alias is never a label value.
    assert requests("", "", "404", "invalid_request_error") == 1
    assert "no such alias" not in observed.http.get("/metrics").text
    assert value(found, "runner_retries_total", alias="Flaky", integration="mix") == 2
    attempts = value(
        found, "runner_upstream_attempt_duration_seconds_count", integration="mix",
        backend="plain_http",
    )  # fmt: skip
    assert attempts == 2 + 3 + 1 + 1  # A twice, Flaky three times, Once, Slow
    assert value(found, "runner_limiter_refusals_total", alias="Once", integration="mix",
                 limit="rate") == 1  # fmt: skip
    # The fake upstream reports 3 prompt and 3 completion tokens per whole answer.
    # 3 prompt tokens for the whole answer, 3 for the stream.
    assert value(found, "runner_tokens_total", alias="A", integration="mix", direction="in") == 6
    assert value(found, "runner_tokens_total", alias="Flaky", integration="mix",
                 direction="out") == 3  # fmt: skip
    duration = value(
        found, "runner_request_duration_seconds_count", route=CHAT, alias="A", integration="mix"
    )
    first_byte = value(
        found, "runner_time_to_first_byte_seconds_count", route=CHAT, alias="A",
        integration="mix",
    )  # fmt: skip
    assert duration == first_byte == 2
    assert value(found, "runner_oauth2_token_fetches_total", integration="mix",
                 outcome="ok") == 1  # fmt: skip
    assert value(found, "runner_calls_in_flight", integration="mix") == 0
    assert value(found, "runner_problems", kind="config_file") == 0
    # Handler files: counted per process, so this test looks at what it changes.
    failed = value(found, "runner_handler_files_total", event="load_failed")
    assert value(found, "runner_handler_files_total", event="loaded") >= 1
    broken = handler_integration("missing.py", "Nope", alias="Broken")
    assert observed.put("broken", broken).status_code == 422
    after = samples(observed)
    assert value(after, "runner_handler_files_total", event="load_failed") == failed + 1


def test_a_caller_who_asks_for_a_streams_usage_still_gets_it(observed: Runner, upstream: Upstream):
    observed.put("plain", integration(upstream))
    asked = observed.chat("Model A", stream=True, stream_options={"include_usage": True})
    events = [json.loads(line[6:]) for line in asked.text.splitlines() if line[6:7] == "{"]
    assert events[-1]["choices"] == [] and events[-1]["usage"]["prompt_tokens"] == 3


def test_metrics_are_guarded_by_their_key_or_the_admin_key(config_dir: Path):
    with start_runner(config_dir, metrics_key="scrape-key", admin_key="admin-key") as runner:
        assert runner.http.get("/metrics").status_code == 401
        for key in ("scrape-key", "admin-key"):
            answer = runner.http.get("/metrics", headers={"authorization": f"Bearer {key}"})
            assert answer.status_code == 200
            assert "runner_requests_total" in answer.text
    with start_runner(config_dir, metrics=False) as runner:
        assert runner.http.get("/metrics").status_code == 404


def test_json_access_lines_carry_the_fields_and_no_secret(tmp_path: Path, upstream: Upstream):
    config = tmp_path / "json-config"
    config.mkdir()
    upstream_key = "sk-upstream-secret-4242"
    caller_key = "sk-caller-secret-9191"
    spec = integration(
        upstream,
        authentication_type="api_key",
        api_key_header="Authorization",
        api_key_value=f"Bearer {upstream_key}",
    )
    (config / "plain.json").write_text(json.dumps(spec))
    env = {
        "RUNNER_LOG_FORMAT": "json",
        "RUNNER_API_KEYS": caller_key,
        "RUNNER_DATA_DIR": str(tmp_path / "data"),
    }
    with runner_process(env, config) as (process, url):
        headers = {"authorization": f"Bearer {caller_key}", "x-request-id": "trace-me"}
        body = {"model": "Model A", "messages": [{"role": "user", "content": "private words"}]}
        assert httpx.post(f"{url}{CHAT}", json=body, headers=headers).status_code == 200
        assert httpx.post(f"{url}{CHAT}", json=body).status_code == 401
        process.terminate()
        _, stderr = process.communicate(timeout=20)
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    access = [line for line in lines if line["logger"] == "runner.access"]
    call = next(line for line in access if line.get("request_id") == "trace-me")
    assert call["route"] == CHAT and call["alias"] == "Model A"
    assert call["integration"] == "plain" and call["backend"] == "plain_http"
    assert call["status"] == 200 and call["attempts"] == 1
    assert call["tokens_in"] == 3 and call["tokens_out"] == 3
    assert call["latency_ms"] >= call["ttfb_ms"] > 0
    assert re.fullmatch(r"[0-9a-f]{12}", call["key_id"])
    refused = next(line for line in access if line["status"] == 401)
    assert refused["error_code"] == "invalid_api_key"
    for secret in (upstream_key, caller_key, "private words"):
        assert secret not in stderr
