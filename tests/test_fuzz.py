"""The whole HTTP API, fuzzed from its own OpenAPI document: no 5xx, no off-schema answer.

Bounded so it stays a test, not a campaign: a fixed number of examples per
operation, derandomized so a failure reproduces, with a time limit per example.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from .helpers import start_runner


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    (folder / "config").mkdir()
    # data_dir: the config folder's sibling "data", as start_runner always gives it.
    with start_runner(folder / "config", upstream_timeout=2, max_request_bytes=64 * 1024) as runner:
        yield runner.url


def test_api_never_fails_and_keeps_to_its_schema(served: str) -> None:
    schema = schemathesis.openapi.from_url(f"{served}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8, "the OpenAPI document lost its routes"
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(
                checks=[not_a_server_error, response_schema_conformance], timeout=10
            )

        fuzz()


def test_the_chat_route_is_documented_as_served(served: str) -> None:
    """The chat route skips FastAPI, so its entry is written by hand: it must still be
    there, describe the body the route reads, and the same error envelope."""
    document = httpx.get(f"{served}/openapi.json").json()
    operation = document["paths"]["/v1/chat/completions"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["model", "messages"]
    assert set(operation["responses"]["200"]["content"]) == {
        "application/json",
        "text/event-stream",
    }
    error = operation["responses"]["default"]["content"]["application/json"]["schema"]
    assert error["$ref"].split("/")[-1] in document["components"]["schemas"]
    assert "/demo/v1/chat/completions" not in document["paths"]
