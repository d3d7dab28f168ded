"""A loopback OpenTelemetry collector: OTLP/HTTP ``POST /v1/traces``, decoded with the
``opentelemetry-proto`` package, every span kept for the test to read."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: str
    attributes: dict[str, Any]
    error: bool


@dataclass
class Collector:
    url: str = ""
    spans: list[Span] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    """Statuses to answer the next exports with (then 200); refused exports keep no span."""
    exports: list[dict[str, str]] = field(default_factory=list)
    """Each export's headers, refused ones too."""

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/traces", self._export, methods=["POST"])])

    async def _export(self, request: Request) -> Response:
        self.exports.append(dict(request.headers))
        if self.answers:
            return Response(status_code=self.answers.pop(0))
        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest.FromString(body)
        for resource in export.resource_spans:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    self.spans.append(
                        Span(
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            kind=_KINDS.get(span.kind, "unspecified"),
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            error=span.status.code == 2,
                        )
                    )
        return Response(
            ExportTraceServiceResponse().SerializeToString(),
            media_type="application/x-protobuf",
        )


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None
