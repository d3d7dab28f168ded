"""Keeping secrets out of responses, and letting a redacted integration be sent back.

``GET /integrations/{name}`` masks every secret. An operator who edits that
output and PUTs it back sends the mask instead of the secret; for an
integration that already exists the mask means "keep the current value", so
the round trip works without anyone retyping a key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from .errors import IntegrationInvalid, Problem
from .schema import ApiKeyIntegration, Integration, OAuth2Integration

REDACTED = "**********"
_SECRET_NAME = re.compile(r"auth|key|token|secret|passw|cookie|signature|credential", re.I)

Path = tuple[str, ...]


def redacted(integration: Integration) -> dict[str, Any]:
    """The integration as JSON with every secret masked, safe to return or log."""
    body = integration.model_dump(mode="json", exclude_none=True)
    for path, _ in _secrets(integration):
        _set(body, path, REDACTED)
    return body


def restore_redacted(data: object, previous: Integration | None) -> object:
    """Replace masks in submitted JSON with the secrets of the version being replaced.

    A mask with no previous secret behind it is refused: storing the mask as a
    key would only fail later, upstream, with a less helpful message.
    """
    if not isinstance(data, dict):
        return data
    kept = dict(_secrets(previous)) if previous is not None else {}
    problems = []
    for path in _masked_paths(data):
        if path in kept:
            _set(data, path, kept[path])
        else:
            problems.append(
                Problem(
                    ".".join(path),
                    f"is the redaction mask {REDACTED!r}; send "
                    "the real value (the mask keeps a value only when updating "
                    "an integration that already has one)",
                )
            )
    if problems:
        raise IntegrationInvalid(problems)
    return data


def _secrets(integration: Integration) -> Iterator[tuple[Path, Any]]:
    if isinstance(integration, ApiKeyIntegration):
        yield ("api_key_value",), integration.api_key_value.get_secret_value()
    if isinstance(integration, OAuth2Integration):
        yield (
            ("token",),
            {
                "client_id": integration.token.client_id,
                "client_secret": integration.token.client_secret.get_secret_value(),
            },
        )
    for name, value in integration.headers.items():
        if _SECRET_NAME.search(name):
            yield ("headers", name), value
    if integration.custom_llm_config is not None:
        for key, value in integration.custom_llm_config.init_kwargs.items():
            if _SECRET_NAME.search(key):
                yield ("custom_llm_config", "init_kwargs", key), value


def _masked_paths(data: dict[str, Any]) -> Iterator[Path]:
    for key, value in data.items():
        if value == REDACTED:
            yield (key,)
        elif isinstance(value, dict):
            yield from ((key, *rest) for rest in _masked_paths(value))


def _set(body: dict[str, Any], path: Path, value: Any) -> None:
    for key in path[:-1]:
        body = body[key]
    body[path[-1]] = value
