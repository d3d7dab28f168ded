"""Characters and URLs that have no place in an integration's names, headers and addresses.

A control character (Unicode category Cc: CR, LF, NUL, TAB, DEL, the C1 range)
in a header name or value would split or forge HTTP headers. HTTP clients refuse
it only when a request is sent, with an error that may quote the value — the
API key itself — to whoever made the call. So such strings are refused when the
integration is registered, with a message that names the field, the code point
and its position but never the value (it may be a secret).

Names callers choose models by (aliases, model names) must also be free of
invisible format characters (category Cf: bidi overrides, zero-width spaces, the
byte-order mark), which make one name look like another.

Custom handlers' ``init_kwargs`` are not checked: a handler may take a
multi-line PEM key or prompt.

URLs (:func:`http_url`) must be http(s), carry no credentials (a URL is neither
encrypted nor redacted) and write an IPv4 host as a.b.c.d.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import unicodedata
from urllib.parse import SplitResult, urlsplit

from pydantic import BeforeValidator, SecretStr
from pydantic_core import PydanticCustomError

from runner.errors import IntegrationInvalid, Problem

# The WHATWG URL standard reads a host whose last label is a number as an IPv4 address.
_ENDS_IN_NUMBER = re.compile(r"(?:^|\.)(?:0[xX][0-9a-fA-F]*|[0-9]+)\.?\Z")
_KINDS = {
    "Cc": "control character",
    "Cf": "invisible formatting character",
}


def text_problem(value: str, *, visible: bool = False) -> str | None:
    """Why ``value`` is refused, or None: it holds a control character (or, with
    ``visible``, an invisible formatting character). Positions count from 1."""
    refused = ("Cc", "Cf") if visible else ("Cc",)
    for position, char in enumerate(value, start=1):
        category = unicodedata.category(char)
        if category in refused:
            return (
                f"contains the {_KINDS[category]} U+{ord(char):04X} at position {position}; "
                "remove it (the value is not repeated here, as it may be a secret)"
            )
    return None


def check_text(field: str, value: str) -> None:
    """Refuse ``value`` for ``field`` (422) if it holds a control character."""
    problem = text_problem(value)
    if problem is not None:
        raise IntegrationInvalid([Problem(field, problem)])


def _refuse(value: object, *, visible: bool) -> object:
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if isinstance(text, str) and (problem := text_problem(text, visible=visible)) is not None:
        raise PydanticCustomError("refused_character", "{message}", {"message": problem})
    return value


def _plain(value: object) -> object:
    return _refuse(value, visible=False)


def _visible(value: object) -> object:
    return _refuse(value, visible=True)


# Annotated metadata. Both run before whitespace is stripped, so a trailing newline
# is refused rather than silently dropped.
PLAIN = BeforeValidator(_plain)
"""The string (or secret) holds no control character."""
VISIBLE = BeforeValidator(_visible)
"""No control character and no invisible formatting character either."""


def http_url(value: str, example: str, credentials_go: str) -> str:
    """``value`` as an http(s) URL with a host, without a trailing ``/``.

    Credentials in the URL itself (``https://user:pass@host``) are refused:
    the URL is shown by ``GET`` and written to the store unencrypted, where
    ``credentials_go`` (the fields named there) are sealed and redacted.
    """
    problem = text_problem(value)
    if problem is not None:
        raise PydanticCustomError("refused_character", "{message}", {"message": problem})
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or not _port_ok(parts):
        raise PydanticCustomError(
            "http_url",
            "must be an http:// or https:// URL with a host (and a valid port, if any), "
            "such as {example}",
            {"example": example},
        )
    host_problem = _host_problem(parts)
    if host_problem is not None:
        raise PydanticCustomError("url_host", "{message}", {"message": host_problem})
    if "@" in parts.netloc:
        raise PydanticCustomError(
            "url_credentials",
            "must not carry credentials (user:password@host): a URL is neither encrypted "
            "nor redacted; put them in {where}",
            {"where": credentials_go},
        )
    return value.strip().rstrip("/")


def _host_problem(parts: SplitResult) -> str | None:
    """Why the URL's host is no usable name or address, or None.

    An IPv4 address written other than a.b.c.d (octal ``0251.0376.0251.0376``,
    hex, one number ``2852039166``, fewer parts ``169.254.43518``) is refused:
    resolvers read it as an address, so it only hides where the URL points,
    and HTTP clients disagree on how to read it (httpx refuses octal outright).
    A host in brackets must be an IPv6 address (not an "IPvFuture" ``[v1.x]``).
    """
    host = parts.hostname or ""
    if "[" in parts.netloc:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return "has a host in [brackets] that is not an IPv6 address"
        return None
    if not _ENDS_IN_NUMBER.search(host):
        return None  # a name
    try:
        canonical = socket.inet_ntoa(socket.inet_aton(host))
    except OSError:
        return (
            f"has the host {host!r}, which ends in a number but is not an IPv4 address; "
            "write an IPv4 address as four decimal numbers from 0 to 255, a.b.c.d"
        )
    if canonical == host:
        return None
    return (
        f"has the host {host!r}, which resolvers read as the IPv4 address {canonical}; "
        f"write an IPv4 address as four decimal numbers, a.b.c.d: {canonical}"
    )


def _port_ok(parts: SplitResult) -> bool:
    try:
        parts.port  # noqa: B018 - reading it validates it
    except ValueError:
        return False
    return True
