"""Finished spans, batched and sent over OTLP/HTTP from the event loop.

The OpenTelemetry SDK's batch processor exports from a thread of its own,
which competes with the event loop for the GIL and, under load, cost the
runner more than half its throughput (the issue 14 benchmark). Here spans
wait in a queue, encoded; one task on the event loop sends a batch when
``OTEL_BSP_SCHEDULE_DELAY`` milliseconds are up, or as soon as
``OTEL_BSP_MAX_EXPORT_BATCH_SIZE`` spans wait, with aiohttp (a fifth of
httpx's CPU per export, measured).

Settings are OpenTelemetry's own variables, read as the SDK's OTLP/HTTP
exporter reads them (endpoints, headers, timeout in seconds, gzip, TLS files).
A full queue drops new spans, counted; an export that fails is retried while
the collector answers 429, 502, 503 or 504 or cannot be reached, then dropped,
and only the first failure is logged.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import ssl
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from runner.observe import otlp
from runner.security import outbound

log = logging.getLogger(__name__)
Scope = tuple[str, str]
_RETRYABLE = frozenset({429, 502, 503, 504})
_BACKOFF_SECONDS = (0.5, 1.0)


def _env(environ: Mapping[str, str], name: str, default: str = "") -> str:
    """The traces-only variable, else the all-signals one (``OTEL_EXPORTER_OTLP_*``)."""
    return environ.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}") or environ.get(
        f"OTEL_EXPORTER_OTLP_{name}", default
    )


def _number(name: str, raw: str, default: float) -> float:
    """A positive number from ``raw``, else ``default`` (with a warning if ``raw`` is junk)."""
    try:
        value = float(raw) if raw else default
    except ValueError:
        log.warning("%s=%r is not a number; using %s", name, raw, default)
        return default
    return value if value > 0 else default


@dataclass(frozen=True)
class ExportSettings:
    """Where and how spans are sent, from OpenTelemetry's ``OTEL_*`` variables."""

    endpoint: str
    headers: dict[str, str]
    timeout: float
    gzip: bool
    certificate: str
    client_cert: tuple[str, str] | str | None
    schedule_delay: float
    max_queue: int
    max_batch: int

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> ExportSettings:
        from opentelemetry.util.re import parse_env_headers

        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or (
            (environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://localhost:4318").removesuffix(
                "/"
            )
            + "/v1/traces"
        )
        compression = _env(environ, "COMPRESSION", "none").strip().lower()
        if compression not in ("none", "gzip"):
            log.warning("OTLP compression %r is not supported; sending uncompressed", compression)
        cert, key = _env(environ, "CLIENT_CERTIFICATE"), _env(environ, "CLIENT_KEY")
        bsp = {
            name: _number(f"OTEL_BSP_{name}", environ.get(f"OTEL_BSP_{name}", ""), default)
            for name, default in (
                ("SCHEDULE_DELAY", 5000), ("MAX_QUEUE_SIZE", 2048), ("MAX_EXPORT_BATCH_SIZE", 512)
            )
        }  # fmt: skip
        return cls(
            endpoint=endpoint,
            headers={
                "content-type": "application/x-protobuf",
                **parse_env_headers(_env(environ, "HEADERS"), liberal=True),
            },
            timeout=_number("OTEL_EXPORTER_OTLP_TIMEOUT", _env(environ, "TIMEOUT"), 10.0),
            gzip=compression == "gzip",
            certificate=_env(environ, "CERTIFICATE"),
            client_cert=(cert, key) if cert and key else (cert or None),
            schedule_delay=bsp["SCHEDULE_DELAY"] / 1000,
            max_queue=int(bsp["MAX_QUEUE_SIZE"]),
            max_batch=int(min(bsp["MAX_QUEUE_SIZE"], bsp["MAX_EXPORT_BATCH_SIZE"])),
        )


class SpanExporter:
    """The queue of finished spans and the task that sends them.

    Spans wait encoded, as bytes: many of them cost the garbage collector nothing.
    """

    def __init__(self, settings: ExportSettings, resource: Mapping[str, Any]) -> None:
        self.settings = settings
        self._resource = otlp.resource(resource)
        self._queue: deque[tuple[Scope, bytes, int]] = deque()
        self._queued = 0
        """Spans in the queue (approximate while handler threads add theirs)."""
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._failure_logged = False
        self.spans: Counter[str] = Counter()
        """Spans by outcome: ``exported``, ``failed`` (the collector refused or was not
        reached), ``dropped`` (the queue was full)."""

    def add(self, scope: Scope, spans: Iterable[bytes]) -> None:
        """Queue encoded spans; safe from any thread (handler spans end in theirs), so
        they wait for the next scheduled export or full batch."""
        for encoded in spans:
            self._put(scope, otlp.framed(encoded), 1)

    def add_framed(self, scope: Scope, count: int, framed: bytes) -> None:
        """Queue ``count`` spans, :func:`~runner.observe.otlp.framed` and joined; from the
        event loop only, which it wakes when a batch is full."""
        self._put(scope, framed, count)
        if self._queued >= self.settings.max_batch and self._wake is not None:
            self._wake.set()

    def _put(self, scope: Scope, item: bytes, count: int) -> None:
        if self._queued + count > self.settings.max_queue:
            self.spans["dropped"] += count
        else:
            self._queue.append((scope, item, count))
            self._queued += count

    def start(self) -> None:
        """Start sending from the running event loop (once; again after :meth:`stop`)."""
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop the task and send what is queued."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        async with self._client() as client:
            while self._queue:
                await self._send(client, retry=False)  # shutting down: no waiting

    def _client(self) -> aiohttp.ClientSession:
        s = self.settings
        tls = outbound.tls_context()
        if s.certificate or s.client_cert:
            tls = ssl.create_default_context(cafile=s.certificate or None)
            if isinstance(s.client_cert, tuple):
                tls.load_cert_chain(*s.client_cert)
            elif s.client_cert:
                tls.load_cert_chain(s.client_cert)
        # Not trust_env: aiohttp would then look for a .netrc on a thread at every export.
        return aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=s.timeout),
            connector=aiohttp.TCPConnector(ssl=tls),
        )

    async def _run(self) -> None:
        """Full batches as soon as they are full; whatever waits when the delay is up.
        (Sending what has gathered during the last send at once instead would, under
        load, turn into one small export after another.)"""
        assert self._wake is not None
        async with self._client() as client:
            while True:
                due = False
                try:
                    await asyncio.wait_for(self._wake.wait(), self.settings.schedule_delay)
                except TimeoutError:
                    due = True
                self._wake.clear()
                while self._queued >= self.settings.max_batch or (due and self._queue):
                    await self._send(client)

    async def _send(self, client: aiohttp.ClientSession, retry: bool = True) -> None:
        """Send one batch (``max_batch`` spans, give or take a request's, which are never
        split), retrying while that may help."""
        batch: dict[Scope, list[bytes]] = {}
        count = 0
        while self._queue and count < self.settings.max_batch:
            scope, item, spans = self._queue.popleft()
            self._queued -= spans
            count += spans
            batch.setdefault(scope, []).append(item)
        body = otlp.export_request(self._resource, batch)
        headers = self.settings.headers
        if self.settings.gzip:
            body, headers = gzip.compress(body), {**headers, "content-encoding": "gzip"}
        problem, url = "", self.settings.endpoint
        proxy = outbound.env_proxy(url)  # HTTPS_PROXY and NO_PROXY, as the SDK's exporter
        for backoff in (*(_BACKOFF_SECONDS if retry else ()), None):
            try:
                async with client.post(url, data=body, headers=headers, proxy=proxy) as answer:
                    await answer.read()
                    status = answer.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if 200 <= status < 300:
                    self.spans["exported"] += count
                    return
                problem = f"the collector answered {status}"
                if status not in _RETRYABLE:
                    break
            if backoff is not None:
                await asyncio.sleep(backoff)
        self.spans["failed"] += count
        if not self._failure_logged:
            self._failure_logged = True
            log.warning(
                "could not export %d spans to %s: %s (further export failures are not logged)",
                count,
                self.settings.endpoint,
                problem,
            )
