"""Who may call the inference routes: ``RUNNER_API_KEYS``, checked in constant time.

Keys are held only as SHA-256 digests, so the plain keys can stay out of the
runner's environment too: an entry may be ``sha256:<hex digest>`` (what
``runner hash-key`` prints) instead of the key itself. Callers present a key the
way OpenAI clients do (``Authorization: Bearer …``) or as ``api-key``/``x-api-key``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from starlette.types import Message, Receive, Scope

from .errors import RunnerError

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
    """The checks every HTTP request passes before any route sees it: key and size."""

    def __init__(self, api_keys: ApiKeys | None, max_request_bytes: int) -> None:
        self.api_keys = api_keys
        self.max_request_bytes = max_request_bytes

    def refusal(self, scope: Scope) -> RunnerError | None:
        """Why this request is refused before its body is read, or None."""
        guarded = self.api_keys is not None and scope["path"].startswith("/v1/")
        if guarded and not self.api_keys.allows(presented_key(scope["headers"])):  # type: ignore[union-attr]
            return missing_key_error()
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
