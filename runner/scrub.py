"""Making exception text fit to show a caller: no secrets, tracebacks or file paths.

Error messages pass on what failed (a handler's exception, LiteLLM's wrapping of
it), and that text is written for whoever debugs the server: it may hold a
Python traceback, the paths of the files involved (which reveal the install and
its user names) or, when a handler puts one in its message, a credential. The
functions here run only when a call has already failed, so they may take their
time; nothing on the success path calls them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from runner.integrations.redaction import REDACTED

MAX_CHARS = 2000
"""Longest text a caller gets; the rest is cut (a handler may put megabytes in a message)."""

_SHORTEST_SECRET = 4
# A traceback ends at its first unindented line (the exception itself), which is kept.
_TRACEBACK = re.compile(r"[^\n]*Traceback \(most recent call last\):[^\n]*(?:\n[ \t][^\n]*)*")
_CHAINING = re.compile(
    r"^\s*(During handling of the above exception, another exception occurred"
    r"|The above exception was the direct cause of the following exception):?\s*$",
    re.MULTILINE,
)
# A frame: on a line of its own, with the source lines indented under it; else inline.
_FRAME_LINES = re.compile(
    r'^([ \t]*)File "[^"\n]*", line \d+[^\n]*(?:\n\1[ \t]+[^\n]*)*', re.MULTILINE
)
_FRAME = re.compile(r'File "[^"\n]*", line \d+(?:, in [^\s,]+)?,?')
# An absolute path of two parts or more. One preceded by a word, ':' or '/' is
# part of a URL or a longer name (https://host/v1/x, openai/gpt) and stays.
_SEGMENT = r"[^\s/\\'\"`<>()\[\]{},;:|]+"
_PATH = re.compile(rf"(?<![\w.:/~-])/(?:{_SEGMENT}/)+({_SEGMENT})")
_BLANK_LINES = re.compile(r"\n\s*\n+")


def caller_safe(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with each of ``secrets`` masked, tracebacks and frames dropped, paths shortened.

    An absolute path becomes its last part (``/srv/app/handlers/x.py`` → ``x.py``):
    the file's name is what helps, its folder is what leaks. A bare URL path in
    a message (``POST /v1/generate``) cannot be told from a file's and is
    shortened too; a full URL is left alone.
    """
    text = mask(text, secrets)[: MAX_CHARS * 10]
    text = _TRACEBACK.sub(_keep_lead, text)
    text = _CHAINING.sub("", text)
    text = _FRAME_LINES.sub("", text)
    text = _FRAME.sub("", text)
    text = _PATH.sub(r"\1", text)
    text = _BLANK_LINES.sub("\n", text).strip()
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1] + "…"


def mask(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret replaced by the redaction mask."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def secret_strings(values: Iterable[object]) -> tuple[str, ...]:
    """The strings to mask for an integration's secret values, longest first.

    Values may be nested (the OAuth2 ``token``, a dict-valued init kwarg) or
    numbers. A credential written with its scheme (``Bearer abc…``) is masked
    alone too, as handlers often print just the credential. Strings shorter
    than four characters are left out: masking them would garble every message.
    Longest first, so a secret containing another is masked whole.
    """
    found: set[str] = set()
    for value in values:
        for text in _flatten(value):
            found.add(text)
            found.update(text.split()[-1:])
    return tuple(sorted((s for s in found if len(s) >= _SHORTEST_SECRET), key=len, reverse=True))


def _flatten(value: object) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield str(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _flatten(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _flatten(item)


def _keep_lead(match: re.Match[str]) -> str:
    """What stood before the word "Traceback" on its line, which is message, not traceback."""
    lead = match.group(0).split("Traceback (most recent call last):", 1)[0].strip()
    return lead
