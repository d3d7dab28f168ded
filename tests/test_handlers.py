"""Custom LLM handlers: loading, refusals, calling through LiteLLM, streaming, hot reload."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from .fakes import Upstream
from .helpers import (
    ECHO_HANDLER,
    Runner,
    both_call_paths,  # noqa: F401  (every test here runs on both paths)
    handler_integration,
    oauth2_fields,
    poll,
    start_runner,
    write,
)

SEED = Path(__file__).parent / "seed"


@pytest.fixture
def runner(config_dir: Path, handler_dir: Path, call_path: str) -> Iterator[Runner]:
    with start_runner(
        config_dir,
        fast_path=call_path == "direct",
        custom_llms_enabled=True,
        custom_llms_directory=handler_dir,
        handler_poll_seconds=0.1,
    ) as running:
        yield running


def test_seed_handler_and_json_work_verbatim(runner: Runner, handler_dir: Path, upstream: Upstream):
    shutil.copy(SEED / "proprietary_handler.py", handler_dir)
    spec = json.loads((SEED / "proprietary_integration.json").read_text())
    spec["endpoint"] = upstream.url  # the one change: a loopback server
    assert runner.put("proprietary", spec).status_code == 201
    response = runner.chat("Proprietary Model", "hello", temperature=0.25, max_tokens=64)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "generated: hello"
    assert body["usage"]["total_tokens"] == 6
    assert upstream.last.path == "/v1/generate"
    assert upstream.last.body == {
        "prompt": [{"role": "user", "content": "hello"}],
        "temperature": 0.25,
        "max_tokens": 64,
    }


def test_handler_receives_endpoint_name_params_and_credentials(runner: Runner, handler_dir: Path):
    write(
        handler_dir,
        "spy.py",
        """
        import json
        from litellm import CustomLLM, ModelResponse

        class Spy(CustomLLM):
            async def acompletion(self, model, messages, api_base, custom_llm_provider,
                                  **kwargs):
                seen = {"model": model, "api_base": api_base, "provider": custom_llm_provider,
                        "temperature": kwargs.get("temperature"), "api_key": kwargs["api_key"],
                        "headers": kwargs["headers"], "top_p": kwargs.get("top_p")}
                return ModelResponse(model=model, choices=[{"message": {"role": "assistant",
                                     "content": json.dumps(seen)}}])
    """,
    )
    spec = handler_integration(
        "spy.py",
        "Spy",
        authentication_type="api_key",
        api_key_header="x-key",
        api_key_value="k-1",
        endpoint="https://provider.example/v1",
        custom_header_mapping={"run_id": "X-Run"},
        headers={"X-Fixed": "f"},
        model_properties=[
            {"name": "upstream-name", "alias": "Handled", "supported_parameters": ["temperature"]}
        ],
    )
    assert runner.put("spy", spec).status_code == 201
    response = runner.chat("Handled", temperature=0.5, top_p=0.1, metadata={"run_id": "r-1"})
    seen = json.loads(response.json()["choices"][0]["message"]["content"])
    assert seen == {
        "model": "upstream-name",
        "api_base": "https://provider.example/v1",
        "provider": "runner-handler-spy",
        "temperature": 0.5,
        "api_key": "k-1",
        "headers": {
            "x-key": "k-1",
            "X-Run": "r-1",
            "x-request-id": response.headers["x-request-id"],
            "X-Fixed": "f",
        },
        "top_p": None,
    }
    assert response.headers["x-runner-dropped-params"] == "top_p"


def test_oauth2_access_token_reaches_the_handler(runner: Runner, handler_dir: Path, token_server):
    write(
        handler_dir,
        "tok.py",
        """
        from litellm import CustomLLM, ModelResponse

        class Tok(CustomLLM):
            async def acompletion(self, model, messages, **kwargs):
                text = kwargs["api_key"] + "|" + kwargs["headers"]["Authorization"]
                return ModelResponse(model=model, choices=[{"message": {"role": "assistant",
                                     "content": text}}])
    """,
    )
    spec = handler_integration(
        "tok.py",
        "Tok",
        **oauth2_fields(token_server),
    )
    runner.put("tok", spec)
    content = runner.chat("Handled").json()["choices"][0]["message"]["content"]
    assert content == "access-1|Bearer access-1"


def test_two_files_may_define_the_same_class_name(runner: Runner, handler_dir: Path):
    path_before = list(sys.path)
    write(handler_dir, "one.py", ECHO_HANDLER.replace('prefix="v1"', 'prefix="one"'))
    write(handler_dir, "two.py", ECHO_HANDLER.replace('prefix="v1"', 'prefix="two"'))
    runner.put(
        "one",
        handler_integration("one.py", "Echo", model_properties=[{"name": "a", "alias": "One"}]),
    )
    runner.put(
        "two",
        handler_integration("two.py", "Echo", model_properties=[{"name": "b", "alias": "Two"}]),
    )
    assert runner.chat("One", "x").json()["choices"][0]["message"]["content"] == "one:a:x"
    assert runner.chat("Two", "x").json()["choices"][0]["message"]["content"] == "two:b:x"
    assert sys.path == path_before  # the handler directory was never put on sys.path
    assert "one" not in sys.modules and "two" not in sys.modules


def test_init_kwargs_reach_the_constructor(runner: Runner, handler_dir: Path):
    write(handler_dir, "echo.py", ECHO_HANDLER)
    spec = handler_integration("echo.py", "Echo")
    spec["custom_llm_config"]["init_kwargs"] = {"prefix": "custom"}
    runner.put("echo", spec)
    assert runner.chat("Handled", "x").json()["choices"][0]["message"]["content"] == ("custom:m:x")


BROKEN_FILES = {
    "syntax.py": "class Broken(:\n    pass\n",
    "raises.py": "import json\n\nraise RuntimeError('no config found')\n",
    "plain.py": "class NotAHandler:\n    pass\n",
    "ctor.py": ECHO_HANDLER.replace("self.prefix = prefix", "raise ValueError('bad prefix')"),
}


@pytest.mark.parametrize(
    ("file_name", "class_name", "field", "expected"),
    [
        ("../x.py", "Echo", "custom_llm_config.file_name", "subfolders are not supported"),
        ("/abs/x.py", "Echo", "custom_llm_config.file_name", "subfolders are not supported"),
        ("sub/x.py", "Echo", "custom_llm_config.file_name", "subfolders are not supported"),
        ("handler.txt", "Echo", "custom_llm_config.file_name", ".py file"),
        ("missing.py", "Echo", "custom_llm_config.file_name", "no file 'missing.py'"),
        ("echo.py", "Nope", "custom_llm_config.class_name", "classes defined there: Echo"),
        ("plain.py", "NotAHandler", "custom_llm_config.class_name", "litellm.CustomLLM"),
        (
            "syntax.py",
            "Broken",
            "custom_llm_config.file_name",
            "SyntaxError: invalid syntax at line 1",
        ),
        (
            "raises.py",
            "X",
            "custom_llm_config.file_name",
            "RuntimeError: no config found at line 3",
        ),
        ("ctor.py", "Echo", "custom_llm_config.init_kwargs", "ValueError: bad prefix at line"),
        ("escape.py", "Echo", "custom_llm_config.file_name", "leads outside"),
    ],
)
def test_unusable_handlers_are_refused_and_nothing_registered(
    runner: Runner,
    handler_dir: Path,
    tmp_path: Path,
    file_name: str,
    class_name: str,
    field: str,
    expected: str,
):
    write(handler_dir, "echo.py", ECHO_HANDLER)
    for name, code in BROKEN_FILES.items():
        (handler_dir / name).write_text(code)
    outside = write(tmp_path, "outside.py", ECHO_HANDLER)
    os.symlink(outside, handler_dir / "escape.py")
    response = runner.put("bad", handler_integration(file_name, class_name))
    assert response.status_code == 422, response.text
    [problem] = response.json()["error"]["problems"]
    assert problem["field"] == field
    assert expected in problem["message"]
    assert runner.http.get("/integrations/bad").status_code == 404
    assert runner.chat("Handled").status_code == 404


def test_handlers_disabled_by_default(config_dir: Path, handler_dir: Path):
    write(handler_dir, "echo.py", ECHO_HANDLER)
    with start_runner(config_dir, custom_llms_directory=handler_dir) as runner:
        response = runner.put("echo", handler_integration("echo.py", "Echo"))
    assert response.status_code == 422
    [problem] = response.json()["error"]["problems"]
    assert problem["field"] == "custom_llm_config"
    assert "CUSTOM_LLMS_ENABLED=true" in problem["message"]


def test_galileo_variable_names_are_honoured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from runner.settings import Settings

    monkeypatch.setenv("GALILEO_CUSTOM_LLMS_ENABLED", "true")
    monkeypatch.setenv("GALILEO_CUSTOM_LLMS_DIRECTORY", str(tmp_path))
    settings = Settings()
    assert settings.custom_llms_enabled is True
    assert settings.custom_llms_directory == tmp_path


@pytest.mark.parametrize(("status", "expected"), [(None, 503), (429, 429), (503, 503)])
def test_handler_errors_become_openai_errors(
    runner: Runner, handler_dir: Path, status: int | None, expected: int
):
    raise_line = (
        f"raise CustomLLMError(status_code={status}, message='quota gone')"
        if status
        else "raise KeyError('output')"
    )
    write(
        handler_dir,
        "fail.py",
        f"""
        from litellm import CustomLLM
        from litellm.llms.custom_llm import CustomLLMError

        class Fail(CustomLLM):
            async def acompletion(self, *args, **kwargs):
                {raise_line}
    """,
    )
    runner.put("fail", handler_integration("fail.py", "Fail"))
    response = runner.chat("Handled")
    assert response.status_code == expected
    error = response.json()["error"]
    assert error["code"] == "handler_error"
    assert ("quota gone" if status else "KeyError") in error["message"]
    assert runner.http.get("/health").status_code == 200


@pytest.mark.parametrize("status", [401, 403])
def test_a_handler_whose_provider_refuses_its_credentials_is_a_502(
    runner: Runner, handler_dir: Path, status: int
):
    """Like a plain upstream's 401: the runner's credentials are wrong, not the caller's."""
    write(
        handler_dir,
        "refused.py",
        f"""
        from litellm import CustomLLM
        from litellm.llms.custom_llm import CustomLLMError

        class Refused(CustomLLM):
            async def acompletion(self, *args, **kwargs):
                raise CustomLLMError(status_code={status}, message="bad key for acme")
    """,
    )
    runner.put("refused", handler_integration("refused.py", "Refused"))
    response = runner.chat("Handled")
    assert response.status_code == 502
    error = response.json()["error"]
    assert (error["type"], error["code"]) == (
        "upstream_authorization_error",
        "upstream_credentials_rejected",
    )
    assert "bad key for acme" in error["message"] and "misconfiguration" in error["message"]


def test_hanging_handler_is_cut_off_by_the_timeout(
    config_dir: Path, handler_dir: Path, call_path: str
):
    write(
        handler_dir,
        "hang.py",
        """
        import asyncio
        from litellm import CustomLLM

        class Hang(CustomLLM):
            async def acompletion(self, *args, **kwargs):
                await asyncio.sleep(60)  # the hang under test
    """,
    )
    with start_runner(
        config_dir,
        fast_path=call_path == "direct",
        custom_llms_enabled=True,
        custom_llms_directory=handler_dir,
        upstream_timeout=0.5,
    ) as runner:
        runner.put("hang", handler_integration("hang.py", "Hang"))
        response = runner.chat("Handled")
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "timeout_error"


SYNC_SLOW = """
    import time
    from litellm import CustomLLM, ModelResponse

    class SlowSync(CustomLLM):
        def __init__(self, log):
            super().__init__()
            self.log = log

        def completion(self, model, messages, **kwargs):
            with open(self.log, "a") as out:
                out.write("started\\n")
            time.sleep(1.5)  # the slowness under test
            return ModelResponse(model=model, choices=[{"message": {"role": "assistant",
                                 "content": "slow sync done"}}])
"""


async def test_slow_sync_handler_does_not_stall_other_models(
    runner: Runner, handler_dir: Path, tmp_path: Path
):
    started = tmp_path / "started.txt"
    write(handler_dir, "slow.py", SYNC_SLOW)
    write(handler_dir, "echo.py", ECHO_HANDLER)
    slow_spec = handler_integration(
        "slow.py", "SlowSync", model_properties=[{"name": "s", "alias": "Slow"}]
    )
    slow_spec["custom_llm_config"]["init_kwargs"] = {"log": str(started)}
    runner.put("slow", slow_spec)
    runner.put(
        "fast",
        handler_integration("echo.py", "Echo", model_properties=[{"name": "f", "alias": "Fast"}]),
    )

    def body(model: str) -> dict[str, Any]:
        return {"model": model, "messages": [{"role": "user", "content": "x"}]}

    async with httpx.AsyncClient(base_url=runner.url, timeout=30) as client:
        # More slow calls than asyncio's default executor has threads (cores + 4).
        slow = [
            asyncio.create_task(client.post("/v1/chat/completions", json=body("Slow")))
            for _ in range(12)
        ]
        # Once all 12 have started, the slow handlers are sleeping in their threads.
        await asyncio.to_thread(
            poll,
            lambda: started.exists() and len(started.read_text().splitlines()) == 12,
            10,
            "all 12 slow calls started",
            0.02,
        )
        fast_done = []
        for _ in range(5):
            response = await client.post("/v1/chat/completions", json=body("Fast"))
            assert response.status_code == 200
            fast_done.append(any(task.done() for task in slow))
        slow_responses = await asyncio.gather(*slow)
    assert fast_done == [False] * 5  # every fast answer arrived while the slow ones ran
    assert {r.json()["choices"][0]["message"]["content"] for r in slow_responses} == {
        "slow sync done"
    }


STREAMING_HANDLERS = {
    "async": """
        from litellm import CustomLLM

        class H(CustomLLM):
            async def astreaming(self, model, messages, **kwargs):
                for word in ["async", " stream"]:
                    yield {"text": word, "is_finished": False, "finish_reason": None,
                           "usage": None, "index": 0, "tool_use": None}
                yield {"text": "", "is_finished": True, "finish_reason": "stop",
                       "usage": None, "index": 0, "tool_use": None}
    """,
    "sync": """
        from litellm import CustomLLM

        class H(CustomLLM):
            def streaming(self, model, messages, **kwargs):
                for word in ["sync", " stream"]:
                    yield {"text": word, "is_finished": False, "finish_reason": None,
                           "usage": None, "index": 0, "tool_use": None}
                yield {"text": "", "is_finished": True, "finish_reason": "stop",
                       "usage": None, "index": 0, "tool_use": None}
    """,
    "none": """
        from litellm import CustomLLM, ModelResponse

        class H(CustomLLM):
            async def acompletion(self, model, messages, **kwargs):
                return ModelResponse(model=model, choices=[{"message": {"role": "assistant",
                                     "content": "whole answer"}, "finish_reason": "stop"}])
    """,
}


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("async", "async stream"), ("sync", "sync stream"), ("none", "whole answer")],
)
def test_streaming_through_the_openai_client(
    runner: Runner, handler_dir: Path, kind: str, expected: str
):
    write(handler_dir, f"{kind}.py", STREAMING_HANDLERS[kind])
    runner.put(kind, handler_integration(f"{kind}.py", "H"))
    client = openai.OpenAI(base_url=f"{runner.url}/v1", api_key="unused")
    stream = client.chat.completions.create(
        model="Handled", messages=[{"role": "user", "content": "x"}], stream=True
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_streaming_handler_that_raises_first_gets_a_status(runner: Runner, handler_dir: Path):
    write(
        handler_dir,
        "boom.py",
        """
        from litellm import CustomLLM
        from litellm.llms.custom_llm import CustomLLMError

        class Boom(CustomLLM):
            async def astreaming(self, *args, **kwargs):
                raise CustomLLMError(status_code=418, message="teapot")
                yield
    """,
    )
    runner.put("boom", handler_integration("boom.py", "Boom"))
    body = {"model": "Handled", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    response = runner.http.post("/v1/chat/completions", json=body)
    assert response.status_code == 418
    assert "teapot" in response.json()["error"]["message"]


def test_edited_handler_takes_effect_and_broken_edit_keeps_last_good(
    runner: Runner, handler_dir: Path
):
    path = write(handler_dir, "live.py", ECHO_HANDLER)
    runner.put("live", handler_integration("live.py", "Echo"))

    def answer() -> str:
        return runner.chat("Handled", "x").json()["choices"][0]["message"]["content"]

    assert answer() == "v1:m:x"
    path.write_text(textwrap.dedent(ECHO_HANDLER).replace('prefix="v1"', 'prefix="v2"'))
    poll(lambda: answer() == "v2:m:x", 10, "the edited handler answering")
    path.write_text("class Echo(:\n")  # a broken edit
    poll(
        lambda: runner.http.get("/integrations/live").json()["handler_error"] is not None,
        10,
        "the broken edit reported",
    )
    error = runner.http.get("/integrations/live").json()["handler_error"]
    assert "SyntaxError" in error and "line 1" in error
    assert runner.http.get("/health").json()["handler_errors"] == [
        {"name": "live", "problem": error}
    ]
    assert answer() == "v2:m:x"
    path.write_text(textwrap.dedent(ECHO_HANDLER).replace('prefix="v1"', 'prefix="v3"'))
    poll(lambda: answer() == "v3:m:x", 10, "the fixed handler answering")
    assert runner.http.get("/integrations/live").json()["handler_error"] is None
    assert runner.http.get("/health").json()["handler_errors"] == []


def test_config_file_waiting_for_its_handler_loads_when_the_file_arrives(
    config_dir: Path, handler_dir: Path
):
    spec = handler_integration("late.py", "Echo")
    (config_dir / "late.json").write_text(json.dumps(spec))
    with start_runner(
        config_dir,
        custom_llms_enabled=True,
        custom_llms_directory=handler_dir,
        handler_poll_seconds=0.1,
    ) as runner:
        assert runner.chat("Handled").status_code == 404
        assert "late.py" in runner.http.get("/health").json()["config_errors"][0]["problems"][0]
        write(handler_dir, "late.py", ECHO_HANDLER)
        poll(
            lambda: runner.chat("Handled", "x").status_code == 200,
            10,
            "the late handler file loaded",
        )
        assert runner.http.get("/health").json()["config_errors"] == []


def test_caller_hanging_up_stops_the_stream(runner: Runner, handler_dir: Path, tmp_path: Path):
    log = tmp_path / "produced.txt"
    write(
        handler_dir,
        "long.py",
        """
        import asyncio
        from litellm import CustomLLM

        class Long(CustomLLM):
            def __init__(self, log):
                super().__init__()
                self.log = log

            async def astreaming(self, *args, **kwargs):
                try:
                    for index in range(100):
                        with open(self.log, "a") as out:
                            out.write(f"{index}\\n")
                        yield {"text": f"w{index} ", "is_finished": False,
                               "finish_reason": None, "usage": None, "index": 0,
                               "tool_use": None}
                        await asyncio.sleep(0.02)  # the pacing of the stream
                finally:
                    with open(self.log, "a") as out:
                        out.write("closed\\n")
    """,
    )
    spec = handler_integration("long.py", "Long")
    spec["custom_llm_config"]["init_kwargs"] = {"log": str(log)}
    runner.put("long", spec)
    body = {"model": "Handled", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    with runner.http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert next(response.iter_lines()).startswith("data: ")
    # All 100 chunks take 2 s to produce; once the handler's stream is closed, no more come.
    poll(lambda: "closed" in log.read_text().splitlines(), 10, "the handler's stream closed")
    produced = log.read_text().splitlines()
    assert produced[-1] == "closed"
    assert len(produced) - 1 < 100


def test_each_call_path_is_really_taken(runner: Runner, handler_dir: Path, call_path: str):
    """Directly, no litellm.acompletion frame is under the handler; with
    RUNNER_FAST_PATH=false, LiteLLM's dispatch is."""
    write(
        handler_dir,
        "where.py",
        """
        import inspect
        from litellm import CustomLLM, ModelResponse

        class Where(CustomLLM):
            async def acompletion(self, model, messages, **kwargs):
                names = {f.frame.f_globals.get("__name__") for f in inspect.stack()}
                path = "litellm" if "litellm.main" in names else "direct"
                return ModelResponse(choices=[{"message": {"role": "assistant",
                                     "content": path}, "finish_reason": "stop"}])
    """,
    )
    assert runner.put("where", handler_integration("where.py", "Where")).status_code == 201
    answer = runner.chat("Handled").json()
    assert answer["choices"][0]["message"]["content"] == call_path
    assert answer["model"] == "Handled"


def test_a_streamed_tool_call_and_usage_come_back_in_openai_shape(
    runner: Runner, handler_dir: Path
):
    write(
        handler_dir,
        "tools.py",
        """
        from litellm import CustomLLM

        def chunk(text="", tool=None, last=False, usage=None):
            return {"text": text, "is_finished": last, "finish_reason": "tool_calls" if last
                    else None, "usage": usage, "index": 0, "tool_use": tool}

        class Tools(CustomLLM):
            async def astreaming(self, model, messages, **kwargs):
                yield chunk("Let me check.")
                yield chunk("")  # carries nothing: not sent on
                call = {"id": "call_1", "type": "function", "index": 0,
                        "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}
                yield chunk(tool=call)
                yield chunk(last=True, usage={"prompt_tokens": 3, "completion_tokens": 2,
                                              "total_tokens": 5})
    """,
    )
    runner.put("tools", handler_integration("tools.py", "Tools"))
    client = openai.OpenAI(base_url=f"{runner.url}/v1", api_key="unused")
    chunks = list(
        client.chat.completions.create(
            model="Handled",
            messages=[{"role": "user", "content": "weather in Oslo?"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert {c.model for c in chunks} == {"Handled"}
    assert len({c.id for c in chunks}) == 1
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert deltas[0].role == "assistant"
    assert "".join(d.content or "" for d in deltas) == "Let me check."
    [call] = [t for d in deltas for t in d.tool_calls or []]
    assert (call.id, call.function.name) == ("call_1", "weather")
    assert call.function.arguments == '{"city": "Oslo"}'
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert [f for f in finishes if f] == ["tool_calls"]
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.total_tokens) == (3, 5)
    assert all(c.usage is None for c in chunks[:-1])


def test_a_failed_handler_call_is_one_log_line_naming_where_it_raised(
    runner: Runner,
    handler_dir: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
):
    write(
        handler_dir,
        "fail.py",
        """
        from litellm import CustomLLM

        class Fail(CustomLLM):
            async def acompletion(self, *args, **kwargs):
                return self.parse({})

            def parse(self, answer):
                return answer["output"]
    """,
    )
    runner.put("fail", handler_integration("fail.py", "Fail"))
    caplog.set_level(logging.INFO)
    caplog.clear()
    capfd.readouterr()
    assert runner.chat("Handled").status_code == 503
    failures = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert failures == [
        "call to 'Handled' (integration 'fail') failed: 503 upstream_unavailable_error "
        "(handler_error) at fail.py:9: "
        "handler Fail (fail.py) raised KeyError: 'output'"
    ]
    assert not [r for r in caplog.records if r.exc_info or r.name.startswith("LiteLLM")]
    assert "Traceback" not in capfd.readouterr().err
