"""Handlers that exit, interrupt, hang, return junk or leak: the caller gets an error, the
server goes on serving every model, and no traceback, path or secret reaches a caller."""

from __future__ import annotations

import json
import re
import textwrap
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from runner.calls.failures import as_runner_error
from runner.scrub import caller_safe

from .fakes import TokenServer, Upstream
from .helpers import (
    Runner,
    both_call_paths,  # noqa: F401  (every test here runs on both paths)
    handler_integration,
    integration,
    oauth2_fields,
    poll,
    start_runner,
)

HEADER = """
import asyncio, os, sys, time, traceback
from litellm import CustomLLM, ModelResponse
from litellm.llms.custom_llm import CustomLLMError

CALLS = [0]


def fail_now():
    # Odd calls fail, even calls answer: the same handler is called again after a failure.
    CALLS[0] += 1
    return CALLS[0] % 2 == 1


def answer(model):
    return ModelResponse(model=model, choices=[{"message": {"role": "assistant",
                         "content": "fine"}, "finish_reason": "stop"}])


def chunk(text, last=False):
    return {"text": text, "is_finished": last, "finish_reason": "stop" if last else None,
            "usage": None, "index": 0, "tool_use": None}
"""

METHODS = {
    "completion": """
        def completion(self, model, messages, **kwargs):
            if fail_now():
                {how}
            return answer(model)
    """,
    "acompletion": """
        async def acompletion(self, model, messages, **kwargs):
            if fail_now():
                {how}
            return answer(model)
    """,
    "streaming": """
        def streaming(self, model, messages, **kwargs):
            if fail_now():
                {how}
            yield chunk("fine", last=True)
    """,
    "astreaming": """
        async def astreaming(self, model, messages, **kwargs):
            if fail_now():
                {how}
            yield chunk("fine", last=True)
    """,
    "streaming after a chunk": """
        def streaming(self, model, messages, **kwargs):
            yield chunk("first ")
            if fail_now():
                {how}
            yield chunk("fine", last=True)
    """,
    "astreaming after a chunk": """
        async def astreaming(self, model, messages, **kwargs):
            yield chunk("first ")
            if fail_now():
                {how}
            yield chunk("fine", last=True)
    """,
}

EXITS = {
    "sys.exit": ("sys.exit(3)", "SystemExit"),
    "SystemExit": ("raise SystemExit('bye')", "SystemExit"),
    "KeyboardInterrupt": ("raise KeyboardInterrupt", "KeyboardInterrupt"),
}


@pytest.fixture
def runner(config_dir: Path, handler_dir: Path, call_path: str) -> Iterator[Runner]:
    with start_runner(
        config_dir,
        fast_path=call_path == "direct",
        custom_llms_enabled=True,
        custom_llms_directory=handler_dir,
        handler_poll_seconds=0.1,
        handler_load_timeout=1,
    ) as running:
        yield running


def handler_file(directory: Path, name: str, body: str, how: str = "pass") -> None:
    """A handler module: the shared helpers, and class ``H`` with ``body`` as its methods."""
    methods = textwrap.indent(textwrap.dedent(body).replace("{how}", how), "    ")
    (directory / name).write_text(f"{HEADER}\n\nclass H(CustomLLM):\n{methods}")


def stream(runner: Runner, model: str) -> httpx.Response:
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "x"}]}
    return runner.http.post("/v1/chat/completions", json=body)


def events(response: httpx.Response) -> list[Any]:
    lines = [line.removeprefix("data: ") for line in response.text.splitlines() if line]
    return [line if line == "[DONE]" else json.loads(line) for line in lines]


def streamed_text(response: httpx.Response) -> str:
    chunks = [e for e in events(response) if isinstance(e, dict) and e.get("choices")]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)


def assert_no_internals(message: str) -> None:
    assert "Traceback" not in message
    assert 'File "' not in message
    assert "site-packages" not in message
    assert not re.search(r"/[\w.-]+/[\w./-]*\.py", message), message


def assert_still_serving(runner: Runner) -> None:
    """Another integration answers: the server is up."""
    response = runner.chat("Model A")
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("how", list(EXITS))
@pytest.mark.parametrize("method", list(METHODS))
def test_exit_or_interrupt_in_a_call_is_that_calls_error(
    runner: Runner, handler_dir: Path, upstream: Upstream, method: str, how: str
):
    statement, exception = EXITS[how]
    handler_file(handler_dir, "hostile.py", METHODS[method], statement)
    assert runner.put("plain", integration(upstream)).status_code == 201
    assert runner.put("hostile", handler_integration("hostile.py")).status_code == 201
    streams = "streaming" in method

    failed = stream(runner, "Handled") if streams else runner.chat("Handled")

    if method.endswith("after a chunk"):
        assert failed.status_code == 200
        *sent, last = events(failed)
        assert streamed_text(failed) == "first "
        assert "[DONE]" not in sent
        error = last["error"]
    else:
        assert failed.status_code == 503, failed.text
        error = failed.json()["error"]
    assert error["code"] == "handler_error"
    assert error["type"] == "upstream_unavailable_error"
    assert f"handler H (hostile.py) raised {exception}" in error["message"]
    assert_still_serving(runner)
    again = stream(runner, "Handled") if streams else runner.chat("Handled")
    assert again.status_code == 200, again.text
    if streams:
        assert streamed_text(again).endswith("fine")
        assert events(again)[-1] == "[DONE]"
    else:
        assert again.json()["choices"][0]["message"]["content"] == "fine"


@pytest.mark.parametrize(
    ("method", "how", "raised"),
    [
        ("completion", "raise StopIteration", "StopIteration"),  # cannot cross into asyncio
        ("acompletion", "raise asyncio.CancelledError()", "CancelledError"),
        ("astreaming", "raise asyncio.CancelledError()", "CancelledError"),
        ("acompletion", "raise GeneratorExit", "GeneratorExit"),
    ],
)
def test_other_base_exceptions_are_handler_errors_too(
    runner: Runner, handler_dir: Path, method: str, how: str, raised: str
):
    handler_file(handler_dir, "odd.py", METHODS[method], how)
    runner.put("odd", handler_integration("odd.py"))
    started = time.monotonic()
    response = stream(runner, "Handled") if "stream" in method else runner.chat("Handled")
    assert response.status_code == 503, response.text
    assert time.monotonic() - started < 3  # not left hanging until the 5 s timeout
    assert f"raised {raised}" in response.json()["error"]["message"]


def test_exit_while_a_stream_is_closed_by_a_hang_up(
    runner: Runner, handler_dir: Path, upstream: Upstream, tmp_path: Path
):
    cleaned_up = tmp_path / "cleaned-up"
    handler_file(
        handler_dir,
        "closing.py",
        f"""
        async def astreaming(self, model, messages, **kwargs):
            try:
                for index in range(1000):
                    yield chunk(f"w{{index}} ")
                    await asyncio.sleep(0.01)  # the pacing of the stream
            finally:
                open({str(cleaned_up)!r}, "w").close()
                sys.exit("cleanup")
        """,
    )
    runner.put("plain", integration(upstream))
    runner.put("closing", handler_integration("closing.py"))
    body = {"model": "Handled", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    with runner.http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert next(response.iter_lines()).startswith("data: ")
    poll(cleaned_up.exists, 10, "the handler's cleanup ran")
    assert_still_serving(runner)


def test_exit_or_interrupt_while_loading_is_a_422(
    runner: Runner, handler_dir: Path, upstream: Upstream
):
    runner.put("plain", integration(upstream))
    files = {
        "exit_on_import.py": "import sys\nsys.exit(2)\n",
        "interrupt_on_import.py": "raise KeyboardInterrupt\n",
    }
    for name, code in files.items():
        (handler_dir / name).write_text(code)
    constructors = {
        "exit_in_init.py": "sys.exit(4)",
        "interrupt_in_init.py": "raise KeyboardInterrupt",
    }
    for name, how in constructors.items():
        handler_file(handler_dir, name, "def __init__(self):\n    {how}\n", how)
    for name in [*files, *constructors]:
        response = runner.put("bad", handler_integration(name))
        assert response.status_code == 422, response.text
        [problem] = response.json()["error"]["problems"]
        assert problem["field"] in ("custom_llm_config.file_name", "custom_llm_config.init_kwargs")
        assert "SystemExit" in problem["message"] or "KeyboardInterrupt" in problem["message"]
        assert_still_serving(runner)
    assert runner.http.get("/integrations/bad").status_code == 404


def test_hot_reload_to_a_file_that_interrupts_keeps_the_last_good_version(
    runner: Runner, handler_dir: Path, upstream: Upstream
):
    handler_file(
        handler_dir,
        "live.py",
        "async def acompletion(self, model, messages, **kw):\n    return answer(model)\n",
    )
    runner.put("plain", integration(upstream))
    runner.put("live", handler_integration("live.py"))
    assert runner.chat("Handled").status_code == 200
    (handler_dir / "live.py").write_text("raise KeyboardInterrupt\n")
    poll(
        lambda: runner.http.get("/integrations/live").json().get("handler_error"),
        10,
        "the broken edit reported",
    )
    assert "KeyboardInterrupt" in runner.http.get("/integrations/live").json()["handler_error"]
    assert runner.chat("Handled").status_code == 200
    assert_still_serving(runner)


def test_slow_import_is_cut_off_with_a_422(
    runner: Runner, handler_dir: Path, upstream: Upstream, tmp_path: Path
):
    release = tmp_path / "release"
    (handler_dir / "slow.py").write_text(
        textwrap.dedent(
            f"""
            import os, time
            from litellm import CustomLLM, ModelResponse

            deadline = time.monotonic() + 20
            while not os.path.exists({str(release)!r}) and time.monotonic() < deadline:
                time.sleep(0.02)

            class H(CustomLLM):
                async def acompletion(self, model, messages, **kwargs):
                    return ModelResponse(model=model, choices=[{{"message": {{
                        "role": "assistant", "content": "slow but here"}}}}])
            """
        )
    )
    handler_file(
        handler_dir,
        "quick.py",
        "async def acompletion(self, model, messages, **kw):\n    return answer(model)\n",
    )
    runner.put("plain", integration(upstream))
    try:
        started = time.monotonic()
        response = runner.put("slow", handler_integration("slow.py"))
        assert time.monotonic() - started < 5
        assert response.status_code == 422, response.text
        [problem] = response.json()["error"]["problems"]
        assert problem["field"] == "custom_llm_config.file_name"
        assert "slow.py" in problem["message"] and "1 s" in problem["message"]
        assert "RUNNER_HANDLER_LOAD_TIMEOUT" in problem["message"]
        # Trying again is refused at once, not given another thread, while the first runs.
        again = runner.put("slow", handler_integration("slow.py"))
        assert again.status_code == 422
        assert "still running" in again.json()["error"]["problems"][0]["message"]
        # Other handlers load, and every model answers, meanwhile.
        assert (
            runner.put("quick", handler_integration("quick.py", alias="Quick")).status_code == 201
        )
        assert runner.chat("Quick").status_code == 200
        assert_still_serving(runner)
    finally:
        release.touch()
    poll(
        lambda: runner.put("slow", handler_integration("slow.py")).status_code == 201,
        10,
        "the finished import registered",
    )
    assert runner.chat("Handled").json()["choices"][0]["message"]["content"] == "slow but here"


WRONG_RESULTS = {
    "acompletion returns None": ("acompletion", "return None", "returned None"),
    "acompletion returns a str": ("acompletion", "return 'text'", "returned a str"),
    "acompletion returns a dict": ("acompletion", "return {}", "returned an empty dict"),
    "completion returns None": ("completion", "return None", "returned None"),
    "completion returns a str": ("completion", "return 'text'", "returned a str"),
    "completion returns a dict": (
        "completion",
        "return {'choices': []}",
        "returned a dict with keys 'choices'",
    ),
    "astreaming yields None": ("astreaming", "yield None", "streamed None"),
    "astreaming yields 42": ("astreaming", "yield 42", "streamed an int (42)"),
    "astreaming yields a str": ("astreaming", "yield 'text'", "streamed a str"),
    "streaming yields None": ("streaming", "yield None", "streamed None"),
    "streaming yields 42": ("streaming", "yield 42", "streamed an int (42)"),
    "streaming yields a str": ("streaming", "yield 'text'", "streamed a str"),
    "astreaming yields a partial dict": (
        "astreaming",
        "yield {'text': 'x'}",
        "streamed a dict without 'is_finished', 'finish_reason', 'usage'",
    ),
}


@pytest.mark.parametrize("case", list(WRONG_RESULTS))
def test_a_result_of_the_wrong_type_is_a_handler_error(
    runner: Runner, handler_dir: Path, upstream: Upstream, case: str
):
    method, statement, expected = WRONG_RESULTS[case]
    prefix = "async def" if method.startswith("a") else "def"
    handler_file(handler_dir, "wrong.py", f"{prefix} {method}(self, *a, **kw):\n    {statement}\n")
    runner.put("plain", integration(upstream))
    runner.put("wrong", handler_integration("wrong.py"))
    response = stream(runner, "Handled") if "stream" in method else runner.chat("Handled")
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "handler_error"
    assert f"handler H (wrong.py) {expected}" in error["message"]
    assert_no_internals(error["message"])
    assert_still_serving(runner)


def test_a_wrong_chunk_after_the_first_ends_the_stream_with_an_error(
    runner: Runner, handler_dir: Path
):
    handler_file(
        handler_dir,
        "late.py",
        "async def astreaming(self, *a, **kw):\n    yield chunk('ok ')\n    yield 42\n",
    )
    runner.put("late", handler_integration("late.py"))
    response = stream(runner, "Handled")
    assert response.status_code == 200
    assert streamed_text(response) == "ok "
    error = events(response)[-1]["error"]
    assert error["code"] == "handler_error"
    assert "handler H (late.py) streamed an int (42)" in error["message"]
    assert_no_internals(error["message"])


def test_tracebacks_and_paths_in_a_handlers_message_do_not_reach_the_caller(
    runner: Runner, handler_dir: Path
):
    handler_file(
        handler_dir,
        "chatty.py",
        """
        async def acompletion(self, *a, **kw):
            try:
                open("/nonexistent/dir/settings.py")
            except OSError:
                raise RuntimeError("could not start:\\n" + traceback.format_exc()
                                   + "".join(traceback.format_stack()))
        """,
    )
    runner.put("chatty", handler_integration("chatty.py"))
    message = runner.chat("Handled").json()["error"]["message"]
    assert "raised RuntimeError: could not start" in message
    assert "settings.py" in message  # the file's name stays: it is what helps
    assert_no_internals(message)


def test_litellm_style_messages_are_scrubbed_on_the_upstream_path():
    try:
        raise ValueError("inner")
    except ValueError:
        text = traceback.format_exc()
    wrapped = Exception(
        f"litellm.APIConnectionError: Runner-handlerException - {text}\n"
        "at /usr/lib/python3.11/site-packages/litellm/main.py, line 12"
    )
    deployment = SimpleNamespace(alias="Model A", integration="plain")
    message = as_runner_error(wrapped, deployment).message  # type: ignore[arg-type]
    assert "ValueError: inner" in message and "main.py" in message
    assert_no_internals(message)
    assert len(caller_safe("x" * 100_000)) <= 2000


SECRET_KEY = "sk-live-0123456789"
SECRET_HEADER = "hdr-secret-4567"
SECRET_KWARG = "kwarg-secret-890"


@pytest.mark.parametrize("raises", ["ValueError", "CustomLLMError"])
def test_secrets_in_a_handlers_message_are_masked(runner: Runner, handler_dir: Path, raises: str):
    raise_line = (
        "raise ValueError(text)" if raises == "ValueError" else "raise CustomLLMError(502, text)"
    )
    handler_file(
        handler_dir,
        "leaky.py",
        f"""
        def __init__(self, password, region="eu"):
            super().__init__()
            self.password = password

        async def acompletion(self, *a, api_key, headers, **kw):
            text = f"key {{api_key}} header {{headers['X-Signature']}} kwarg {{self.password}}"
            {raise_line}
        """,
    )
    spec = handler_integration(
        "leaky.py",
        authentication_type="api_key",
        api_key_header="x-key",
        api_key_value=SECRET_KEY,
        headers={"X-Signature": SECRET_HEADER},
    )
    spec["custom_llm_config"]["init_kwargs"] = {"password": SECRET_KWARG}
    assert runner.put("leaky", spec).status_code == 201
    message = runner.chat("Handled").json()["error"]["message"]
    assert "key ********** header ********** kwarg **********" in message
    for secret in (SECRET_KEY, SECRET_HEADER, SECRET_KWARG):
        assert secret not in message


def test_an_oauth2_access_token_in_a_handlers_message_is_masked(
    runner: Runner, handler_dir: Path, token_server: TokenServer
):
    handler_file(
        handler_dir,
        "tok.py",
        "async def acompletion(self, *a, api_key, **kw):\n"
        "    raise RuntimeError(f'token {api_key} refused')\n",
    )
    spec = handler_integration(
        "tok.py",
        **oauth2_fields(token_server),
    )
    runner.put("tok", spec)
    message = runner.chat("Handled").json()["error"]["message"]
    assert "token ********** refused" in message


def test_a_constructors_message_is_masked_at_registration(runner: Runner, handler_dir: Path):
    handler_file(
        handler_dir,
        "ctor.py",
        "def __init__(self, secret):\n    raise ValueError(f'bad secret {secret}')\n",
    )
    spec = handler_integration("ctor.py")
    spec["custom_llm_config"]["init_kwargs"] = {"secret": SECRET_KWARG}
    response = runner.put("ctor", spec)
    assert response.status_code == 422
    assert SECRET_KWARG not in response.text
    assert "bad secret **********" in response.json()["error"]["problems"][0]["message"]
