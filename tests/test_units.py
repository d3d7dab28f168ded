"""Fast in-process unit tests for the pieces every call relies on.

The rest of the suite drives real runners over loopback, which proves the whole
path but is slow and says little about which rule broke. These tests call the
request preparation, error classification, limits and config expansion
directly, with a fake async backend where a call would go upstream, so each
rule is checked on its own and the file runs in well under two seconds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import traceback
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from runner.calls.failures import as_runner_error, retry_after, status_error
from runner.calls.limits import guarded
from runner.calls.prepare import mapped_headers, prepare
from runner.calls.types import Deployment, Gate, Policy
from runner.errors import IntegrationInvalid, RunnerError
from runner.integrations.clients import open_client
from runner.integrations.deployments import deployments_for
from runner.integrations.files import _expand, file_variables, read_integration
from runner.integrations.schema import parse_integration
from runner.scrub import caller_safe, mask, secret_strings
from runner.security.addresses import AddressPolicy
from runner.settings import Settings

SECRET = "sk-unit-test-0123456789"
MESSAGES = [{"role": "user", "content": "Hello"}]
USAGE = {"include_usage": True}


def _deployments() -> list[Deployment]:
    spec = parse_integration(
        {
            "authentication_type": "api_key",
            "api_key_header": "Authorization",
            "api_key_value": f"Bearer {SECRET}",
            "endpoint": "https://api.example.com/v1",
            "custom_header_mapping": {"user_id": "X-User", "job_id": "X-Job"},
            "model_properties": [
                {"name": "new", "supported_parameters": ["max_completion_tokens"]},
                {"name": "old", "supported_parameters": ["max_tokens", "top_p"]},
                {"name": "stops", "supported_parameters": ["stop_sequences"]},
                {"name": "m-default", "alias": "plain"},
            ],
        }
    )
    client = open_client(spec, 5.0, AddressPolicy(False), via_litellm=False)
    return deployments_for("acme", spec, client, 5.0)


DEPLOYMENTS = {d.alias: d for d in _deployments()}
PLAIN = DEPLOYMENTS["plain"]


def limited(timeout: float = 0.3, num_retries: int = 0, *gates: Gate) -> Deployment:
    return dataclasses.replace(PLAIN, policy=Policy(timeout, num_retries, gates))


def chat(**fields: object) -> dict[str, object]:
    return {"messages": MESSAGES, **fields}


def shape(error: RunnerError) -> tuple[int, str, str | None, bool]:
    return (error.status_code, error.type, error.code, error.retryable)


async def slot_free(gate: Gate) -> bool:
    """Whether ``gate`` admits one more call right now (the slot is given back at once)."""
    try:
        await asyncio.wait_for(gate.enter(), 0.02)
    except TimeoutError:
        return False
    gate.leave()
    return True


TYPE = "invalid_request_error"

# --- request preparation ---------------------------------------------------------------------


TOKENS = ("max_tokens", "max_completion_tokens")


@pytest.mark.parametrize(
    ("alias", "names", "forwarded"),
    [
        ("new", TOKENS, "max_completion_tokens"),
        ("old", TOKENS, "max_tokens"),
        ("plain", TOKENS, "max_tokens"),  # the default parameters list max_tokens
        ("stops", ("stop", "stop_sequences"), "stop"),
        ("plain", ("stop", "stop_sequences"), "stop"),
    ],
)
def test_parameters_are_forwarded_under_the_name_the_model_takes(
    alias: str, names: tuple[str, ...], forwarded: str
) -> None:
    for sent in names:
        call = prepare(DEPLOYMENTS[alias], chat(model=alias, **{sent: 7}))
        assert (call.params, call.dropped) == ({forwarded: 7}, ())


def test_unaccepted_parameters_are_dropped_in_order_and_handled_fields_are_not() -> None:
    body = chat(model="old", temperature=0.5, top_p=0.9, seed=1, stream_options=USAGE)
    call = prepare(DEPLOYMENTS["old"], {**body, "metadata": {"user_id": "u1"}, "tools": []})
    assert call.params == {"top_p": 0.9}
    assert call.dropped == ("temperature", "seed", "tools")
    assert call.stream is False
    assert call.messages is MESSAGES
    assert call.headers == {"X-User": "u1"}


ASKED = {"stream": True, "stream_options": USAGE}


@pytest.mark.parametrize(
    ("extra", "params", "usage_chunk"),
    [
        # The runner asks for a stream's usage itself; the caller's chunk only if it asked.
        ({"stream": True}, ASKED, False),
        ({"stream": True, "stream_options": USAGE}, ASKED, True),
        ({"stream": True, "stream_options": "yes"}, ASKED, False),
        ({"stream": True, "stream_options": {"x": 1}},
         {"stream": True, "stream_options": {"x": 1, **USAGE}}, False),
        ({"stream": False, "stream_options": USAGE}, {}, False),
    ],
)  # fmt: skip
def test_stream_and_stream_options(
    extra: dict[str, Any], params: dict[str, Any], usage_chunk: bool
) -> None:
    call = prepare(PLAIN, chat(**extra))
    assert call.params == params
    assert call.stream is bool(extra["stream"])
    assert call.usage_chunk is usage_chunk
    assert call.dropped == ()
    unasked = prepare(dataclasses.replace(PLAIN, ask_stream_usage=False), chat(**extra))
    if extra.get("stream_options") != USAGE:
        assert "include_usage" not in unasked.params.get("stream_options", {})


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        ({"metadata": {"user_id": "u1", "job_id": 42}}, {"X-User": "u1", "X-Job": "42"}),
        ({"user": "caller-7"}, {"X-User": "caller-7"}),
        ({"user": "caller-7", "metadata": {"user_id": "meta"}}, {"X-User": "meta"}),
        ({"metadata": {"user_id": None, "project_id": "p", "run_id": "r"}}, {}),
        ({"metadata": "not an object", "user": 5}, {}),
    ],
)
def test_metadata_and_user_become_mapped_headers(
    body: dict[str, Any], headers: dict[str, str]
) -> None:
    assert mapped_headers(PLAIN.header_mapping, body) == headers
    assert prepare(PLAIN, {"messages": MESSAGES, **body}).headers == headers


def test_without_a_mapping_metadata_is_not_even_looked_at() -> None:
    assert mapped_headers({}, {"metadata": {"user_id": "a\r\nX-Evil: 1"}}) == {}


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({}, "messages", "invalid_messages"),
        ({"messages": []}, "messages", "invalid_messages"),
        ({"messages": "Hello"}, "messages", "invalid_messages"),
        ({"messages": {"role": "user"}}, "messages", "invalid_messages"),
        ({"messages": [*MESSAGES, "Hello"]}, "messages[1]", "invalid_messages"),
        ({"messages": [{"content": "no role"}]}, "messages[0]", "invalid_messages"),
        ({"messages": [{"role": 1}]}, "messages[0]", "invalid_messages"),
        (chat(stream="true"), "stream", "invalid_stream"),
        (chat(stream=1), "stream", "invalid_stream"),
        (chat(stream=None), "stream", "invalid_stream"),
        (chat(metadata={"user_id": "u\r\nX-Evil: 1"}), "metadata.user_id", "invalid_metadata"),
        (chat(metadata={"job_id": "a\nb"}), "metadata.job_id", "invalid_metadata"),
        (chat(metadata={"job_id": "a\u200bb"}), "metadata.job_id", "invalid_metadata"),
        (chat(user="u\x00"), "metadata.user_id", "invalid_metadata"),
    ],
)
def test_malformed_requests_are_refused_with_422(body: dict[str, Any], param: str, code: str):
    with pytest.raises(RunnerError) as caught:
        prepare(PLAIN, body)
    error = caught.value
    assert (error.status_code, error.type, error.param, error.code) == (422, TYPE, param, code)


# --- error classification --------------------------------------------------------------------

AUTH = (502, "upstream_authorization_error", "upstream_credentials_rejected", False)
LIMITED = (429, "rate_limit_error", "upstream_rate_limited", True)
BAD = (0, TYPE, "upstream_bad_request", False)  # 0: the upstream's status
DOWN = (503, "upstream_unavailable_error", "upstream_unavailable", True)
ODD = (502, "upstream_connection_error", "upstream_unexpected_status", False)
SLOW = (504, "timeout_error", "upstream_timeout", False)
GONE = (502, "upstream_connection_error", "upstream_unreachable", True)
FAILED = (502, "upstream_connection_error", "upstream_failed", False)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        *((s, AUTH) for s in (401, 403)),
        (429, LIMITED),
        *((s, BAD) for s in (400, 404, 409, 413, 422)),
        *((s, DOWN) for s in (500, 502, 503, 504, 599)),
        *((s, ODD) for s in (302, 402, 405, 418)),
    ],
)
def test_status_error_categories(status: int, expected: tuple[int, str, str, bool]) -> None:
    error = status_error(PLAIN, status, "upstream said no", retry_after=3.0)
    assert shape(error) == (expected[0] or status, *expected[1:])
    assert error.message.startswith("upstream for 'plain' (integration 'acme')")
    assert "upstream said no" in error.message
    # Only a rate limit or an unavailable upstream passes its Retry-After on.
    assert error.retry_after == (3.0 if error.retryable else None)


@pytest.mark.parametrize(
    ("header", "seconds"), [("3", 3.0), ("0", 0.0), ("0.5", 0.5), (" 2 ", 2.0)]
)
def test_retry_after_header_in_seconds(header: str, seconds: float) -> None:
    assert retry_after(header) == seconds


@pytest.mark.parametrize(
    "header", [None, "-1", "nan", "inf", "1e400", "soon", "", "Wed, 21 Oct 2015 07:28:00 GMT"]
)
def test_retry_after_header_ignored(header: str | None) -> None:
    assert retry_after(header) is None


class StatusFailure(Exception):
    """What LiteLLM raises for an HTTP error: a status and the response it came with."""

    def __init__(self, status_code: int, headers: dict[str, str]) -> None:
        super().__init__(f"Error code: {status_code}")
        self.status_code = status_code
        self.response = httpx.Response(status_code, headers=headers)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (TimeoutError("slow"), SLOW),
        (httpx.ReadTimeout("read"), SLOW),
        (aiohttp.ClientConnectionError("refused"), GONE),
        (httpx.ConnectError("refused"), GONE),
        (StatusFailure(401, {}), AUTH),
        (StatusFailure(400, {}), (400, *BAD[1:])),
        (StatusFailure(500, {}), DOWN),
        (ValueError("odd"), FAILED),
    ],
)
def test_as_runner_error_categories(exc: BaseException, expected: tuple[int, str, str, bool]):
    error = as_runner_error(exc, PLAIN)
    assert shape(error) == expected
    assert error.message.startswith("upstream for 'plain' (integration 'acme')")


def test_as_runner_error_keeps_the_upstreams_retry_after() -> None:
    error = as_runner_error(StatusFailure(429, {"retry-after": "7"}), PLAIN)
    assert (error.status_code, error.code, error.retry_after) == (429, "upstream_rate_limited", 7.0)
    assert error.response_headers() == {"retry-after": "7"}


def test_as_runner_error_finds_what_the_wrapping_hides() -> None:
    own = RunnerError("already legible", 418, "x", "y")
    wrapped = RuntimeError("LiteLLM wrapped it")
    wrapped.__cause__ = own
    outer = RuntimeError("twice")
    outer.__cause__ = wrapped
    assert as_runner_error(outer, PLAIN) is own
    outer = RuntimeError("InternalServerError")  # as LiteLLM reports a refused connection
    outer.__context__ = httpx.ConnectError("connection refused")
    error = as_runner_error(outer, PLAIN)
    assert shape(error) == GONE
    assert "ConnectError: connection refused" in error.message


def test_exception_text_is_cleaned_for_the_caller() -> None:
    try:
        raise ValueError(f"key {SECRET} rejected")
    except ValueError:
        trace = traceback.format_exc()
    text = f"handler failed\n{trace}while reading /srv/app/handlers/acme.py"
    assert "Traceback" in text and "/srv/app" in text
    error = as_runner_error(Exception(text), PLAIN)
    assert "Traceback" not in error.message and 'File "' not in error.message
    assert "/srv/app" not in error.message and "acme.py" in error.message
    assert "ValueError: key" in error.message  # the exception line stays
    cleaned = caller_safe(text, secret_strings([f"Bearer {SECRET}"]))
    assert SECRET not in cleaned and "ValueError: key ********** rejected" in cleaned
    assert "https://api.example.com/v1/x" in caller_safe("POST https://api.example.com/v1/x")


def test_secret_strings_flatten_skip_short_and_go_longest_first() -> None:
    found = secret_strings(["Bearer abcdefgh", {"n": [12345, "xyz"], "b": True}, ("tok1",)])
    assert found == ("Bearer abcdefgh", "abcdefgh", "12345", "tok1")
    assert mask("use Bearer abcdefgh or abcdefgh", found) == "use ********** or **********"


# --- limits ----------------------------------------------------------------------------------


def test_gate_token_bucket() -> None:
    gate = Gate("integration 'acme'", 60, None)  # one request per second, a minute's burst
    for _ in range(60):
        assert gate.wait_needed() == 0.0
        gate.take()
    assert 0.9 < gate.wait_needed() <= 1.0
    unlimited = Gate("model 'x'", None, 3)
    for _ in range(100):
        unlimited.take()
    assert unlimited.wait_needed() == 0.0


class Backend:
    """A fake upstream: each call pops the next outcome (an exception is raised)."""

    def __init__(self, *outcomes: object, delay: float = 0.0) -> None:
        self.outcomes = list(outcomes)
        self.delay = delay
        self.calls: list[float] = []
        self.started = asyncio.Event()

    async def __call__(self) -> Any:
        self.calls.append(time.monotonic())
        self.started.set()
        await asyncio.sleep(self.delay)
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def transient(after: float | None = 0.0) -> RunnerError:
    return status_error(PLAIN, 503, "busy", retry_after=after)


@pytest.mark.parametrize("num_retries", [0, 1, 3])
async def test_retryable_errors_are_retried_num_retries_times(num_retries: int) -> None:
    backend = Backend(transient())
    with pytest.raises(RunnerError) as caught:
        await guarded(limited(num_retries=num_retries), backend)
    assert caught.value.code == "upstream_unavailable"
    assert len(backend.calls) == num_retries + 1


async def test_non_retryable_errors_are_not_retried_and_success_ends_retries() -> None:
    backend = Backend(status_error(PLAIN, 400, "bad"))
    with pytest.raises(RunnerError, match=r"refused the request \(400\)"):
        await guarded(limited(num_retries=3), backend)
    assert len(backend.calls) == 1
    backend = Backend(transient(), b"ok", transient())
    assert await guarded(limited(num_retries=3), backend) == b"ok"
    assert len(backend.calls) == 2


async def test_retry_after_is_waited_for_unless_it_passes_the_deadline() -> None:
    backend = Backend(transient(after=0.1), b"ok")
    assert await guarded(limited(num_retries=1), backend) == b"ok"
    assert backend.calls[1] - backend.calls[0] >= 0.09
    backend = Backend(transient(after=5.0), b"ok")
    started = time.monotonic()
    with pytest.raises(RunnerError) as caught:
        await guarded(limited(timeout=0.3, num_retries=1), backend)
    assert caught.value.retry_after == 5.0 and len(backend.calls) == 1
    assert time.monotonic() - started < 0.1


async def test_a_call_past_its_timeout_is_a_504() -> None:
    backend = Backend(b"late", delay=1.0)
    started = time.monotonic()
    with pytest.raises(RunnerError) as caught:
        await guarded(limited(timeout=0.1), backend)
    assert time.monotonic() - started < 0.3
    error = caught.value
    assert shape(error) == SLOW
    assert "timeout of 0.1 s" in error.message


async def test_waiting_for_a_slot_past_the_timeout_is_a_429() -> None:
    gate = Gate("model 'plain'", None, 1)
    busy = Backend(b"first", delay=0.25)
    first = asyncio.create_task(guarded(limited(0.3, 0, gate), busy))
    await busy.started.wait()
    second = Backend(b"second")
    with pytest.raises(RunnerError) as caught:
        await guarded(limited(0.05, 0, gate), second)
    error = caught.value
    assert shape(error) == (429, "rate_limit_error", "concurrency_limited", False)
    assert error.retry_after == 1 and "max_concurrency of model 'plain'" in error.message
    assert second.calls == []
    assert await first == b"first"
    assert await slot_free(gate)


async def test_over_the_rate_limit_is_a_429_with_retry_after() -> None:
    gate = Gate("integration 'acme'", 1, None)
    backend = Backend(b"ok")
    assert await guarded(limited(0.3, 0, gate), backend) == b"ok"
    with pytest.raises(RunnerError) as caught:
        await guarded(limited(0.3, 0, gate), backend)
    error = caught.value
    assert shape(error) == (429, "rate_limit_error", "rate_limited", False)
    assert error.retry_after is not None and 59 < error.retry_after <= 60
    assert error.response_headers() == {"retry-after": "60"}
    assert len(backend.calls) == 1


@pytest.mark.parametrize(
    "outcome", [b"ok", transient(), status_error(PLAIN, 400, "bad"), ValueError("handler bug")]
)
async def test_slots_are_given_back_after_success_and_failure(outcome: object) -> None:
    shared, own = Gate("integration 'acme'", None, 1), Gate("model 'plain'", None, 1)
    backend = Backend(outcome)
    if isinstance(outcome, bytes):
        assert await guarded(limited(0.3, 1, shared, own), backend) == outcome
    else:
        with pytest.raises(type(outcome)):
            await guarded(limited(0.3, 1, shared, own), backend)
    assert await slot_free(shared) and await slot_free(own)


async def test_slots_are_given_back_when_the_call_is_cancelled() -> None:
    gate = Gate("model 'plain'", None, 1)
    backend = Backend(b"never", delay=10.0)
    task = asyncio.create_task(guarded(limited(0.3, 0, gate), backend))
    await backend.started.wait()
    assert not await slot_free(gate)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await slot_free(gate)


async def test_a_stream_holds_its_slot_until_it_is_closed() -> None:
    gate = Gate("model 'plain'", None, 1)
    closed: list[bool] = []

    async def events() -> AsyncIterator[bytes]:
        try:
            for n in range(3):
                yield b"event %d" % n
        finally:
            closed.append(True)

    async def attempt() -> AsyncIterator[bytes]:
        return events()

    stream = await guarded(limited(0.3, 0, gate), attempt)
    assert not isinstance(stream, bytes)
    assert not await slot_free(gate)
    assert await anext(stream) == b"event 0"
    assert not await slot_free(gate)
    await stream.aclose()  # the caller hung up after one event
    assert closed == [True]
    assert await slot_free(gate)
    stream = await guarded(limited(0.3, 0, gate), attempt)
    assert [e async for e in stream] == [b"event 0", b"event 1", b"event 2"]
    assert await slot_free(gate)
    stream = await guarded(limited(0.3, 0, gate), attempt)
    await stream.aclose()  # closed before its first event: the slot still comes back
    assert await slot_free(gate)


# --- config expansion ------------------------------------------------------------------------


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "acme.json"
    path.write_text(json.dumps(data))
    return path


INTEGRATION = {
    "authentication_type": "api_key",
    "api_key_header": "Authorization",
    "api_key_value": "Bearer ${ACME_KEY}",
    "endpoint": "${ACME_URL:-https://api.example.com/v1}",
    "headers": {"X-Tenant": "${TENANT}-${RUNNER_PORT}"},
    "model_properties": [{"name": "${MODEL:-m1}", "alias": "a-${MODEL:-m1}"}],
}


def test_variables_are_expanded_in_nested_dicts_and_lists(tmp_path: Path) -> None:
    variables = {"ACME_KEY": "k-1", "TENANT": "t7", "RUNNER_PORT": "8123", "MODEL": "gpt-x"}
    spec = read_integration(write(tmp_path, INTEGRATION), variables)
    assert spec.api_key_value.get_secret_value() == "Bearer k-1"
    assert spec.endpoint == "https://api.example.com/v1"  # the default
    assert spec.headers == {"X-Tenant": "t7-8123"}
    assert [(m.name, m.alias) for m in spec.model_properties] == [("gpt-x", "a-gpt-x")]


def test_missing_variables_are_reported_with_their_field_paths(tmp_path: Path) -> None:
    with pytest.raises(IntegrationInvalid) as caught:
        read_integration(write(tmp_path, INTEGRATION), {"RUNNER_PORT": "1"})
    error = caught.value
    assert (error.status_code, error.code) == (422, "invalid_integration")
    assert [(p.field, p.message.split(" is ")[0]) for p in error.problems] == [
        ("api_key_value", "environment variable ACME_KEY"),
        ("headers.X-Tenant", "environment variable TENANT"),
    ]
    nested: list[Any] = []
    _expand({"a": [{"b": ["x", "${NOPE}"]}]}, {}, "", nested)
    assert [p.field for p in nested] == ["a[0].b[1]"]


@pytest.mark.parametrize(
    ("value", "expanded"),
    [
        ("$A and ${A}${A}", "$A and 11"),
        ("${B:-fallback} ${A:-unused}", "fallback 1"),
        ("${C}", "${A}"),  # a value is not expanded again
        ("${1A} ${A-x}", "${1A} ${A-x}"),
        ([3, None, True, {"k": "${A}"}], [3, None, True, {"k": "1"}]),
    ],
)
def test_expansion_rules(value: object, expanded: object) -> None:
    problems: list[Any] = []
    assert _expand(value, {"A": "1", "C": "${A}"}, "", problems) == expanded
    assert problems == []


def test_file_variables_add_the_effective_host_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_KEY", "from-env")
    monkeypatch.setenv("RUNNER_HOST", "10.0.0.1")
    variables = file_variables(Settings(host="0.0.0.0", port=9123))
    assert variables["ACME_KEY"] == "from-env"
    assert (variables["RUNNER_HOST"], variables["RUNNER_PORT"]) == ("0.0.0.0", "9123")
