"""OpenTelemetry traces, exported over OTLP/HTTP to a loopback collector by a real `runner
serve`: the span tree of a retried stream and of a handler call (with the handler's own
span), GenAI attributes, and a caller's traceparent continued and sent upstream."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from .fake_collector import Collector, Span
from .fakes import Upstream
from .helpers import handler_integration, integration, poll, runner_process, write

TRACED_HANDLER = """
from litellm import CustomLLM, ModelResponse
from opentelemetry import trace


class Traced(CustomLLM):
    def completion(self, model, messages, **kwargs):
        with trace.get_tracer("my-handler").start_as_current_span("handler work"):
            return ModelResponse(model=model, choices=[{"message": {"role": "assistant",
                                 "content": "traced"}, "finish_reason": "stop"}])
"""
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


def _traced_runner(collector: Collector, tmp_path: Path, upstream: Upstream, **extra: str):
    config, handlers = tmp_path / "config", tmp_path / "handlers"
    config.mkdir()
    handlers.mkdir()
    write(handlers, "traced.py", TRACED_HANDLER)
    spec = integration(
        upstream, num_retries=2, max_concurrency=4, model_properties=[{"name": "m", "alias": "M"}]
    )
    (config / "plain.json").write_text(json.dumps(spec))
    (config / "traced.json").write_text(json.dumps(handler_integration("traced.py", "Traced")))
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "OTEL_SERVICE_NAME": "runner-under-test",
        "RUNNER_DATA_DIR": str(tmp_path / "data"),
        **extra,
    }
    return runner_process(env, config, "--custom-llms", str(handlers))


def _tree(collector: Collector, trace_id: str, count: int) -> list[Span]:
    def arrived() -> bool:
        return len([s for s in collector.spans if s.trace_id == trace_id]) >= count

    poll(arrived, 20, f"{count} spans of trace {trace_id}")
    return [s for s in collector.spans if s.trace_id == trace_id]


def _chat(
    url: str, model: str = "M", parent: str | None = None, stream: bool = False
) -> httpx.Response:
    """A one-message chat call to the runner, with ``parent`` as its ``traceparent``."""
    return httpx.post(
        f"{url}/v1/chat/completions",
        headers={"traceparent": parent} if parent else {},
        json={"model": model, "stream": stream, "messages": [{"role": "user", "content": "x"}]},
    )


def test_a_retried_stream_is_one_trace_continuing_the_callers(
    collector: Collector, tmp_path: Path, upstream: Upstream
):
    upstream.failures["m"] = [503]
    with _traced_runner(collector, tmp_path, upstream) as (_, url):
        response = _chat(url, parent=f"00-{CALLER_TRACE}-{CALLER_SPAN}-01", stream=True)
        assert response.status_code == 200 and "[DONE]" in response.text
        spans = _tree(collector, CALLER_TRACE, 5)
    [server] = [s for s in spans if s.kind == "server"]
    assert server.parent_id == CALLER_SPAN  # the caller's trace, continued
    assert server.name == "POST /v1/chat/completions"
    attempts = [s for s in spans if s.name == "upstream attempt"]
    assert len(attempts) == 2 and {a.parent_id for a in attempts} == {server.span_id}
    assert [a.error for a in sorted(attempts, key=lambda a: a.attributes["runner.attempt"])] == [
        True,
        False,
    ]
    assert all(a.kind == "client" for a in attempts)
    [limits] = [s for s in spans if s.name == "limits"]  # waiting for a concurrency slot
    assert limits.parent_id == server.span_id
    [admission] = [s for s in spans if s.name == "admission"]
    assert admission.parent_id == server.span_id and admission.attributes["runner.admitted"]
    assert server.attributes["gen_ai.request.model"] == "M"
    assert server.attributes["gen_ai.response.model"] == "m"
    assert server.attributes["gen_ai.system"] == "openai"
    assert server.attributes["gen_ai.operation.name"] == "chat"
    assert server.attributes["runner.integration"] == "plain"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["runner.attempts"] == 2
    assert server.attributes["url.path"] == "/v1/chat/completions"
    assert server.attributes["runner.request_id"] == response.headers["x-request-id"]
    # The upstream got the trace too, with the runner's span as the parent.
    sent = upstream.last.headers["traceparent"]
    assert sent == f"00-{CALLER_TRACE}-{server.span_id}-01"


def test_a_trace_the_caller_did_not_sample_is_passed_on_unrecorded(
    collector: Collector, tmp_path: Path, upstream: Upstream
):
    unsampled, sampled = "1" * 32, "2" * 32
    with _traced_runner(collector, tmp_path, upstream) as (_, url):
        for trace_id, flags in ((unsampled, "00"), (sampled, "01")):
            response = _chat(url, parent=f"00-{trace_id}-{CALLER_SPAN}-{flags}")
            assert response.status_code == 200
            assert upstream.last.headers["traceparent"].startswith(f"00-{trace_id}-")
            assert upstream.last.headers["traceparent"].endswith(f"-{flags}")
        _tree(collector, sampled, 3)  # spans go out in order: the first's would be here
    assert not [s for s in collector.spans if s.trace_id == unsampled]


def test_a_new_trace_is_sent_upstream_as_the_request_spans_child(
    collector: Collector, tmp_path: Path, upstream: Upstream
):
    with _traced_runner(collector, tmp_path, upstream) as (_, url):
        response = _chat(url)
        assert response.status_code == 200
        version, trace_id, span_id, flags = upstream.last.headers["traceparent"].split("-")
        spans = _tree(collector, trace_id, 3)
    assert (version, flags) == ("00", "01") and len(trace_id) == 32 and len(span_id) == 16
    [server] = [s for s in spans if s.kind == "server"]
    assert server.span_id == span_id and server.parent_id == ""
    assert int(trace_id, 16) and int(span_id, 16)  # W3C forbids all-zero ids


def test_a_handler_call_and_the_handlers_own_span(
    collector: Collector, tmp_path: Path, upstream: Upstream
):
    with _traced_runner(collector, tmp_path, upstream) as (_, url):
        response = _chat(url, "Handled")
        assert response.status_code == 200
        poll(lambda: any(s.name == "handler work" for s in collector.spans), 20, "handler span")
        own = next(s for s in collector.spans if s.name == "handler work")
        spans = _tree(collector, own.trace_id, 3)
        scrape = httpx.get(f"{url}/metrics").text
    exported = re.search(r'^runner_trace_spans_total\{outcome="exported"\} (\S+)$', scrape, re.M)
    assert exported is not None and float(exported.group(1)) >= 3
    [server] = [s for s in spans if s.kind == "server"]
    [attempt] = [s for s in spans if s.name == "upstream attempt"]
    assert attempt.parent_id == server.span_id
    assert own.parent_id == attempt.span_id  # the handler's span sits under the call
    assert server.attributes["gen_ai.system"] == "runner.handler"
    assert server.attributes["runner.backend"] == "handler"
    assert server.parent_id == ""  # no traceparent came in: a new trace


def test_a_refused_request_is_a_trace_whose_admission_failed(
    collector: Collector, tmp_path: Path, upstream: Upstream
):
    other_trace = CALLER_TRACE[::-1]
    with _traced_runner(collector, tmp_path, upstream, RUNNER_API_KEYS="sk-caller") as (_, url):
        response = _chat(url, parent=f"00-{CALLER_TRACE}-{CALLER_SPAN}-01")
        assert response.status_code == 401
        unrouted = httpx.post(
            f"{url}/v1/no/such/route", headers={"traceparent": f"00-{other_trace}-{CALLER_SPAN}-01"}
        )
        assert unrouted.status_code == 401
        spans = _tree(collector, CALLER_TRACE, 2)
        [other] = [s for s in _tree(collector, other_trace, 2) if s.kind == "server"]
    [server] = [s for s in spans if s.kind == "server"]
    [admission] = [s for s in spans if s.name == "admission"]
    assert admission.parent_id == server.span_id and admission.error
    assert admission.attributes["runner.admitted"] is False
    assert server.error and server.attributes["runner.error.code"] == "invalid_api_key"
    assert server.name == "POST /v1/chat/completions"
    assert not [s for s in spans if s.name == "upstream attempt"]
    assert other.name == "POST other"  # bounded: never the caller's path
    assert other.attributes["url.path"] == "/v1/no/such/route"  # which is only an attribute


def test_an_unreachable_collector_costs_callers_nothing(tmp_path: Path, upstream: Upstream):
    dead = Collector(url="http://127.0.0.1:9")
    with _traced_runner(dead, tmp_path, upstream) as (process, url):
        for _ in range(3):
            response = _chat(url)
            assert response.status_code == 200
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    # Sent at shutdown if not before, and refused: logged once, whichever batch failed.
    assert stderr.count("further export failures are not logged") == 1
