"""Who may call: ``RUNNER_API_KEYS`` for the inference routes, ``RUNNER_ADMIN_KEY`` for
management, both checked in constant time, and how large a request may be.

Keys are held only as SHA-256 digests, so the plain keys can stay out of the
runner's environment too: an entry may be ``sha256:<hex digest>`` (what
``runner hash-key`` prints) instead of the key itself. Callers present a key the
way OpenAI clients do (``Authorization: Bearer …``) or as ``api-key``/``x-api-key``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import time
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runner.errors import RunnerError, send_error
from runner.observe import tracing
from runner.observe.records import current

MANAGEMENT_PREFIX = "/integrations"
METRICS_PATH = "/metrics"

_HASHED = "sha256:"


class ApiKeys:
    """The inference keys, as digests; :meth:`allows` compares without early exit."""

    def __init__(self, entries: Iterable[str]) -> None:
        self._digests = [_digest_of_entry(e.strip()) for e in entries if e.strip()]

    def allows(self, presented: str | None) -> bool:
        if not presented:
            return False
        digest = hashlib.sha256(presented.encode()).digest()
        matched = False
        for known in self._digests:
            matched |= hmac.compare_digest(digest, known)
        return matched


def hash_key(key: str) -> str:
    """The form of ``key`` to put in RUNNER_API_KEYS instead of the key itself."""
    return _HASHED + hashlib.sha256(key.encode()).hexdigest()


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The key in a request's raw ASGI headers, if it carries one."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                return token.strip()
        elif name in (b"api-key", b"x-api-key"):
            return value.decode("latin-1").strip()
    return None


def missing_key_error() -> RunnerError:
    return RunnerError(
        "This runner needs an API key for /v1: send 'Authorization: Bearer <key>' with one of "
        "the keys in RUNNER_API_KEYS (ask whoever runs the runner for one).",
        401,
        "authentication_error",
        "invalid_api_key",
    )


def _digest_of_entry(entry: str) -> bytes:
    if entry.startswith(_HASHED):
        try:
            digest = bytes.fromhex(entry.removeprefix(_HASHED))
        except ValueError:
            digest = b""
        if len(digest) != hashlib.sha256().digest_size:
            raise ValueError(
                "an entry of RUNNER_API_KEYS starting with 'sha256:' must be followed by 64 hex "
                "digits, as `runner hash-key KEY` prints"
            )
        return digest
    return hashlib.sha256(entry.encode()).digest()


class Admission:
    """ASGI middleware: the checks every HTTP request passes before any route sees it.

    - ``/v1/…`` needs one of ``api_keys`` when any are set.
    - ``/integrations…`` (the management API) needs ``admin_key`` as a bearer token
      when one is set; without one, only clients on this machine may manage.
    - ``/metrics`` needs ``metrics_key`` or ``admin_key`` when either is set; without
      them, only clients on this machine may scrape.
    - No body may be larger than ``max_request_bytes``: a declared length over it
      is refused before the body is read, a chunked one once it grows past it.
    """

    def __init__(
        self,
        app: ASGIApp,
        api_keys: ApiKeys | None,
        max_request_bytes: int,
        admin_key: str | None = None,
        metrics_key: str | None = None,
    ) -> None:
        self.app = app
        self.api_keys = api_keys
        self.max_request_bytes = max_request_bytes
        self._management = _Guard(
            keys=tuple(k.encode() for k in (admin_key,) if k is not None),
            wrong_key="The management API needs 'Authorization: Bearer <RUNNER_ADMIN_KEY>'.",
            wrong_key_code="invalid_admin_key",
            remote="The management API answers only clients on this machine while "
            "RUNNER_ADMIN_KEY is unset; set RUNNER_ADMIN_KEY on the server and send it as a "
            "bearer token.",
            remote_code="admin_key_required",
        )
        self._metrics = _Guard(
            keys=tuple(k.encode() for k in (metrics_key, admin_key) if k is not None),
            wrong_key="/metrics needs 'Authorization: Bearer <RUNNER_METRICS_KEY>' (or the "
            "admin key).",
            wrong_key_code="invalid_metrics_key",
            remote="/metrics answers only clients on this machine while neither "
            "RUNNER_METRICS_KEY nor RUNNER_ADMIN_KEY is set; set one and send it as a "
            "bearer token.",
            remote_code="metrics_key_required",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        record = current.get() if tracing.exporter is not None else None
        if record is not None and record.trace is not None:
            started = time.perf_counter()
            refusal = self.refusal(scope)
            tracing.admitted(record.trace, time.perf_counter() - started, refusal)
        else:
            refusal = self.refusal(scope)
        if refusal is not None:
            await send_error(send, refusal)
            return
        await self.app(scope, self.limit_body(receive), send)

    def refusal(self, scope: Scope) -> RunnerError | None:
        """Why this request is refused before its body is read, or None."""
        path: str = scope["path"]
        if path.startswith("/v1/"):
            if self.api_keys is not None and not self.api_keys.allows(
                presented_key(scope["headers"])
            ):
                return missing_key_error()
        elif path == MANAGEMENT_PREFIX or path.startswith(MANAGEMENT_PREFIX + "/"):
            refused = self._management.refusal(scope)
            if refused is not None:
                return refused
        elif path == METRICS_PATH:
            refused = self._metrics.refusal(scope)
            if refused is not None:
                return refused
        for name, value in scope["headers"]:
            if (
                name == b"content-length"
                and value.isdigit()
                and int(value) > self.max_request_bytes
            ):
                return self.too_large()
        return None

    def limit_body(self, receive: Receive) -> Receive:
        """``receive``, refusing a (chunked) body once it grows past the limit."""
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_request_bytes:
                    raise self.too_large()
            return message

        return limited

    def too_large(self) -> RunnerError:
        return RunnerError(
            f"The request body is larger than this runner accepts ({self.max_request_bytes} "
            "bytes, RUNNER_MAX_REQUEST_BYTES); send less, such as a shorter conversation.",
            413,
            "invalid_request_error",
            "request_too_large",
        )


@dataclass(frozen=True)
class _Guard:
    """Routes open to clients on this machine while no key is set, else to the bearers of
    ``keys`` (each compared in constant time, all of them, so the time taken says
    nothing about which one matched)."""

    keys: tuple[bytes, ...]
    wrong_key: str
    wrong_key_code: str
    remote: str
    remote_code: str

    def refusal(self, scope: Scope) -> RunnerError | None:
        if self.keys:
            presented = _bearer(scope["headers"]).encode()
            if not sum(hmac.compare_digest(presented, key) for key in self.keys):
                return RunnerError(self.wrong_key, 401, "authentication_error", self.wrong_key_code)
            return None
        client = scope.get("client")
        if not _is_loopback(client[0] if client else None):
            return RunnerError(self.remote, 403, "permission_error", self.remote_code)
        return None


def _bearer(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The token of an ``Authorization: Bearer …`` header, or ""."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return ""


def _is_loopback(host: str | None) -> bool:
    """Only a loopback *address* is local: behind uvicorn's proxy-header handling the
    client may be whatever a forwarded header said, and a name such as ``localhost``
    there is a claim, not a connection."""
    if host is None:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
